"""QA2 #6: after a schema drift, `sync schema accept` is the documented way to continue."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from crashtools import PASS_ENV, write_pipeline
from synctools import make_sqlite_source
from test_sync_cli import cli


def test_schema_accept_after_a_dropped_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASS_ENV, "qa-a-drift-passphrase")
    monkeypatch.chdir(tmp_path)
    make_sqlite_source(tmp_path / "source.db", 300)
    path = write_pipeline(tmp_path, 1, 200, database='"hub.db"')
    code, _, err = cli(capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV)
    assert code == 0, err
    code, _, err = cli(capsys, "sync", "schema", "accept", "pipeline.toml")
    assert code == 2 and "no pipeline state" in err  # the first run records the schema
    assert cli(capsys, "sync", "run", "pipeline.toml")[0] == 0
    with sqlite3.connect(tmp_path / "source.db") as db:
        db.execute("ALTER TABLE citizens DROP COLUMN quoc_tich")
    code, _, err = cli(capsys, "sync", "run", "pipeline.toml")
    assert code == 2 and "has no column 'quoc_tich'" in err  # a mapped column: refused early
    assert "sync schema accept PIPELINE --table citizens" in err
    # accepting while the mapping still names the column is refused
    code, _, err = cli(capsys, "sync", "schema", "accept", "pipeline.toml")
    assert code == 2 and "has no column 'quoc_tich'" in err
    lines = [x for x in path.read_text().splitlines() if not x.startswith("quoc_tich")]
    path.write_text("\n".join(lines) + "\n")
    code, out, _ = cli(capsys, "sync", "schema", "accept", "pipeline.toml", "--table",
                       "citizens", "--json")  # fmt: skip
    assert code == 0
    assert json.loads(out) == {
        "tables": [{"table": "citizens", "accepted": "column quoc_tich removed"}]
    }
    lines = [x for x in path.read_text().splitlines() if not x.startswith("quoc_tich")]
    code, _, err = cli(capsys, "sync", "run", "pipeline.toml")
    assert code == 0, err
    # an unmapped column dropped: the drift itself stops the run, with the procedure
    with sqlite3.connect(tmp_path / "source.db") as db:
        db.execute("ALTER TABLE citizens DROP COLUMN ma_tinh")
    lines = [x for x in path.read_text().splitlines() if not x.startswith("ma_tinh")]
    path.write_text("\n".join(lines) + "\n")
    code, _, err = cli(capsys, "sync", "run", "pipeline.toml")
    assert code == 2 and "schema drift in source table citizens: column ma_tinh removed" in err
    assert "then run `lienthong sync schema accept PIPELINE --table citizens`" in err
    assert cli(capsys, "sync", "schema", "accept", "pipeline.toml")[0] == 0
    code, out, _ = cli(capsys, "sync", "run", "pipeline.toml")
    assert code == 0 and out.startswith("read ")  # the rows changed shape: sent again
    code, out, _ = cli(capsys, "sync", "schema", "accept", "pipeline.toml")
    assert code == 0 and out == "citizens: no drift\n"
