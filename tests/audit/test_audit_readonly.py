"""Reading a log (verify, prove, consistency, history, export) writes nothing at all."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
from audit_reference import NOW, PERSON_KEY, admin_entries, audit_cli

from lienthong.audit import AuditLog, personal_data_access_entry
from lienthong.trust.keys import SoftwareSigner, generate_private_key, public_key_to_pem

SIGNER = SoftwareSigner(generate_private_key())
PID = "001085012345"
ENV = {**os.environ, "LT_RO_PERSON_KEY": PERSON_KEY.decode()}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return audit_cli(ENV, *args)


def _build(path: Path) -> None:
    with AuditLog.open(path, signer=SIGNER, origin="ro.example/log") as log:
        log.append(admin_entries(40))
        log.append_one(
            personal_data_access_entry(
                PID,
                "VN/GOV/X/portal",
                "population/get",
                "passport",
                "Law 49/2019",
                at=NOW,
                key=PERSON_KEY,
            )
        )
        log.checkpoint(now=NOW)


def _snapshot(d: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(d.iterdir())}


def test_read_commands_write_nothing_on_a_read_only_copy(tmp_path: Path) -> None:
    _build(tmp_path / "live.auditlog")
    assert not (tmp_path / "live.auditlog-wal").exists()  # closed: WAL folded into the file
    ro = tmp_path / "ro"
    ro.mkdir()
    log = ro / "copy.auditlog"
    shutil.copy(tmp_path / "live.auditlog", log)
    (ro / "pub.pem").write_bytes(public_key_to_pem(SIGNER.public_key()))
    with sqlite3.connect(log) as db:  # the copy is in WAL mode, as every log is
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    for name in ("-wal", "-shm"):
        Path(str(log) + name).unlink(missing_ok=True)
    log.chmod(0o444)
    (ro / "pub.pem").chmod(0o444)
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    before = _snapshot(ro)
    # chmod does not stop root (these tests may run as root): where the file system allows,
    # the immutable attribute makes the file and directory unwritable for everyone
    immutable = _chattr("+i", log, ro)
    try:
        runs = [
            cli("verify", "--log", str(log), "--pubkey", str(ro / "pub.pem")),
            cli("prove", "--log", str(log), "--index", "3", "--json"),
            cli("consistency", "--log", str(log), "--old", "5"),
            cli("export", "--log", str(log)),
            cli(
                "access-history",
                "--person",
                PID,
                "--log",
                str(log),
                "--person-key",
                "env:LT_RO_PERSON_KEY",
            ),
        ]
        for r in runs:
            assert r.returncode == 0, r.stderr
        assert _snapshot(ro) == before  # no -wal/-shm, no schema, no journal-mode write
    finally:
        if immutable:
            _chattr("-i", log, ro)
        ro.chmod(0o755)


def _chattr(flag: str, *paths: Path) -> bool:
    tool = shutil.which("chattr")
    if tool is None:
        return False
    done = subprocess.run([tool, flag, *map(str, paths)], capture_output=True, check=False)
    return done.returncode == 0


def test_verify_reports_a_missing_table_and_does_not_recreate_it(tmp_path: Path) -> None:
    log = tmp_path / "n.auditlog"
    _build(log)
    with sqlite3.connect(log) as db:
        db.execute("DROP TABLE checkpoints")
    db.close()
    r = cli("verify", "--log", str(log), "--json")
    assert r.returncode == 1 and '"kind":"deleted"' in r.stdout.replace(" ", ""), r.stdout
    assert "checkpoints" in r.stdout
    with sqlite3.connect(log) as db:
        names = {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert "checkpoints" not in names
    with sqlite3.connect(log) as db:
        db.execute("DROP TABLE leaves")
    db.close()
    r = cli("verify", "--log", str(log))
    assert r.returncode == 1 and "leaves table(s) are missing" in r.stderr
    r = cli("verify", "--log", str(log), "--json")
    assert r.returncode == 1 and '"kind":"deleted"' in r.stdout.replace(" ", "")


def test_read_only_open_on_every_backend(log_target: str) -> None:
    from lienthong.audit.verify import verify_log
    from lienthong.errors import BackendError

    with AuditLog.open(log_target, signer=SIGNER, origin="ro.example/log") as log:
        log.append(admin_entries(30))
        log.checkpoint(now=NOW)
    with AuditLog.open(log_target, create=False, readonly=True) as log:
        assert verify_log(log, public_key=SIGNER.public_key()).entries_checked == 30
        log.prove(7, 30).verify()
        with pytest.raises(BackendError):  # the connection itself refuses writes
            log.store.set_meta("origin", "evil")
