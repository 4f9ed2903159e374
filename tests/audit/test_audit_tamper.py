"""Any single modification, deletion, insertion or reordering of a log is detected."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from audit_reference import admin_entries
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lienthong.audit import AuditLog
from lienthong.audit.verify import LogInconsistency, verify_log
from lienthong.trust.keys import SoftwareSigner, generate_private_key

SIGNER = SoftwareSigner(generate_private_key())
ORIGIN = "tamper.example/log"


def build(path: Path, n: int, tag: str = "t") -> None:
    with AuditLog.open(path, signer=SIGNER, origin=ORIGIN) as log:
        log.append(admin_entries(n, tag))
        log.checkpoint()


def tamper(path: Path, op: str, i: int, j: int) -> None:
    """What an attacker with write access to the SQLite file could do."""
    with sqlite3.connect(path) as db:
        if op == "modify":
            db.execute("UPDATE leaves SET data = data || X'20' WHERE idx = ?", (i,))
        elif op == "delete":
            db.execute("DELETE FROM leaves WHERE idx = ?", (i,))
        elif op == "delete_renumber":
            db.execute("DELETE FROM leaves WHERE idx = ?", (i,))
            db.execute("UPDATE leaves SET idx = -idx WHERE idx > ?", (i,))
            db.execute("UPDATE leaves SET idx = -idx - 1 WHERE idx < 0")
        elif op == "insert":
            db.execute("UPDATE leaves SET idx = -idx - 1 WHERE idx >= ?", (i,))
            db.execute("UPDATE leaves SET idx = -idx WHERE idx < 0")
            db.execute(
                "INSERT INTO leaves (idx, kind, data) SELECT ?, kind, data || X'20' FROM leaves"
                " WHERE idx = ?",
                (i, i + 1),
            )
        elif op == "reorder":
            db.execute("UPDATE leaves SET idx = -1 WHERE idx = ?", (i,))
            db.execute("UPDATE leaves SET idx = ? WHERE idx = ?", (i, j))
            db.execute("UPDATE leaves SET idx = ? WHERE idx = -1", (j,))
        elif op == "append":
            db.execute(
                "INSERT INTO leaves (idx, kind, data) SELECT MAX(idx) + 1, 'admin', X'7b7d'"
                " FROM leaves"
            )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 600),
    op=st.sampled_from(["modify", "delete", "delete_renumber", "insert", "reorder", "append"]),
    data=st.data(),
)
def test_any_single_change_is_detected(n: int, op: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, n - 1).filter(lambda x: x != i))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.sqlite"
        build(path, n)
        with AuditLog.open(path) as log:
            verify_log(log, public_key=SIGNER.public_key())
        tamper(path, op, i, j)
        with AuditLog.open(path) as log, pytest.raises(LogInconsistency) as err:
            verify_log(log, public_key=SIGNER.public_key())
    kind = err.value.details["kind"]
    expected = {
        "modify": {"modified"},
        "delete": {"deleted"},
        "append": {"inserted"},
        "delete_renumber": {"deleted"},
        "insert": {"inserted"},
        "reorder": {"reordered"},
    }[op]
    if op in ("delete_renumber", "delete") and i == n - 1:
        expected = {"deleted"}
    assert kind in expected, (op, i, j, err.value)


def test_rewritten_history_with_recomputed_hashes_is_a_fork(tmp_path: Path) -> None:
    good, evil = tmp_path / "good.sqlite", tmp_path / "evil.sqlite"
    build(good, 300)
    build(evil, 300, tag="x")  # same size, different entries, internally consistent
    with sqlite3.connect(good) as db:
        db.execute("ATTACH ? AS evil", (str(evil),))
        db.execute("DELETE FROM leaves")
        db.execute("DELETE FROM tiles")
        db.execute("INSERT INTO leaves SELECT * FROM evil.leaves")
        db.execute("INSERT INTO tiles SELECT * FROM evil.tiles")
    with AuditLog.open(good) as log, pytest.raises(LogInconsistency) as err:
        verify_log(log, public_key=SIGNER.public_key())
    assert err.value.details["kind"] == "fork"


def test_changed_kind_column_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    build(path, 10)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE leaves SET kind = 'exchange' WHERE idx = 4")
    with AuditLog.open(path) as log, pytest.raises(LogInconsistency) as err:
        verify_log(log, public_key=SIGNER.public_key())
    assert err.value.details == {"kind": "modified", "index": 4}


def test_forged_checkpoint_signature_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    build(path, 10)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE checkpoints SET note = replace(note, '\n10\n', '\n9\n')")
    with AuditLog.open(path) as log, pytest.raises(LogInconsistency) as err:
        verify_log(log, public_key=SIGNER.public_key())
    assert err.value.details["kind"] == "bad_signature"


def test_operator_rewriting_log_and_checkpoints_is_caught_by_witness_state(
    tmp_path: Path,
) -> None:
    from lienthong.audit.witness import LocalLogSource, Witness, WitnessState

    path = tmp_path / "log.sqlite"
    build(path, 50)
    state = WitnessState(tmp_path / "witness.json")
    with AuditLog.open(path) as log:
        Witness("w.example/w", SIGNER, state).witness(
            LocalLogSource(log), ORIGIN, SIGNER.public_key()
        )
    # the operator holds the key: rebuilds the whole log, checkpoints included
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    build(path, 60, tag="rewritten")
    with AuditLog.open(path) as log:
        verify_log(log, public_key=SIGNER.public_key())  # self-consistent on its own
        seen = state.get(ORIGIN)
        assert seen is not None
        with pytest.raises(LogInconsistency) as err:
            verify_log(log, public_key=SIGNER.public_key(), external_notes=[seen])
    assert err.value.details["kind"] == "fork"
