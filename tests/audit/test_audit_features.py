"""Witnesses, archives, citizens' access history, monitoring export, asynchronous stamping."""

from __future__ import annotations

import hashlib
import lzma
import sqlite3
import time
from pathlib import Path

import pytest
from audit_reference import NOW, PERSON_KEY, admin_entries
from cryptography import x509

from lienthong.audit import AuditLog, exchange_entry, personal_data_access_entry
from lienthong.audit.archive import archive_segment, verify_archives
from lienthong.audit.entries import security_event_entry
from lienthong.audit.export import security_events, to_cef, to_jsonl
from lienthong.audit.history import access_history
from lienthong.audit.stamping import stamp_digest
from lienthong.audit.verify import verify_log
from lienthong.audit.witness import (
    ForkDetected,
    LocalLogSource,
    Witness,
    WitnessState,
    detect_fork,
)
from lienthong.errors import IntegrityError, SignatureError
from lienthong.trust.keys import SoftwareSigner, generate_private_key

PID = "001085012345"


def access(pid: str, k: int, outcome: str = "ok"):
    return personal_data_access_entry(
        pid,
        f"VN/GOV/000.00.00.H{k % 3}/portal",
        "population/getCitizen",
        "issue passport",
        "Law 49/2019",
        at=NOW,
        key=PERSON_KEY,
        fields=["full_name"],
        outcome=outcome,
    )


def test_witnesses_cosign_and_catch_a_fork(tmp_path: Path, signer) -> None:
    wsigner = SoftwareSigner(generate_private_key())
    wit = Witness("witness.example/w1", wsigner, WitnessState(tmp_path / "w.json"))
    with AuditLog.open(tmp_path / "a.log", signer=signer, origin="a.example/log") as log:
        log.append(admin_entries(5))
        log.checkpoint()
        wit.witness(LocalLogSource(log), log.key_name, signer.public_key())
        log.append(admin_entries(9, "more"))
        log.checkpoint()
        wit.witness(LocalLogSource(log), log.key_name, signer.public_key())
        report = verify_log(
            log,
            public_key=signer.public_key(),
            witnesses={"witness.example/w1": wsigner.public_key()},
        )
        assert report.cosignatures == 2
        honest_note = log.store.checkpoints()[-1][1]
    # the operator serves another history of the same origin to the same witness
    with AuditLog.open(tmp_path / "fork.log", signer=signer, origin="a.example/log") as fork:
        fork.append(admin_entries(5))
        fork.append(admin_entries(9, "evil"))
        fork.checkpoint()
        with pytest.raises(ForkDetected):
            wit.witness(LocalLogSource(fork), fork.key_name, signer.public_key())
        assert fork.store.cosignatures(14) == []
        with pytest.raises(ForkDetected):
            detect_fork(
                [honest_note, fork.store.checkpoints()[-1][1]], fork.key_name, signer.public_key()
            )


def test_forged_cosignature_is_reported(tmp_path: Path, signer) -> None:
    wsigner = SoftwareSigner(generate_private_key())
    other = SoftwareSigner(generate_private_key())
    with AuditLog.open(tmp_path / "a.log", signer=signer, origin="a.example/log") as log:
        log.append(admin_entries(3))
        log.checkpoint()
        Witness("w.example/w", other, WitnessState(tmp_path / "w.json")).witness(
            LocalLogSource(log), log.key_name, signer.public_key()
        )
        with pytest.raises(IntegrityError) as err:
            verify_log(
                log, public_key=signer.public_key(), witnesses={"w.example/w": wsigner.public_key()}
            )
        assert err.value.details["kind"] == "bad_cosignature"


def test_archive_prune_keeps_proofs_and_chain_verifies(tmp_path: Path, signer) -> None:
    out = tmp_path / "arch"
    with AuditLog.open(tmp_path / "a.log", signer=signer, origin="a.example/log") as log:
        log.append(admin_entries(1000))
        first = archive_segment(log, out, 300, now=NOW)
        second = archive_segment(log, out, 777, now=NOW)
        log.append(admin_entries(50, "new"))
        log.checkpoint()
        report = verify_log(log, public_key=signer.public_key())
        assert report.archived_entries == 777
        for i in (0, 299, 776, 777, 1040):
            log.prove(i).verify()
    results = verify_archives([first, second], log.key_name, signer.public_key())
    assert [r["end"] for r in results] == [300, 777]
    # a modified archive breaks its signed hash
    blob = lzma.decompress(second.read_bytes()).replace(b"t400", b"t4OO")
    second.write_bytes(lzma.compress(blob))
    with pytest.raises(IntegrityError):
        verify_archives([first, second], log.key_name, signer.public_key())


