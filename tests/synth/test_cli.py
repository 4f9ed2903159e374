"""``lienthong synth`` from the command line: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong", "synth", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--citizens", "-5"], "--citizens must be between 1"),
        (["--citizens", "0"], "--citizens must be between 1"),
        (["--citizens", "many"], "--citizens"),
        (["--defect-rate", "0.9"], "must be between 0 and 0.5"),
        (["--defect", "typo"], "expected TYPE=RATE"),
        (["--defect", "gremlins=0.1"], "unknown defect type 'gremlins'"),
        (["--as-of", "yesterday"], "--as-of 'yesterday' is not a date"),
        (["--prefix", "Bad-Name", "--pg", "postgresql://x@127.0.0.1:1/x"], "--prefix"),
        (["--pg", "postgresql://a@127.0.0.1/x", "--mariadb", "mysql://a@127.0.0.1/x"], "not both"),
        (["--mariadb", "http://host/db"], "expected mysql://"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run("--out", str(tmp_path / "out"), *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "truth").exists()


def test_empty_output_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lienthong", "synth", "--citizens", "10", "--out", ""],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "--out is empty" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written in the current directory


def test_unwritable_output_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run("--citizens", "10", "--out", str(blocker / "out"))
    assert proc.returncode == 2
    assert "not writable" in proc.stderr and "Traceback" not in proc.stderr


def test_json_report(tmp_path: Path) -> None:
    proc = run("--citizens", "200", "--seed", "3", "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["citizens"] == 200
    assert set(report["sources"]) == {"population", "health", "education", "tax"}
    assert report["sources"]["population"]["tables"]["cong_dan"] == 200
    assert Path(report["truth"], "manifest.json").is_file()
    assert report["citizens_per_s"] > 0


def test_text_report(tmp_path: Path) -> None:
    proc = run("--citizens", "50", "--out", str(tmp_path), "--defect-rate", "0")
    assert proc.returncode == 0, proc.stderr
    assert "population" in proc.stdout and "truth:" in proc.stdout
    assert (tmp_path / "truth" / "defects.csv").read_text().strip().count("\n") == 0


@pytest.mark.postgres
def test_cli_writes_to_postgres(tmp_path: Path, pg_dsn: str) -> None:
    proc = run("--citizens", "100", "--out", str(tmp_path), "--pg", pg_dsn, "--prefix", "cli_",
               "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["sources"]["health"]["backend"] == "postgresql"
    import psycopg

    with psycopg.connect(pg_dsn) as conn:
        (count,) = conn.execute('SELECT count(*) FROM "cli_population_cong_dan"').fetchone() or (0,)
    assert count == 100


@pytest.mark.mariadb
def test_cli_writes_to_mariadb(tmp_path: Path, mariadb_url: str) -> None:
    proc = run("--citizens", "100", "--out", str(tmp_path), "--mariadb", mariadb_url, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sources"]["tax"]["backend"] == "mariadb"
