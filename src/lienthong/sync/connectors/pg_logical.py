"""PostgreSQL log-based change capture: a logical replication slot (``test_decoding``).

Needs ``wal_level = logical`` on the source server. Algorithm (resumable at every step):

1. first run: create the slot (its consistent point is the stream's start LSN), then take a
   keyset snapshot of the table in chunks (position: ``{"phase": "snapshot", "after": key,
   "lsn": start, "seen": [...]}``). Each page is read in a REPEATABLE READ transaction that
   also returns its MVCC snapshot (``pg_current_snapshot()``); ``seen`` keeps, per key range,
   the snapshot it was read under. The stream then starts at the slot's start, so changes
   made while the snapshot ran come again: a change whose transaction the page's snapshot
   already saw is skipped (the page holds it or a newer state), any other is applied — the
   rows never go back in time and no history version is written twice. Once the stream has
   passed the WAL position where the snapshot ended, every transaction is newer than every
   page and ``seen`` is dropped. (Integer and text keys; a table keyed otherwise replays
   those changes, as documented.)
2. stream: peek changes after the stored LSN, keep this table's INSERT/UPDATE (rows) and DELETE
   (tombstones), one change per key (its last: the chunk's lists lose the order), and yield
   them as chunks whose position is the LSN of the last commit read.
3. the slot is advanced to a chunk's LSN when the consumer asks for the next chunk (it has
   then written the chunk to its durable outbox) and, at the start of each read, to the stored
   position — so the server may recycle that WAL;
4. heartbeat: ranges with no change for this table advance the slot at once, and
   :meth:`heartbeat` writes a logical message so even an idle database moves the slot.
"""

from __future__ import annotations

import bisect
import datetime as dt
import decimal
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lienthong.errors import BackendError, ConfigError
from lienthong.sync.connectors.base import note_range, seen_field
from lienthong.sync.connectors.sql import POSTGRES, SqlTableConnector, check_identifier
from lienthong.sync.model import Chunk, Position, decode_key, encode_key, last_change_per_key

_LINE = re.compile(r"^table (?P<schema>[^.]+)\.(?P<table>[^:]+): (?P<op>INSERT|UPDATE|DELETE): ")
_FIELD = re.compile(r"(?P<name>[^\[\s]+)\[(?P<type>[^\]]+)\]:(?P<value>'(?:[^']|'')*'|\S+)")
# an UPDATE that changes the replica identity prints the old key first
_TOKEN = re.compile(r"(?P<marker>old-key|new-tuple): |" + _FIELD.pattern)
_INTS = ("smallint", "integer", "bigint")
_XID = 1 << 32


class _Unchanged:
    """An unchanged TOASTed value of an UPDATE (test_decoding: ``unchanged-toast-datum``):
    the row is read again from the source."""

    def __repr__(self) -> str:
        return "unchanged-toast-datum"


UNCHANGED = _Unchanged()


def _precedes(a: int, b: int) -> bool:
    """PostgreSQL's 32-bit transaction id order (modulo 2^32, as TransactionIdPrecedes)."""
    return (a - b) % _XID >= _XID // 2


def saw(snapshot: str, xid: int) -> bool:
    """Whether a committed transaction ``xid`` (32-bit, from the stream) is visible to the
    MVCC snapshot ``xmin:xmax:xip,…`` (``pg_current_snapshot()``, 64-bit ids)."""
    xmin_s, xmax_s, xip_s = snapshot.split(":")
    xmin, xmax = int(xmin_s) % _XID, int(xmax_s) % _XID
    if _precedes(xid, xmin):
        return True
    if not _precedes(xid, xmax):
        return False
    return str(xid) not in {str(int(x) % _XID) for x in xip_s.split(",") if x}


def lsn_int(lsn: str) -> int:
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def parse_value(typ: str, raw: str) -> Any:
    """A test_decoding literal as the value the snapshot query would return."""
    if raw == "null":
        return None
    if raw == "unchanged-toast-datum":
        return UNCHANGED
    text = raw[1:-1].replace("''", "'") if raw.startswith("'") else raw
    if typ in _INTS:
        return int(text)
    if typ == "boolean":
        return text == "true"
    if typ == "numeric":
        return decimal.Decimal(text)
    if typ in ("double precision", "real"):
        return float(text)
    if typ == "date":
        return dt.date.fromisoformat(text)
    if typ.startswith("timestamp"):
        return dt.datetime.fromisoformat(text)
    return text


