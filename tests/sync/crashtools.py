"""Crash drills with real processes: kill -9 the agency and the hub during a sync."""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from synctools import SOURCE_ID, citizen_pipeline, make_sqlite_source

from lienthong.sync.keys import init_keys

PASS_ENV = "LT_SYNC_TEST_PASSPHRASE"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_pipeline(tmp: Path, port: int, batch_size: int) -> Path:
    doc = citizen_pipeline(cursor="updated_at", deleted_column="deleted", batch_size=batch_size)
    table = doc["tables"][0]
    lines = [
        f'source_id = "{SOURCE_ID}"', 'state = "state.db"', "",
        "[source]", 'kind = "sqlite"', 'path = "source.db"', "",
        "[hub]", f'url = "http://127.0.0.1:{port}"', "",
        "[keys]",
        f'store = {{ type = "file", dir = "keys", passphrase = {{ "$env" = "{PASS_ENV}" }} }}',
        'hub_public = "keys/hub.pub.pem"', 'hub_recipient = "keys/hub.recipient.json"', "",
        "[[tables]]", 'name = "citizens"', 'key = ["id"]', 'entity = "Citizen"',
        'cursor = "updated_at"', 'deleted_column = "deleted"', f"batch_size = {batch_size}",
        'extra_fields = ["province_code"]', "",
        "[tables.fields]",
    ]  # fmt: skip
    for col, spec in table["fields"].items():
        if isinstance(spec, str):
            lines.append(f'{col} = "{spec}"')
        else:
            inner = ", ".join(
                f"{k} = {'true' if v is True else repr(v).replace(chr(39), chr(34))}"
                for k, v in spec.items()
            )
            lines.append(f"{col} = {{ {inner} }}")
    path = tmp / "pipeline.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Drill:
    tmp: Path
    rows: int
    batch_size: int = 500
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    hub: subprocess.Popen[bytes] | None = None
    agency: subprocess.Popen[bytes] | None = None
    kills: dict[str, int] = field(default_factory=lambda: {"hub": 0, "agency": 0})
    seed: int = 7
    hub_db: str = "hub.db"  # the consolidated database: a SQLite file or a PostgreSQL URL
    agency_current: bool = False  # the agency process started after the last source change

    def setup(self) -> None:
        self.env = {**os.environ, PASS_ENV: "drill-passphrase", "PYTHONUNBUFFERED": "1"}
        os.environ[PASS_ENV] = "drill-passphrase"
        init_keys(self.tmp / "keys", {"$env": PASS_ENV})
        make_sqlite_source(self.tmp / "source.db", self.rows)
        self.pipeline = write_pipeline(self.tmp, self.port, self.batch_size)

    def _lienthong(self, log: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{log}.log").open("ab") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "lienthong.sync", *args], cwd=self.tmp, env=self.env,
                stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip

    def log(self, what: str) -> None:
        with (self.tmp / "drill.log").open("a") as f:
            f.write(f"{time.monotonic():.3f} {what}\n")

    def start_hub(self) -> None:
        """Start the hub and wait until *it* answers its health check.

        The port was free when the drill began, but another process may take it while the hub
        is down between a kill and its restart: then the hub moves to a new port (the pipeline
        file is rewritten, the next agency run uses it) instead of the drill talking to a
        stranger or giving up.
        """
        log = self.tmp / "hub.log"
        for _attempt in range(5):
            self.log(f"start hub on port {self.port}")
            logged = log.stat().st_size if log.exists() else 0
            self.hub = hub = self._lienthong(
                "hub", "hub", "serve", "--db", self.hub_db, "--keys", "keys", "--passphrase-env",
                PASS_ENV, "--source", f"{SOURCE_ID}=keys/agency.pub.pem", "--port",
                str(self.port),
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while hub.poll() is None and time.monotonic() < deadline:
                try:
                    resp = httpx.get(
                        f"http://127.0.0.1:{self.port}/sync/v1/health", timeout=0.5,
                        trust_env=False,
                    )  # fmt: skip
                    if resp.status_code == 200 and resp.json() == {"status": "ok"}:
                        return
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.1)
            if hub.poll() is None:
                break  # alive but silent for a minute: a real failure
            with log.open("rb") as f:
                f.seek(logged)
                if b"address already in use" not in f.read().lower():
                    break
            self.port = free_port()
            self.log(f"port taken: hub moves to {self.port}")
            self.pipeline = write_pipeline(self.tmp, self.port, self.batch_size)
        raise RuntimeError(f"hub did not start: {log.read_text()[-500:]}")

    def start_agency(self) -> None:
        self.log("start agency")
        self.agency = self._lienthong("agency", "run", str(self.pipeline), "--json")
        self.agency_current = True  # this run sees the source as it is now

    def grow(self, rows: int) -> None:
        """Add ``rows`` rows to the source; a run already under way may not see them."""
        make_sqlite_source(self.tmp / "source.db", rows, start=self.rows + 1)
        self.rows += rows
        self.agency_current = False
        self.log(f"source grown to {self.rows} rows")

    def kill(self, which: str) -> None:
        proc = getattr(self, which)
        if proc is not None and proc.poll() is None:
            self.log(f"kill -9 {which}")
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.kills[which] += 1

    def run(self, kills: int, seed: int | None = None, timeout: float = 300, grow: int = 0) -> None:
        """Kill a random running side ``kills`` times at random moments, then let it finish.

        ``grow`` rows are added to the source before each kill, so there is always work in
        flight (and the incremental path is exercised too). ``seed`` (default: the
        ``LT_CRASH_SEED`` environment variable, else 7) draws the moments.
        """
        if seed is None:
            seed = int(os.environ.get("LT_CRASH_SEED", "7"))
        self.seed = seed
        self.log(f"seed {seed}")
        rnd = random.Random(seed)
        deadline = time.monotonic() + timeout
        self.start_hub()
        self.start_agency()
        while sum(self.kills.values()) < kills and time.monotonic() < deadline:
            if grow:
                self.grow(grow)
            if self.agency is None or self.agency.poll() is not None:
                self.log(f"agency exited {self.agency and self.agency.returncode}")
                self.start_agency()
            time.sleep(rnd.uniform(0.3, 1.3))
            alive = [w for w in ("hub", "agency") if getattr(self, w).poll() is None]
            self.log(f"alive {alive}")
            if not alive:
                continue
            # alternate sides so both die; the moment is random
            turn = "agency" if sum(self.kills.values()) % 2 == 0 else "hub"
            victim = turn if turn in alive else alive[0]
            self.kill(victim)
            if victim == "hub":
                self.start_hub()
        self.finish(deadline)

    def finish(self, deadline: float) -> None:
        """Let the sync finish: until an agency run *started after the last change of the
        source* exits 0 (one pass over the source, outbox drained, every batch acknowledged).

        A run that started before the last :meth:`grow` may have read to the end of the
        source just before the new rows were committed and then exit 0 without them; its
        success proves nothing about those rows, so another run follows.
        """
        while time.monotonic() < deadline:
            if self.agency is None:
                self.start_agency()
                continue
            try:
                rc = self.agency.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                break
            self.log(f"agency exited {rc}")
            if rc == 0 and self.agency_current:
                return
            # a transient error (the hub was down), or a pass older than the source: rerun
            self.start_agency()
        raise TimeoutError("sync did not finish")

    def stop(self) -> None:
        for which in ("agency", "hub"):
            proc = getattr(self, which)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)

    def consolidated(self) -> tuple[set[str], list[str], list[int]]:
        db: Any
        if self.hub_db.startswith("postgresql://"):
            import psycopg

            db = psycopg.connect(self.hub_db)
        else:
            db = sqlite3.connect(self.tmp / self.hub_db)
        try:
            keys = {r[0] for r in db.execute("SELECT source_key FROM c_citizen")}
            quarantined = [r[0] for r in db.execute("SELECT source_key FROM sync_quarantine")]
            seqs = [r[0] for r in db.execute("SELECT seq FROM sync_batches ORDER BY seq")]
        finally:
            db.close()
        return keys, quarantined, seqs

    def summary(self) -> dict[str, Any]:
        keys, quarantined, seqs = self.consolidated()
        return {"rows": self.rows, "applied": len(keys), "quarantined": len(quarantined),
                "batches": len(seqs), "kills": dict(self.kills), "seed": self.seed}  # fmt: skip


def expected_split(rows: int) -> tuple[set[str], set[str]]:
    """(valid keys, quarantined keys) of the synthetic source: every 50th row (i % 50 == 7)."""
    bad = {str(i) for i in range(1, rows + 1) if i % 50 == 7}
    return {str(i) for i in range(1, rows + 1)} - bad, bad
