"""Benchmark: a citizen table in PostgreSQL synchronised into the consolidated database.

    python bench/sync.py [--json] [--rows N] [--transport http|gateway|both] [--skip-dlt]
                         [--freshness-updates K] [--repeat R]

Same run, same source table (``--rows`` citizens, ~2 % with an impossible date of birth):

* ``rows_per_s``        lienthong end to end into the consolidated database on PostgreSQL:
                        keyset read, mapping + data-dictionary validation, signed (ECDSA
                        P-256) and encrypted (X25519+ML-KEM-768 / AES-256-GCM) batches,
                        durable outbox, transport to a separate hub process (``python -m
                        lienthong.sync hub serve``), verification, COPY/merge with history
                        and lineage, signed acknowledgement. By default (``--transport
                        gateway``) through three real gateway processes (the agency's own
                        gateway → national platform NDXP → the hub's gateway → hub
                        process), end-to-end encrypted again by the gateways (SENSITIVE
                        service); ``http`` posts to the hub process directly; ``both``
                        adds the direct run as ``direct_rows_per_s`` /
                        ``direct_sqlite_rows_per_s`` (``rows_per_s`` stays the gateways');
* ``sqlite_rows_per_s`` the same into the embedded SQLite consolidated database;
* ``dlt_rows_per_s``    dlt ``sql_database`` into PostgreSQL with its fastest backend that
                        installs and runs here (ConnectorX and PyArrow are tried);
* ``copy_rows_per_s``   PostgreSQL ``COPY TO`` → ``COPY FROM`` into a table with a primary
                        key (the physical limit: no validation, no history, no lineage);
                        ``copy_upsert_rows_per_s``: ``COPY`` into a temp table + ``INSERT …
                        ON CONFLICT`` (the classic merge);
* ``freshness_p95_s``   follow mode: p95 delay from a source UPDATE to its visibility in the
                        consolidated database on PostgreSQL (over the headline transport).

Each lienthong run also reports ``cpu_s``: the CPU seconds its processes spent during the run
(agency, hub process, gateways, and the PostgreSQL server processes of the source and of the
consolidated database), and their sum per row — steadier than rows/s on a shared machine.

The headline pair (lienthong → PostgreSQL and dlt) runs first, side by side, ``--repeat``
times; the median run of each is reported with every sample. Every lienthong measurement
runs in a fresh agency process (no warm caches from an earlier
measurement). Load averages (1, 5, 15 min) are recorded before each measurement: the figures
are only comparable on a quiet machine. Each measurement starts after a ``CHECKPOINT``, so
none pays for the writes of the one before. Needs PostgreSQL on 127.0.0.1:5432 (user postgres,
trust auth), like the test suite; dlt comes with ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from lienthong.ports import free_port

NAMES = ("MƯỜI", "NGỌC", "THẢO", "UYÊN", "VY", "XUÂN", "YẾN", "ÁNH", "BẢO", "CẨM")
PASS_ENV = "LT_BENCH_KEY_PASSPHRASE"
ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
SOURCE_ID = "BCA.DC"

# ~2% defects: impossible dates (every 50th row), like the synthetic sources
SOURCE_SQL = """
CREATE TABLE citizens (id BIGINT PRIMARY KEY, so_dinh_danh TEXT, ho_ten TEXT, ngay_sinh TEXT,
  gioi_tinh TEXT, quoc_tich TEXT, updated_at TIMESTAMPTZ NOT NULL);
INSERT INTO citizens
SELECT i,
  '001' || ((CASE WHEN y >= 2000 THEN 2 ELSE 0 END) + (i % 2))::text
        || lpad((y % 100)::text, 2, '0') || lpad((i % 1000000)::text, 6, '0'),
  (ARRAY['NGUYỄN','TRẦN','LÊ','PHẠM','HOÀNG'])[1 + i % 5] || ' '
        || (CASE WHEN i % 2 = 0 THEN 'VĂN' ELSE 'THỊ' END) || ' '
        || (ARRAY['AN','BÌNH','CHI','DŨNG','GIANG','HẢI','KHÁNH','LINH'])[1 + i % 8],
  CASE WHEN i % 50 = 7 THEN '31/02/1990'
       ELSE lpad((1 + i % 28)::text, 2, '0') || '/' || lpad((1 + i % 12)::text, 2, '0')
            || '/' || y::text END,
  CASE WHEN i % 2 = 0 THEN 'Nam' ELSE 'Nữ' END,
  'VN',
  timestamptz '2025-01-01' + (i || ' milliseconds')::interval
