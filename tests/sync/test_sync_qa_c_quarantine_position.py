"""QA-C 3: in cursor mode a quarantined row's source position is its cursor value and key."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from crashtools import PASS_ENV
from test_sync_cli import cli, workdir

from lienthong.cli.output import console

__all__ = ["workdir"]  # the fixture: a cursor-mode SQLite pipeline (600 rows, consolidated.db)


def _entries(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    code, out, err = cli(capsys, "sync", "quarantine", "list", "--pipeline", "pipeline.toml",
                         "--json")  # fmt: skip
    assert code == 0, err
    entries: list[dict[str, object]] = json.loads(out)["quarantine"]
    return entries


def test_cursor_mode_position_is_cursor_value_and_key(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "_width", 200)  # table cells on one line each
    assert cli(capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV)[0] == 0
    assert cli(capsys, "sync", "run", "pipeline.toml")[0] == 0
    first = _entries(capsys)
    assert len(first) == 12
    assert first[0]["source_key"] == "7"
    assert first[0]["position"] == '{"updated_at":"2024-01-01T00:00:00.000000","id":7}'
    # row 7 changes (new stamp) and is still invalid: a second entry of the same key, told
    # apart by its position (the bare key would name both); it supersedes the first
    with sqlite3.connect(workdir / "source.db") as db:
        db.execute("UPDATE citizens SET ho_ten = 'LÊ VĂN AN', "
                   "updated_at = '2024-01-02T08:30:00.000000' WHERE id = 7")  # fmt: skip
    db.close()
    assert cli(capsys, "sync", "run", "pipeline.toml")[0] == 0
    sevens = [e["position"] for e in _entries(capsys) if e["source_key"] == "7"]
    assert sevens == ['{"updated_at":"2024-01-02T08:30:00.000000","id":7}']
    code, out, _ = cli(capsys, "sync", "quarantine", "show", str(first[0]["id"]), "--pipeline",
                       "pipeline.toml", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["closed"] == "superseded"
    # the table shows it as people read it
    code, out, _ = cli(capsys, "sync", "quarantine", "list", "--pipeline", "pipeline.toml")
    assert code == 0 and "updated_at=2024-01-02T08:30:00.000000, id=7" in out
    assert '{"' not in out
    code, out, _ = cli(capsys, "sync", "quarantine", "show", str(first[0]["id"]), "--pipeline",
                       "pipeline.toml", "--json")  # fmt: skip
    assert json.loads(out)["position"] == first[0]["position"]


def test_key_mode_position_stays_the_key(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a cursor the key is the row's position in the keyset order (unchanged)."""
    path = workdir / "pipeline.toml"
    path.write_text(path.read_text().replace('cursor = "updated_at"\n', ""))
    assert cli(capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV)[0] == 0
    assert cli(capsys, "sync", "run", "pipeline.toml")[0] == 0
    entries = _entries(capsys)
    assert [e["position"] for e in entries[:2]] == ["7", "57"]
    code, out, _ = cli(capsys, "sync", "quarantine", "list", "--pipeline", "pipeline.toml")
    assert code == 0 and " 57 " in out
