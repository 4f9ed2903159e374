"""A SQLite source synchronised into the consolidated database through the direct transport."""

from __future__ import annotations

from pathlib import Path

from synctools import (
    Keys,
    citizen_pipeline,
    consolidated,
    make_rig,
    make_sqlite_source,
    quarantine_count,
)


def test_sync_reconciles_read_applied_quarantined(tmp_path: Path, keys: Keys) -> None:
    make_sqlite_source(tmp_path / "source.db", 2000)
    rig = make_rig(tmp_path, keys, citizen_pipeline(cursor="updated_at"))
    report = rig.agency.run()
    assert report.error is None
    assert report.read == 2000 == report.applied + report.quarantined
    assert report.quarantined == 40  # every 50th row has 31/02
    rows = consolidated(rig.store)
    assert len(rows) == 1960
    assert quarantine_count(rig.store) == 40
    # a second run reads nothing new
    again = rig.agency.run()
    assert (again.read, again.batches) == (0, 0)
    rig.close()