FROM (SELECT i, 1950 + (i % 70) AS y FROM generate_series(1, %(rows)s) AS i) s;
"""

TABLE = {
    "name": "citizens", "key": ["id"], "entity": "Citizen", "cursor": "updated_at",
    "batch_size": 20000, "classification": "PERSONAL",
    "fields": {
        "so_dinh_danh": "personal_id", "ho_ten": "full_name",
        "ngay_sinh": {"to": "date_of_birth", "transform": "date", "format": "%d/%m/%Y"},
        "gioi_tinh": "sex", "quoc_tich": "nationality",
    },
}  # fmt: skip
CITIZEN_COLUMNS = ("id BIGINT PRIMARY KEY, so_dinh_danh TEXT, ho_ten TEXT, ngay_sinh TEXT, "
                   "gioi_tinh TEXT, quoc_tich TEXT, updated_at TIMESTAMPTZ NOT NULL")  # fmt: skip


def settle() -> None:
    """CHECKPOINT before a measurement: the dirty pages of the previous one (1M rows each)
    are written now, not by the checkpointer in the middle of the next one — the same for
    lienthong, dlt and COPY."""
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@contextmanager
def database() -> Iterator[str]:
    name = f"lt_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_source(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SOURCE_SQL.replace("%(rows)s", str(int(rows))))
        # cursor mode pages by (updated_at, id): the source needs that index, like any CDC cursor
        conn.execute("CREATE INDEX citizens_cursor ON citizens (updated_at, id)")
        conn.execute("VACUUM ANALYZE citizens")


# ---------------------------------------------------------------- one lienthong measurement
# (runs in its own process: ``python bench/sync.py --one JSON``)


@contextmanager
def hub_process(hub_url: str, work: Path, client: str | None) -> Iterator[tuple[str, Any]]:
    """A hub process (``python -m lienthong.sync hub serve``) on 127.0.0.1 and agency keys."""
    from lienthong.sync.agency import AgencyKeys
    from lienthong.sync.keys import init_keys, load_public, load_recipient_public
    from lienthong.trust.keystore import FileKeyStore

    keys_dir = work / f"keys-{uuid.uuid4().hex[:6]}"
    os.environ[PASS_ENV] = uuid.uuid4().hex
    init_keys(keys_dir, {"$env": PASS_ENV})
    port = free_port()
    args = [sys.executable, "-m", "lienthong.sync", "hub", "serve", "--db", hub_url, "--keys",
            str(keys_dir), "--passphrase-env", PASS_ENV, "--source",
            f"{SOURCE_ID}={keys_dir / 'agency.pub.pem'}", "--port", str(port)]  # fmt: skip
    if client is not None:  # behind the gateways: only the agency's sync subsystem may send
        args += ["--client", f"{SOURCE_ID}={client}", "--max-level", "SENSITIVE"]
    proc = subprocess.Popen(args)
    PIDS["hub"] = [proc.pid]
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(trust_env=False) as http:
            for _ in range(600):
                try:
                    http.get(url + "/sync/v1/health", timeout=0.5)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
        keys = AgencyKeys(
            FileKeyStore(keys_dir, {"$env": PASS_ENV}).signer("agency"),
            load_public(keys_dir / "hub.pub.pem"),
            load_recipient_public(keys_dir / "hub.recipient.json"),
        )
        yield url, keys
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def gateways(work: Path, hub_url: str) -> Iterator[tuple[str, str]]:
    """The agency's gateway, the national platform and the hub's gateway as real processes;
    yields (the agency gateway's URL, the agency's sync subsystem)."""
    from lienthong.exchange.processes import Running
    from lienthong.exchange.testbed import HUB_NODE, SYNC_AGENCIES, build_testbed, sync_spec

    tb = build_testbed(work / "federation", sync_spec(f"{hub_url}/sync/v1", agencies=("BCA-GW",)))
    with Running(tb) as running:
        for node in ("NDXP", HUB_NODE, "BCA-GW"):
            running.start_gateway(node)
        PIDS["gateways"] = [p.pid for p in running.procs.values()]
        yield tb.internal_url("BCA-GW"), SYNC_AGENCIES["BCA-GW"][1]


PIDS: dict[str, list[int]] = {}  # component → processes whose CPU time is accounted


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends(dsn: str) -> list[int]:
    """The server processes of the connections to ``dsn``'s database (not this one)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(r[0]) for r in rows]


