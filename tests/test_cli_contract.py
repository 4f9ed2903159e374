"""The CLI's contract: --version, --help everywhere, exit codes 0/1/2, one line instead of a
traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
        Path("/nonexistent-lienthong/x.pem").read_bytes()
    except OSError as exc:
        assert _os_error_message(exc) == ("/nonexistent-lienthong/x.pem: No such file or directory")


def test_help_texts_have_no_markup_leaks_or_broken_paragraphs() -> None:
    """Every command's help paragraphs are single lines (typer prints a docstring's line
    breaks as they are: ragged lines in a group's command list) without backticks."""
    import typer.main

    root = typer.main.get_command(app)
    problems: list[str] = []

    def walk(cmd: object, path: list[str]) -> None:
        if path:
            for para in (getattr(cmd, "help", None) or "").strip().split("\n\n"):
                if "\n" in para.strip() or "`" in para:
                    problems.append(f"{' '.join(path)}: {para[:60]!r}")
            for param in getattr(cmd, "params", []):
                if "`" in (getattr(param, "help", None) or ""):
                    problems.append(f"{' '.join(path)} {param.name}: backticks")
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    assert problems == []


def test_demo_summary_is_readable_lines_with_whole_paths() -> None:
    from lienthong.cli.demo import summary_lines

    long_dir = "/tmp/" + "very-long-directory-name/" * 6
    result = {
        "citizens": 2000,
        "sources": {"tax": {"path": f"{long_dir}tax.sqlite", "tables": {"a": 1, "b": 2}}},
        "certificates": [f"{long_dir}signing.pem", f"{long_dir}tls.pem"],
        "route": ["BHXH-GW", "NDXP", "BCA-GW"],
        "doctor": {"ok": True, "checks": 7},
        "sample": {"address": "Phường Sài Gòn, Thành phố Hồ Chí Minh", "id": "011187747224"},
        "checkpoint": "origin\n303\nroot=",
    }
    lines = summary_lines(result)
    text = "\n".join(lines)
    assert "{'" not in text and "['" not in text  # no Python reprs
    assert "  citizens: 2,000" in lines
    assert f"  sources.tax.path: {long_dir}tax.sqlite" in lines  # the whole path, one line
    assert "  sources.tax.tables: a 1, b 2" in lines
    assert f"    - {long_dir}tls.pem" in lines
    assert "  route: BHXH-GW → NDXP → BCA-GW" in lines
    assert "  doctor: ok yes, checks 7" in lines
    assert "  sample.address: Phường Sài Gòn, Thành phố Hồ Chí Minh" in lines
    assert lines[-4:] == ["  checkpoint:", "      origin", "      303", "      root="]
