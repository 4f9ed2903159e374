"""MariaDB adapter: every source table as ``{prefix}{source}_{table}``, multi-row INSERTs.

MariaDB commits DDL implicitly, so each table is loaded under a staging name and swapped in
with one atomic ``RENAME TABLE`` at the end: readers never see a half-loaded table.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from lienthong.errors import BackendError, InputError
from lienthong.synth.model import Column, Source, Table
from lienthong.synth.writers.postgres import table_name, verify_prefix

BATCH = 5000


def _column_sql(col: Column, key: str) -> str:
    kind = "BIGINT" if col.type == "int" else f"VARCHAR({col.size})"
    sql = f"`{col.name}` {kind}"
    if col.name == key:
        return sql + " PRIMARY KEY"
    return sql if col.nullable else sql + " NOT NULL"


class MariaDbTarget:
    """Writes sources into one MariaDB database (``--mariadb URL``)."""

    backend = "mariadb"

    def __init__(self, params: dict[str, Any], prefix: str = "synth_") -> None:
        verify_prefix(prefix)
        self.params = {**params, "charset": "utf8mb4", "autocommit": False}
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "synth_") -> MariaDbTarget:
        """``mysql://user:password@host:port/database`` (``mariadb://`` also accepted)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb") or not parts.path.strip("/"):
            raise InputError(f"--mariadb {url!r}: expected mysql://user:pw@host:port/database")
        params = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 3306,
            "user": unquote(parts.username or "root"),
            "password": unquote(parts.password or ""),
            "database": parts.path.strip("/"),
        }
        return cls(params, prefix)

    def write(self, sources: list[Source]) -> dict[str, dict[str, Any]]:
        import pymysql  # type: ignore[import-untyped]  # types-PyMySQL is not a dev dependency

        out: dict[str, dict[str, Any]] = {}
        swaps: list[str] = []
        try:
            conn = pymysql.connect(**self.params)
            try:
                with conn.cursor() as cur:
                    for source in sources:
                        names = {}
                        for table in source.tables:
                            name = table_name(self.prefix, source, table)
                            self._load(conn, cur, f"{name}__new", table)
                            swaps.append(name)
                            names[table.name] = name
                        out[source.name] = {
                            "backend": self.backend,
                            "location": self._where(),
                            "tables_at": names,
                        }
                    self._swap(cur, swaps)
            finally:
                conn.close()
        except pymysql.Error as exc:
            raise BackendError(f"MariaDB: {exc}") from exc
        return out

    def _where(self) -> str:
        p = self.params
        return f"mysql://{p['user']}@{p['host']}:{p['port']}/{p['database']}"

    @staticmethod
    def _load(conn: Any, cur: Any, name: str, table: Table) -> None:
        cols = ", ".join(_column_sql(c, table.key) for c in table.columns)
        cur.execute(f"DROP TABLE IF EXISTS `{name}`")
        cur.execute(
            f"CREATE TABLE `{name}` ({cols}) ENGINE=InnoDB "
            "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        )
        names = ", ".join(f"`{c.name}`" for c in table.columns)
        marks = ", ".join("%s" for _ in table.columns)
        sql = f"INSERT INTO `{name}` ({names}) VALUES ({marks})"
        batch: list[tuple[Any, ...]] = []
        for row in table.rows():
            batch.append(row)
            if len(batch) >= BATCH:
                cur.executemany(sql, batch)
                batch.clear()
        if batch:
            cur.executemany(sql, batch)
        conn.commit()

    @staticmethod
    def _swap(cur: Any, names: list[str]) -> None:
        """Replace every old table by its staging copy in one atomic RENAME."""
        for name in names:
            cur.execute(f"DROP TABLE IF EXISTS `{name}__old`")
            cur.execute(f"CREATE TABLE IF NOT EXISTS `{name}` (x INT)")
        pairs = [f"`{n}` TO `{n}__old`, `{n}__new` TO `{n}`" for n in names]
        cur.execute("RENAME TABLE " + ", ".join(pairs))
        for name in names:
            cur.execute(f"DROP TABLE `{name}__old`")
