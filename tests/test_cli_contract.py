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


@pytest.mark.parametrize(
    "args",
    [
        ["synth", "--no-such-option", "--debug"],
        ["--debug", "synth", "--no-such-option"],
        ["ca", "verify", "--debug", "--cert"],
    ],
    ids=["after", "before", "middle"],
)
def test_debug_anywhere_keeps_usage_errors_one_line(args: list[str]) -> None:
    """--debug is accepted anywhere; a usage error stays one line with exit 2 regardless."""
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_debug_is_stripped_before_parsing() -> None:
    from lienthong.cli.main import _split_debug

    assert _split_debug(["audit", "verify", "--debug", "--log", "x"]) == (
        ["audit", "verify", "--log", "x"],
        True,
    )
    assert _split_debug(["synth", "--", "--debug"]) == (["synth", "--", "--debug"], False)


def test_os_errors_name_the_path() -> None:
    from lienthong.cli.main import _os_error_message

    try:
        open("/nonexistent-lienthong/x.pem", "rb")  # noqa: SIM115
    except OSError as exc:
        assert _os_error_message(exc) == ("/nonexistent-lienthong/x.pem: No such file or directory")
