"""MariaDB / MySQL log-based change capture from the row-format binary log.

Needs ``log_bin = ON``, ``binlog_format = ROW``, ``binlog_row_image = FULL`` and
``binlog_row_metadata = FULL`` (column names in the log), and a user with REPLICATION SLAVE
and REPLICATION CLIENT. Reads with the ``mysql-replication`` package as a replica with its
own ``server_id``. Like the PostgreSQL slot connector: the binlog coordinates are taken first,
then the table is snapshotted in keyset chunks, then whole committed transactions after the
stored coordinates are streamed (write/update → rows, delete → tombstones; one change per key
and chunk, its last). With an integer key each page is read in a ``START TRANSACTION WITH
CONSISTENT SNAPSHOT`` together with the binlog coordinates it is consistent with (MariaDB's
``binlog_snapshot_file`` / ``binlog_snapshot_position``), kept per key range in the position
(``seen``): a transaction the page already saw is not replayed over it. The server keeps
binlogs by its own retention (``binlog_expire_logs_seconds``): a source that stays offline
longer than that must be snapshotted again.
"""

from __future__ import annotations

import bisect
import datetime as dt
import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lienthong.errors import BackendError, ConfigError
from lienthong.sync.connectors.base import note_range, seen_field
from lienthong.sync.connectors.sql import (
    MARIADB,
    SqlTableConnector,
    check_identifier,
    mariadb_conversions,
)
from lienthong.sync.model import (
    Chunk,
    Position,
    clock_text,
    decode_key,
    encode_key,
    last_change_per_key,
)

_INTS = ("tinyint", "smallint", "mediumint", "int", "bigint")
REQUIRED = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
            "binlog_row_metadata": "FULL"}  # fmt: skip


