"""A pruned prefix is accepted only when the log itself proves it was archived (QA 1), and
verify names the damage precisely (QA 6)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from audit_reference import NOW, PERSON_KEY, admin_entries

from lienthong.audit import AuditLog, admin_entry, personal_data_access_entry
from lienthong.audit.archive import archive_segment
from lienthong.audit.history import access_history
from lienthong.audit.verify import LogInconsistency, verify_log
from lienthong.errors import IntegrityError
from lienthong.trust.keys import SoftwareSigner, generate_private_key

SIGNER = SoftwareSigner(generate_private_key())
ORIGIN = "proof.example/log"
PID = "001085012345"


def _access(k: int) -> object:
    return personal_data_access_entry(
        PID,
        "VN/GOV/X/portal",
        "population/get",
        "passport",
        "Law 49/2019",
        at=NOW,
        key=PERSON_KEY,
        message_id=f"m{k}",
    )


def build(path: Path, n: int = 300) -> None:
    with AuditLog.open(path, signer=SIGNER, origin=ORIGIN) as log:
        entries = admin_entries(n)
        for k in range(0, n, 10):
            entries[k] = _access(k)
        log.append(entries)
        log.checkpoint(now=NOW)


def kind_of(path: Path) -> dict:
    with AuditLog.open(path, readonly=True) as log, pytest.raises(LogInconsistency) as err:
        verify_log(log, public_key=SIGNER.public_key())
    return err.value.details


def history_fails(path: Path) -> str:
    with AuditLog.open(path, readonly=True) as log, pytest.raises(IntegrityError) as err:
        access_history([log], PID, PERSON_KEY, {ORIGIN: SIGNER.public_key()})
    return err.value.message


def test_forged_archive_record_cannot_erase_entries(tmp_path: Path) -> None:
    path = tmp_path / "n.auditlog"
    build(path)
    with sqlite3.connect(path) as db:  # QA 1: a fake archive record, entries emptied
        db.execute("INSERT INTO archives VALUES (1, 0, 250, '/nonexistent', '00')")
        db.execute("UPDATE leaves SET data = NULL WHERE idx < 250")
        db.execute("DELETE FROM persons WHERE idx < 250")
    db.close()
    assert kind_of(path)["kind"] == "deleted"
    assert "log.archive" in history_fails(path)


def test_archive_record_attested_only_by_an_unsigned_entry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.auditlog"
    build(path)
    with AuditLog.open(path) as log:  # anyone with write access can append, not sign
        log.append_one(
            admin_entry(
                at=NOW,
                actor="evil",
                action="log.archive",
                target="x.ltar.xz",
                detail={"seq": 1, "first": 0, "end": 250, "sha256": "00", "prev_sha256": None},
            )
        )
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO archives VALUES (1, 0, 250, '/nonexistent', '00')")
        db.execute("UPDATE leaves SET data = NULL WHERE idx < 250")
        db.execute("DELETE FROM persons WHERE idx < 250")
    db.close()
    details = kind_of(path)
    assert details["kind"] == "deleted" and details["index"] == 0
    history_fails(path)


def test_genuine_archives_verify_and_a_changed_record_or_file_is_caught(tmp_path: Path) -> None:
    path, out = tmp_path / "n.auditlog", tmp_path / "arch"
    build(path)
    with AuditLog.open(path, signer=SIGNER) as log:
        first = archive_segment(log, out, 100, now=NOW)
        archive_segment(log, out, 200, now=NOW)
        log.append(admin_entries(5, "late"))
        log.checkpoint(now=NOW)
    with AuditLog.open(path, readonly=True) as log:
        report = verify_log(log, public_key=SIGNER.public_key())
        assert report.archived_entries == 200 and report.archive_files_checked == 2
        h = access_history([log], PID, PERSON_KEY, {ORIGIN: SIGNER.public_key()})
        c = h["logs"][0]["completeness"]
        assert c["complete_from"] == 200 and c["archived_accesses"] == 20
        assert "NOT re-checked" in c["statement"] and len(h["accesses"]) == 10
    # the archives table stretched over live entries that are then emptied
    bad = tmp_path / "stretched.auditlog"
    bad.write_bytes(path.read_bytes())
    with sqlite3.connect(bad) as db:
        db.execute("UPDATE archives SET last = 250 WHERE seq = 2")
        db.execute("UPDATE leaves SET data = NULL WHERE idx < 250")
    db.close()
    assert kind_of(bad) == {"kind": "deleted", "index": 200}
    history_fails(bad)
    # the record's hash changed
    bad2 = tmp_path / "rehashed.auditlog"
    bad2.write_bytes(path.read_bytes())
    with sqlite3.connect(bad2) as db:
        db.execute("UPDATE archives SET sha256 = ? WHERE seq = 1", ("ab" * 32,))
    db.close()
    assert kind_of(bad2)["kind"] == "deleted"
    # the archive file replaced
    first.write_bytes(first.read_bytes() + b"x")
    assert hashlib.sha256(first.read_bytes()).hexdigest()
    assert kind_of(path)["kind"] == "bad_archive"


def _tamper(path: Path, *stmts: str) -> dict:
    with sqlite3.connect(path) as db:
        for s in stmts:
            db.execute(s)
    db.close()
    return kind_of(path)


@pytest.mark.parametrize(
    ("stmts", "kind", "index"),
    [
        (  # QA 6: insert at 10, later entries renumbered
            [
                "UPDATE leaves SET idx = -idx - 1 WHERE idx >= 10",
                "UPDATE leaves SET idx = -idx WHERE idx < 0",
                "INSERT INTO leaves SELECT 10, kind, data FROM leaves WHERE idx = 5",
            ],
            "inserted",
            10,
        ),
        (  # rotate 10 -> 11 -> 12 -> 10
            [
                "UPDATE leaves SET idx = -1 WHERE idx = 12",
                "UPDATE leaves SET idx = 12 WHERE idx = 11",
                "UPDATE leaves SET idx = 11 WHERE idx = 10",
                "UPDATE leaves SET idx = 10 WHERE idx = -1",
            ],
            "reordered",
            10,
        ),
        (["DELETE FROM tiles"], "hash_tree", 0),
        (
            [
                "UPDATE tiles SET hashes = CAST(substr(hashes, 1, 320) || zeroblob(32)"
                " || substr(hashes, 353) AS BLOB) WHERE id = 0"
            ],
            "hash_tree",
            10,
        ),
        (["INSERT INTO leaves SELECT -1, kind, data FROM leaves WHERE idx = 0"], "inserted", -1),
        (["DELETE FROM persons WHERE idx = 20"], "deleted", 20),
        (["INSERT INTO persons SELECT person, 21 FROM persons WHERE idx = 20"], "inserted", 21),
        (["UPDATE leaves SET data = data || X'20' WHERE idx = 10"], "modified", 10),
    ],
)
def test_verify_names_the_damage_and_its_index(
    tmp_path: Path, stmts: list[str], kind: str, index: int
) -> None:
    path = tmp_path / "n.auditlog"
    build(path)
    details = _tamper(path, *stmts)
    assert (details["kind"], details["index"]) == (kind, index), details


def test_a_malformed_archive_is_an_integrity_failure_not_a_crash(tmp_path: Path) -> None:
    import lzma

    from lienthong.audit.archive import verify_archive

    bad = tmp_path / "x.ltar.xz"
    bad.write_bytes(lzma.compress(b'{"format": 1}\n'))
    (tmp_path / "x.ltar.xz.sig").write_text("a\n\nb\n")
    with pytest.raises(IntegrityError, match="bad or missing: origin"):
        verify_archive(bad, ORIGIN, SIGNER.public_key())


@pytest.mark.parametrize(
    "stmt",
    [
        "UPDATE archives SET sha256 = 'ab' || substr(sha256, 3) WHERE seq = 1",
        "UPDATE archives SET last = 200 WHERE seq = 1",
    ],
)
def test_an_earlier_record_whose_own_entry_was_archived_is_still_proven(
    tmp_path: Path, stmt: str
) -> None:
    path, out = tmp_path / "n.auditlog", tmp_path / "arch"
    build(path)
    with AuditLog.open(path, signer=SIGNER) as log:
        archive_segment(log, out, 100, now=NOW)  # its log.archive entry is #300 …
        archive_segment(log, out, 301, now=NOW)  # … archived here; this one's is #301 …
        archive_segment(log, out, 302, now=NOW)  # … archived here: only #302 is live
    with AuditLog.open(path, readonly=True) as log:
        verify_log(log, public_key=SIGNER.public_key())
    for f in out.iterdir():
        f.unlink()  # the auditor has the log only, not the archive files
    with sqlite3.connect(path) as db:
        db.execute(stmt)
        if "last" in stmt:
            db.execute("UPDATE archives SET first = 200 WHERE seq = 2")
    db.close()
    assert kind_of(path)["kind"] == "deleted"
