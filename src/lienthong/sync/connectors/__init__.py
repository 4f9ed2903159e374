"""Source adapters and the factory that builds them from a pipeline's ``[source]``."""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lienthong.errors import ConfigError
from lienthong.sync.connectors.base import Connector
from lienthong.sync.connectors.files import FileConnector
from lienthong.sync.connectors.mariadb_binlog import MariaDbBinlogConnector
from lienthong.sync.connectors.pg_logical import PgLogicalConnector
from lienthong.sync.connectors.sql import (
    MARIADB,
    POSTGRES,
    SQLITE,
    SqlDialect,
    SqlTableConnector,
    mariadb_conversions,
)
from lienthong.sync.pipeline import Pipeline
from lienthong.sync.secrets import check_no_plaintext, resolve_secret


def _sqlite(path: str) -> Callable[[], Any]:
    def connect() -> Any:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no SQLite database at {path}")
        # read-only: a sync never writes to the agency's database
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)

    return connect


def _postgres(dsn: str) -> Callable[[], Any]:
    def connect() -> Any:
        import psycopg

        conn = psycopg.connect(dsn, connect_timeout=10)
        _load_infinity(conn)
        _stable_texts(conn)
        return conn

    return connect


def _load_infinity(conn: Any) -> None:
    """Read PostgreSQL's ``infinity`` / ``-infinity`` dates and timestamps as those texts:
    Python's dates cannot hold them, and psycopg's ``date too large (after year 10K)`` made
    every run of the table fail, no row read (a "valid until" column often holds them)."""
    from psycopg.types.datetime import DateLoader, TimestampLoader, TimestamptzLoader

    def infinite(base: type) -> type:
        class Loader(base):  # a subclass of the given psycopg loader
            def load(self, data: Any) -> Any:
                text = bytes(data)
                if text in (b"infinity", b"-infinity"):
                    return text.decode()
                return super().load(data)

        return Loader

    for name, base in (("date", DateLoader), ("timestamp", TimestampLoader),
                       ("timestamptz", TimestamptzLoader)):  # fmt: skip
        conn.adapters.register_loader(name, infinite(base))


def _stable_texts(conn: Any) -> None:
    """Values whose Python form depends on the session or loses meaning: an ``interval`` is
    read as the server's ISO 8601 text (``P1Y2M3DT4H``; psycopg's timedelta turned a month
    into 30 days and was stored as Python's ``1 day, 2:00:00``), and a ``timestamptz`` is
    given in UTC (its offset followed the server's or role's ``TimeZone``; the stream of a
    logical slot writes it in the same session settings)."""
    from psycopg.types.string import TextLoader

    conn.execute("SET IntervalStyle TO iso_8601")
    conn.execute("SET TimeZone TO 'UTC'")
    conn.commit()
    conn.adapters.register_loader("interval", TextLoader)


def _mariadb(params: dict[str, Any]) -> Callable[[], Any]:
    def connect() -> Any:
        pymysql = importlib.import_module("pymysql")  # untyped driver: kept behind Any
        return pymysql.connect(**params, connect_timeout=10, conv=mariadb_conversions())

    return connect


def mariadb_params(url: str) -> dict[str, Any]:
    """``mysql://user@host:port/db`` → PyMySQL keyword arguments (password via reference)."""
    from urllib.parse import unquote, urlparse

    u = urlparse(url)
    if u.scheme not in ("mysql", "mariadb") or not u.path.strip("/"):
        raise ConfigError("source.dsn: expected mysql://user[:password]@host[:port]/database")
    return {
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 3306,
        "user": unquote(u.username or ""),
        "password": unquote(u.password or ""),
        "database": u.path.strip("/"),
        "charset": "utf8mb4",
    }


def open_connectors(pipeline: Pipeline) -> dict[str, Connector]:
    """One connector per table of ``pipeline`` (secrets resolved from their references)."""
    src, base = pipeline.source, pipeline.base_dir
    out: dict[str, Connector] = {}
    for t in pipeline.tables:
        if src.kind == "files":
            path = base / str(src.path) / (t.file or t.name)
            out[t.name] = FileConnector(path, list(t.key), t.format or "")
            continue
        connect: Callable[[], Any]
        dialect: SqlDialect
        if src.kind == "sqlite":
            connect, dialect = _sqlite(str(base / str(src.path))), SQLITE
        else:
            dsn = resolve_secret(src.dsn, "source.dsn", base)
            if src.kind == "postgres" and t.logical_slot:
                out[t.name] = PgLogicalConnector(_postgres(dsn), t.name, t.key, t.logical_slot)
                continue
            if src.kind == "mariadb" and t.binlog_server_id:
                out[t.name] = MariaDbBinlogConnector(
                    mariadb_params(dsn), t.name, t.key, t.binlog_server_id
                )
                continue
            if src.kind == "postgres":
                connect, dialect = _postgres(dsn), POSTGRES
            else:
                connect, dialect = _mariadb(mariadb_params(dsn)), MARIADB
        out[t.name] = SqlTableConnector(
            connect, dialect, t.name, t.key, t.cursor, t.deleted_column, t.cursor_overlap_s
        )
    return out


__all__ = [
    "Connector",
    "FileConnector",
    "SqlTableConnector",
    "check_no_plaintext",
    "open_connectors",
]