def test_access_history_is_complete_and_index_tampering_shows(tmp_path: Path, signer) -> None:
    logs = []
    for code in ("a", "b"):
        log = AuditLog.open(tmp_path / f"{code}.log", signer=signer, origin=f"{code}.ex/log")
        log.append([access(PID if k % 4 == 0 else f"0010850{k:05d}", k) for k in range(40)])
        log.append(admin_entries(3))
        log.checkpoint()
        logs.append(log)
    result = access_history(logs, PID, PERSON_KEY)
    assert len(result["accesses"]) == 20
    assert all(a["purpose"] == "issue passport" for a in result["accesses"])
    assert PID not in str(result)
    with sqlite3.connect(tmp_path / "b.log") as db:
        db.execute("DELETE FROM persons WHERE idx = 8")
    with pytest.raises(IntegrityError, match="index") as err:
        access_history(logs, PID, PERSON_KEY)
    assert "missing from the index: [8] (1);" in err.value.message
    assert "does not name this person: none" in err.value.message
    for log in logs:
        log.close()


def test_security_export_selects_and_formats(tmp_path: Path, signer) -> None:
    with AuditLog.open(tmp_path / "a.log", signer=signer, origin="a.example/log") as log:
        log.append(
            [
                exchange_entry(at=NOW, message_id="m1", client="c", service="s"),
                exchange_entry(
                    at=NOW,
                    message_id="m2",
                    client="c|x",
                    service="s=1",
                    outcome="refused",
                    reason="no access right\nfor this service",
                ),
                security_event_entry(
                    at=NOW,
                    event="verification.failed",
                    severity=8,
                    source="gateway",
                    detail={"peer": "H29"},
                ),
                *admin_entries(1),
                access(PID, 1, outcome="refused"),
            ]
        )
        events = list(security_events(log))
    assert [e["event"] for e in events] == [
        "exchange.refused",
        "verification.failed",
        "admin.config.change",
        "personal_data.access.refused",
    ]
    cef = to_cef(events[0])
    assert cef.startswith("CEF:0|lienthong|audit|")
    assert "\n" not in cef and "reason=no access right\\nfor this service" in cef
    assert "request=s\\=1" in cef
    assert to_jsonl(events[1]).startswith('{"at":')


class FlakyTsa:
    def __init__(self) -> None:
        self.up = False
        self.calls = 0

    def timestamp(self, digest: bytes) -> bytes:
        self.calls += 1
        if not self.up:
            raise ConnectionError("TSA unreachable")
        return b"token:" + digest


def test_tsa_outage_never_blocks_appends(tmp_path: Path, signer) -> None:
    tsa = FlakyTsa()
    with AuditLog.open(
        tmp_path / "a.log", signer=signer, origin="a.ex/log", timestamper=tsa
    ) as log:
        assert log.stamper is not None
        log.stamper.stop()  # drive the stamper by hand: deterministic
        log.append(admin_entries(10))
        log.checkpoint()
        log.append(admin_entries(10, "b"))
        log.checkpoint()
        assert log.stamper.stamp_pending() == 0
        status = log.stamper.status()
        assert status.pending == 2 and "unreachable" in (status.last_error or "")
        tsa.up = True
        assert log.stamper.stamp_pending() == 2
        assert log.stamper.status().pending == 0
        stamps = log.store.stamps()
        note = dict(log.store.checkpoints())[20]
        assert stamps[20][0] == b"token:" + stamp_digest(note)


def test_real_rfc3161_stamps_verify(tmp_path: Path, signer) -> None:
    from lienthong.trust.demo import build_pki
    from lienthong.trust.tsa import verify_timestamp

    pki = build_pki(tmp_path / "pki", [])
    with AuditLog.open(
        tmp_path / "a.log",
        signer=signer,
        origin="a.ex/log",
        timestamper=pki.ca.timestamp_authority(),
    ) as log:
        log.append(admin_entries(4))
        log.checkpoint()
        deadline = time.monotonic() + 10
        while log.store.stamps() == {} and time.monotonic() < deadline:
            time.sleep(0.05)  # the background stamper runs off the append path
        token, _at = log.store.stamps()[4]
        note = dict(log.store.checkpoints())[4]
    certs = x509.load_pem_x509_certificates(pki.ca_bundle.read_bytes())
    roots = [c for c in certs if c.subject == c.issuer]
    verify_timestamp(
        token, stamp_digest(note), roots=roots, intermediates=[c for c in certs if c not in roots]
    )
    with pytest.raises(SignatureError):
        verify_timestamp(
            token,
            hashlib.sha256(b"other").digest(),
            roots=roots,
            intermediates=[c for c in certs if c not in roots],
        )


def test_automatic_checkpoints_follow_growth(tmp_path: Path, signer) -> None:
    with AuditLog.open(tmp_path / "a.log", signer=signer, origin="a.ex/log") as log:
        log.checkpoint_every(0.05)
        log.append(admin_entries(3))
        deadline = time.monotonic() + 10
        while not log.store.checkpoints() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [s for s, _n in log.store.checkpoints()] == [3]
