"""A SQLite source synchronised into the consolidated database through the direct transport."""

from __future__ import annotations

import sqlite3
import threading
import time
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


def test_follow_mode_picks_up_new_rows(tmp_path: Path, keys: Keys) -> None:
    make_sqlite_source(tmp_path / "source.db", 100)
    rig = make_rig(tmp_path, keys, citizen_pipeline(cursor="updated_at"))

    def count() -> int:  # a reader of its own: the hub's connection belongs to the sender
        db = sqlite3.connect(tmp_path / "hub.db")
        try:
            return int(db.execute("SELECT count(*) FROM c_citizen").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0
        finally:
            db.close()

    stop = threading.Event()
    result: list[object] = []
    follower = threading.Thread(target=lambda: result.append(rig.agency.follow(stop, 0.05)))
    follower.start()
    try:
        deadline = time.monotonic() + 20
        while count() < 98 and time.monotonic() < deadline:
            time.sleep(0.05)
        make_sqlite_source(tmp_path / "source.db", 50, start=101)
        while count() < 147 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        follower.join(timeout=20)
    assert count() == 147  # 150 rows, 3 quarantined
    total = result[0]
    assert getattr(total, "read", None) == 150
    rig.close()
