"""Crash drills with real processes: kill -9 the agency and the hub during a sync."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from synctools import (
    COLUMNS,
    DDL,
    GIVEN,
    SOURCE_ID,
    citizen_pipeline,
    citizen_row,
    make_sqlite_source,
)

from lienthong.ports import free_port
from lienthong.sync.keys import init_keys

PASS_ENV = "LT_SYNC_TEST_PASSPHRASE"
SOURCE_DSN_ENV = "LT_DRILL_SOURCE_DSN"  # the PostgreSQL source of a logical-capture drill
SLOT = "lt_drill"


def write_pipeline(
    tmp: Path, port: int, batch_size: int, logical: bool = False, database: str | None = None
) -> Path:
    """The drill's pipeline: the SQLite source in cursor mode (soft deletes), or with
    ``logical`` the PostgreSQL source (DSN in ``SOURCE_DSN_ENV``) through a logical slot; the
    hub process on ``port``, or with ``database`` (a TOML value) an in-process hub."""
    doc = citizen_pipeline(cursor="updated_at", deleted_column="deleted", batch_size=batch_size)
    table = doc["tables"][0]
    source = (['kind = "postgres"', f'dsn = {{ "$env" = "{SOURCE_DSN_ENV}" }}'] if logical
              else ['kind = "sqlite"', 'path = "source.db"'])  # fmt: skip
    capture = ([f'logical_slot = "{SLOT}"'] if logical
               else ['cursor = "updated_at"', 'deleted_column = "deleted"'])  # fmt: skip
    lines = [
        f'source_id = "{SOURCE_ID}"', 'state = "state.db"', "",
        "[source]", *source, "",
        "[hub]", f"database = {database}" if database else f'url = "http://127.0.0.1:{port}"', "",
        "[keys]",
        f'store = {{ type = "file", dir = "keys", passphrase = {{ "$env" = "{PASS_ENV}" }} }}',
        'hub_public = "keys/hub.pub.pem"', 'hub_recipient = "keys/hub.recipient.json"', "",
        "[[tables]]", 'name = "citizens"', 'key = ["id"]', 'entity = "Citizen"',
        *capture, f"batch_size = {batch_size}",
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
    # a PostgreSQL source read through a logical slot (else the SQLite source, cursor mode)
    source_dsn: str | None = None
    agency_runs: int = 0

    def setup(self) -> None:
        self.env = {**os.environ, PASS_ENV: "drill-passphrase", "PYTHONUNBUFFERED": "1"}
        os.environ[PASS_ENV] = "drill-passphrase"
        init_keys(self.tmp / "keys", {"$env": PASS_ENV})
        if self.source_dsn is None:
            make_sqlite_source(self.tmp / "source.db", self.rows)
        else:
            self.env[SOURCE_DSN_ENV] = self.source_dsn
            make_pg_source(self.source_dsn, self.rows)
        self._write_pipeline()

    def _write_pipeline(self) -> None:
        logical = self.source_dsn is not None
        self.pipeline = write_pipeline(self.tmp, self.port, self.batch_size, logical)

    def _lienthong(self, log: str, *args: str, out: Path | None = None) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{log}.log").open("ab") as err:
            stdout = out.open("wb") if out is not None else None
            try:
                return subprocess.Popen(
                    [sys.executable, "-m", "lienthong.sync", *args], cwd=self.tmp,
                    env=self.env, stdout=stdout or subprocess.DEVNULL, stderr=err,
                )  # fmt: skip
            finally:
                if stdout is not None:
                    stdout.close()

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
                    if resp.status_code == 200 and resp.json().get("status") == "ok":
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
            self._write_pipeline()
        raise RuntimeError(f"hub did not start: {log.read_text()[-500:]}")

    def start_agency(self) -> None:
        self.agency_runs += 1
        self.log(f"start agency (run {self.agency_runs})")
        out = self.tmp / f"agency-run-{self.agency_runs}.json"  # its --json report
        self.agency = self._lienthong("agency", "run", str(self.pipeline), "--json", out=out)
        self.agency_current = True  # this run sees the source as it is now

    def run_reports(self) -> list[dict[str, Any]]:
        """The ``--json`` reports of the agency runs that ended by themselves (a killed run
        prints none)."""
        texts = (self.tmp / f"agency-run-{n}.json" for n in range(1, self.agency_runs + 1))
        return [orjson.loads(t) for t in (p.read_bytes() for p in texts) if t.strip()]

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
        rnd, deadline = self.begin(seed, timeout)
        self.start_hub()
        self.start_agency()
        self.kill_loop(kills, rnd, deadline, grow)
        self.finish(deadline)

    def begin(self, seed: int | None, timeout: float) -> tuple[random.Random, float]:
        """The drill's random moments (``seed``, else ``LT_CRASH_SEED``, else 7) and deadline."""
        if seed is None:
            seed = int(os.environ.get("LT_CRASH_SEED", "7"))
        self.seed = seed
        self.log(f"seed {seed}")
        return random.Random(seed), time.monotonic() + timeout

    def kill_loop(self, kills: int, rnd: random.Random, deadline: float, grow: int = 0) -> None:
        """Kill the agency or the hub (alternately, at random moments) ``kills`` times."""
        grown = False  # ``grow`` rows are added once before each kill
        while sum(self.kills.values()) < kills and time.monotonic() < deadline:
            if grow and not grown:
                self.grow(grow)
                grown = True
            if self.agency is None or self.agency.poll() is not None:
                self.log(f"agency exited {self.agency and self.agency.returncode}")
                self.start_agency()
            time.sleep(rnd.uniform(0.3, 1.3))
            alive = [w for w in ("hub", "agency") if getattr(self, w).poll() is None]
            self.log(f"alive {alive}")
            if not alive:
                continue
            # alternate sides so both die; the moment is random. An agency that is not running
            # at its turn (it exits 1 soon after the hub's kill, or 0 after a pass) is started
            # again at the top and killed at a later moment — never replaced by the hub, or a
            # drill on a slow machine kills only the hub (seen: 10 hub kills, 0 agency kills)
            turn = "agency" if sum(self.kills.values()) % 2 == 0 else "hub"
            if turn not in alive:
                continue
            victim, grown = turn, False
            self.kill(victim)
            if victim == "hub":
                self.start_hub()

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


