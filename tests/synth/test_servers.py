"""The same sources written to real PostgreSQL and MariaDB servers hold the same rows as the
SQLite files (one test body per backend)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lienthong.synth.config import SynthConfig
from lienthong.synth.generator import ServerTarget, generate
from lienthong.synth.writers.mariadb import MariaDbTarget
from lienthong.synth.writers.postgres import PostgresTarget

CFG = SynthConfig(citizens=400, seed=3)


def _sqlite_rows(path: Path, table: str, key: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        return list(con.execute(f'SELECT * FROM "{table}" ORDER BY "{key}"'))
    finally:
        con.close()


def _ordered(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(r) for r in rows), key=lambda r: tuple(str(v) for v in r))


def _pg_reader(dsn: str) -> Callable[[str, str], list[tuple[Any, ...]]]:
    import psycopg

    def read(table: str, key: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn) as conn:
            return list(conn.execute(f'SELECT * FROM "{table}"'))

    return read


def _maria_reader(params: dict[str, Any]) -> Callable[[str, str], list[tuple[Any, ...]]]:
    import pymysql

    def read(table: str, key: str) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(**params)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT * FROM `{table}` ORDER BY `{key}`")
                return list(cur.fetchall())
        finally:
            conn.close()

    return read


def _compare(tmp_path: Path, target: ServerTarget, read: Callable[..., Any], prefix: str) -> None:
    report = generate(CFG, tmp_path / "server", target)
    generate(CFG, tmp_path / "files")
    manifest = (tmp_path / "server" / "truth" / "manifest.json").read_text("utf-8")
    assert '"backend": "' + target.backend + '"' in manifest
    assert not list((tmp_path / "server").glob("*.sqlite"))
    for source, info in report["sources"].items():
        for table, count in info["tables"].items():
            key = {"cong_dan": "so_dinh_danh", "di_bien_dong_cu_tru": "ma_bien_dong",
                   "the_bhyt": "ma_the", "hoc_sinh": "ma_hoc_sinh"}.get(table, "mst")  # fmt: skip
            expected = _sqlite_rows(tmp_path / "files" / f"{source}.sqlite", table, key)
            got = read(f"{prefix}{source}_{table}", key)
            assert len(got) == count == len(expected)
            assert _ordered(got) == _ordered(expected), (source, table)


@pytest.mark.postgres
def test_postgres_holds_the_same_rows(tmp_path: Path, pg_dsn: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    _compare(tmp_path, PostgresTarget(pg_dsn, prefix), _pg_reader(pg_dsn), prefix)
    # a second run replaces the tables (same rows, no duplicates)
    _compare(tmp_path, PostgresTarget(pg_dsn, prefix), _pg_reader(pg_dsn), prefix)


@pytest.mark.mariadb
def test_mariadb_holds_the_same_rows(tmp_path: Path, mariadb_params: dict[str, Any]) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    target = MariaDbTarget(dict(mariadb_params), prefix)
    _compare(tmp_path, target, _maria_reader(mariadb_params), prefix)
    _compare(
        tmp_path, MariaDbTarget(dict(mariadb_params), prefix), _maria_reader(mariadb_params), prefix
    )


def test_bad_server_is_a_backend_error(tmp_path: Path) -> None:
    from lienthong.errors import BackendError

    with pytest.raises(BackendError):
        generate(SynthConfig(citizens=20), tmp_path, PostgresTarget("postgresql://x@127.0.0.1:1/x"))
    assert not (tmp_path / "truth").exists()


def test_reports_never_show_a_password() -> None:
    from lienthong.synth.writers.postgres import safe_dsn

    assert safe_dsn("postgresql://u:s3cret@127.0.0.1:5432/db") == "postgresql://u@127.0.0.1:5432/db"
    assert "s3cret" not in safe_dsn("host=127.0.0.1 user=u password=s3cret dbname=db")
    assert "s3cret" not in safe_dsn("host=127.0.0.1 password='s3cret' dbname=db")
    target = MariaDbTarget.from_url("mysql://u:s3cret@127.0.0.1:3306/db")
    assert "s3cret" not in target._where()