def components(src: str, hub_db: str) -> dict[str, list[int]]:
    out = dict(PIDS) | {"agency": [os.getpid()], "pg_source": backends(src)}
    if hub_db.startswith("postgresql://"):
        out["pg_hub"] = backends(hub_db)
    return out


def cpu_split(before: dict[int, float], src: str, hub_db: str) -> dict[str, float]:
    """CPU seconds per component since ``before`` (a backend started since counts whole)."""
    return {
        name: round(sum(cpu_of(p) - before.get(p, 0.0) for p in pids), 2)
        for name, pids in components(src, hub_db).items()
    }


def one(task: dict[str, Any]) -> dict[str, Any]:
    """Source → agency (this process) → transport → hub process → consolidated database."""
    from lienthong.exchange.testbed import SVC_SYNC, SYNC_AGENCIES
    from lienthong.sync.agency import AgencySync
    from lienthong.sync.connectors.sql import POSTGRES, SqlTableConnector
    from lienthong.sync.gateway_transport import GatewaySettings, GatewayTransport
    from lienthong.sync.outbox import Outbox
    from lienthong.sync.pipeline import pipeline_from_dict
    from lienthong.sync.transport import HttpTransport, Transport

    src, hub_db = task["src"], task["hub"]
    work = Path(task["work"]) / uuid.uuid4().hex[:8]  # own keys, outbox and federation
    work.mkdir(parents=True)
    via_gateway = task["transport"] == "gateway"
    pipeline = pipeline_from_dict(
        {"source_id": SOURCE_ID, "source": {"kind": "postgres", "dsn": {"$env": "UNUSED"}},
         "tables": [TABLE]}
    )  # fmt: skip
    connector = SqlTableConnector(lambda: psycopg.connect(src), POSTGRES, "citizens", ["id"],
                                  cursor="updated_at")  # fmt: skip
    client = SYNC_AGENCIES["BCA-GW"][1] if via_gateway else None
    with contextlib.ExitStack() as stack:
        url, keys = stack.enter_context(hub_process(hub_db, work, client))
        transport: Transport
        if via_gateway:
            gw_url, _client = stack.enter_context(gateways(work, url))
            transport = GatewayTransport(GatewaySettings(gw_url, SVC_SYNC, _client))
        else:
            transport = HttpTransport(url)
        agency = AgencySync(
            pipeline, {"citizens": connector},
            Outbox(work / f"outbox-{uuid.uuid4().hex[:6]}.db"), transport, keys,
        )  # fmt: skip
        settle()
        before = load()
        cpu_before = {p: cpu_of(p) for ps in components(src, hub_db).values() for p in ps}
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        report = agency.run()
        elapsed = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        agency_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        split = cpu_split(cpu_before, src, hub_db)
        out: dict[str, Any] = {
            "read": report.read, "applied": report.applied, "quarantined": report.quarantined,
            "batches": report.batches, "error": report.error, "seconds": round(elapsed, 3),
            "rows_per_s": round(report.read / elapsed), "agency_cpu_s": round(agency_cpu, 2),
            "cpu_s": split, "cpu_us_per_row": round(1e6 * sum(split.values()) / report.read, 2)
            if report.read else None,
            "transport": "gateway (agency GW → NDXP → hub GW → hub process)" if via_gateway
            else "http (hub process)", "load_avg": before,
        }  # fmt: skip
        if task.get("freshness"):
            out["freshness"] = freshness(agency, src, hub_db, int(task["freshness"]))
        agency.close()
    return out


