"""QA 8 and 11: quarantine entries closed when a newer version of the key is applied (or the
key deleted), re-submission of such an entry refused; identical open entries not duplicated."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from crashtools import PASS_ENV, write_pipeline
from synctools import make_sqlite_source

from lienthong.sync.__main__ import main


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(PASS_ENV, "qa-b-passphrase")
    monkeypatch.chdir(tmp_path)
    make_sqlite_source(tmp_path / "source.db", 200)
    write_pipeline(tmp_path, 1, 100, database='"consolidated.db"')
    return tmp_path


def _open(capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    code, out, _ = cli(capsys, "quarantine", "list", "--pipeline", "pipeline.toml", "--json")
    assert code == 0
    return {e["source_key"]: e["id"] for e in json.loads(out)["quarantine"]}


def _source(tmp: Path, sql: str, *params: object) -> None:
    db = sqlite3.connect(tmp / "source.db")
    db.execute(sql, params)
    db.commit()
    db.close()


def test_superseded_entries_close_and_identical_ones_are_not_repeated(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "keys", "init", "keys", "--passphrase-env", PASS_ENV)[0] == 0
    code, out, _ = cli(capsys, "run", "pipeline.toml", "--json")
    assert code == 0 and json.loads(out)["quarantined"] == 4
    entries = _open(capsys)
    assert sorted(entries, key=int) == ["7", "57", "107", "157"]

    # QA 11: the same defective rows read again (here: a re-snapshot after the state was
    # re-initialised) are counted as quarantined in the run but not entered again
    for f in workdir.glob("state.db*"):
        f.unlink()
    code, out, _ = cli(capsys, "run", "pipeline.toml", "--json")
    report = json.loads(out)
    assert code == 0 and report["read"] == 200 == report["applied"] + report["quarantined"]
    assert report["quarantined"] == 4 and _open(capsys) == entries

    # QA 8: the source fixes row 7 (a newer version is applied) and deletes row 57
    _source(workdir, "UPDATE citizens SET ngay_sinh = '08/08/1957', updated_at = ? WHERE id = 7",
            "2025-01-01T00:00:00")  # fmt: skip
    _source(workdir, "UPDATE citizens SET deleted = 1, updated_at = ? WHERE id = 57", "2025-01-02")
    assert cli(capsys, "run", "pipeline.toml", "--json")[0] == 0
    assert sorted(_open(capsys), key=int) == ["107", "157"]
    code, out, _ = cli(capsys, "quarantine", "show", str(entries["7"]), "--pipeline",
                       "pipeline.toml", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["closed"] == "superseded"
    code, out, err = cli(capsys, "quarantine", "resubmit", "pipeline.toml", str(entries["7"]),
                         "--set", "ngay_sinh=01/01/1950")  # fmt: skip
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"quarantine entry {entries['7']} is superseded" in err
    assert "a newer version of source key 7" in err
    code, _, err = cli(capsys, "quarantine", "resubmit", "pipeline.toml", str(entries["57"]),
                       "--set", "ngay_sinh=01/01/1950")  # fmt: skip
    assert code == 2 and "the deletion of source key 57" in err
    db = sqlite3.connect(workdir / "consolidated.db")
    try:
        row = db.execute("SELECT data FROM c_citizen WHERE source_key = '7'").fetchone()
    finally:
        db.close()
    assert json.loads(row[0])["date_of_birth"] == "1957-08-08"  # the newer version stays
    # an open entry still re-submits normally
    code, out, _ = cli(capsys, "quarantine", "resubmit", "pipeline.toml", str(entries["107"]),
                       "--set", "ngay_sinh=24/12/1997", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["applied"] == 1
    assert list(_open(capsys)) == ["157"]


def test_update_that_becomes_invalid_keeps_the_previous_version(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA 12 (documented behaviour): the last valid version stays current; the open entry of
    the same key is the marker, and it closes when a valid version follows."""
    assert cli(capsys, "keys", "init", "keys", "--passphrase-env", PASS_ENV)[0] == 0
    assert cli(capsys, "run", "pipeline.toml", "--json")[0] == 0
    _source(workdir, "UPDATE citizens SET ngay_sinh = '31/02/1990', updated_at = ? WHERE id = 10",
            "2025-01-01T00:00:00")  # fmt: skip
    assert cli(capsys, "run", "pipeline.toml", "--json")[0] == 0
    db = sqlite3.connect(workdir / "consolidated.db")
    try:
        (data,) = db.execute("SELECT data FROM c_citizen WHERE source_key = '10'").fetchone()
        assert json.loads(data)["date_of_birth"] != "1990-02-31"  # the previous valid version
    finally:
        db.close()
    assert "10" in _open(capsys)
    _source(workdir, "UPDATE citizens SET ngay_sinh = '11/11/1960', updated_at = ? WHERE id = 10",
            "2025-01-02T00:00:00")  # fmt: skip
    assert cli(capsys, "run", "pipeline.toml", "--json")[0] == 0
    assert "10" not in _open(capsys)
