"""QA 5: a lost agency state re-initialises (new epoch, full re-snapshot) instead of blocking."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from synctools import Keys, citizen_pipeline, consolidated, make_rig, make_sqlite_source

from lienthong.errors import IntegrityError
from lienthong.sync.mapping import Mapped
from lienthong.sync.transport import DirectTransport


def _history(tmp: Path) -> int:
    db = sqlite3.connect(tmp / "hub.db")
    try:
        return int(db.execute("SELECT count(*) FROM h_citizen").fetchone()[0])
    finally:
        db.close()


def _drop_state(tmp: Path) -> None:
    for f in tmp.glob("state.db*"):
        f.unlink()


def test_lost_state_resnapshots_idempotently(tmp_path: Path, keys: Keys) -> None:
    make_sqlite_source(tmp_path / "source.db", 600)
    doc = citizen_pipeline(batch_size=100)
    sent: list[bytes] = []
    rig = make_rig(tmp_path, keys, doc)
    try:
        direct = rig.agency.transport

        class Record(DirectTransport):
            def send(self, envelope: bytes) -> bytes:
                sent.append(envelope)
                return direct.send(envelope)

        rig.agency.transport = Record(rig.hub)
        first = rig.agency.run()
        assert first.error is None and first.read == 600
        before = consolidated(rig.store)
        # a batch of the first state that never arrived (the state is lost with it)
        spare = rig.agency.enqueue_extra(rig.pipeline.tables[0], Mapped())
        stale = rig.outbox.pending(1)[0].envelope
        assert spare == 7
    finally:
        rig.close()
    _drop_state(tmp_path)  # the operator lost (or deleted) the agency state
    make_sqlite_source(tmp_path / "source.db", 100, start=601)  # the source moved on
    rig = make_rig(tmp_path, keys, doc)
    try:
        again = rig.agency.run()
        assert again.error is None and again.pending_batches == 0
        assert again.read == 700 and again.applied + again.quarantined == 700
        after = consolidated(rig.store)
        assert {k: v for k, v in after.items() if k in before} == before
        assert len(after) == len(before) + 98
        assert _history(tmp_path) == 0  # unchanged rows: no new versions
        seqs = [r[0] for r in rig.store.conn.execute("SELECT seq FROM sync_batches ORDER BY seq")]
        assert seqs == list(range(1, 14))  # 6 + 7, no gap, none reused
        # a replay of the old state's batches is a duplicate; its unsent batch is refused
        assert all(b'"status":"duplicate"' in rig.hub.receive(e) for e in sent)
        with pytest.raises(IntegrityError, match="superseded"):
            rig.hub.receive(stale)
        # and the new state carries on normally
        make_sqlite_source(tmp_path / "source.db", 10, start=701)
        assert rig.agency.run().read == 10
    finally:
        rig.close()