def parse_change(line: str) -> tuple[str, str, dict[str, Any]] | None:
    """``table s.t: OP: col[type]:value ...`` → (qualified table, op, {col: value})."""
    event = parse_event(line)
    return None if event is None else event[:3]


def parse_event(
    line: str,
) -> tuple[str, str, dict[str, Any], dict[str, Any] | None] | None:
    """Like :func:`parse_change`, plus the ``old-key:`` values of an UPDATE that changed the
    key (None when the key stayed)."""
    m = _LINE.match(line)
    if m is None:
        return None
    values: dict[str, Any] = {}
    old: dict[str, Any] | None = None
    for t in _TOKEN.finditer(line[m.end() :]):
        if t["marker"] == "old-key":
            old = values = {}
        elif t["marker"] == "new-tuple":
            values = {}
        else:
            values[t["name"]] = parse_value(t["type"], t["value"])
    return f"{m['schema']}.{m['table']}", m["op"], values, old


@dataclass
class PgLogicalConnector:
    """Snapshot, then the change stream of one table from a logical replication slot."""

    connect: Callable[[], Any]
    table: str
    key: Sequence[str]
    slot: str
    schema_name: str = "public"

    def __post_init__(self) -> None:
        for ident in (self.table, self.slot, self.schema_name, *self.key):
            check_identifier(ident)
        self.name = self.table
        self.snapshot = SqlTableConnector(self.connect, POSTGRES, self.table, self.key)
        self._conn: Any = None
        self._identity_checked = False

    def _sql(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            if self._conn is None:
                self._conn = self.connect()
                self._conn.autocommit = True  # slot functions refuse a transaction with an XID
            return list(self._conn.execute(sql, tuple(params)).fetchall())
        except Exception as exc:
            self.close()
            raise BackendError(f"logical replication slot {self.slot}: {exc}") from exc

    def verify_server(self) -> None:
        (level,) = self._sql("SHOW wal_level")[0]
        if level != "logical":
            raise ConfigError(
                f"PostgreSQL wal_level is {level!r}: log-based capture needs wal_level = logical "
                "(use cursor mode, or ask the DBA to enable it)"
            )

    def verify_identity(self) -> None:
        """The pipeline's key must be in what the log carries of a deleted row (the table's
        replica identity), or a DELETE could not name the row to tombstone."""
        table = f"{self.schema_name}.{self.table}"
        rows = self._sql(
            "SELECT c.relreplident::text, coalesce(array_agg(a.attname::text ORDER BY a.attnum)"
            " FILTER (WHERE a.attname IS NOT NULL), '{}') FROM pg_class c"
            " LEFT JOIN pg_index i ON i.indrelid = c.oid AND ((c.relreplident = 'd' AND"
            " i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))"
            " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)"
            " WHERE c.oid = to_regclass(%s) GROUP BY c.relreplident",
            [table],
        )
        if not rows:
            raise ConfigError(f"source table {table} does not exist")
        mode, identity = str(rows[0][0]), list(rows[0][1])
        if mode == "f" or set(self.key) <= set(identity):
            return
        raise ConfigError(
            f"logical capture of {table}: the pipeline's key ({', '.join(self.key)}) is not in "
            f"the table's replica identity ({', '.join(identity) or 'none'}), so a deleted row "
            f"could not be named: use key = {identity} or ALTER TABLE {table} REPLICA "
            "IDENTITY FULL"
        )

    def ensure_slot(self) -> str:
        """Create the slot if missing; return the LSN the stream starts from."""
        rows = self._sql(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
            [self.slot],
        )
        if rows:
            return str(rows[0][0])
        self.verify_server()
        return str(
            self._sql(
                "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'test_decoding')",
                [self.slot],
            )[0][0]
        )

    def drop_slot(self) -> None:
        self._sql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s",
            [self.slot],
        )

    def heartbeat(self) -> None:
        """Write a tiny logical message so an idle source still lets the slot move on."""
        self._sql("SELECT pg_logical_emit_message(false, 'lienthong.heartbeat', now()::text)")

    def schema(self) -> dict[str, str]:
        try:
            return self.snapshot.schema()
        except BackendError:
            # the source ended the table connection (a restart, a failover,
            # pg_terminate_backend): it ended the slot connection too — both are opened anew
            # on the next pass, not the slot's only after one more failing pass and pause
            self.close()
            raise

    def read(self, position: Position | None, size: int) -> Iterator[Chunk]:
        if not self._identity_checked:  # once per connector (a follow pass reads often)
            self.verify_identity()
            self._identity_checked = True
        if position is None or position.get("phase") == "snapshot":
            start = position["lsn"] if position else self.ensure_slot()
            types = self.schema()
            columns = list(types)
            after = decode_key(position.get("after")) if position else None
            seen: list[list[Any]] | None = None
            if self._orderable(types):
                seen = [list(s) for s in position.get("seen", [])] if position else []
            while True:
                rows, snap = self._page(columns, after, size)
                if rows:
                    after = tuple(rows[-1][columns.index(k)] for k in self.key)
                    if seen is not None:  # key ranges, each with its snapshot
                        seen = note_range(seen, encode_key(after), snap)
                    yield Chunk(columns, rows, {"phase": "snapshot", "after": encode_key(after),
                                                "lsn": start} | seen_field(seen))  # fmt: skip
                if len(rows) < size:
                    break
            position = {"phase": "stream", "lsn": start} | seen_field(seen)
            if seen:  # a change committed after this cannot be visible to any page
                # the insert position: a commit not yet written out is before it too
                position["until"] = str(self._sql("SELECT pg_current_wal_insert_lsn()::text")[0][0])
            yield Chunk(columns, [], position)  # the snapshot is complete
        yield from self._stream(position, size)

    def _orderable(self, types: dict[str, str]) -> bool:
        """Integer keys (same order in PostgreSQL and Python, parsed as int from the stream)
        on a primary (on a standby, ``pg_current_snapshot()`` lists no running transaction):
        the key ranges of ``seen`` can be looked up; otherwise changes made during the
        snapshot are replayed (documented)."""
        if not all(types.get(k) in _INTS for k in self.key):
            return False
        return not self._sql("SELECT pg_is_in_recovery()")[0][0]

    def _page(
        self, columns: list[str], after: tuple[Any, ...] | None, size: int
    ) -> tuple[list[tuple[Any, ...]], str]:
        """One keyset page and the MVCC snapshot it was read under (one transaction)."""
        q = POSTGRES.quote
        keys = [q(k) for k in self.key]
        where = f" WHERE ({', '.join(keys)}) > ({', '.join(['%s'] * len(keys))})" if after else ""
        sql = (f"SELECT {', '.join(q(c) for c in columns)} FROM "
               f"{POSTGRES.quote_table(self.table)}{where} ORDER BY {', '.join(keys)} "
               f"LIMIT {int(size)}")  # fmt: skip
        conn = self.snapshot.conn
        try:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            (snap,) = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
            rows = list(conn.execute(sql, tuple(after or ())).fetchall())
            conn.commit()  # end the read transaction: no snapshot pinned between pages
        except Exception as exc:  # psycopg's errors: the page is read again on the next pass
            self.close()  # the slot connection too (see schema)
            raise BackendError(f"postgres source {self.table}: {exc}") from exc
        return rows, str(snap)

    def _stream(self, position: Position, size: int) -> Iterator[Chunk]:
        lsn = str(position["lsn"])
        columns = list(self.schema())
        me = f"{self.schema_name}.{self.table}"
        ranges = [(decode_key(u) or (), str(s)) for u, s in position.get("seen", [])]
        uppers = [u for u, _s in ranges]
        until = lsn_int(str(position["until"])) if ranges and position.get("until") else None

        def replayed(xid: int, commit: str, key: tuple[Any, ...]) -> bool:
            """A change the snapshot page holding ``key`` already saw (or superseded)."""
            if until is None or lsn_int(commit) > until:
                return False
            try:
                i = bisect.bisect_left(uppers, key)
            except TypeError:  # a key the page order cannot place (NULL, another type)
                return False  # applied: at worst a replay, never a loss
            return i < len(ranges) and saw(ranges[i][1], xid)

        def at(lsn: str) -> Position:
            keep = until is not None and lsn_int(lsn) <= until
            return {"phase": "stream", "lsn": lsn} | (
                {"seen": position["seen"], "until": position["until"]} if keep else {}
            )

        self._advance(lsn)
        while True:
            # peeking starts at the slot's confirmed position, which follows our position
            changes = self._sql(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_changes(%s, NULL, %s, "
                "'include-xids', '1', 'skip-empty-xacts', '1')",
                [self.slot, size],
            )
            committed: list[tuple[bool, tuple[Any, ...], tuple[Any, ...]]] = []
            txn: list[tuple[str, dict[str, Any]]] = []
            last_commit = None
            for where, data in changes:
                if data.startswith("BEGIN"):
                    txn = []
                elif data.startswith("COMMIT"):
                    if lsn_int(where) > lsn_int(lsn):  # whole transactions only, never twice
                        xid = int(data.split()[1])
                        for op, values in txn:
                            key = tuple(values.get(k) for k in self.key)
                            if replayed(xid, where, key):
                                continue
                            if op == "DELETE":
                                committed.append((True, key, key))
                            else:
                                committed.append(
                                    (False, key, tuple(values.get(c) for c in columns))
                                )
                        last_commit = where
                elif (parsed := parse_event(data)) is not None and parsed[0] == me:
                    _table, op, values, old = parsed
                    if old is not None and tuple(old.get(k) for k in self.key) != tuple(
                        values.get(k) for k in self.key
                    ):  # the key itself changed: the old key is gone
                        txn.append(("DELETE", old))
                    txn.append((op, values))
            if last_commit is None:
                return  # nothing committed after our position (or one huge open page)
            lsn = last_commit
            if committed:  # one change per key, its last (the chunk's lists lose the order)
                rows, deletes, superseded = last_change_per_key(committed)
                rows = self._detoasted(columns, rows)
                yield Chunk(columns, rows, at(lsn), deletes, superseded=superseded)
            # the consumer asks for the next chunk only once this one is durable in its
            # outbox (or it was not ours): the server may now recycle that WAL
            self._advance(lsn)

    def _detoasted(self, columns: list[str], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Rows whose UPDATE left a TOASTed value out are read again from the source (its
        state now; later changes follow in the stream); a row gone since is dropped (its
        deletion follows)."""
        partial = [r for r in rows if any(v is UNCHANGED for v in r)]
        if not partial:
            return rows
        idx = [columns.index(k) for k in self.key]
        keys = [tuple(r[i] for i in idx) for r in partial]
        q = POSTGRES.quote
        cols = ", ".join(q(c) for c in columns)
        one = "(" + ", ".join(["%s"] * len(self.key)) + ")"
        where = f"({', '.join(q(k) for k in self.key)}) IN ({', '.join([one] * len(keys))})"
        sql = f"SELECT {cols} FROM {POSTGRES.quote_table(self.table)} WHERE {where}"
        params = [v for k in keys for v in k]
        current = {tuple(r[i] for i in idx): tuple(r) for r in self._sql(sql, params)}
        out = []
        for r in rows:
            if any(v is UNCHANGED for v in r):
                fresh = current.get(tuple(r[i] for i in idx))
                if fresh is not None:
                    out.append(fresh)
            else:
                out.append(r)
        return out

    def _advance(self, lsn: str) -> None:
        self._sql(
            "SELECT pg_replication_slot_advance(%s, %s::pg_lsn) FROM pg_replication_slots "
            "WHERE slot_name = %s AND confirmed_flush_lsn < %s::pg_lsn",
            [self.slot, lsn, self.slot, lsn],
        )

    def pending(self, position: Position | None) -> int:
        if position is None or position.get("phase") == "snapshot":
            after = {"after": position["after"]} if position and position.get("after") else None
            return self.snapshot.pending(after)
        rows = self._sql(
            "SELECT count(*) FROM pg_logical_slot_peek_changes(%s, NULL, NULL, "
            "'include-xids', '0', 'skip-empty-xacts', '1') WHERE lsn > %s::pg_lsn "
            "AND data LIKE %s",
            [self.slot, position["lsn"], f"table {self.schema_name}.{self.table}:%"],
        )
        return int(rows[0][0])

    def close(self) -> None:
        self.snapshot.close()
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
