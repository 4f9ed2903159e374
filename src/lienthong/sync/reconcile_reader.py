"""Read-only access to the consolidated database for reconciliation (đối soát).

:class:`HubReader` asks for the current rows and the open quarantine entries of a chunk's
keys in one statement per chunk and streams the hub's keys; :class:`SeenKeys` keeps the keys a
pass read from the source in a temporary SQLite file, so the hub's rows the source no longer
has are found without holding a table in memory. Backend differences are the data of
:class:`Lookups`.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from lienthong.errors import BackendError, InputError
from lienthong.sync.quarantine import open_read_only


def parsed(value: Any) -> Any:
    """A JSON column as Python values (SQLite gives text, PostgreSQL jsonb parsed values)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _stream_sqlite(conn: Any, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Any]]:
    cur = conn.execute(sql, tuple(params))  # SQLite steps through the result as it is fetched
    while rows := cur.fetchmany(size):
        yield rows


def _stream_postgres(conn: Any, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Any]]:
    with conn.transaction(), conn.cursor(name="lt_reconcile") as cur:  # server-side cursor
        cur.execute(sql, tuple(params))
        while rows := cur.fetchmany(size):
            yield rows


@dataclass(frozen=True)
class Lookups:
    """How one backend is asked for many keys at once (the keys travel as one parameter,
    first in each statement) and streams a long result. The PostgreSQL forms drive the
    primary-key index from the key list even when the planner has no statistics yet (an
    ``IN`` list or ``= ANY`` then filtered every row of the source: 2,600 rows/s)."""

    current: str  # {e}: the entity's table stem; parameters: keys, source
    open_raw: str  # parameters: keys, source, entity, table
    pack: Callable[[list[str]], Any]  # the keys parameter
    stream: Callable[[Any, str, Sequence[Any], int], Iterator[list[Any]]]


SQLITE_LOOKUPS = Lookups(
    "SELECT source_key, data FROM c_{e} WHERE source_key IN (SELECT value FROM json_each(?))"
    " AND source = ?",
    "SELECT source_key, raw FROM sync_quarantine WHERE source_key IN"
    " (SELECT value FROM json_each(?)) AND source = ? AND entity = ? AND tbl = ?"
    " AND resolved_seq IS NULL",
    lambda keys: orjson.dumps(keys).decode(),
    _stream_sqlite,
)
POSTGRES_LOOKUPS = Lookups(
    "SELECT c.source_key, c.data::text FROM unnest(?::text[]) AS k(key) JOIN c_{e} c"
    " ON c.source_key = k.key AND c.source = ?",
    "SELECT q.source_key, q.raw::text FROM unnest(?::text[]) AS k(key) JOIN sync_quarantine q"
    " ON q.source_key = k.key AND q.source = ? AND q.entity = ? AND q.tbl = ?"
    " AND q.resolved_seq IS NULL",
    list,
    _stream_postgres,
)


class HubReader:
    """Read-only queries on the consolidated database, for one source."""

    def __init__(self, url: str, source: str) -> None:
        try:  # refuses a missing or foreign database (exit 2)
            self.conn, self.d = open_read_only(url)
        except BackendError as exc:  # a server that cannot be reached: unreadable, one line
            raise InputError(" ".join(exc.message.split())) from exc
        self.source = source
        self.q = SQLITE_LOOKUPS
        if self.d.name == "postgres":  # one short read-only transaction per statement
            self.q = POSTGRES_LOOKUPS
            self.conn.rollback()
            self.conn.autocommit = True
            self.conn.execute("SET default_transaction_read_only = on")

    def close(self) -> None:
        self.conn.close()

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return list(self.conn.execute(self.d.sql(sql), tuple(params)).fetchall())
        except Exception as exc:  # sqlite3 / psycopg errors
            raise BackendError(f"consolidated database: {exc}") from exc

    def has_entity(self, e: str) -> bool:
        try:
            self.conn.execute(f"SELECT 1 FROM c_{e} WHERE 1 = 0").fetchall()
        except Exception:  # never synchronised: no table (autocommit: nothing left aborted)
            return False
        return True

    def current(self, e: str, keys: list[str]) -> dict[str, Any]:
        """The ``data`` (JSON text) of the current rows among ``keys``."""
        rows = self._rows(self.q.current.format(e=e), (self.q.pack(keys), self.source))
        return {str(k): data for k, data in rows}

    def open_raw(self, e: str, tbl: str, keys: list[str]) -> dict[str, list[Any]]:
        """The parsed raw values of the open quarantine entries of ``keys``, per key."""
        out: dict[str, list[Any]] = {}
        for k, raw in self._rows(self.q.open_raw, (self.q.pack(keys), self.source, e, tbl)):
            out.setdefault(str(k), []).append(parsed(raw))
        return out

    @staticmethod
    def _scope(tbl: str | None) -> str:
        """With ``tbl``, only the rows last written by that table's batches (several tables
        of the pipeline share the entity)."""
        return "" if tbl is None else (" JOIN sync_batches b ON b.source = c.source"
                                       " AND b.seq = c.batch_seq AND b.tbl = ?")  # fmt: skip

    def count(self, e: str, tbl: str | None) -> int:
        sql = f"SELECT count(*) FROM c_{e} c{self._scope(tbl)} WHERE c.source = ?"
        return int(self._rows(sql, [*([tbl] if tbl else []), self.source])[0][0])

    def key_pages(self, e: str, tbl: str | None, size: int = 5000) -> Iterator[list[str]]:
        """The source's current keys in ``c_<e>``, streamed in pages (one snapshot)."""
        sql = self.d.sql(f"SELECT c.source_key FROM c_{e} c{self._scope(tbl)} WHERE c.source = ?")
        try:
            for rows in self.q.stream(self.conn, sql, [*([tbl] if tbl else []), self.source],
                                      size):  # fmt: skip
                yield [str(r[0]) for r in rows]
        except Exception as exc:  # sqlite3 / psycopg errors
            raise BackendError(f"consolidated database: {exc}") from exc


class SeenKeys:
    """The keys one pass read from a source table, in a temporary SQLite file."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="lt-reconcile-")
        self.db = sqlite3.connect(Path(self._dir.name) / "keys.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE k (key TEXT PRIMARY KEY) WITHOUT ROWID")

    def add(self, keys: list[str]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR IGNORE INTO k VALUES (?)", [(k,) for k in keys])
        self.db.execute("COMMIT")

    def unseen(self, keys: list[str]) -> list[str]:
        """The keys of ``keys`` (in their order) that the pass did not read."""
        rows = self.db.execute(
            "SELECT j.value FROM json_each(?) j WHERE NOT EXISTS "
            "(SELECT 1 FROM k WHERE k.key = j.value) ORDER BY j.key",
            (orjson.dumps(keys).decode(),),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()
