"""The operator CLI end to end (as `python -m lienthong.sync`: same commands, same edge handler)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from crashtools import PASS_ENV, write_pipeline
from synctools import make_sqlite_source

from lienthong.sync.__main__ import main
from lienthong.sync.gateway_transport import TRANSPORT_SETTINGS
from lienthong.sync.pipeline import _KEY_SETTINGS, _TABLE_KEYS, SOURCE_KINDS


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    assert args[0] == "sync"
    with pytest.raises(SystemExit) as done:
        main(list(args[1:]))  # python -m lienthong.sync: the same commands and edge handler
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(PASS_ENV, "cli-test-passphrase")
    monkeypatch.chdir(tmp_path)
    make_sqlite_source(tmp_path / "source.db", 600)
    write_pipeline(tmp_path, 1, 200, database='"consolidated.db"')
    return tmp_path


def test_run_status_and_quarantine(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV, "--json"
    )
    assert code == 0 and "recipient" in json.loads(out)
    code, out, _ = cli(capsys, "sync", "run", "pipeline.toml", "--json")
    report = json.loads(out)
    assert code == 0 and report["read"] == 600 == report["applied"] + report["quarantined"]
    code, out, _ = cli(capsys, "sync", "status", "pipeline.toml", "--json")
    table = json.loads(out)["tables"]["citizens"]
    assert (table["applied"], table["quarantined"], table["lag_rows"]) == (588, 12, 0)
    assert table["last_error"] is None and table["batches_pending"] == 0
    code, out, _ = cli(
        capsys, "sync", "quarantine", "list", "--pipeline", "pipeline.toml", "--json"
    )
    entries = json.loads(out)["quarantine"]
    assert len(entries) == 12
    assert entries[0]["position"] == '{"updated_at":"2024-01-01T00:00:00.000000","id":7}'
    assert any("31/02/1990" in r for r in entries[0]["reasons"])
    code, out, _ = cli(capsys, "sync", "quarantine", "show", "1", "--pipeline", "pipeline.toml",
                       "--json")  # fmt: skip
    assert json.loads(out)["raw"]["ngay_sinh"] == "31/02/1990"
    code, _, err = cli(capsys, "sync", "quarantine", "resubmit", "pipeline.toml", "1", "--set",
                       "ngay_sinh=30/02/1990")  # fmt: skip
    assert code == 2 and "still invalid" in err
    code, out, _ = cli(capsys, "sync", "quarantine", "resubmit", "pipeline.toml", "1", "--set",
                       "ngay_sinh=08/08/1957", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["applied"] == 1
    code, out, _ = cli(
        capsys, "sync", "quarantine", "list", "--pipeline", "pipeline.toml", "--json"
    )
    assert len(json.loads(out)["quarantine"]) == 11


def test_bad_pipeline_is_one_line_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "bad.toml").write_text('source_id = "X"\n[source]\nkind = "oracle"\n')
    code, out, err = cli(capsys, "sync", "run", "bad.toml")
    assert code == 2 and out == ""
    assert "source.kind" in err and "tables: required" in err and "Traceback" not in err
    code, _, err = cli(capsys, "sync", "run", "missing.toml")
    assert code == 2 and "cannot read pipeline" in err


def test_hub_unreachable_exit_1_and_batches_kept(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV)
    path = write_pipeline(workdir, 9, 200)  # nothing listens on 127.0.0.1:9
    assert path.exists()
    code, out, _ = cli(capsys, "sync", "run", "pipeline.toml", "--json")
    report = json.loads(out)
    assert code == 1 and report["pending_batches"] == 3 and "unreachable" in report["error"]


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "sync.md").read_text(encoding="utf-8")
    names = set(_TABLE_KEYS) | set(_KEY_SETTINGS) | set(SOURCE_KINDS) | set(TRANSPORT_SETTINGS)
    names |= {"source_id", "state", "url", "database", "dsn", "path", "to", "from", "transform",
              "format", "codes", "sep", "required", "value"}  # fmt: skip
    missing = [n for n in sorted(names) if not re.search(rf"\b{re.escape(n)}\b", doc)]
    assert not missing, f"undocumented pipeline settings: {missing}"
    assert os.sep  # the docs live next to the code


def test_passwords_in_consolidated_db_urls_are_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA2 #3: like source.dsn, a hub database URL never carries its password in clear."""
    path = workdir / "pipeline.toml"
    path.write_text(path.read_text().replace(
        'database = "consolidated.db"', 'database = "postgresql://postgres:hunter2@127.0.0.1/x"'
    ))  # fmt: skip
    code, _, err = cli(capsys, "sync", "status", "pipeline.toml")
    assert code == 2 and "hub.database: plaintext password" in err and "hunter2" not in err
    for argv in (
        ("hub", "serve", "--db", "postgresql://postgres:hunter2@127.0.0.1/x", "--keys", "keys",
         "--passphrase-env", PASS_ENV),
        ("quarantine", "list", "--hub", "postgresql://u:hunter2@127.0.0.1/x"),
    ):  # fmt: skip
        code, _, err = cli(capsys, "sync", *argv)
        assert code == 2 and "plaintext password" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("LT_HUB_DB", "postgresql://u:hunter2@127.0.0.1:1/x")  # by reference: ok
    _, _, err = cli(capsys, "sync", "quarantine", "list", "--hub", "env:LT_HUB_DB")
    assert "plaintext" not in err and "hunter2" not in err


def test_messages_are_not_rich_markup(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """QA2 #13: a message holding "[/red]" or "[hub]" prints as is, one line, no traceback."""
    code, _, err = cli(capsys, "sync", "quarantine", "resubmit", "pipeline.toml", "1", "--set",
                       "[/red] [hub]")  # fmt: skip
    assert code == 2 and err.strip() == "error: --set '[/red] [hub]': expected COLUMN=VALUE"


def test_people_output_has_no_python_reprs(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA2 #16: keys init and status print lines and positions, not dicts."""
    code, out, _ = cli(capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV)
    assert code == 0 and out.splitlines()[0].startswith("agency: ") and "{" not in out
    assert cli(capsys, "sync", "run", "pipeline.toml")[0] == 0
    code, out, _ = cli(capsys, "sync", "status", "pipeline.toml")
    assert code == 0 and "after " in out and "{" not in out and "'" not in out
