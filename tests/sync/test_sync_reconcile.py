"""`sync reconcile`: the consolidated database compared with the source, and repaired.

What cursor capture can miss, on a real SQLite source with a SQLite and a PostgreSQL hub: a
late commit stamped before the checkpoint (beyond cursor_overlap_s), a row changed in place
without a new stamp, a soft delete without a new stamp, an invalid row changed in place, and
a row removed from the hub by hand.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from crashtools import PASS_ENV, write_pipeline
from synctools import COLUMNS, Keys, citizen_pipeline, citizen_row, make_rig, make_sqlite_source
from test_sync_cli import cli

from lienthong.sync.hub.dialect import SQLITE, connect_hub
from lienthong.sync.hub.store import HubStore
from lienthong.sync.keys import init_keys
from lienthong.sync.outbox import Outbox
from lienthong.sync.reconcile import reconcile

HUB_ENV = "LT_RECONCILE_HUB"
HUB = "consolidated.db"


def _stamp(i: int) -> str:
    """Row i's cursor value: one second apart, so the overlap window holds a few rows only."""
    return f"2024-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}"


@pytest.fixture
def hub_db(hub_url: str) -> str:
    """The pipeline's [hub] database: a SQLite file, or a PostgreSQL schema of its own."""
    return hub_url


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_db: str) -> Path:
    return _setup(tmp_path, monkeypatch, hub_db)


@pytest.fixture
def sqlite_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return _setup(tmp_path, monkeypatch, str(tmp_path / "consolidated.db"))


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_db: str) -> Path:
    """Keys, a 600-row source with one stamp per second, and its pipeline (cursor mode,
    soft deletes, cursor_overlap_s = 5) into ``hub_db``."""
    monkeypatch.setenv(PASS_ENV, "reconcile-test-passphrase")
    monkeypatch.setenv(HUB_ENV, hub_db)
    monkeypatch.chdir(tmp_path)
    init_keys(tmp_path / "keys", {"$env": PASS_ENV})
    make_sqlite_source(tmp_path / "source.db", 600)
    with sqlite3.connect(tmp_path / "source.db") as db:
        db.executemany("UPDATE citizens SET updated_at = ? WHERE id = ?",
                       [(_stamp(i), i) for i in range(1, 601)])  # fmt: skip
    path = write_pipeline(tmp_path, 1, 200, database=f'{{ "$env" = "{HUB_ENV}" }}')
    path.write_text(path.read_text().replace('cursor = "updated_at"', 'cursor = "updated_at"\n'
                                             "cursor_overlap_s = 5"))  # fmt: skip
    return tmp_path


