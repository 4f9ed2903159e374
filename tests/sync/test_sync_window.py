"""Several batches on the way at once: the hub still applies them once each, in order.

The sender keeps two deliveries in flight; these transports make the later batch arrive
first, or lose one batch on the way while the next is in flight. The consolidated database
must equal the source, every sequence applied once and in order.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from synctools import Keys, citizen_pipeline, consolidated, make_rig, make_sqlite_source

from lienthong.errors import BackendError
from lienthong.sync.envelope import parse_header
from lienthong.sync.transport import DirectTransport, Transport


class Reorder:
    """Holds every odd batch back a little, so its successor reaches the hub first."""

    name = "reorder"

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    def send(self, envelope: bytes) -> bytes:
        if parse_header(envelope)[0]["seq"] % 2:
            time.sleep(0.15)
        return self.inner.send(envelope)


class LoseOnce:
    """Batch 2 is lost on its first journey (link down) while batch 3 is on its way."""

    name = "lose-once"

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.lost = False
        self.lock = threading.Lock()

    def send(self, envelope: bytes) -> bytes:
        with self.lock:
            lose = parse_header(envelope)[0]["seq"] == 2 and not self.lost
            self.lost = self.lost or lose
        if lose:
            time.sleep(0.05)
            raise BackendError("link down (injected)", code="hub_unreachable")
        return self.inner.send(envelope)


def _run(tmp: Path, keys: Keys, wrap: type[Reorder] | type[LoseOnce]) -> None:
    make_sqlite_source(tmp / "source.db", 1000)
    rig = make_rig(tmp, keys, citizen_pipeline(batch_size=100))
    try:
        rig.agency.transport = wrap(DirectTransport(rig.hub))
        report = rig.agency.run()
        if report.pending_batches:  # a lost batch waits for the next pass, like a hub outage
            report = rig.agency.run()
        assert report.pending_batches == 0
        seqs = [r[0] for r in rig.store.conn.execute("SELECT seq FROM sync_batches ORDER BY rowid")]
        assert seqs == list(range(1, 11))  # applied once each, in order
        rows = consolidated(rig.store)
        quarantined = rig.store.conn.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0]
        assert len(rows) + quarantined == 1000 and quarantined == 20
    finally:
        rig.close()


def test_later_batch_arriving_first_waits_for_its_predecessor(tmp_path: Path, keys: Keys) -> None:
    _run(tmp_path, keys, Reorder)


def test_batch_lost_while_its_successor_is_on_the_way(tmp_path: Path, keys: Keys) -> None:
    _run(tmp_path, keys, LoseOnce)