# --- update and delete drills (issue 6): a writer process changes the source under the sync

BAD_DAY = "31/02/1990"  # an impossible birth date: the row goes to the quarantine
SURNAMES = ("NGUYỄN", "TRẦN", "LÊ", "PHẠM", "HOÀNG", "VŨ")
MIDDLE = ("VĂN", "THỊ", "HỮU", "MINH")
JOURNAL_DDL = (
    "CREATE TABLE IF NOT EXISTS drill_journal (step BIGINT PRIMARY KEY, id BIGINT NOT NULL,"
    " op TEXT NOT NULL, row_json TEXT)"
)
PG_DDL = DDL.replace("INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY")


def make_pg_source(dsn: str, n: int) -> None:
    """The drill's citizens (as :func:`make_sqlite_source`) in a PostgreSQL source table."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute(PG_DDL)
        with conn.cursor().copy(f"COPY citizens ({COLUMNS}) FROM STDIN") as copy:
            for i in range(1, n + 1):
                copy.write_row(citizen_row(i))


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str, slot: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database beside ``admin_url``'s, dropped after (with the logical
    replication ``slot`` a drill's agency created in it: a slot would keep it alive)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        yield url
    finally:
        if slot is not None:  # a logical slot is dropped from its own database
            drop_slot(url, slot)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_slot(url: str, slot: str, wait: float = 15) -> None:
    """Drop ``slot``; the backend of an agency killed while it read the slot may hold it
    for a moment longer, so retry while the slot is still active."""
    import psycopg

    deadline = time.monotonic() + wait
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            try:
                conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM"
                             " pg_replication_slots WHERE slot_name = %s", (slot,))  # fmt: skip
                return
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def open_source(tmp: Path, dsn: str | None) -> tuple[Any, str]:
    """(DB-API connection, placeholder) of the drill's source database."""
    if dsn is None:
        return sqlite3.connect(tmp / "source.db", timeout=30), "?"
    import psycopg

    return psycopg.connect(dsn), "%s"


def valid_day(i: int) -> str:
    """The birth date of citizen ``i`` that matches its personal ID (see ``citizen_row``)."""
    return dt.date(1950 + i % 60, 1 + i % 12, 1 + i % 28).strftime("%d/%m/%Y")


