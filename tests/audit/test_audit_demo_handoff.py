"""The demo's audit logs can be handed to an auditor (QA 5): each ``.auditlog`` file alone holds
the whole log, its public key lies beside it, and the printed access-history command works."""

from __future__ import annotations

import json
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from lienthong.audit.demo import run
from lienthong.demo import DemoContext


def test_demo_logs_are_closed_keyed_and_the_printed_command_runs(tmp_path: Path) -> None:
    said: list[str] = []
    ctx = DemoContext(workdir=tmp_path / "demo", say=said.append)
    ctx.workdir.mkdir()
    result = run(ctx)
    for close in ctx.state["closers"]:
        close()
    assert set(result["public_keys"]) == set(result["logs"][:2])
    key_file = Path(result["person_key"]["ref"].removeprefix("file:"))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and "SYNTHETIC" in key_file.name
    handed = tmp_path / "auditor"
    handed.mkdir()
    for log, pem in result["public_keys"].items():
        assert not Path(log + "-wal").exists()  # folded into the main file on close
        copy = handed / Path(log).name  # the .auditlog file alone
        shutil.copy(log, copy)
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "lienthong",
                "audit",
                "verify",
                "--log",
                str(copy),
                "--pubkey",
                pem,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["unsigned_tail"] == 0
    command = result["access_history"]["command"]
    assert any(command in line for line in said)
    argv = shlex.split(command)
    assert argv[:3] == ["lienthong", "audit", "access-history"]
    r = subprocess.run(
        [sys.executable, "-m", "lienthong", *argv[1:], "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["accesses"]) == result["access_history"]["accesses"] > 0
