"""Contract tests: the same bodies against every storage backend."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest
from audit_reference import NOW, PERSON_KEY, consistency, mth, path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lienthong.audit import (
    AuditLog,
    admin_entry,
    exchange_entry,
    personal_data_access_entry,
    verify_consistency,
)
from lienthong.audit.checkpoint import verify_note
from lienthong.errors import InputError, NotFound


def entries(n: int, tag: str = "t") -> list:
    return [
        admin_entry(at=NOW, actor="ops", action="config.change", target=f"{tag}{i}")
        for i in range(n)
    ]


def test_batches_build_the_rfc6962_tree(log: AuditLog) -> None:
    data: list[bytes] = []
    for k in (1, 2, 5, 8, 13, 40):
        batch = entries(k, f"b{k}-")
        assert log.append(batch) == list(range(len(data), len(data) + k))
        data += [e.data for e in batch]
    assert log.size() == len(data) == 69
    for n in (1, 2, 3, 16, 33, 69):
        assert log.root(n) == mth(data[:n])
    for i in (0, 1, 31, 68):
        proof = log.prove(i)
        proof.verify()
        assert list(proof.hashes) == path(i, data)
    for old in (0, 1, 7, 32, 69):
        proof_c = log.consistency(old)
        assert proof_c == consistency(old, data)
        verify_consistency(old, 69, mth(data[:old]), mth(data), proof_c)
    assert log.entry(5) == data[5]


def test_checkpoint_is_signed_and_reopen_keeps_state(log_target: str, signer) -> None:
    with AuditLog.open(log_target, signer=signer, origin="o.example/log") as log:
        log.append(entries(10))
        note = log.checkpoint(now=NOW)
    cp = verify_note(note, "o.example/log", signer.public_key())
    assert cp.size == 10
    with AuditLog.open(log_target) as again:
        assert again.size() == 10
        assert again.root() == cp.root
        assert again.latest_checkpoint()[0] == cp
    with pytest.raises(InputError):
        AuditLog.open(log_target, origin="other.example/log")


def test_concurrent_appends_share_commits(log: AuditLog) -> None:
    got: list[list[int]] = []

    def worker(t: int) -> None:
        for j in range(20):
            got.append(log.append(entries(3, f"w{t}-{j}-")))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = sorted(i for g in got for i in g)
    assert flat == list(range(240))
    assert all(g == list(range(g[0], g[0] + 3)) for g in got)


def test_person_index_and_no_plaintext_id(log: AuditLog) -> None:
    pid = "001203004567"
    e = personal_data_access_entry(
        pid,
        "VN/GOV/000.00.00.H29/portal",
        "population/getCitizen",
        "issue passport",
        "Decree 13/2023 Art. 17",
        at=NOW,
        key=PERSON_KEY,
        fields=["name", "birth_date"],
    )
    [i] = log.append([e])
    assert pid.encode() not in log.entry(i)
    assert log.store.person_indexes(e.person) == [i]


def test_bad_input_is_refused(log: AuditLog) -> None:
    with pytest.raises(InputError):
        admin_entry(at=NOW, actor="ops", action="rm -rf", target="x")
    with pytest.raises(InputError):
        exchange_entry(at=NOW, message_id="", client="c", service="s")
    with pytest.raises(NotFound):
        log.prove(0)


def test_verify_archive_history_witness_on_every_backend(log: AuditLog, signer, tmp_path) -> None:
    from lienthong.audit.archive import archive_segment, verify_archives
    from lienthong.audit.history import access_history
    from lienthong.audit.verify import verify_log
    from lienthong.audit.witness import LocalLogSource, Witness, WitnessState

    pid = "001203004567"
    log.append(entries(700))
    log.append(
        [
            personal_data_access_entry(
                pid,
                "VN/GOV/000.00.00.H29/portal",
                "population/get",
                "passport",
                "Law 49/2019",
                at=NOW,
                key=PERSON_KEY,
            )
            for _ in range(3)
        ]
    )
    archive = archive_segment(log, tmp_path / "arch", 500, now=NOW)
    verify_archives([archive], log.key_name, signer.public_key())
    log.checkpoint(now=NOW)
    wit = Witness("w.example/w", signer, WitnessState(tmp_path / "w.json"))
    wit.witness(LocalLogSource(log), log.key_name, signer.public_key())
    report = verify_log(
        log, public_key=signer.public_key(), witnesses={"w.example/w": signer.public_key()}
    )
    assert report.archived_entries == 500 and report.cosignatures == 1
    assert report.entries_checked == log.size() == 704
    history = access_history([log], pid, PERSON_KEY)
    assert [a["index"] for a in history["accesses"]] == [702, 701, 700]
    for i in (0, 499, 500, 703):
        log.prove(i).verify()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 300), min_size=1, max_size=8))
def test_stored_tiles_prove_sampled_pairs_whatever_the_batches(batches: list[int]) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        AuditLog.open(Path(tmp) / "l.sqlite", origin="h.example/log") as log,
    ):
        data: list[bytes] = []
        for k, n in enumerate(batches):
            batch = entries(n, f"b{k}-")
            log.append(batch)
            data += [e.data for e in batch]
        size = len(data)
        for n in sorted({1, size, *range(1, size + 1, max(1, size // 7))}):
            root = mth(data[:n])
            assert log.root(n) == root
            for index in range(0, n, max(1, n // 13)):
                proof = log.prove(index, n)
                assert list(proof.hashes) == path(index, data[:n])
                assert proof.root_hash == root
            for old in range(0, n + 1, max(1, n // 11)):
                assert log.consistency(old, n) == consistency(old, data[:n])