def freshness(agency: Any, src: str, hub_db: str, updates: int) -> dict[str, Any]:
    """Update one row at a time at the source; time until the hub shows the new value."""
    from lienthong.sync.hub.dialect import connect_hub

    stop = threading.Event()
    follower = threading.Thread(target=agency.follow, args=(stop, 0.05), daemon=True)
    follower.start()
    conn, _d = connect_hub(hub_db)
    delays = []
    with psycopg.connect(src, autocommit=True) as source:
        for n in range(updates):
            i = 1 + n * 97
            name = f"LÝ THỊ {NAMES[n % len(NAMES)]} {NAMES[(n // len(NAMES)) % len(NAMES)]}"
            source.execute(
                "UPDATE citizens SET ho_ten = %s, updated_at = now() WHERE id = %s", (name, i)
            )
            t0 = time.perf_counter()
            want = " ".join(w.capitalize() for w in name.lower().split())
            while time.perf_counter() - t0 < 30:
                conn.rollback()
                row = conn.execute(
                    "SELECT data->>'full_name' FROM c_citizen WHERE source_key = %s", (str(i),)
                ).fetchone()
                if row and row[0] == want:
                    break
                time.sleep(0.01)
            delays.append(time.perf_counter() - t0)
    stop.set()
    follower.join(timeout=30)
    conn.close()
    q = statistics.quantiles(delays, n=20, method="inclusive") if len(delays) > 1 else delays * 19
    return {"updates": updates, "p50_s": round(statistics.median(delays), 3),
            "p95_s": round(q[18], 3), "max_s": round(max(delays), 3)}  # fmt: skip


