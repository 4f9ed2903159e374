"""QA 4: two `sync run` processes on one pipeline must not both run (exclusive state lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from crashtools import PASS_ENV, write_pipeline
from synctools import make_sqlite_source

from lienthong.sync.keys import init_keys

HOLD = """
import sys
from lienthong.sync.outbox import Outbox
box = Outbox(sys.argv[1])
box.lock()
print("locked", flush=True)
sys.stdin.read()
"""


def _run(tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong.sync", "run", "pipeline.toml", "--json"], cwd=tmp,
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_second_run_refused_while_first_holds_the_state(tmp_path: Path) -> None:
    env = {**os.environ, PASS_ENV: "lock-test-passphrase"}
    os.environ[PASS_ENV] = env[PASS_ENV]
    init_keys(tmp_path / "keys", {"$env": PASS_ENV})
    make_sqlite_source(tmp_path / "source.db", 50)
    write_pipeline(tmp_path, 1, 100, database='"consolidated.db"')
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "state.db")], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        second = _run(tmp_path, env)
        assert second.returncode == 2, second.stderr
        assert second.stdout == "" and "Traceback" not in second.stderr
        assert "is in use by another sync run" in second.stderr
        assert f"(pid {holder.pid})" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        # the holder dies without cleaning up (kill -9): the lock goes with it
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for pipe in (holder.stdin, holder.stdout):
            if pipe is not None:
                pipe.close()
    third = _run(tmp_path, env)
    assert third.returncode == 0, third.stderr
    assert '"read": 50' in third.stdout
    # and it released the lock on exit: another run goes through (nothing new to read)
    assert _run(tmp_path, env).returncode == 0
