"""QA2 #14/#15: bad input is one line, exit 2, nothing left behind; honest run summaries."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from crashtools import PASS_ENV, write_pipeline
from synctools import make_sqlite_source
from test_sync_cli import cli


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(PASS_ENV, "qa-a-passphrase")
    monkeypatch.chdir(tmp_path)
    make_sqlite_source(tmp_path / "source.db", 600)
    write_pipeline(tmp_path, 1, 200, database='"hub.db"')
    return tmp_path


def _keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV)[0] == 0


def test_bad_source_names_leave_no_state(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _keys(capsys)
    text = (workdir / "pipeline.toml").read_text()
    cases = {
        'cursor = "updated_at"': ('cursor = "khong_co"', "has no column 'khong_co'"),
        'deleted_column = "deleted"': ('deleted_column = "xoa"', "has no column 'xoa'"),
        'name = "citizens"': ('name = "khong_co"', "source table 'khong_co' does not exist"),
        'so_dinh_danh = "personal_id"': ('so_dd = "personal_id"', "has no column 'so_dd'"),
        'path = "source.db"': ('path = "nothere.db"', "no SQLite database at nothere.db"),
    }
    for old, (new, message) in cases.items():
        (workdir / "bad.toml").write_text(text.replace(old, new))
        code, out, err = cli(capsys, "sync", "run", "bad.toml")
        assert code == 2 and out == "", new
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
        assert not (workdir / "state.db").exists() and not (workdir / "hub.db").exists(), new


def test_inspecting_a_missing_hub_creates_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "sync", "quarantine", "list", "--hub", "nonexist.db")
    assert code == 2 and err == "error: no consolidated database at nonexist.db\n"
    assert not (workdir / "nonexist.db").exists()
    _keys(capsys)
    assert cli(capsys, "sync", "run", "pipeline.toml")[0] == 0
    code, _, err = cli(capsys, "sync", "quarantine", "show", "99999", "--hub", "hub.db")
    assert code == 2 and err == "error: no quarantine entry 99999\n"


def test_hub_serve_refuses_before_creating_the_database(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _keys(capsys)
    serve = ("sync", "hub", "serve", "--db", "served.db", "--keys", "keys", "--passphrase-env")
    code, _, err = cli(capsys, *serve, PASS_ENV, "--port", "99999")
    assert code == 2 and "--port 99999" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        code, _, err = cli(capsys, *serve, PASS_ENV, "--port", port)
        assert code == 2 and err.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    code, _, err = cli(capsys, *serve, "LT_NO_SUCH_VAR", "--port", port)
    assert code == 2 and "LT_NO_SUCH_VAR" in err
    monkeypatch.setenv(PASS_ENV, "the wrong passphrase")
    code, _, err = cli(capsys, *serve, PASS_ENV, "--port", port)
    assert code == 2 and "wrong passphrase" in err
    assert not (workdir / "served.db").exists()


def test_summary_counts_rows_read_while_batches_wait(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA2 #15: the hub is down, yet 600 rows were read into the outbox: say so."""
    _keys(capsys)
    write_pipeline(workdir, 9, 200)  # nothing listens on 127.0.0.1:9
    code, out, _ = cli(capsys, "sync", "run", "pipeline.toml")
    assert code == 1
    assert out.startswith("read 600 from the source in ")
    assert "acknowledged by the hub 0 = applied 0 + quarantined 0; 3 batches waiting" in out


def test_follow_logs_passes_and_summarises_on_sigterm(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA2 #15: --follow with stdout not a terminal prints a line per pass; SIGTERM ends it
    with the summary (exit 0)."""
    _keys(capsys)
    env = os.environ | {"COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lienthong.sync", "run", "pipeline.toml", "--follow",
         "--interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the first pass: all 600 rows
    assert " pass: read 600 = applied 588 + quarantined 12" in first, first
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert rest.strip().splitlines()[-1].startswith("read 600 = applied 588 + quarantined 12 in")
