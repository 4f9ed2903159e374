"""PostgreSQL adapter: every source table as ``{prefix}{source}_{table}``, loaded with COPY.

All tables are dropped, created and filled in one transaction (PostgreSQL DDL is
transactional), so a failed run leaves the previous tables untouched.
"""

from __future__ import annotations

import re
from typing import Any

from lienthong.errors import BackendError, InputError
from lienthong.synth.model import Column, Source, Table

_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,29}")
_TYPES = {"text": "text", "int": "bigint"}


def verify_prefix(prefix: str) -> None:
    """Table prefixes become identifiers: lower-case letters, digits, underscores only."""
    if not _PREFIX.fullmatch(prefix):
        raise InputError(f"--prefix {prefix!r}: use 1–30 lower-case letters, digits or '_'")


def _column_sql(col: Column, key: str) -> str:
    sql = f'"{col.name}" {_TYPES[col.type]}'
    if col.name == key:
        return sql + " PRIMARY KEY"
    return sql if col.nullable else sql + " NOT NULL"


def table_name(prefix: str, source: Source, table: Table) -> str:
    return f"{prefix}{source.name}_{table.name}"


def safe_dsn(dsn: str) -> str:
    """The DSN without its password (URL or key=value form), for reports and manifests."""
    dsn = re.sub(r"(://[^:/@]+):[^@]*@", r"\1@", dsn)
    return re.sub(r"password\s*=\s*('[^']*'|\S+)", "password=***", dsn)


class PostgresTarget:
    """Writes sources into one PostgreSQL database (``--pg DSN``)."""

    backend = "postgresql"

    def __init__(self, dsn: str, prefix: str = "synth_") -> None:
        verify_prefix(prefix)
        self.dsn = dsn
        self.prefix = prefix

    def write(self, sources: list[Source]) -> dict[str, dict[str, Any]]:
        import psycopg

        out: dict[str, dict[str, Any]] = {}
        try:
            with psycopg.connect(self.dsn) as conn, conn.cursor() as cur:
                for source in sources:
                    names = {}
                    for table in source.tables:
                        name = table_name(self.prefix, source, table)
                        self._load(cur, name, table)
                        names[table.name] = name
                    out[source.name] = {
                        "backend": self.backend,
                        "location": safe_dsn(self.dsn),
                        "tables_at": names,
                    }
        except psycopg.Error as exc:
            raise BackendError(f"PostgreSQL: {exc}".splitlines()[0]) from exc
        return out

    @staticmethod
    def _load(cur: Any, name: str, table: Table) -> None:
        cols = ", ".join(_column_sql(c, table.key) for c in table.columns)
        cur.execute(f'DROP TABLE IF EXISTS "{name}"')
        cur.execute(f'CREATE TABLE "{name}" ({cols})')
        names = ", ".join(f'"{c.name}"' for c in table.columns)
        with cur.copy(f'COPY "{name}" ({names}) FROM STDIN') as copy:
            for row in table.rows():
                copy.write_row(row)