def _hub(hub_db: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the consolidated database (rows of a SELECT)."""
    conn, d = connect_hub(hub_db)
    try:
        cur = conn.execute(d.sql(sql), params)
        rows = list(cur.fetchall()) if sql.startswith("SELECT") else []
        conn.commit()
        return rows
    finally:
        conn.close()


def _reconcile(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, err = cli(capsys, "sync", "reconcile", "pipeline.toml", "--json", *extra)
    assert err == "", err
    return code, json.loads(out)


def _miss_what_cursor_capture_misses(tmp: Path, hub_db: str) -> None:
    with sqlite3.connect(tmp / "source.db") as db:
        late = citizen_row(10001)  # a commit that landed long after its stamp (id 30's second)
        db.execute("INSERT INTO citizens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (*late[:7], _stamp(30), 0))  # fmt: skip
        db.execute("UPDATE citizens SET ho_ten = 'LÊ VĂN TÁM' WHERE id = 100")  # same stamp
        db.execute("UPDATE citizens SET deleted = 1 WHERE id = 300")  # soft delete, same stamp
        db.execute("DELETE FROM citizens WHERE id = 400")  # a hard delete: no tombstone at all
        db.execute("UPDATE citizens SET ngay_sinh = '30/02/1991' WHERE id = 57")  # still invalid
    _hub(hub_db, "DELETE FROM c_citizen WHERE source_key = ?", ("200",))  # by hand, at the hub


def test_reconcile_finds_and_repairs_what_cursor_capture_missed(
    workdir: Path, hub_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "sync", "run", "pipeline.toml", "--json")
    assert code == 0 and json.loads(out)["read"] == 600
    code, doc = _reconcile(capsys)
    (t,) = doc["tables"]
    assert code == 0 and doc["matches"] and doc["repair"] is None
    assert (t["source_rows"], t["valid"], t["invalid"], t["deleted"], t["consolidated"]) == (
        600, 588, 12, 0, 588)  # fmt: skip
    assert [t[k] for k in ("missing", "extra", "different", "unquarantined")] == [0, 0, 0, 0]

    _miss_what_cursor_capture_misses(workdir, hub_db)
    code, out, _ = cli(capsys, "sync", "run", "pipeline.toml", "--json")
    assert code == 0 and json.loads(out)["read"] == 0  # the cursor does not see any of it
    with _Open(workdir) as box:
        position = box.extract_position("citizens")

    code, doc = _reconcile(capsys)
    (t,) = doc["tables"]
    assert code == 1 and not doc["matches"]
    assert (t["source_rows"], t["valid"], t["invalid"], t["deleted"], t["consolidated"]) == (
        600, 587, 12, 1, 587)  # fmt: skip
    assert t["examples"] == {"missing": ["200", "10001"], "extra": ["300", "400"],
                             "different": ["100"], "unquarantined": ["57"]}  # fmt: skip
    assert [t[k] for k in ("missing", "extra", "different", "unquarantined")] == [2, 2, 1, 1]
    code, out, _ = cli(capsys, "sync", "reconcile", "pipeline.toml")
    assert code == 1 and out.splitlines() == [  # as shown in docs/sync.md
        "citizens → Citizen: source 600 rows (587 valid, 12 invalid, 1 deleted); consolidated 587",
        "  missing 2: 200, 10001", "  extra 2: 300, 400", "  different 1: 100",
        "  invalid without an open quarantine entry 1: 57", "differences found",
    ]  # fmt: skip
    code, out, _ = cli(capsys, "sync", "reconcile", "pipeline.toml", "--examples", "1")
    assert code == 1 and "missing 2: 200, …" in out and "different 1: 100" in out
    assert "invalid without an open quarantine entry 1: 57" in out
    code, out, _ = cli(capsys, "sync", "reconcile", "pipeline.toml", "--examples", "0")
    assert code == 1 and "  missing 2\n" in out and "  extra 2\n" in out

    code, doc = _reconcile(capsys, "--repair")
    rep, (after,) = doc["repair"], doc["after"]
    assert code == 0 and doc["matches"] and rep["error"] is None
    assert (rep["batches"], rep["upserts"], rep["deletes"], rep["quarantined"]) == (4, 3, 2, 1)
    ack = rep["acknowledged"]
    assert ack["read"] == ack["applied"] + ack["quarantined"] == 6 and ack["quarantined"] == 1
    assert after["matches"] and after["consolidated"] == 587 and after["missing"] == 0
    code, doc = _reconcile(capsys)
    assert code == 0 and doc["matches"]

    with _Open(workdir) as box:
        assert box.extract_position("citizens") == position  # the extract position stayed
        totals = box.totals("citizens")
    assert totals["read"] == totals["applied"] + totals["quarantined"] == 606
    current = dict(_hub(hub_db, "SELECT source_key, data FROM c_citizen WHERE source_key IN "
                                "('100', '200', '300', '400', '10001')"))  # fmt: skip
    assert sorted(current) == ["100", "10001", "200"]
    assert _data(current["100"])["full_name"] == "Lê Văn Tám"
    history = _hub(hub_db, "SELECT source_key, ended_by, data FROM h_citizen WHERE "
                           "source_key IN ('100', '300', '400') ORDER BY source_key")  # fmt: skip
    assert [(k, e) for k, e, _ in history] == [("100", "update"), ("300", "delete"),
                                               ("400", "delete")]  # fmt: skip
    assert _data(history[0][2])["full_name"] != "Lê Văn Tám"  # the previous version is kept
    # the invalid row's current version is quarantined; it supersedes the older entry
    entries_57 = _hub(hub_db, "SELECT raw, resolved_seq FROM sync_quarantine "
                              "WHERE source_key = '57' ORDER BY id")  # fmt: skip
    assert [(_data(r)["ngay_sinh"], s is None) for r, s in entries_57] == [
        ("31/02/1990", False), ("30/02/1991", True)]  # fmt: skip
    code, out, _ = cli(capsys, "sync", "run", "pipeline.toml", "--json")
    assert code == 0 and json.loads(out)["read"] == 0


def test_bad_input_is_one_line_exit_2(sqlite_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "sync", "reconcile", "pipeline.toml")
    assert code == 2 and err.strip() == f"error: no consolidated database at {sqlite_dir}/{HUB}"
    assert not (sqlite_dir / "state.db").exists() and not (sqlite_dir / HUB).exists()
    code, out, _ = cli(capsys, "sync", "run", "pipeline.toml", "--json")
    assert code == 0
    for args, message in [
        (("--table", "citizen"), "pipeline has no table 'citizen'"),
        (("--hub", "source.db"), "source.db is not a consolidated database (it has no "
                                 "sync_quarantine table)"),
        (("--hub", "nowhere.db"), "no consolidated database at nowhere.db"),
        (("--examples", "-1"), "--examples -1: a number of keys >= 0"),
    ]:  # fmt: skip
        code, out, err = cli(capsys, "sync", "reconcile", "pipeline.toml", *args)
        assert (code, out, err.strip()) == (2, "", f"error: {message}")
    code, out, err = cli(
        capsys, "sync", "reconcile", "pipeline.toml", "--hub", "postgresql://postgres@127.0.0.1:1/x"
    )  # nothing listens there
    assert (code, out, len(err.strip().splitlines())) == (2, "", 1)
    assert err.startswith("error: cannot open consolidated database: connection failed")
    path = sqlite_dir / "pipeline.toml"  # the same pipeline sending to a hub process over HTTP
    path.write_text(path.read_text().replace(f'database = {{ "$env" = "{HUB_ENV}" }}',
                                             'url = "http://127.0.0.1:1"'))  # fmt: skip
    code, _, err = cli(capsys, "sync", "reconcile", "pipeline.toml")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "reconcile needs read access to the consolidated database" in err
    # read access given: the comparison runs without reaching the hub process
    code, out, _ = cli(capsys, "sync", "reconcile", "pipeline.toml", "--hub", "consolidated.db",
                       "--table", "citizens", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["tables"][0]["consolidated"] == 588


def test_refused_while_a_run_holds_the_pipeline(
    sqlite_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "sync", "run", "pipeline.toml", "--json")[0] == 0
    with _Open(sqlite_dir) as box:
        box.lock()  # as a running `sync run` holds it
        for args in ((), ("--repair",)):
            code, out, err = cli(capsys, "sync", "reconcile", "pipeline.toml", *args)
            assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
            assert "is in use by another sync run" in err
    assert cli(capsys, "sync", "reconcile", "pipeline.toml")[0] == 0


class _Open:
    """The pipeline state, opened for a look and closed again."""

    def __init__(self, tmp: Path) -> None:
        self.box = Outbox(tmp / "state.db")

    def __enter__(self) -> Outbox:
        return self.box

    def __exit__(self, *_: object) -> None:
        self.box.close()


def _data(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


TOMBSTONES = """
[[tables]]
name = "citizens_tombstones"
key = ["id"]
entity = "Citizen"
cursor = "updated_at"
deleted_column = "deleted"
classification = "SENSITIVE"
"""


def test_tombstone_table_sharing_the_entity(
    sqlite_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hard-deleting source with a tombstone table (docs: Cursor mode): each table answers
    for the hub rows its own batches wrote; a missed hard delete is repaired."""
    with sqlite3.connect(sqlite_dir / "source.db") as db:
        db.execute("CREATE TABLE citizens_tombstones (id INTEGER PRIMARY KEY,"
                   " updated_at TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 1)")  # fmt: skip
        db.execute("DELETE FROM citizens WHERE id = 5")
        db.execute("INSERT INTO citizens_tombstones VALUES (5, ?, 1)", (_stamp(700),))
    path = sqlite_dir / "pipeline.toml"
    path.write_text(path.read_text() + TOMBSTONES)
    code, out, err = cli(capsys, "sync", "run", "pipeline.toml", "--json")
    assert code == 0 and json.loads(out)["read"] == 600, err
    code, doc = _reconcile(capsys)
    counts = [
        (t["table"], t["source_rows"], t["deleted"], t["consolidated"]) for t in doc["tables"]
    ]
    assert code == 0 and counts == [("citizens", 599, 0, 587), ("citizens_tombstones", 1, 1, 0)]
    with sqlite3.connect(sqlite_dir / "source.db") as db:  # a hard delete, its tombstone lost
        db.execute("DELETE FROM citizens WHERE id = 6")
    code, doc = _reconcile(capsys, "--table", "citizens")
    (t,) = doc["tables"]
    assert code == 1 and t["examples"]["extra"] == ["6"] and t["extra"] == 1
    code, doc = _reconcile(capsys, "--repair")
    assert code == 0 and doc["repair"]["deletes"] == 1 and doc["after"][0]["consolidated"] == 586
    assert _hub(str(sqlite_dir / HUB), "SELECT ended_by FROM h_citizen WHERE source_key = '6'"
                ) == [("delete",)]  # fmt: skip


def test_repair_with_the_hub_unreachable_keeps_the_batches(
    sqlite_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "sync", "run", "pipeline.toml", "--json")[0] == 0
    _hub(str(sqlite_dir / HUB), "DELETE FROM c_citizen WHERE source_key = '200'")
    path = sqlite_dir / "pipeline.toml"  # the hub as a process that is down
    embedded = path.read_text()
    path.write_text(embedded.replace(f'database = {{ "$env" = "{HUB_ENV}" }}',
                                     'url = "http://127.0.0.1:1"'))  # fmt: skip
    code, doc = _reconcile(capsys, "--repair", "--hub", HUB)
    assert code == 1 and not doc["matches"] and doc["after"] is None
    assert doc["repair"]["batches"] == 1 and "unreachable" in doc["repair"]["error"]
    with _Open(sqlite_dir) as box:
        assert box.pending_count() == 1
    code, doc = _reconcile(capsys, "--hub", HUB)
    assert code == 1 and doc["pending_batches"] == 1 and doc["tables"][0]["missing"] == 1
    path.write_text(embedded)  # the hub is back: the next run sends the kept batch
    code, out, _ = cli(capsys, "sync", "run", "pipeline.toml", "--json")
    report = json.loads(out)
    assert code == 0 and (report["read"], report["applied"], report["pending_batches"]) == (1, 1, 0)
    assert _reconcile(capsys)[0] == 0


def test_reconciling_a_pipeline_never_run_creates_nothing(
    sqlite_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn, _ = connect_hub(str(sqlite_dir / HUB))  # an empty consolidated database
    HubStore(conn, SQLITE).close()
    code, doc = _reconcile(capsys, "--examples", "2")
    (t,) = doc["tables"]
    assert code == 1 and (t["missing"], t["consolidated"], t["examples"]["missing"]) == (
        588, 0, ["1", "2"])  # fmt: skip
    assert not (sqlite_dir / "state.db").exists()


def test_file_drop_with_duplicate_keys(tmp_path: Path, keys: Keys) -> None:
    """A CSV drop is read in file order; its duplicate-key rows are quarantined and match
    their open entries; a hub row changed by hand is reported as different."""
    (tmp_path / "drop").mkdir()
    rows = [citizen_row(i) for i in range(1, 31)] + [citizen_row(12)]  # row 31: key 12 again
    with (tmp_path / "drop" / "citizens.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([COLUMNS.split(", "), *rows])
    doc = citizen_pipeline(kind="files", path="drop", file="citizens.csv", batch_size=10)
    rig = make_rig(tmp_path, keys, doc)
    try:
        assert rig.agency.run().read == 31
    finally:
        rig.close()  # the run lock goes with the agency
    hub = str(tmp_path / "hub.db")
    report = reconcile(rig.pipeline, hub=hub)
    (t,) = report["tables"]
    assert report["matches"] and (t["source_rows"], t["valid"], t["invalid"]) == (31, 29, 2)
    _hub(hub, "UPDATE c_citizen SET data = json_set(data, '$.full_name', 'Khác') "
              "WHERE source_key = '3'")  # fmt: skip
    (t,) = reconcile(rig.pipeline, hub=hub)["tables"]
    assert t["different"] == 1 and t["examples"]["different"] == ["3"] and not t["matches"]
