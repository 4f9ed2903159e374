"""QA-C 1: the read-only commands (`sync status`, `sync quarantine list/show`) create nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from crashtools import PASS_ENV
from test_sync_cli import cli, workdir

__all__ = ["workdir"]  # the fixture: a never-run pipeline (600 rows, consolidated.db)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("state", ["state.db", "state/bhxh.db"])
def test_status_of_a_never_run_pipeline_creates_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], state: str
) -> None:
    path = workdir / "pipeline.toml"
    path.write_text(path.read_text().replace('state = "state.db"', f'state = "{state}"'))
    before = tree(workdir)
    code, out, err = cli(capsys, "sync", "status", "pipeline.toml", "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "source": "BHXH.HN",
        "tables": {
            "citizens": {
                "entity": "Citizen", "never_run": True, "position": None,
                "extract_position": None, "lag_seconds": None, "lag_rows": None,
                "applied": 0, "quarantined": 0, "read": 0, "batches_pending": 0,
                "last_error": None,
            }
        },
    }  # fmt: skip
    code, out, err = cli(capsys, "sync", "status", "pipeline.toml")
    assert code == 0, err
    row = next(line for line in out.splitlines() if "citizens" in line)
    assert "never run" in row and "unknown" in row and "None" not in out
    assert tree(workdir) == before  # no state file, no state directory, no hub database


def test_status_after_a_run_reports_without_writing_or_locking(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV)[0] == 0
    assert cli(capsys, "sync", "run", "pipeline.toml")[0] == 0
    state = workdir / "state.db"
    (workdir / "state.db.lock").unlink()
    before = state.read_bytes()
    code, out, err = cli(capsys, "sync", "status", "pipeline.toml", "--json")
    assert code == 0, err
    assert state.read_bytes() == before
    table = json.loads(out)["tables"]["citizens"]
    assert table["never_run"] is False and table["lag_rows"] == 0
    assert table["read"] == 600 == table["applied"] + table["quarantined"]
    assert not (workdir / "state.db.lock").exists()  # status takes no run lock


def test_status_of_a_table_added_to_a_run_pipeline(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV)[0] == 0
    assert cli(capsys, "sync", "run", "pipeline.toml")[0] == 0
    with sqlite3.connect(workdir / "source.db") as db:
        db.execute("CREATE TABLE citizens_b AS SELECT * FROM citizens")
    path = workdir / "pipeline.toml"
    text = path.read_text()
    table = text[text.index("[[tables]]") :].replace('name = "citizens"', 'name = "citizens_b"')
    path.write_text(text + "\n" + table)
    code, out, err = cli(capsys, "sync", "status", "pipeline.toml", "--json")
    assert code == 0, err
    tables = json.loads(out)["tables"]
    assert tables["citizens"]["never_run"] is False
    added = tables["citizens_b"]
    assert added["never_run"] is True and added["position"] is None
    assert added["lag_rows"] is None and added["lag_seconds"] is None and added["applied"] == 0


def test_quarantine_list_and_show_never_write_to_the_database_they_read(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = workdir / "other.db"  # a SQLite file that is not a consolidated database
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    before = other.read_bytes()
    for argv in (("list",), ("show", "1")):
        code, out, err = cli(capsys, "sync", "quarantine", *argv, "--hub", "other.db")
        assert code == 2 and out == ""
        assert err.strip() == (
            "error: other.db is not a consolidated database (it has no sync_quarantine table)"
        )
    assert other.read_bytes() == before  # not even switched to WAL
    assert tree(workdir) >= {"other.db"} and not (workdir / "other.db-wal").exists()
    code, _, err = cli(capsys, "sync", "quarantine", "list", "--pipeline", "pipeline.toml")
    assert code == 2 and "no consolidated database at" in err
    assert not (workdir / "consolidated.db").exists()