class _Keys:
    """A set of ids with O(1) add, remove and random choice."""

    def __init__(self, ids: list[int] | None = None) -> None:
        self.items: list[int] = []
        self.where: dict[int, int] = {}
        for i in ids or []:
            self.add(i)

    def add(self, i: int) -> None:
        if i not in self.where:
            self.where[i] = len(self.items)
            self.items.append(i)

    def discard(self, i: int) -> None:
        at = self.where.pop(i, None)
        if at is not None:
            last = self.items.pop()
            if at < len(self.items):
                self.items[at], self.where[last] = last, at

    def pick(self, rnd: random.Random) -> int:
        return self.items[rnd.randrange(len(self.items))]


class SourceWriter:
    """Updates, invalidates, edits invalid rows, corrects, deletes, re-inserts and inserts
    source rows, one transaction of ``per_txn`` changes at a time (one cursor stamp per
    transaction, like ``now()``), and journals every change in ``drill_journal`` in the same
    transaction.

    Soft deletes (``deleted = 1``) in cursor mode; real ``DELETE``s with ``hard_delete``
    (log-based capture). A deleted key may come back later (undelete / re-insert).
    """

    def __init__(self, conn: Any, mark: str, rnd: random.Random, *, hard_delete: bool) -> None:
        self.conn, self.mark, self.rnd, self.hard = conn, mark, rnd, hard_delete
        cur = conn.cursor()
        cur.execute(f"SELECT {COLUMNS} FROM citizens")
        self.rows: dict[int, list[Any]] = {int(r[0]): list(r) for r in cur.fetchall()}
        self.live = _Keys([i for i, r in self.rows.items() if not r[8]])
        self.gone = _Keys([i for i, r in self.rows.items() if r[8]])
        self.bad = _Keys([i for i in self.live.items if self.rows[i][3] == BAD_DAY])
        ids = sorted(self.live.items)
        self.hot = rnd.sample(ids, min(300, len(ids)))  # keys changed again and again
        self.next_id = max(self.rows, default=0) + 1
        self.step = 0
        cur.execute("SELECT coalesce(max(step), 0) FROM drill_journal")
        self.step = int(cur.fetchone()[0])
        conn.commit()

    def q(self, sql: str) -> str:
        return sql.replace("?", self.mark)

    def transaction(self, stamp: str, changes: int) -> None:
        cur = self.conn.cursor()
        for _ in range(changes):
            key, op = self._choose()
            self._apply(cur, key, op, stamp)
        self.conn.commit()

    def _choose(self) -> tuple[int, str]:
        rnd = self.rnd
        r = rnd.random()
        if r < 0.08 or not self.live.items:
            return self._new()
        if r < 0.11 and self.gone.items:
            return self.gone.pick(rnd), "revive"
        if self.bad.items and rnd.random() < 0.12:
            key = self.bad.pick(rnd)
        elif rnd.random() < 0.5:
            key = rnd.choice(self.hot)
            if key not in self.live.where:
                key = self.live.pick(rnd)
        else:
            key = self.live.pick(rnd)
        r = rnd.random()
        if key in self.bad.where:
            return key, "correct" if r < 0.55 else "edit" if r < 0.75 else "delete"
        return key, "rename" if r < 0.65 else "invalidate" if r < 0.85 else "delete"

    def _new(self) -> tuple[int, str]:
        self.next_id += 1
        return self.next_id - 1, "insert"

    def _name(self) -> str:
        rnd = self.rnd
        return f"{rnd.choice(SURNAMES)} {rnd.choice(MIDDLE)} {GIVEN[rnd.randrange(8)]}"

    def _apply(self, cur: Any, key: int, op: str, stamp: str) -> None:
        q = self.q
        if op == "insert":
            row = list(citizen_row(key))
        elif op == "revive":
            row = list(citizen_row(key))
            row[3] = valid_day(key)
        else:
            row = list(self.rows[key])
        row[7] = stamp
        if op == "rename":
            row[2] = self._name()
        elif op == "invalidate":
            row[3] = BAD_DAY
        elif op == "edit":  # a row that stays invalid
            row[2] = self._name()
        elif op == "correct":
            row[2], row[3] = self._name(), valid_day(key)
        elif op == "delete":
            row[8] = 1
        else:
            row[8] = 0
        if op == "delete" and self.hard:
            cur.execute(q("DELETE FROM citizens WHERE id = ?"), (key,))
        elif op == "insert" or (op == "revive" and self.hard):
            cur.execute(q(f"INSERT INTO citizens ({COLUMNS}) VALUES ({', '.join('?' * 9)})"), row)
        else:
            cur.execute(q("UPDATE citizens SET so_dinh_danh = ?, ho_ten = ?, ngay_sinh = ?,"
                          " gioi_tinh = ?, quoc_tich = ?, ma_tinh = ?, updated_at = ?,"
                          " deleted = ? WHERE id = ?"), (*row[1:], key))  # fmt: skip
        self.step += 1
        gone = op == "delete"
        cur.execute(q("INSERT INTO drill_journal VALUES (?, ?, ?, ?)"),
                    (self.step, key, op, None if gone else json.dumps(row)))  # fmt: skip
        self.rows[key] = row
        (self.gone.add if gone else self.gone.discard)(key)
        (self.live.discard if gone else self.live.add)(key)
        (self.bad.add if row[3] == BAD_DAY and not gone else self.bad.discard)(key)


