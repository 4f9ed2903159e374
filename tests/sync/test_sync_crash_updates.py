"""kill -9 of the agency and the hub while a writer process updates and deletes source rows.

The insert-only drills (test_sync_crash.py) prove that no row is lost or applied twice; these
drills change rows under the sync — renames, updates that make a row invalid (quarantine),
changes of invalid rows that stay invalid and corrections (the older entry is superseded),
deletions, keys that come back, new rows — and kill both sides at random moments, at least
10 times. After a final clean run:

* the current table holds exactly the source's valid rows (deleted rows absent); a key whose
  source row is invalid now keeps its last applied valid version, marked by its open entry;
* the open quarantine is exactly the source's invalid rows, one entry each, as they are now;
* every key the writer changed has a clean history: its versions (history, then current) are
  versions the writer made, in the writer's order, none twice (a redelivered batch adds no
  version), one closed version per applied change, with contiguous validity intervals;
* the batches are sequences 1..n applied once, and read = applied + quarantined per batch
  and per run.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import orjson
import pytest
from crashtools import (
    BAD_DAY,
    SLOT,
    SOURCE_DSN_ENV,
    UpdateDrill,
    fresh_database,
    make_pg_source,
    valid_day,
)
from synctools import (
    COLUMNS,
    Keys,
    Rig,
    citizen_pipeline,
    citizen_row,
    consolidated,
    make_rig,
    make_sqlite_source,
)

from lienthong.sync.mapping import Mapper, dictionary_validator
from lienthong.sync.model import Chunk
from lienthong.sync.pipeline import load_pipeline

DELETED = b"<deleted>"  # a deletion in a key's sequence of versions


def canon(value: Any) -> bytes:
    doc = orjson.loads(value) if isinstance(value, str | bytes) else value
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


class Expect:
    """What the hub must make of a source row: the pipeline's own mapping and validation."""

    def __init__(self, drill: UpdateDrill) -> None:
        spec = load_pipeline(drill.pipeline).tables[0]
        self.columns = COLUMNS.split(", ")
        self.mapper = Mapper(spec, self.columns, dictionary_validator(spec.entity))

    def version(self, row: tuple[Any, ...]) -> tuple[bool, bytes]:
        """(valid, mapped data) or (False, raw quarantined values) of one source row."""
        out = self.mapper.map_row_by_row(Chunk(self.columns, [row], {}))
        if out.upserts:
            return True, canon(out.upserts[0][2])
        ((_key, _pos, raw, _reasons),) = out.quarantine
        return False, canon(raw)


def writer_versions(
    journal: list[tuple[int, str, tuple[Any, ...] | None]], initial: int, expect: Expect
) -> dict[str, list[bytes]]:
    """Per key the writer changed: its valid versions and deletions in order, consecutive
    equals merged (the hub leaves an identical row alone); invalid versions are skipped (the
    previous valid version stays current)."""
    out: dict[str, list[bytes]] = defaultdict(list)
    for key in {k for k, _op, _row in journal if k <= initial}:
        ok, data = expect.version(citizen_row(key))
        if ok:
            out[str(key)].append(data)
    for key, _op, row in journal:
        if row is None:
            item = DELETED
        else:
            ok, item = expect.version(row)
            if not ok:
                continue
        seq = out[str(key)]
        if not seq or seq[-1] != item:
            seq.append(item)
    return out