def lienthong_sync(src: str, hub_db: str, work: Path, transport: str, fresh: int) -> dict[str, Any]:
    """One measurement in a fresh process."""
    task = {"src": src, "hub": hub_db, "work": str(work), "transport": transport,
            "freshness": fresh}  # fmt: skip
    done = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(task)],
        stdout=subprocess.PIPE, check=False, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        return {"error": f"agency process exited with {done.returncode}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------- peers and physical limits


def dlt_copy(src: str, dst: str) -> dict[str, Any]:
    try:
        import dlt
        from dlt.sources.sql_database import sql_database
    except ImportError as exc:
        return {"error": f"dlt not installed: {exc}"}
    out: dict[str, Any] = {"version": dlt.__version__, "backends": {}}
    # dlt insists on a password; the local server uses trust auth and ignores it
    dst_dlt = dst.replace("postgres@", "postgres:unused@")
    for backend in ("connectorx", "pyarrow"):
        pipelines_dir = tempfile.mkdtemp(prefix="lt-bench-dlt-")
        try:
            source = sql_database(credentials=src, table_names=["citizens"], backend=backend)
            pipe = dlt.pipeline(
                pipeline_name=f"bench_{uuid.uuid4().hex[:6]}",
                destination=dlt.destinations.postgres(credentials=dst_dlt),
                dataset_name=f"dlt_{backend}", pipelines_dir=pipelines_dir,
            )  # fmt: skip
            settle()
            before = load()
            t0 = time.perf_counter()
            pipe.run(source, write_disposition="replace")
            elapsed = time.perf_counter() - t0
        except Exception as exc:  # a backend that does not install/run: try the next one
            out["backends"][backend] = {"error": f"{type(exc).__name__}: {str(exc)[:160]}"}
            continue
        finally:
            shutil.rmtree(pipelines_dir, ignore_errors=True)
        with psycopg.connect(dst) as c:
            n = count(c, f"dlt_{backend}.citizens")
        rate = round(n / elapsed)
        out["backends"][backend] = {"rows": n, "rows_per_s": rate, "seconds": round(elapsed, 3),
                                    "load_avg": before}  # fmt: skip
        if rate > out.get("rows_per_s", 0):
            out.update({"backend": backend, "rows_per_s": rate})
    return out


def count(conn: Any, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def copy_limit(src: str, dst: str) -> dict[str, Any]:
    """COPY out of the source into a table with a primary key; then COPY + INSERT … ON CONFLICT."""
    out: dict[str, Any] = {}
    with psycopg.connect(src) as a, psycopg.connect(dst) as b:
        b.execute("DROP TABLE IF EXISTS copy_citizens")
        b.execute(f"CREATE TABLE copy_citizens ({CITIZEN_COLUMNS})")
        b.execute(
            f"CREATE TEMP TABLE stage_citizens ({CITIZEN_COLUMNS.replace(' PRIMARY KEY', '')})"
        )
        b.commit()
        for what, into in (("copy", "copy_citizens"), ("copy_upsert", "stage_citizens")):
            if what == "copy_upsert":
                b.execute("TRUNCATE copy_citizens")
                b.commit()
            settle()
            before = load()
            t0 = time.perf_counter()
            with (
                a.cursor().copy("COPY citizens TO STDOUT") as source,
                b.cursor().copy(f"COPY {into} FROM STDIN") as target,
            ):
                for data in source:
                    target.write(data)
            if what == "copy_upsert":
                b.execute(
                    "INSERT INTO copy_citizens SELECT * FROM stage_citizens ON CONFLICT (id) DO "
                    "UPDATE SET so_dinh_danh = excluded.so_dinh_danh, ho_ten = excluded.ho_ten, "
                    "ngay_sinh = excluded.ngay_sinh, gioi_tinh = excluded.gioi_tinh, "
                    "quoc_tich = excluded.quoc_tich, updated_at = excluded.updated_at"
                )
            b.commit()
            elapsed = time.perf_counter() - t0
            n = count(b, "copy_citizens")
            out[what] = {"rows_per_s": round(n / elapsed), "seconds": round(elapsed, 3),
                         "load_avg": before}  # fmt: skip
    return out


def _median_doc(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (the first on a tie), with every rate as ``samples``."""
    rated = [d for d in docs if d.get("rows_per_s")]
    if not rated:
        return docs[0]
    ranked = sorted(rated, key=lambda d: d["rows_per_s"])
    median = ranked[(len(ranked) - 1) // 2]
    return {**median, "samples": [d["rows_per_s"] for d in docs if d.get("rows_per_s")]}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--transport", choices=("http", "gateway", "both"), default="gateway")
    ap.add_argument("--skip-dlt", action="store_true")
    ap.add_argument("--freshness-updates", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=1, help="runs of lienthong → PostgreSQL and dlt")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement, JSON out
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one)), ensure_ascii=False))
        return
    if args.rows < 1 or args.freshness_updates < 0 or args.repeat < 1:
        print("bench/sync.py: --rows and --repeat must be ≥ 1, --freshness-updates ≥ 0",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    # the headline is through the gateways (the definition); "both" adds the direct one
    transports = ["gateway", "http"] if args.transport == "both" else [args.transport]
    result: dict[str, Any] = {"rows": args.rows, "cpus": os.cpu_count(), "load_avg": load()}
    t_all = time.perf_counter()
    first = transports[0]
    with database() as src, tempfile.TemporaryDirectory() as tmp:
        make_source(src, args.rows)
        runs: dict[str, Any] = {}
        # the headline pair first, side by side and --repeat times (medians), so that the
        # load of a shared machine weighs on both alike
        samples: list[dict[str, Any]] = []
        dlts: list[dict[str, Any]] = []
        for r in range(args.repeat):
            with database() as dst:  # an empty consolidated database per measurement
                fresh = args.freshness_updates if r == 0 else 0
                samples.append(lienthong_sync(src, dst, Path(tmp), first, fresh))
            if not args.skip_dlt:
                with database() as dst:
                    dlts.append(dlt_copy(src, dst))
        runs[f"{first}_postgres"] = _median_doc(samples)
        if "freshness" in samples[0]:
            runs[f"{first}_postgres"]["freshness"] = samples[0]["freshness"]
        result["dlt"] = _median_doc(dlts) if dlts else {"skipped": True}
        for transport in transports:
            if transport != first:
                with database() as dst:
                    runs[f"{transport}_postgres"] = lienthong_sync(
                        src, dst, Path(tmp), transport, 0
                    )
            hub_file = str(Path(tmp) / f"consolidated-{transport}.db")
            runs[f"{transport}_sqlite"] = lienthong_sync(src, hub_file, Path(tmp), transport, 0)
        result["lienthong"] = runs
        with database() as dst:
            result["copy"] = copy_limit(src, dst)
    result["transport"] = first
    result["rows_per_s"] = runs[f"{first}_postgres"].get("rows_per_s")
    result["sqlite_rows_per_s"] = runs[f"{first}_sqlite"].get("rows_per_s")
    if "http" in transports and first != "http":
        result["direct_rows_per_s"] = runs["http_postgres"].get("rows_per_s")
        result["direct_sqlite_rows_per_s"] = runs["http_sqlite"].get("rows_per_s")
    result["dlt_rows_per_s"] = result["dlt"].get("rows_per_s")
    result["copy_rows_per_s"] = result["copy"]["copy"]["rows_per_s"]
    result["copy_upsert_rows_per_s"] = result["copy"]["copy_upsert"]["rows_per_s"]
    result["freshness_p95_s"] = runs[f"{first}_postgres"].get("freshness", {}).get("p95_s")
    result["seconds_total"] = round(time.perf_counter() - t_all, 1)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    print_table(result, transports)


def print_table(result: dict[str, Any], transports: list[str]) -> None:
    def row(label: str, doc: dict[str, Any]) -> None:
        rate = doc.get("rows_per_s", doc.get("error", "-"))
        where = doc.get("load_avg", "")
        samples = doc.get("samples", [])
        more = f"  median of {samples}" if len(samples) > 1 else ""
        print(f"{label:<44}{rate:>12}  {where}{more}")

    print(f"{result['rows']:,} rows, {result['cpus']} CPUs; load average at start "
          f"{result['load_avg']}")  # fmt: skip
    print(f"{'what':<44}{'rows/s':>12}  load average (1, 5, 15 min) before")
    for transport in transports:
        for target in ("postgres", "sqlite"):
            doc = result["lienthong"][f"{transport}_{target}"]
            row(f"lienthong → {'PostgreSQL' if target == 'postgres' else 'SQLite'} "
                f"({transport})", doc)  # fmt: skip
            if doc.get("cpu_s"):
                split = ", ".join(f"{k} {v}" for k, v in doc["cpu_s"].items())
                print(f"    CPU s in the run: {split}; {doc['cpu_us_per_row']} µs per row")
    dlt = result["dlt"]
    for backend, doc in dlt.get("backends", {}).items():
        best = backend == dlt.get("backend")
        row(f"dlt sql_database ({backend}) → PostgreSQL", {**doc, **(
            {"samples": dlt.get("samples", [])} if best else {})})  # fmt: skip
    if dlt.get("skipped") or dlt.get("error"):
        row("dlt", {"error": dlt.get("error", "skipped")})
    row("PostgreSQL COPY → table with key (limit)", result["copy"]["copy"])
    row("PostgreSQL COPY → temp + INSERT ON CONFLICT", result["copy"]["copy_upsert"])
    fresh = result["lienthong"][f"{transports[0]}_postgres"].get("freshness")
    if fresh:
        print(f"follow-mode freshness ({fresh['updates']} updates): p50 {fresh['p50_s']} s, "
              f"p95 {fresh['p95_s']} s, max {fresh['max_s']} s")  # fmt: skip
    print(f"total {result['seconds_total']} s")


if __name__ == "__main__":
    main()