def writer_main(spec: dict[str, Any]) -> None:
    """``python crashtools.py writer JSON``: change the source until ``DIR/writer.stop``
    exists and at least ``min_changes`` changes are made (the JSON: see ``start_writer``)."""
    tmp, dsn = Path(spec["dir"]), spec["dsn"]
    conn, mark = open_source(tmp, dsn)
    writer = SourceWriter(conn, mark, random.Random(spec["seed"]), hard_delete=dsn is not None)
    base, t = dt.datetime(2024, 6, 1), 0
    while writer.step < spec["min_changes"] or not (tmp / "writer.stop").exists():
        t += 1  # one stamp per transaction, always later than the last one
        writer.transaction((base + dt.timedelta(milliseconds=t)).isoformat(), spec["per_txn"])
        time.sleep(spec["pause"])
    conn.close()


@dataclass
class UpdateDrill(Drill):
    """A drill whose source changes under the sync: :class:`SourceWriter` in its own process
    runs while the agency and the hub are killed, and stops before the final clean run."""

    writer: subprocess.Popen[bytes] | None = None
    writer_done: bool = False
    per_txn: int = 20
    pause: float = 0.02
    min_changes: int = 3000
    # the writer starts once the agency has read the initial rows (else at once)
    after_snapshot: bool = False
    # the initial rows get distinct cursor stamps (else one tie group, as a bulk load): a
    # kill while the whole tie group is sent again sends it again from the start
    distinct_stamps: bool = False

    def setup(self) -> None:
        super().setup()
        conn, mark = open_source(self.tmp, self.source_dsn)
        cur = conn.cursor()
        cur.execute(JOURNAL_DDL)
        if self.distinct_stamps:  # one stamp per initial row instead of one tie group
            stamp = dt.datetime(2024, 1, 1)
            cur.executemany(
                f"UPDATE citizens SET updated_at = {mark} WHERE id = {mark}",
                [((stamp + dt.timedelta(microseconds=i)).isoformat(), i)
                 for i in range(1, self.rows + 1)],
            )  # fmt: skip
        conn.commit()
        conn.close()

    def start_agency(self) -> None:
        super().start_agency()
        self.agency_current = self.writer_done  # sees the final source only after the writer

    def start_writer(self, seed: int) -> None:
        self.log("start writer")
        spec = {
            "dir": str(self.tmp),
            "dsn": self.source_dsn,
            "seed": seed,
            "per_txn": self.per_txn,
            "pause": self.pause,
            "min_changes": self.min_changes,
        }
        with (self.tmp / "writer.log").open("ab") as err:
            self.writer = subprocess.Popen(
                [sys.executable, __file__, "writer", json.dumps(spec)], env=self.env,
                stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip

    def stop_writer(self, timeout: float = 120) -> None:
        (self.tmp / "writer.stop").touch()
        assert self.writer is not None
        rc = self.writer.wait(timeout=timeout)
        if rc != 0:
            raise RuntimeError(f"writer failed: {(self.tmp / 'writer.log').read_text()[-800:]}")
        self.writer_done, self.agency_current = True, False
        self.log(f"writer stopped after {self.changes()} changes")

    def run(self, kills: int, seed: int | None = None, timeout: float = 300, grow: int = 0) -> None:
        rnd, deadline = self.begin(seed, timeout)
        self.start_hub()
        self.start_agency()
        if self.after_snapshot:
            self.wait_for_snapshot(deadline)
        self.start_writer(self.seed)
        try:
            self.kill_loop(kills, rnd, deadline)
        finally:
            self.stop_writer()
        self.finish(deadline)

    def wait_for_snapshot(self, deadline: float) -> None:
        """Until the agency's state says it has read the initial rows: the last key read
        is the last initial row (cursor mode, logical snapshot), or the stream began."""
        while time.monotonic() < deadline:
            if self.agency is not None and self.agency.poll() is not None:
                self.start_agency()  # a pass ended (or failed) before the snapshot did
            with contextlib.suppress(sqlite3.Error):  # not created yet, or busy
                db = sqlite3.connect(f"file:{self.tmp / 'state.db'}?mode=ro", uri=True)
                try:
                    row = db.execute("SELECT extract_position FROM tables").fetchone()
                finally:
                    db.close()
                pos = orjson.loads(row[0]) if row and row[0] else {}
                if pos.get("phase") == "stream" or (pos.get("after") or [0])[-1] == self.rows:
                    self.log("snapshot complete")
                    return
            time.sleep(0.1)
        raise TimeoutError("the snapshot did not complete")

    def stop(self) -> None:
        if self.writer is not None and self.writer.poll() is None:
            self.writer.kill()
            self.writer.wait()
        super().stop()

    def journal(self) -> list[tuple[int, str, tuple[Any, ...] | None]]:
        """Every change the writer committed, in order: (id, op, row or None if deleted).

        Also kept as ``journal.jsonl`` in the drill's directory (the PostgreSQL source is
        dropped with its test)."""
        conn, _mark = open_source(self.tmp, self.source_dsn)
        try:
            cur = conn.cursor()
            cur.execute("SELECT step, id, op, row_json FROM drill_journal ORDER BY step")
            rows = cur.fetchall()
        finally:
            conn.close()
        with (self.tmp / "journal.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(
                json.dumps([s, i, op, j], ensure_ascii=False) + "\n" for s, i, op, j in rows
            )
        return [(int(i), str(op), None if j is None else tuple(json.loads(j)))
                for _s, i, op, j in rows]  # fmt: skip

    def changes(self) -> int:
        conn, _mark = open_source(self.tmp, self.source_dsn)
        try:
            cur = conn.cursor()
            cur.execute("SELECT count(*) FROM drill_journal")
            return int(cur.fetchone()[0])
        finally:
            conn.close()

    def source_rows(self) -> dict[str, tuple[Any, ...]]:
        """The source's live rows now, by source key."""
        conn, _mark = open_source(self.tmp, self.source_dsn)
        try:
            cur = conn.cursor()
            cur.execute(f"SELECT {COLUMNS} FROM citizens WHERE deleted = 0")
            return {str(r[0]): tuple(r) for r in cur.fetchall()}
        finally:
            conn.close()

    def hub_tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """The consolidated database's current, history, quarantine and batch records."""
        db: Any
        if self.hub_db.startswith("postgresql://"):
            import psycopg

            db = psycopg.connect(self.hub_db)
        else:
            db = sqlite3.connect(self.tmp / self.hub_db)
        queries = {
            "current": "SELECT source_key, data, batch_seq, valid_from FROM c_citizen",
            "history": "SELECT source_key, data, batch_seq, valid_from, valid_to, ended_by"
                       " FROM h_citizen",
            "quarantine": "SELECT id, source_key, seq, raw, resolved_seq FROM sync_quarantine",
            "closed": "SELECT id, seq, reason FROM sync_quarantine_closed",
            "batches": "SELECT seq, read, applied, quarantined FROM sync_batches ORDER BY seq",
        }  # fmt: skip
        try:
            return {name: [tuple(r) for r in db.execute(sql)] for name, sql in queries.items()}
        finally:
            db.close()


if __name__ == "__main__" and sys.argv[1:2] == ["writer"]:
    writer_main(json.loads(sys.argv[2]))
