"""One contract, every backend: the consolidated database on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from synctools import (
    Keys,
    Rig,
    citizen_pipeline,
    citizen_row,
    consolidated,
    make_rig,
    make_sqlite_source,
    quarantine_count,
)

from lienthong.errors import IntegrityError, SignatureError
from lienthong.sync.envelope import parse_header
from lienthong.sync.transport import FlakyTransport


@pytest.fixture
def rig(tmp_path: Path, keys: Keys, hub_url: str) -> Iterator[Rig]:
    make_sqlite_source(tmp_path / "source.db", 1000)
    doc = citizen_pipeline(cursor="updated_at", deleted_column="deleted", batch_size=200)
    r = make_rig(tmp_path, keys, doc, hub_url=hub_url)
    yield r
    r.close()


def source_update(tmp_path: Path, sql: str, *params: object) -> None:
    db = sqlite3.connect(tmp_path / "source.db")
    db.execute(sql, params)
    db.commit()
    db.close()


def test_apply_lineage_and_reconciliation(rig: Rig) -> None:
    r = rig
    report = r.agency.run()
    assert report.read == 1000 == report.applied + report.quarantined
    assert report.quarantined == 20
    assert len(consolidated(r.store)) == 980
    assert quarantine_count(r.store) == 20
    src, pos, seq = r.store.conn.execute(
        "SELECT source, position, batch_seq FROM c_citizen WHERE source_key = '1'"
    ).fetchone()
    assert (src, pos, seq) == ("BHXH.HN", "1", 1)
    reasons = r.store.conn.execute("SELECT reasons FROM sync_quarantine LIMIT 1").fetchone()[0]
    assert "31/02/1990" in reasons


def test_updates_keep_history_and_deletes_are_tombstones(rig: Rig, tmp_path: Path) -> None:
    r = rig
    r.agency.run()
    source_update(
        tmp_path, "UPDATE citizens SET ho_ten = 'LÊ VĂN TÁM', updated_at = ? WHERE id = 2",
        "2025-01-01T00:00:00",
    )  # fmt: skip
    source_update(
        tmp_path, "UPDATE citizens SET deleted = 1, updated_at = ? WHERE id = 3", "2025-01-02"
    )
    report = r.agency.run()
    assert (report.read, report.applied) == (2, 2)
    rows = consolidated(r.store)
    assert rows["2"]["full_name"] == "Lê Văn Tám"
    assert "3" not in rows
    hist = r.store.conn.execute(
        "SELECT source_key, ended_by FROM h_citizen ORDER BY source_key"
    ).fetchall()
    assert [tuple(h) for h in hist] == [("2", "update"), ("3", "delete")]
    # validity intervals: the old version ends when the new one starts; a deletion ends it at
    # the hub's time of the batch that carried the tombstone
    ended, started = r.store.conn.execute(
        "SELECT h.valid_to, c.valid_from FROM h_citizen h JOIN c_citizen c "
        "ON c.source = h.source AND c.source_key = h.source_key"
    ).fetchone()
    assert ended == started
    gone, batch_time = r.store.conn.execute(
        "SELECT h.valid_to, b.received_at FROM h_citizen h, sync_batches b "
        "WHERE h.source_key = '3' AND b.seq = (SELECT max(seq) FROM sync_batches)"
    ).fetchone()
    assert gone == batch_time


def test_duplicate_envelope_is_harmless(rig: Rig) -> None:
    sent: list[bytes] = []

    class Recording:
        name = "recording"

        def send(self, envelope: bytes) -> bytes:
            sent.append(envelope)
            return r.hub.receive(envelope)

    r = rig
    r.agency.transport = Recording()
    r.agency.run()
    before = consolidated(r.store)
    acks = [r.hub.receive(e) for e in sent]  # every batch delivered a second time
    assert all(b'"status":"duplicate"' in a for a in acks)
    assert consolidated(r.store) == before
    assert quarantine_count(r.store) == 20
    n = r.store.conn.execute("SELECT count(*) FROM sync_batches").fetchone()[0]
    assert n == len(sent)


def test_tampered_batch_rejected_then_resent_intact(rig: Rig) -> None:
    r = rig
    flaky = FlakyTransport(r.agency.transport, corrupt=2)
    r.agency.transport = flaky
    report = r.agency.run()
    assert flaky.corrupt == 0
    assert report.read == 1000 and len(consolidated(r.store)) == 980
    with pytest.raises(IntegrityError):
        r.hub.receive(b"LTSB1garbage")


def test_forged_batch_is_rejected(rig: Rig) -> None:
    sent: list[bytes] = []

    class Capture:
        name = "capture"

        def send(self, envelope: bytes) -> bytes:
            sent.append(envelope)
            return r.hub.receive(envelope)

    r = rig
    r.agency.transport = Capture()
    r.agency.run()
    header, _head, sig, body = parse_header(sent[0])
    forged = sent[0].replace(b'"seq":1', b'"seq":9', 1)
    with pytest.raises(SignatureError):
        r.hub.receive(forged)
    assert header["seq"] == 1 and sig and body


def test_hub_unreachable_then_back(rig: Rig) -> None:
    r = rig
    inner = r.agency.transport
    r.agency.transport = FlakyTransport(inner, drop=10**9)
    down = r.agency.run()
    assert down.error and down.pending_batches == 5 and down.applied == 0
    assert r.store.conn.execute("SELECT count(*) FROM sync_batches").fetchone()[0] == 0
    r.agency.transport = inner
    back = r.agency.run()
    assert back.error is None and back.pending_batches == 0
    assert back.read == 1000 == back.applied + back.quarantined
    assert len(consolidated(r.store)) == 980
    assert citizen_row(1)[0] == 1
