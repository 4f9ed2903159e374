"""PostgreSQL backend of the audit log (psycopg 3), for large nodes.

Writers serialise on a transaction-scoped advisory lock; batches are bulk-loaded with
``COPY`` and committed before an append returns (PostgreSQL's default ``synchronous_commit``
makes the commit durable).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from lienthong.audit.sqlstore import POSTGRES, SqlStore, _fetchall, _size, fetch_tiles
from lienthong.audit.store import LeafRow, TileRow
from lienthong.errors import BackendError, InputError

_WRITER_LOCK = 0x6C74_6175  # "ltau": one log per database


class _PgWriter:
    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self.size = _size(cur)

    def get_tiles(self, keys: list[int]) -> dict[int, bytes]:
        return fetch_tiles(self.cur, POSTGRES, keys)

    def insert(
        self,
        leaves: Sequence[LeafRow],
        tiles: Sequence[TileRow],
        persons: Sequence[tuple[bytes, int]],
    ) -> None:
        with self.cur.copy("COPY leaves (idx, kind, data) FROM STDIN") as copy:
            for leaf in leaves:
                copy.write_row(leaf)
        # partial tiles are rewritten: delete then bulk-load (COPY cannot upsert)
        self.cur.execute("DELETE FROM tiles WHERE id = ANY(%s)", ([k for k, _ in tiles],))
        with self.cur.copy("COPY tiles (id, hashes) FROM STDIN") as copy:
            for tile in tiles:
                copy.write_row(tile)
        if persons:
            with self.cur.copy("COPY persons (person, idx) FROM STDIN") as copy:
                for person in persons:
                    copy.write_row(person)


class PostgresStore(SqlStore):
    """An audit log in a PostgreSQL database given by DSN (``postgresql://…``)."""

    dialect = POSTGRES

    def __init__(self, dsn: str, *, create: bool = True, readonly: bool = False) -> None:
        self.location = _redact(dsn)
        try:
            conn = psycopg.connect(dsn, connect_timeout=10)
        except psycopg.Error as exc:
            raise BackendError(f"cannot connect to audit database {self.location}: {exc}") from exc
        super().__init__(conn, (psycopg.Error,))
        if readonly:
            conn.read_only = True  # every transaction READ ONLY: the server refuses writes
        if create and not readonly:
            self.create_schema()
        elif (
            self._run(lambda cur: _fetchall(cur, "SELECT to_regclass('leaves')", ()))[0][0] is None
        ):
            conn.close()
            raise InputError(f"no audit log in {self.location}")

    @contextmanager
    def writer(self) -> Iterator[_PgWriter]:
        with self._lock:
            try:
                with self.conn.transaction(), self.conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITER_LOCK,))
                    yield _PgWriter(cur)
            except psycopg.Error as exc:
                raise BackendError(f"audit store {self.location}: {exc}") from exc


def _redact(dsn: str) -> str:
    """The DSN without a password, for messages."""
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return dsn
