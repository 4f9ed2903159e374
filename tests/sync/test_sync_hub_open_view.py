"""The hub's in-memory view of open quarantine keys (PostgreSQL) never hides an open entry.

The view pre-selects the keys whose open entries a batch may supersede or duplicate. It is
kept across batches by the store that applied them and must be read afresh whenever another
writer (a second hub process on the same database) applied a batch of the source meanwhile.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from synctools import SOURCE_ID, Keys, citizen_pipeline, make_rig, make_sqlite_source

from lienthong.sync.hub.dialect import connect_hub
from lienthong.sync.hub.service import Hub
from lienthong.sync.hub.store import HubStore

pytestmark = pytest.mark.postgres


class Switch:
    """A transport that delivers to whichever of two hub processes ``target`` names."""

    name = "switch"

    def __init__(self, hubs: dict[str, Hub]) -> None:
        self.hubs, self.target = hubs, "a"

    def send(self, envelope: bytes) -> bytes:
        return self.hubs[self.target].receive(envelope)


@pytest.fixture
def hub_url(pg_schema: str) -> str:
    return pg_schema


def _update(tmp: Path, row: int, day: str, stamp: str) -> None:
    db = sqlite3.connect(tmp / "source.db")
    db.execute("UPDATE citizens SET ngay_sinh = ?, updated_at = ? WHERE id = ?", (day, stamp, row))
    db.commit()
    db.close()


def _open(store: HubStore) -> list[str]:
    rows = store.conn.execute(
        "SELECT source_key FROM sync_quarantine WHERE resolved_seq IS NULL ORDER BY id"
    ).fetchall()
    store.conn.rollback()
    return [str(r[0]) for r in rows]


def test_open_entries_close_whichever_hub_applies_the_fix(
    tmp_path: Path, keys: Keys, hub_url: str
) -> None:
    make_sqlite_source(tmp_path / "source.db", 200)  # defects at rows 7, 57, 107, 157
    doc = citizen_pipeline(cursor="updated_at", batch_size=50)
    rig = make_rig(tmp_path, keys, doc, hub_url=hub_url)
    other = HubStore(*connect_hub(hub_url))
    switch = Switch({"a": rig.hub, "b": keys.hub_for(other)})
    rig.agency.transport = switch
    try:
        report = rig.agency.run()  # hub a holds a view of the four open keys afterwards
        assert (report.read, report.quarantined) == (200, 4)
        assert _open(rig.store) == ["7", "57", "107", "157"]

        # incremental view of hub a: row 9 goes bad (entered), row 7 is fixed (closed) …
        _update(tmp_path, 9, "30/02/1959", "2030-01-01T00:00:00")
        _update(tmp_path, 7, "08/08/1957", "2030-01-01T00:00:01")
        assert rig.agency.run().quarantined == 1
        assert _open(rig.store) == ["57", "107", "157", "9"]
        # … and the entry for 9 added in the last batch is known to the view: fixing it
        # closes it (a view that missed it would leave an open entry beside a valid row)
        _update(tmp_path, 9, "10/10/1959", "2030-01-02T00:00:00")
        assert rig.agency.run().applied == 1
        assert _open(rig.store) == ["57", "107", "157"]

        # another hub process applies batches of the source: hub a's view is outdated
        switch.target = "b"
        _update(tmp_path, 11, "31/04/1961", "2030-01-03T00:00:00")
        assert rig.agency.run().quarantined == 1
        _update(tmp_path, 57, "02/10/2007", "2030-01-03T00:00:01")
        assert rig.agency.run().applied == 1
        assert _open(rig.store) == ["107", "157", "11"]
        switch.target = "a"  # a must see b's new entry for 11 and b's closing of 57
        _update(tmp_path, 11, "12/12/1961", "2030-01-04T00:00:00")
        assert rig.agency.run().applied == 1
        assert _open(rig.store) == ["107", "157"]

        closed = rig.store.conn.execute(
            "SELECT count(*) FROM sync_quarantine_closed WHERE reason = 'superseded'"
        ).fetchone()[0]
        assert closed == 4  # rows 7, 9, 57, 11
        entry = rig.store.conn.execute(
            "SELECT data->>'date_of_birth' FROM c_citizen WHERE source = %s AND source_key = '11'",
            (SOURCE_ID,),
        ).fetchone()
        assert entry == ("1961-12-12",)
    finally:
        other.close()
        rig.close()
