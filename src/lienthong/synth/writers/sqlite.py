"""SQLite adapter: one database file per source, written in one transaction.

Bulk-load settings (``journal_mode=OFF``, ``synchronous=OFF``) only apply while this process
writes a fresh temporary file; the result is an ordinary rollback-journal database. The same
rows inserted in the same order give the same bytes (SQLite stores no timestamps).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lienthong.errors import BackendError
from lienthong.synth.model import Column, Source, Table

_TYPES = {"text": "TEXT", "int": "INTEGER"}


def quote(name: str) -> str:
    """Quote an identifier (our own names only: schemas are data, never user input)."""
    return '"' + name.replace('"', '""') + '"'


def _column_sql(col: Column, key: str) -> str:
    sql = f"{quote(col.name)} {_TYPES[col.type]}"
    if col.name == key:
        return sql + " PRIMARY KEY"
    return sql if col.nullable else sql + " NOT NULL"


def create_table_sql(table: Table, name: str | None = None) -> str:
    cols = ", ".join(_column_sql(c, table.key) for c in table.columns)
    return f"CREATE TABLE {quote(name or table.name)} ({cols})"


def insert_sql(table: Table, name: str | None = None, placeholder: str = "?") -> str:
    cols = ", ".join(quote(c.name) for c in table.columns)
    marks = ", ".join(placeholder for _ in table.columns)
    return f"INSERT INTO {quote(name or table.name)} ({cols}) VALUES ({marks})"


def write_sqlite(source: Source, path: Path) -> None:
    """Write every table of ``source`` into a new SQLite file at ``path`` (replaced if it
    exists: callers pass a temporary path and rename it once everything is written)."""
    path.unlink(missing_ok=True)
    try:
        con = sqlite3.connect(path, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            con.execute("PRAGMA cache_size=-262144")  # 256 MiB: keys arrive in random order
            con.execute("BEGIN")
            for table in source.tables:
                con.execute(create_table_sql(table))
                con.executemany(insert_sql(table), table.rows())
            con.execute("COMMIT")
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise BackendError(f"cannot write {path}: {exc}") from exc
