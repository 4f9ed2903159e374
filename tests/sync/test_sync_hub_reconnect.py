"""PostgreSQL hub: the database ends the hub's connections (a restart, a failover, an
administrator's ``pg_terminate_backend``) and the hub carries on with new ones.

Before, the hub kept its dead main connection: every batch was answered 503 until the hub
process was restarted. Now a batch that meets the dead connection is applied on a new one
(its TEMP stage table created again for the merge path), exactly once.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from crashtools import Drill
from synctools import end_connections
from test_sync_hub_copy import _batch

from lienthong.sync.hub.store import open_store

pytestmark = pytest.mark.postgres


def test_a_batch_that_meets_a_dead_connection_is_applied_on_a_new_one(
    pg_schema: str, pg_dsn: str, tmp_path: Path
) -> None:
    app = f"lt_reconnect_{tmp_path.name[-12:]}"
    store = open_store(f"{pg_schema}&application_name={app}")
    try:
        first = store.apply(
            _batch(1, [(str(i), {"n": i}) for i in range(10)]), "2026-01-01T00:00:00+00:00"
        )
        assert first.status == "applied"
        assert end_connections(pg_dsn, app) == 1
        # changed keys: the staging merge, whose TEMP table belonged to the old connection
        changed = _batch(2, [(str(i), {"n": -i}) for i in range(5)])
        assert store.apply(changed, "2026-01-02T00:00:00+00:00").status == "applied"
        assert end_connections(pg_dsn, app) == 1
        new = _batch(3, [(str(i), {"n": i}) for i in range(10, 15)])
        assert store.apply(new, "2026-01-03T00:00:00+00:00").status == "applied"
        # the same batch again (an agency that never saw the acknowledgement): a duplicate
        assert store.apply(new, "2026-01-03T00:00:00+00:00").status == "duplicate"
    finally:
        store.close()
    with psycopg.connect(pg_schema) as db:
        current = dict(db.execute("SELECT source_key, data FROM c_citizen").fetchall())
        history = db.execute("SELECT count(*) FROM h_citizen").fetchone()
        batches = [r[0] for r in db.execute("SELECT seq FROM sync_batches ORDER BY seq")]
    assert current == {str(i): {"n": -i if i < 5 else i} for i in range(15)}
    assert history == (4,) and batches == [1, 2, 3]  # "0" kept its value: no new version


def test_hub_serve_carries_on_after_its_database_ends_the_connections(
    tmp_path: Path, pg_drill_db: str
) -> None:
    """`sync hub serve` on PostgreSQL: every agency run after the connections were ended
    exits 0 and the consolidated database holds every row once (it used to answer 503 to
    every batch until restarted)."""
    app = f"lt_hubserve_{tmp_path.name[-12:]}"
    drill = Drill(
        tmp_path, rows=2000, batch_size=500, hub_db=f"{pg_drill_db}?application_name={app}"
    )
    drill.setup()
    drill.start_hub()
    try:
        for run in range(3):
            if run:
                assert end_connections(pg_drill_db, app) >= 1
                drill.grow(1000)
            drill.start_agency()
            assert drill.agency is not None
            assert drill.agency.wait(timeout=120) == 0, (tmp_path / "agency.log").read_text()
        assert drill.hub is not None and drill.hub.poll() is None
    finally:
        drill.stop()
    reports = drill.run_reports()
    assert [r["error"] for r in reports] == [None, None, None]
    assert sum(r["read"] for r in reports) == 4000
    keys, quarantined, seqs = drill.consolidated()
    assert len(keys) == 3920 and len(quarantined) == 80  # every 50th row is invalid
    assert seqs == list(range(1, len(seqs) + 1))
    assert "reconnected" in (tmp_path / "hub.log").read_text()
    assert reports[-1]["tables_failed"] == {}