def is_subsequence(part: list[bytes], whole: list[bytes]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


def check_history(
    hub: dict[str, list[tuple[Any, ...]]], versions: dict[str, list[bytes]]
) -> dict[str, int]:
    """Every changed key's versions at the hub against the writer's; untouched keys have none."""
    history: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in hub["history"]:
        history[str(row[0])].append(row)
    current = {str(r[0]): r for r in hub["current"]}
    assert set(history) <= set(versions), "history versions of keys the writer never changed"
    problems: list[str] = []
    longest = multi = 0
    for key, made in versions.items():
        closed = sorted(history.get(key, []), key=lambda r: (r[2], r[3]))
        now = current.get(key)
        chain: list[bytes] = []
        for r in closed:
            chain += [canon(r[1]), DELETED] if r[5] == "delete" else [canon(r[1])]
        chain += [canon(now[1])] if now else []
        seqs = [r[2] for r in closed] + ([now[2]] if now else [])
        starts = [r[3] for r in closed] + ([now[3]] if now else [])
        if not is_subsequence(chain, made):
            problems.append(f"key {key}: hub versions are not the writer's, in order")
        if any(a == b for a, b in pairwise(chain)):
            problems.append(f"key {key}: the same version twice in a row (redelivered?)")
        if seqs != sorted(set(seqs)):
            problems.append(f"key {key}: batch sequences {seqs} not strictly increasing")
        for i, r in enumerate(closed):
            if r[5] not in ("update", "delete"):
                problems.append(f"key {key}: ended_by {r[5]!r}")
            if r[5] == "update" and (i + 1 >= len(starts) or r[4] != starts[i + 1]):
                problems.append(f"key {key}: version of batch {r[2]} ends at {r[4]}, "
                                "not where the next one starts")  # fmt: skip
        # one closed version per applied change: every version but the current one is closed
        if len(closed) != sum(1 for x in chain if x != DELETED) - (1 if now else 0):
            problems.append(f"key {key}: {len(closed)} closed versions for chain of {len(chain)}")
        longest = max(longest, len(chain))
        multi += len(closed) >= 2
    assert not problems, f"{len(problems)} history problems: {problems[:10]}"
    return {"keys_changed": len(versions), "keys_with_2plus_closed": multi,
            "longest_chain": longest, "history_rows": len(hub["history"])}  # fmt: skip


def check_drill(drill: UpdateDrill) -> dict[str, Any]:
    expect = Expect(drill)
    journal = drill.journal()  # first: also kept in the drill's directory for a post-mortem
    hub = drill.hub_tables()
    valid, invalid = {}, {}
    for key, row in drill.source_rows().items():
        ok, doc = expect.version(row)
        (valid if ok else invalid)[key] = doc
    current = {str(r[0]): canon(r[1]) for r in hub["current"]}
    # the current table: exactly the valid rows; deleted rows absent; an invalid row's key
    # may keep its last valid version (QA 12), which its open entry marks (checked below)
    assert {k: v for k, v in current.items() if k not in invalid} == valid
    stale = len(current.keys() & invalid.keys())
    # the open quarantine: exactly the source's invalid rows as they are now, one entry each
    opened = sorted((str(k), canon(raw)) for _i, k, _s, raw, done in hub["quarantine"]
                    if done is None)  # fmt: skip
    assert opened == sorted(invalid.items())
    entries = [(str(k), canon(raw)) for _i, k, _s, raw, _d in hub["quarantine"]]
    assert len(entries) == len(set(entries)), "a quarantined row stored twice"
    resolved = {i: (s, d) for i, _k, s, _r, d in hub["quarantine"] if d is not None}
    closed = {i: (s, why) for i, s, why in hub["closed"]}
    assert len(closed) == len(hub["closed"]) and closed.keys() == resolved.keys()
    for i, (seq, why) in closed.items():
        assert why in ("superseded", "deleted") and resolved[i][1] == seq > resolved[i][0]
    stats = check_history(hub, writer_versions(journal, drill.rows, expect))
    # the ledger: every batch once, in order; read = applied + quarantined everywhere
    seqs = [b[0] for b in hub["batches"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(r == a + q for _s, r, a, q in hub["batches"])
    reports = drill.run_reports()
    assert reports and all(r["read"] == r["applied"] + r["quarantined"] for r in reports)
    assert reports[-1]["error"] is None and reports[-1]["pending_batches"] == 0
    read = sum(b[1] for b in hub["batches"])
    return {
        "source_rows": len(valid) + len(invalid), "valid": len(valid), "invalid": len(invalid),
        "stale_current_of_invalid": stale,
        "changes": drill.changes(), "batches": len(seqs),
        "read": read, "applied": sum(b[2] for b in hub["batches"]),
        "quarantined": sum(b[3] for b in hub["batches"]), "entries": len(entries),
        "closed_entries": len(closed), "kills": dict(drill.kills), "seed": drill.seed,
        "agency_runs": drill.agency_runs, **stats,
    }  # fmt: skip


def drill_once(drill: UpdateDrill, kills: int = 10) -> dict[str, Any]:
    drill.setup()
    try:
        drill.run(kills=kills, timeout=240)
    finally:
        drill.stop()
    summary = check_drill(drill)
    print(summary)
    assert sum(drill.kills.values()) == kills
    assert drill.kills["hub"] >= 1 and drill.kills["agency"] >= 1
    assert summary["changes"] >= drill.min_changes
    return summary


@pytest.mark.slow
def test_kill9_during_updates_and_deletes(tmp_path: Any) -> None:
    """Cursor mode (soft deletes) into the SQLite consolidated database; the writer starts
    at once, so it also changes rows the first pass has not read yet."""
    drill_once(UpdateDrill(tmp_path, rows=20_000, batch_size=500))


@pytest.mark.slow
@pytest.mark.postgres
def test_kill9_during_updates_and_deletes_into_postgresql(tmp_path: Any, pg_drill_db: str) -> None:
    """Cursor mode into the PostgreSQL consolidated database (merge, history trigger). The
    initial rows have distinct stamps and the writer starts once they are read, so every
    kill hits the incremental phase (the SQLite drill keeps the bulk-load tie group and
    starts the writer at once)."""
    drill = UpdateDrill(tmp_path, rows=20_000, batch_size=500, hub_db=pg_drill_db)
    drill.after_snapshot = drill.distinct_stamps = True
    drill_once(drill)


@pytest.fixture
def logical_source(pg_logical_dsn: str) -> Iterator[str]:
    """A fresh database on the private wal_level=logical server; its slot is dropped after."""
    with fresh_database(pg_logical_dsn, "lt_drillsrc", slot=SLOT) as url:
        yield url


@pytest.mark.slow
@pytest.mark.postgres
def test_kill9_during_logical_capture_of_updates_and_deletes(
    tmp_path: Any, logical_source: str
) -> None:
    """Log-based capture (real DELETEs, re-inserted keys, several changes of a key in one
    stream chunk) into the SQLite database; the writer starts at once, so the snapshot
    pages (and their resumption after a kill) meet changes the stream also carries."""
    drill_once(UpdateDrill(tmp_path, rows=20_000, batch_size=500, source_dsn=logical_source))


def logical_rig(tmp_path: Any, keys: Keys, dsn: str, monkeypatch: Any) -> Rig:
    """An in-process agency and hub over 10 citizens read from ``dsn`` through a logical
    slot, after the snapshot (row 7 quarantined)."""
    make_pg_source(dsn, 10)
    monkeypatch.setenv(SOURCE_DSN_ENV, dsn)
    doc = citizen_pipeline(logical_slot=SLOT)
    doc["source"] = {"kind": "postgres", "dsn": {"$env": SOURCE_DSN_ENV}}
    rig = make_rig(tmp_path, keys, doc)
    report = rig.agency.run()
    assert (report.applied, report.quarantined, report.error) == (9, 1, None)
    return rig


def in_one_transaction(dsn: str, *changes: tuple[str, tuple[Any, ...]]) -> None:
    """Make ``changes`` at the source in one transaction: they arrive in one stream chunk."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        for sql, params in changes:
            conn.execute(sql, params)


@pytest.mark.postgres
def test_changes_made_during_the_snapshot_add_no_history_when_replayed(
    tmp_path: Any, keys: Keys, logical_source: str, monkeypatch: Any
) -> None:
    """Row 5 changes twice after the slot exists, before the snapshot reads it: the snapshot
    reads its latest version, so replaying the two changes must leave no history."""
    make_pg_source(logical_source, 10)
    monkeypatch.setenv(SOURCE_DSN_ENV, logical_source)
    doc = citizen_pipeline(logical_slot=SLOT, batch_size=2)
    doc["source"] = {"kind": "postgres", "dsn": {"$env": SOURCE_DSN_ENV}}
    rig = make_rig(tmp_path, keys, doc)
    reader = rig.agency.connectors["citizens"]
    read = reader.read

    def read_then_change(position: Any, size: int) -> Iterator[Chunk]:
        for n, chunk in enumerate(read(position, size)):
            yield chunk
            if n == 0:  # the slot exists, rows 1–2 are read: change row 5 twice
                for name, at in (("LÊ VĂN AN", "2024-02-01"), ("LÊ VĂN BÌNH", "2024-02-02")):
                    in_one_transaction(logical_source, (UPDATE, (name, valid_day(5), at, 5)))

    monkeypatch.setattr(reader, "read", read_then_change)
    try:
        assert rig.agency.run().error is None
        assert rig.agency.run().error is None  # the replayed changes
        current = consolidated(rig.store)
        history = rig.store.conn.execute(
            "SELECT data FROM h_citizen WHERE source_key = '5'"
        ).fetchall()
    finally:
        rig.close()
    assert current["5"]["full_name"] == "Lê Văn Bình"
    assert history == []


INSERT = f"INSERT INTO citizens ({COLUMNS}) VALUES ({', '.join(['%s'] * 9)})"
UPDATE = "UPDATE citizens SET ho_ten = %s, ngay_sinh = %s, updated_at = %s WHERE id = %s"


def sync_one_transaction(
    tmp_path: Any, keys: Keys, dsn: str, monkeypatch: Any, *changes: tuple[str, tuple[Any, ...]]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """After the snapshot, make ``changes`` in one source transaction (one stream chunk) and
    sync them: (the current table, the keys of the open quarantine entries)."""
    rig = logical_rig(tmp_path, keys, dsn, monkeypatch)
    try:
        in_one_transaction(dsn, *changes)
        assert rig.agency.run().error is None
        current = consolidated(rig.store)
        opened = [str(k) for (k,) in rig.store.conn.execute(
            "SELECT source_key FROM sync_quarantine WHERE resolved_seq IS NULL"
        ).fetchall()]  # fmt: skip
    finally:
        rig.close()
    return current, opened


@pytest.mark.postgres
def test_a_key_deleted_and_inserted_again_in_one_stream_chunk_is_kept(
    tmp_path: Any, keys: Keys, logical_source: str, monkeypatch: Any
) -> None:
    again = (*citizen_row(3)[:2], "LÊ VĂN AN", *citizen_row(3)[3:])
    delete = ("DELETE FROM citizens WHERE id = 3", ())
    current, _ = sync_one_transaction(
        tmp_path, keys, logical_source, monkeypatch, delete, (INSERT, again)
    )
    assert current.get("3", {}).get("full_name") == "Lê Văn An"  # the source holds row 3


@pytest.mark.postgres
def test_a_row_corrected_in_the_same_stream_chunk_leaves_no_open_entry(
    tmp_path: Any, keys: Keys, logical_source: str, monkeypatch: Any
) -> None:
    current, opened = sync_one_transaction(
        tmp_path, keys, logical_source, monkeypatch,
        (UPDATE, ("LÊ VĂN AN", BAD_DAY, "2024-02-01T00:00:00", 4)),  # invalid …
        (UPDATE, ("LÊ VĂN BÌNH", valid_day(4), "2024-02-01T00:00:01", 4)),  # … corrected
    )  # fmt: skip
    assert current["4"]["full_name"] == "Lê Văn Bình"
    assert opened == ["7"]  # row 4 is valid at the source: only row 7's entry is open


def test_a_newer_invalid_version_supersedes_the_open_entry(tmp_path: Any, keys: Keys) -> None:
    """A row that changes while it stays invalid (directly, or through a valid version the
    agency never read) must leave one open entry, for the row as it is now: the older entry
    holds values the source no longer has, and re-submitting it would apply them."""
    make_sqlite_source(tmp_path / "source.db", 10)  # row 7: impossible birth date
    doc = citizen_pipeline(cursor="updated_at", deleted_column="deleted")
    rig = make_rig(tmp_path, keys, doc)
    try:
        assert rig.agency.run().quarantined == 1
        src = sqlite3.connect(tmp_path / "source.db")
        src.execute("UPDATE citizens SET ho_ten = 'LÊ VĂN AN',"
                    " updated_at = '2024-01-02T00:00:00' WHERE id = 7")  # fmt: skip
        src.commit()
        src.close()
        assert rig.agency.run().quarantined == 1
        opened = rig.store.conn.execute(
            "SELECT json_extract(raw, '$.ho_ten') FROM sync_quarantine"
            " WHERE source_key = '7' AND resolved_seq IS NULL"
        ).fetchall()
    finally:
        rig.close()
    assert opened == [("LÊ VĂN AN",)]
