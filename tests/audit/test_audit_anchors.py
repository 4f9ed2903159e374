"""Anchors kept outside the log: a citizen's or a witness's checkpoint catches a rollback in
access-history, and check-proof ties a checkpoint to one log (--origin)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from audit_reference import NOW, PERSON_KEY, admin_entries, audit_cli
from tests.audit.tampering import cut_tail

from lienthong.audit import AuditLog, personal_data_access_entry
from lienthong.audit.witness import LocalLogSource, Witness, WitnessState
from lienthong.trust.keys import SoftwareSigner, generate_private_key, public_key_to_pem

SIGNER = SoftwareSigner(generate_private_key())
WITNESS = SoftwareSigner(generate_private_key())
ORIGIN = "anchor.example/log"
PID = "001085012345"
READ = ("VN/GOV/X/portal", "population/get", "passport", "Law 49/2019")


def build(path: Path, n: int, origin: str = ORIGIN, tag: str = "t") -> str:
    """``n`` entries (accesses to PID at 2 and 35), checkpoints at 30 and ``n``; the last note."""
    entries = admin_entries(n, tag)
    for k in (2, 35):
        if k < n:
            entries[k] = personal_data_access_entry(PID, *READ, at=NOW, key=PERSON_KEY)
    with AuditLog.open(path, signer=SIGNER, origin=origin) as log:
        log.append(entries[:30])
        note = log.checkpoint(now=NOW)
        if n > 30:
            log.append(entries[30:])
            note = log.checkpoint(now=NOW)
    return note


def history(path: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    key = tmp_path / "node.pem"
    key.write_bytes(public_key_to_pem(SIGNER.public_key()))
    env = {**os.environ, "LT_PK": PERSON_KEY.decode()}
    args = ("--person", PID, "--log", str(path), "--person-key", "env:LT_PK")
    return audit_cli(env, "access-history", *args, "--log-key", f"{ORIGIN}={key}", *extra)


@pytest.fixture
def rolled_back(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The rollback: entries [30, 40) (one access to PID), their tiles and the checkpoint of 40
    are deleted and the tiles of the shorter tree written back. Returns the log, the citizen's
    saved checkpoint of size 40 and a witness state that saw size 40."""
    path, shorter = tmp_path / "log.sqlite", tmp_path / "shorter.sqlite"
    saved = tmp_path / "cp40.note"
    saved.write_text(build(path, 40))
    build(shorter, 30)
    state = tmp_path / "witness.json"
    with AuditLog.open(path) as log:
        Witness("w.example/w", WITNESS, WitnessState(state)).witness(
            LocalLogSource(log), ORIGIN, SIGNER.public_key()
        )
    cut_tail(path, shorter, 30)
    return path, saved, state


