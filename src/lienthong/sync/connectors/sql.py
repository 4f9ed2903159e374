"""Database sources (SQLite, PostgreSQL, MariaDB/MySQL) read by keyset pagination.

Two modes, both resumable after a crash at any point because the position after each chunk
is the last (cursor, key) read and the next query asks for rows strictly after it:

* **snapshot** (no cursor column): ``ORDER BY key``, ``WHERE (key) > (:last)``;
* **cursor**: ``ORDER BY cursor, key``, ``WHERE (cursor, key) > (:c, :k)`` — the cursor is an
  ``updated_at`` timestamp or a row version that the source bumps on every change; ties are
  broken by the key so no row is skipped or read twice. Deletes follow the soft-delete
  convention: a ``deleted_column`` that is true (or a non-null timestamp) turns the row into a
  tombstone.

Backend differences (quoting, placeholders, introspection) live in :class:`SqlDialect`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lienthong.errors import BackendError, ConfigError
from lienthong.sync.model import Chunk, Position, decode_key, encode_key

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_identifier(name: str) -> str:
    """Allow-list for table and column names taken from a pipeline file."""
    if not _IDENT.match(name):
        raise ConfigError(f"invalid SQL identifier {name!r}: use letters, digits and _")
    return name


@dataclass(frozen=True)
class SqlDialect:
    name: str
    quote_char: str
    placeholder: str
    columns_sql: str  # one placeholder: the table name; returns (column, type)

    def quote(self, ident: str) -> str:
        return f"{self.quote_char}{check_identifier(ident)}{self.quote_char}"

    def params(self, n: int) -> str:
        return ", ".join([self.placeholder] * n)


SQLITE = SqlDialect(
    "sqlite", '"', "?", "SELECT name, lower(type) FROM pragma_table_info(?) ORDER BY cid"
)
POSTGRES = SqlDialect(
    "postgres",
    '"',
    "%s",
    "SELECT column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
)
MARIADB = SqlDialect(
    "mariadb",
    "`",
    "%s",
    "SELECT column_name, lower(column_type) FROM information_schema.columns "
    "WHERE table_schema = database() AND table_name = %s ORDER BY ordinal_position",
)


@dataclass
class SqlTableConnector:
    """A table of a DB-API connection, read in keyset chunks."""

    connect: Callable[[], Any]
    dialect: SqlDialect
    table: str
    key: Sequence[str]
    cursor: str | None = None
    deleted_column: str | None = None

    def __post_init__(self) -> None:
        self.name = self.table
        self._conn: Any = None
        for ident in (self.table, *self.key, *filter(None, [self.cursor, self.deleted_column])):
            check_identifier(ident)

    @property
    def conn(self) -> Any:
        if self._conn is None:
            try:
                self._conn = self.connect()
            except Exception as exc:  # driver-specific connection errors
                raise BackendError(f"cannot connect to {self.dialect.name} source: {exc}") from exc
        return self._conn

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            cur = self.conn.cursor()
            cur.execute(sql, tuple(params))
            rows = list(cur.fetchall())
            cur.close()
            # end the read transaction so long runs do not pin old snapshots at the source
            self.conn.commit()
            return rows
        except Exception as exc:
            self.close()
            raise BackendError(f"{self.dialect.name} source {self.table}: {exc}") from exc

    def schema(self) -> dict[str, str]:
        cols = self._query(self.dialect.columns_sql, [self.table])
        if not cols:
            raise ConfigError(f"source table {self.table!r} does not exist or has no columns")
        return {str(name): str(typ) for name, typ in cols}

    def _order(self) -> list[str]:
        return [self.cursor, *self.key] if self.cursor else list(self.key)

    def _where(self, after: tuple[Any, ...] | None) -> tuple[str, list[Any]]:
        # NULL cursors never compare greater than anything: leave them out from the first
        # page too, so every page sees the same set (they are reported by null_cursor_rows)
        conds = [f"{self.dialect.quote(self.cursor)} IS NOT NULL"] if self.cursor else []
        if after is not None:
            cols = ", ".join(self.dialect.quote(c) for c in self._order())
            conds.append(f"({cols}) > ({self.dialect.params(len(after))})")
        return (f" WHERE {' AND '.join(conds)}" if conds else ""), list(after or ())

    def read(self, position: Position | None, size: int) -> Iterator[Chunk]:
        columns = list(self.schema())
        order = self._order()
        idx = [columns.index(c) for c in order]
        del_idx = columns.index(self.deleted_column) if self.deleted_column else None
        key_idx = [columns.index(c) for c in self.key]
        select = ", ".join(self.dialect.quote(c) for c in columns)
        order_sql = ", ".join(self.dialect.quote(c) for c in order)
        after = decode_key(position.get("after")) if position else None
        while True:
            where, params = self._where(after)
            sql = (
                f"SELECT {select} FROM {self.dialect.quote(self.table)}{where} "
                f"ORDER BY {order_sql} LIMIT {int(size)}"
            )
            rows = self._query(sql, params)
            if not rows:
                return
            after = tuple(rows[-1][i] for i in idx)
            live, deletes = rows, []
            if del_idx is not None:
                live = [r for r in rows if not r[del_idx]]
                deletes = [tuple(r[i] for i in key_idx) for r in rows if r[del_idx]]
            yield Chunk(columns, live, {"after": encode_key(after)}, deletes)
            if len(rows) < size:
                return

    def null_cursor_rows(self) -> int:
        """Rows whose cursor is NULL: cursor mode can never read them (reported, not hidden)."""
        if not self.cursor:
            return 0
        table, cursor = self.dialect.quote(self.table), self.dialect.quote(self.cursor)
        return int(self._query(f"SELECT count(*) FROM {table} WHERE {cursor} IS NULL", [])[0][0])

    def pending(self, position: Position | None) -> int:
        after = decode_key(position.get("after")) if position else None
        where, params = self._where(after)
        rows = self._query(f"SELECT count(*) FROM {self.dialect.quote(self.table)}{where}", params)
        return int(rows[0][0])

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._conn.close()
            self._conn = None
