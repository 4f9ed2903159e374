"""Fixtures of the sync tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from crashtools import free_port, fresh_database
from synctools import Keys, new_keys


def _private_server_absent(reason: str) -> None:
    """Skip (on a laptop) or fail (in CI, where the server binaries must be installed): the
    log-based capture tests need a private server started here."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: server tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def keys() -> Keys:
    return new_keys()


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def pg_logical_dsn() -> Iterator[str]:
    """A private, throw-away PostgreSQL with wal_level=logical on 127.0.0.1.

    The shared server runs with wal_level=replica and we do not change its configuration, so
    log-based capture is tested against an instance of our own (started and removed here).
    """
    bindir = _pg_bin()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        _private_server_absent("no PostgreSQL binaries (initdb) for a wal_level=logical instance")
    # not under pytest's per-user temp dir: the postgres user must be able to reach it
    base = Path(tempfile.mkdtemp(prefix="lt-pglogical-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(base, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run([*prefix, *initdb, "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    opts = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c wal_level=logical "
            "-c fsync=off -c max_replication_slots=4")  # fmt: skip
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                    str(base / "log"), "-w", "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_binlog_params() -> Iterator[dict[str, object]]:
    """A private, throw-away MariaDB with the row-format binlog on 127.0.0.1.

    The shared server runs with log_bin=OFF and we do not change its configuration.
    """
    server, install = (
        shutil.which("mariadbd", path="/usr/sbin:/usr/bin"),
        shutil.which("mariadb-install-db"),
    )
    if server is None or install is None or os.geteuid() != 0:
        _private_server_absent("no MariaDB binaries (or not root) for a binlog instance")
    base = Path(tempfile.mkdtemp(prefix="lt-mariadb-"))
    shutil.chown(base, "mysql")
    data, port = base / "data", free_port()
    setup = [install, "--user=mysql", f"--datadir={data}", "--skip-test-db"]
    subprocess.run([*setup, "--auth-root-authentication-method=normal"], check=True,
                   capture_output=True)  # fmt: skip
    with (base / "log").open("wb") as log:
        proc = subprocess.Popen([
            server, "--no-defaults", "--user=mysql", f"--datadir={data}", f"--port={port}",
            "--bind-address=127.0.0.1", f"--socket={base}/sock", f"--pid-file={base}/pid",
            f"--log-bin={data}/binlog", "--binlog-format=ROW", "--binlog-row-metadata=FULL",
            "--server-id=1", "--innodb-buffer-pool-size=16M",
        ], stdout=log, stderr=log)  # fmt: skip
    params: dict[str, object] = {
        "host": "127.0.0.1", "port": port, "user": "root", "password": "", "database": "lt",
        "charset": "utf8mb4",
    }  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = pymysql.connect(**{**params, "database": None}, connect_timeout=1)
            break
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"private MariaDB did not start: {(base / 'log').read_text()[-400:]}")
            time.sleep(0.2)
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE lt CHARACTER SET utf8mb4")
    conn.close()
    try:
        yield params
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_schema(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A PostgreSQL schema of this test's own on the shared server (dropped after): the URL
    of a consolidated database in it."""
    yield from _own_schema(request.getfixturevalue("pg_dsn"), "t", tmp_path)


@pytest.fixture
def pg_schema_2(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second schema like :func:`pg_schema` (to compare two consolidated databases)."""
    yield from _own_schema(request.getfixturevalue("pg_dsn"), "u", tmp_path)


def _own_schema(pg_dsn: str, prefix: str, tmp_path: Path) -> Iterator[str]:
    import psycopg

    schema = f"{prefix}_{tmp_path.name[-24:].lower().replace('-', '_')}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{pg_dsn}?options=-csearch_path%3D{schema}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The consolidated database of a test, once on SQLite and once on PostgreSQL (a schema of
    its own: the same tests run against both)."""
    if request.param == "sqlite":
        return str(tmp_path / "hub.db")
    url: str = request.getfixturevalue("pg_schema")
    return url


@pytest.fixture
def pg_drill_db(pg_dsn: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one crash drill's consolidated database (its hub
    process connects by URL, so a database rather than a schema; dropped after)."""
    with fresh_database(pg_dsn.rsplit("/", 1)[0] + "/test", "lt_drill") as url:
        yield url