def test_access_history_alone_cannot_see_the_rollback(
    rolled_back: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The attack: without an anchor the shorter log is "complete" — for [0, 30) only — and
    the statement now says a rollback cannot be seen without one."""
    res = history(rolled_back[0], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "over entries [0, 30)" in res.stdout
    assert "--checkpoint" in res.stdout and "--witness-state" in res.stdout


def test_access_history_with_the_witness_state_reports_the_rollback(
    rolled_back: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path, _saved, state = rolled_back
    res = history(path, tmp_path, "--witness-state", str(state))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "complete for" not in res.stdout
    assert ORIGIN in res.stderr and "entries [30, 40) were deleted" in res.stderr


def test_access_history_with_a_saved_checkpoint_reports_the_rollback(
    rolled_back: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path, saved, _state = rolled_back
    res = history(path, tmp_path, "--checkpoint", f"{ORIGIN}={saved}", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "complete for" not in res.stdout
    assert ORIGIN in res.stderr and "entries [30, 40) were deleted" in res.stderr


def test_a_larger_consistent_anchor_extends_what_is_proven(tmp_path: Path) -> None:
    """Only the checkpoint of 40 was deleted: the log alone proves [0, 30) and misses the
    access at 35; the citizen's checkpoint of 40 proves [0, 40) and finds it."""
    path = tmp_path / "log.sqlite"
    saved = tmp_path / "cp40.note"
    saved.write_text(build(path, 40))
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM checkpoints WHERE size > 30")
    alone = history(path, tmp_path, "--json")
    assert alone.returncode == 0, alone.stderr
    assert json.loads(alone.stdout)["logs"][0]["completeness"]["proven_range"] == [0, 30]
    res = history(path, tmp_path, "--checkpoint", f"{ORIGIN}={saved}", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    done = out["logs"][0]["completeness"]
    assert done["proven_range"] == [0, 40]
    assert [a["size"] for a in done["anchors"]] == [40]
    assert "size 30 (the log's latest stored checkpoint)" in done["statement"]
    assert sorted(a["index"] for a in out["accesses"]) == [2, 35]
    assert all(a["proof"]["tree_size"] == 40 for a in out["accesses"])


def test_a_smaller_consistent_anchor_is_checked_and_named(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    build(path, 40)
    saved = tmp_path / "cp30.note"
    with AuditLog.open(path, readonly=True) as log:
        saved.write_text(log.checkpoint_note(30))
    res = history(path, tmp_path, "--checkpoint", f"{ORIGIN}={saved}")
    assert res.returncode == 0, res.stderr
    assert "over entries [0, 40)" in res.stdout and "size 30" in res.stdout


def test_access_history_with_a_checkpoint_of_another_history_is_a_fork(tmp_path: Path) -> None:
    """The same key signed another tree of size 40 for this origin: the log was rewritten."""
    path, other = tmp_path / "log.sqlite", tmp_path / "other.sqlite"
    build(path, 40)
    saved = tmp_path / "other40.note"
    saved.write_text(build(other, 40, tag="u"))
    res = history(path, tmp_path, "--checkpoint", f"{ORIGIN}={saved}")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "complete for" not in res.stdout
    assert ORIGIN in res.stderr and "rewritten" in res.stderr


def test_a_checkpoint_for_no_log_given_is_refused(tmp_path: Path) -> None:
    """A checkpoint under a name no log uses would be silently unused: refused like --log-key."""
    path = tmp_path / "log.sqlite"
    saved = tmp_path / "cp.note"
    saved.write_text(build(path, 40))
    res = history(path, tmp_path, "--checkpoint", f"other.example/log={saved}")
    assert res.returncode == 1 and "no log given is signed under that name" in res.stderr
    assert "complete for" not in res.stdout


@pytest.mark.parametrize("spec", ["noequals", "=x.note", f"{ORIGIN}="])
def test_a_malformed_checkpoint_option_is_bad_input(tmp_path: Path, spec: str) -> None:
    path = tmp_path / "log.sqlite"
    build(path, 40)
    res = history(path, tmp_path, "--checkpoint", spec)
    assert res.returncode == 2 and "expected NAME=NOTE" in res.stderr, res.stderr


def test_a_witness_state_without_any_of_the_logs_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    build(path, 40)
    state = tmp_path / "witness.json"
    state.write_text(json.dumps({"other.example/log": {"note": "x"}}))
    res = history(path, tmp_path, "--witness-state", str(state))
    assert res.returncode == 2 and "has no checkpoint of" in res.stderr, res.stderr


@pytest.fixture
def other_logs_checkpoint(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A proof from log B and B's checkpoint, signed by the key that also signs log A."""
    other = tmp_path / "other.sqlite"
    note = tmp_path / "other.note"
    note.write_text(build(other, 12, origin="anchor.example/other"))
    proof = tmp_path / "proof.json"
    with AuditLog.open(other, readonly=True) as log:
        proof.write_text(json.dumps(log.prove(3, 12).to_json()))
    key = tmp_path / "node.pem"
    key.write_bytes(public_key_to_pem(SIGNER.public_key()))
    return proof, note, key


def check_proof(paths: tuple[Path, Path, Path], *extra: str) -> subprocess.CompletedProcess[str]:
    proof, note, key = paths
    return audit_cli(
        {**os.environ}, "check-proof", str(proof), "--checkpoint", str(note), "--pubkey", str(key),
        *extra,
    )  # fmt: skip


def test_check_proof_refuses_a_checkpoint_of_another_origin(
    other_logs_checkpoint: tuple[Path, Path, Path],
) -> None:
    res = check_proof(other_logs_checkpoint, "--origin", ORIGIN)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "anchor.example/other" in res.stderr and ORIGIN in res.stderr


def test_check_proof_names_the_origin_it_verified(
    other_logs_checkpoint: tuple[Path, Path, Path],
) -> None:
    res = check_proof(other_logs_checkpoint, "--origin", "anchor.example/other")
    assert res.returncode == 0, res.stderr
    assert "anchor.example/other" in res.stdout
    plain = check_proof(other_logs_checkpoint)  # without --origin: as before, origin named
    assert plain.returncode == 0 and "origin not checked" in plain.stdout
    res = check_proof(other_logs_checkpoint, "--origin", "anchor.example/other", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["verified"] is True and out["origin"] == "anchor.example/other"
    assert out["origin_checked"] is True and out["tree_size"] == 12


def test_check_proof_origin_without_a_checkpoint_is_bad_input(
    other_logs_checkpoint: tuple[Path, Path, Path],
) -> None:
    res = audit_cli(
        {**os.environ}, "check-proof", str(other_logs_checkpoint[0]), "--origin", ORIGIN
    )
    assert res.returncode == 2 and "--origin checks the origin of a --checkpoint" in res.stderr


def test_a_fork_across_two_origins_under_one_key_name_says_so(tmp_path: Path) -> None:
    """detect_fork compares notes by size: two logs signed under one key name with equal
    sizes are a fork (one key name is one log), and the message names both origins instead
    of blaming one log for a tree it never signed."""
    from lienthong.audit.witness import ForkDetected, detect_fork

    notes = []
    for name in ("a", "b"):
        origin = f"{name}.example/log"
        with AuditLog.open(
            tmp_path / f"{name}.sqlite", signer=SIGNER, origin=origin, key_name="shared"
        ) as log:
            log.append(admin_entries(3, name))
            notes.append(log.checkpoint(now=NOW))
    with pytest.raises(ForkDetected, match=r"for logs a\.example/log and b\.example/log"):
        detect_fork(notes, "shared", SIGNER.public_key())
    detect_fork(notes[:1] * 2, "shared", SIGNER.public_key())  # one tree seen twice: no fork


def test_export_of_an_entry_that_is_not_json_is_tampering(tmp_path: Path) -> None:
    """An entry the log wrote cannot be bad input: bytes that are no entry (an insider's
    edit in the unsigned tail) make ``export`` fail as tampering, exit 1, naming the entry —
    it exited 2 as if the operator had given a bad file."""
    path = tmp_path / "log.sqlite"
    build(path, 31)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE leaves SET data = x'00ff' WHERE idx = 30")
    out = audit_cli(dict(os.environ), "export", "--log", str(path), "--format", "jsonl")
    assert out.returncode == 1, out.stderr
    assert "entry 30 is not a valid entry" in out.stderr
