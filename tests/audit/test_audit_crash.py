"""Crash test: kill -9 a real process during heavy appends; every acknowledged entry survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lienthong.audit import AuditLog
from lienthong.audit.entries import decode_entry
from lienthong.audit.verify import verify_log

CHILD = Path(__file__).parent / "audit_crash_child.py"


def run_and_kill(log_path: Path, round_: int, seconds: float) -> list[tuple[int, int, str]]:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(log_path), f"r{round_}-"],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: list[tuple[int, int, str]] = []
    deadline = time.monotonic() + seconds
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        _ack, first, count, tag = line.split()
        acked.append((int(first), int(count), tag))
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate()  # lines already written before the kill are acked too
    for line in rest.splitlines():
        _ack, first, count, tag = line.split()
        acked.append((int(first), int(count), tag))
    assert proc.returncode == -signal.SIGKILL
    return acked


def test_acknowledged_entries_survive_kill_9(tmp_path: Path) -> None:
    log_path = tmp_path / "crash.auditlog"
    all_acked: list[tuple[int, int, str]] = []
    for round_ in range(3):
        acked = run_and_kill(log_path, round_, seconds=1.5)
        assert acked, "the child acknowledged nothing"
        all_acked += acked
        with AuditLog.open(log_path) as log:
            size = log.size()
            for first, count, tag in all_acked:
                assert first + count <= size
                for k in (0, count - 1):
                    entry = decode_entry(log.entry(first + k))
                    assert entry["target"] == f"{tag}-{k}"
            report = verify_log(log)
            assert report.entries_checked == size
