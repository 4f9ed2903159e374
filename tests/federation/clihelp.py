"""Running the real CLI in-process (through its edge handler) for the federation tests."""

from __future__ import annotations

import pytest

from lienthong.cli.main import main

OPERATOR = "VN/GOV/000.00.00.G22"
GATEWAY = "VN/GOV/000.00.00.G01/DAN-CU"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``lienthong ARGS`` in-process through the real edge handler."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = cli(capsys, *args)
    assert code == 0, (args, out, err)
    return out