@dataclass
class MariaDbBinlogConnector:
    """Snapshot, then the binlog change stream of one table."""

    params: dict[str, Any]  # PyMySQL keyword arguments, including ``database``
    table: str
    key: Sequence[str]
    server_id: int = 4242

    def __post_init__(self) -> None:
        for ident in (self.table, *self.key):
            check_identifier(ident)
        self.name = self.table
        self.snapshot = SqlTableConnector(self._connect, MARIADB, self.table, self.key)

    def _connect(self) -> Any:
        return importlib.import_module("pymysql").connect(
            **self.params, connect_timeout=10, conv=mariadb_conversions()
        )

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            conn = self._connect()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    return list(cur.fetchall())
            finally:
                conn.close()
        except Exception as exc:
            raise BackendError(f"mariadb binlog source: {exc}") from exc

    def verify_server(self) -> None:
        names = ", ".join(f"'{k}'" for k in REQUIRED)
        found = dict(self._query(f"SHOW VARIABLES WHERE Variable_name IN ({names})"))
        wrong = [f"{k}={found.get(k, 'absent')}" for k, v in REQUIRED.items()
                 if str(found.get(k, "")).upper() != v]  # fmt: skip
        if wrong:
            raise ConfigError(
                f"MariaDB binlog capture needs {', '.join(f'{k}={v}' for k, v in REQUIRED.items())}"
                f"; the server has {', '.join(wrong)} (use cursor mode, or ask the DBA)"
            )

    def coordinates(self) -> dict[str, Any]:
        self.verify_server()
        file, pos = self._query("SHOW MASTER STATUS")[0][:2]
        return {"file": str(file), "pos": int(pos)}

    def schema(self) -> dict[str, str]:
        return self.snapshot.schema()

    def read(self, position: Position | None, size: int) -> Iterator[Chunk]:
        if position is None or position.get("phase") == "snapshot":
            start = position["binlog"] if position else self.coordinates()
            types = self.schema()  # e.g. "bigint(20) unsigned"
            columns = list(types)
            after = decode_key(position.get("after")) if position else None
            seen: list[list[Any]] | None = None
            if all(types.get(k, "").split("(")[0].split(" ")[0] in _INTS for k in self.key):
                seen = [list(s) for s in position.get("seen", [])] if position else []
            while True:
                rows, snap = self._page(columns, after, size)
                rows = self.snapshot.decode_rows(columns, rows)
                if snap is None:
                    seen = None  # MySQL: no snapshot coordinates, the changes are replayed
                if rows:
                    after = tuple(rows[-1][columns.index(k)] for k in self.key)
                    if seen is not None and snap is not None:  # key ranges, each with its snapshot
                        seen = note_range(seen, encode_key(after), snap)
                    yield Chunk(columns, rows, {"phase": "snapshot", "after": encode_key(after),
                                                "binlog": start} | seen_field(seen))  # fmt: skip
                if len(rows) < size:
                    break
            position = {"phase": "stream", "binlog": start} | seen_field(seen)
            if seen:  # a transaction committed after this was seen by no page
                position["until"] = self.coordinates()
            yield Chunk(columns, [], position)  # the snapshot is complete
        yield from self._stream(position, size)

    def _page(
        self, columns: list[str], after: tuple[Any, ...] | None, size: int
    ) -> tuple[list[tuple[Any, ...]], dict[str, Any] | None]:
        """One keyset page read in a consistent snapshot, and the binlog coordinates that
        snapshot is consistent with (None where the server does not say: MySQL)."""
        q = MARIADB.quote
        keys = ", ".join(q(k) for k in self.key)
        where = f" WHERE ({keys}) > ({', '.join(['%s'] * len(self.key))})" if after else ""
        sql = (f"SELECT {', '.join(q(c) for c in columns)} FROM {MARIADB.quote_table(self.table)}"
               f"{where} ORDER BY {keys} LIMIT {int(size)}")  # fmt: skip
        conn = self.snapshot.conn
        try:
            with conn.cursor() as cur:
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
                status = {str(k).lower(): v for k, v in cur.fetchall()}
                cur.execute(sql, tuple(after or ()))
                rows = list(cur.fetchall())
            conn.commit()
        except Exception as exc:
            self.snapshot.close()
            raise BackendError(f"mariadb source {self.table}: {exc}") from exc
        file, pos = status.get("binlog_snapshot_file"), status.get("binlog_snapshot_position")
        snap = {"file": str(file), "pos": int(pos)} if file and pos is not None else None
        return rows, snap

    def _reader(self, start: dict[str, Any]) -> Any:
        mod = importlib.import_module("pymysqlreplication")
        rows_mod = importlib.import_module("pymysqlreplication.row_event")
        ev = importlib.import_module("pymysqlreplication.event")
        p = self.params
        settings = {"host": p.get("host", "127.0.0.1"), "port": int(p.get("port", 3306)),
                    "user": p.get("user", ""), "password": p.get("password", "")}  # fmt: skip
        return mod.BinLogStreamReader(
            connection_settings=settings, server_id=self.server_id, resume_stream=True,
            log_file=start["file"], log_pos=start["pos"], blocking=False,
            only_events=[rows_mod.WriteRowsEvent, rows_mod.UpdateRowsEvent,
                         rows_mod.DeleteRowsEvent, ev.XidEvent],
            only_schemas=[p["database"]], only_tables=[self.table],
            pymysql_wrapper=_connect_current_keywords,
        )  # fmt: skip

    def _stream(self, position: Position, size: int) -> Iterator[Chunk]:
        start = dict(position["binlog"])
        columns = list(self.schema())
        ranges = [(decode_key(u) or (), _coord(c)) for u, c in position.get("seen", [])]
        uppers = [u for u, _c in ranges]
        until = _coord(position["until"]) if ranges and position.get("until") else None

        def replayed(end: dict[str, Any], key: tuple[Any, ...]) -> bool:
            """A transaction (ending at ``end``) the snapshot page holding ``key`` saw."""
            if until is None or _coord(end) > until:
                return False
            i = bisect.bisect_left(uppers, key)
            return i < len(ranges) and _coord(end) <= ranges[i][1]

        def at(here: dict[str, Any]) -> Position:
            keep = until is not None and _coord(here) <= until
            return {"phase": "stream", "binlog": here} | (
                {"seen": position["seen"], "until": position["until"]} if keep else {}
            )

        try:
            stream = self._reader(start)
        except Exception as exc:
            self.snapshot.close()  # the source may have ended it too (see below)
            raise BackendError(f"mariadb binlog source: {exc}") from exc
        committed: list[tuple[bool, tuple[Any, ...], tuple[Any, ...]]] = []
        txn: list[tuple[str, dict[str, Any]]] = []
        here = start

        def chunk() -> Chunk:  # one change per key, its last (the chunk's lists lose the order)
            rows, deletes, superseded = last_change_per_key(committed)
            committed.clear()
            return Chunk(columns, rows, at(here), deletes, superseded=superseded)

        try:
            for event in stream:
                kind = type(event).__name__
                if kind == "XidEvent":  # commit: the transaction is complete
                    end = {"file": stream.log_file, "pos": stream.log_pos}
                    for op, values in txn:
                        key = tuple(values.get(k) for k in self.key)
                        if replayed(end, key):
                            continue
                        if op == "delete":
                            committed.append((True, key, key))
                        else:
                            row = tuple(_time_text(values.get(c)) for c in columns)
                            row = self.snapshot.decode_rows(columns, [row])[0]
                            committed.append((False, key, row))
                    txn = []
                    here = {"file": stream.log_file, "pos": stream.log_pos}
                    if len(committed) >= size:
                        yield chunk()
                    continue
                for row in event.rows:
                    if kind == "DeleteRowsEvent":
                        txn.append(("delete", row["values"]))
                        continue
                    before = row.get("before_values")
                    after = row.get("after_values", row.get("values"))
                    if before is not None and any(before.get(k) != after.get(k) for k in self.key):
                        txn.append(("delete", before))  # the key itself changed
                    txn.append(("upsert", after))
            if here != start:  # also when nothing was ours: the position still moves on
                yield chunk()
        except Exception as exc:
            # the server that ended the stream (a restart, a failover, KILL) ended the table
            # connection too: both are opened anew on the next pass, not the table's only
            # after one more failing pass and pause (as for the PostgreSQL logical slot)
            self.snapshot.close()
            if isinstance(exc, BackendError):
                raise
            raise BackendError(f"mariadb binlog source: {exc}") from exc
        finally:
            stream.close()

    def pending(self, position: Position | None) -> int:
        if position is None or position.get("phase") == "snapshot":
            after = {"after": position["after"]} if position and position.get("after") else None
            return self.snapshot.pending(after)
        return sum(c.read for c in self._stream(position, 10**6))

    def close(self) -> None:
        self.snapshot.close()


def _time_text(value: Any) -> Any:
    """A TIME value of the stream (a timedelta) as the snapshot's PyMySQL reads it."""
    return clock_text(value) if isinstance(value, dt.timedelta) else value


def _connect_current_keywords(**kwargs: Any) -> Any:
    """PyMySQL connect for mysql-replication, whose control connection still passes the
    deprecated ``db`` / ``passwd`` keywords (PyMySQL warns on them)."""
    for old, new in (("db", "database"), ("passwd", "password")):
        if old in kwargs:
            kwargs[new] = kwargs.pop(old)
    return importlib.import_module("pymysql").connect(**kwargs)


def _coord(c: dict[str, Any]) -> tuple[str, int, int]:
    """Binlog coordinates in their order: base name, file number (past 999999 the number
    grows a digit, so it is compared as a number), position."""
    base, _, number = str(c["file"]).rpartition(".")
    return (
        (base, int(number), int(c["pos"]))
        if number.isdigit()
        else (str(c["file"]), 0, int(c["pos"]))
    )
