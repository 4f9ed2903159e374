"""The CLI's contract: --version, --help everywhere, exit codes 0/1/2, one line instead of a
traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lienthong import __version__
from lienthong.cli.main import app


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"lienthong {__version__}"


def _command_paths() -> list[list[str]]:
    """Every command and sub-command registered on the root app, as argv prefixes."""
    import typer.main

    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: object, prefix: list[str]) -> None:
        paths.append(prefix)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help(path: list[str]) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_unknown_option_is_usage_error_without_traceback() -> None:
    proc = run_cli("demo", "--no-such-option")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "no-such-option" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unknown_command_is_usage_error() -> None:
    proc = run_cli("frobnicate")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
