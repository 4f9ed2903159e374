"""Fixtures of the sync tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from crashtools import free_port
from synctools import Keys, new_keys


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
        pytest.skip("no PostgreSQL server binaries (initdb) to start a wal_level=logical instance")
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
