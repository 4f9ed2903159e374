"""Shared fixtures: real servers on 127.0.0.1, one throw-away database per test session.

A test that needs a server skips with a reason when the server is absent, and fails instead
when ``CI=true`` (CI must never pass by skipping).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_HOST = os.environ.get("LIENTHONG_TEST_PG_HOST", "127.0.0.1")
MARIADB_HOST = os.environ.get("LIENTHONG_TEST_MARIADB_HOST", "127.0.0.1")


def server_absent(what: str, exc: BaseException) -> None:
    """Skip (on a laptop) or fail (in CI) because a server is not reachable."""
    message = f"{what} not reachable: {exc}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: server tests must run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh PostgreSQL database, dropped at the end of the session."""
    try:
        import psycopg

        admin = psycopg.connect(
            f"host={PG_HOST} port=5432 dbname=test user=postgres",
            autocommit=True,
            connect_timeout=3,
        )
    except Exception as exc:  # psycopg.OperationalError and friends
        server_absent("PostgreSQL at 127.0.0.1:5432", exc)
    name = f"lt_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{PG_HOST}:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def mariadb_params() -> Iterator[dict[str, object]]:
    """PyMySQL connection parameters of a fresh MariaDB database, dropped at the end."""
    try:
        import pymysql

        admin = pymysql.connect(
            host=MARIADB_HOST,
            port=3306,
            user="root",
            password="",
            database="test",
            connect_timeout=3,
            autocommit=True,
        )
    except Exception as exc:
        server_absent("MariaDB at 127.0.0.1:3306", exc)
    name = f"lt_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield {
            "host": MARIADB_HOST,
            "port": 3306,
            "user": "root",
            "password": "",
            "database": name,
            "charset": "utf8mb4",
        }
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(scope="session")
def mariadb_url(mariadb_params: dict[str, object]) -> str:
    p = mariadb_params
    return f"mysql://{p['user']}@{p['host']}:{p['port']}/{p['database']}"
