"""Benchmark: a citizen table in PostgreSQL synchronised into the consolidated database.

    python bench/sync.py [--json] [--rows N] [--skip-dlt] [--freshness-updates K]

Same run, same table:

* ``rows_per_s``       lienthong end to end into the consolidated database on PostgreSQL:
                       keyset read, mapping + data-dictionary validation, signed (ECDSA P-256)
                       and encrypted (X25519+ML-KEM-768 / AES-256-GCM) batches, durable
                       outbox, HTTP to a separate hub process (``python -m lienthong.sync hub
                       serve``), verification, COPY + merge with history and lineage, signed
                       acknowledgement;
* ``sqlite_rows_per_s`` the same into the embedded SQLite consolidated database;
* ``dlt_rows_per_s``   dlt ``sql_database`` (fastest backend that installs) into PostgreSQL;
* ``copy_rows_per_s``  PostgreSQL ``COPY TO`` → ``COPY FROM`` into a table with a primary key
                       (the physical limit, no validation, no history);
* ``freshness_p95_s``  follow mode: p95 delay from a source UPDATE to its visibility.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth), like the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
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

from lienthong.sync.agency import AgencyKeys, AgencySync
from lienthong.sync.connectors.sql import POSTGRES, SqlTableConnector
from lienthong.sync.hub.dialect import connect_hub
from lienthong.sync.keys import init_keys, load_public, load_recipient_public
from lienthong.sync.outbox import Outbox
from lienthong.sync.pipeline import pipeline_from_dict
from lienthong.sync.transport import HttpTransport
from lienthong.trust.keystore import FileKeyStore

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
        conn.execute("ANALYZE citizens")


@contextmanager
def hub_process(hub_url: str, work: Path) -> Iterator[tuple[str, AgencyKeys]]:
    """A hub process (``python -m lienthong.sync hub serve``) on 127.0.0.1 and agency keys."""
    keys_dir = work / f"keys-{uuid.uuid4().hex[:6]}"
    os.environ[PASS_ENV] = uuid.uuid4().hex
    init_keys(keys_dir, {"$env": PASS_ENV})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lienthong.sync", "hub", "serve", "--db", hub_url, "--keys",
         str(keys_dir), "--passphrase-env", PASS_ENV, "--source",
         f"{SOURCE_ID}={keys_dir / 'agency.pub.pem'}", "--port", str(port)],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/sync/v1/health", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        keys = AgencyKeys(
            FileKeyStore(keys_dir, {"$env": PASS_ENV}).signer("agency"),
            load_public(keys_dir / "hub.pub.pem"),
            load_recipient_public(keys_dir / "hub.recipient.json"),
        )
        yield url, keys
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def lienthong_sync(src: str, hub_url: str, work: Path, follow_updates: int = 0) -> dict[str, Any]:
    """Source → agency process (this one) → HTTP → hub process → consolidated database."""
    pipeline = pipeline_from_dict(
        {"source_id": SOURCE_ID, "source": {"kind": "postgres", "dsn": {"$env": "UNUSED"}},
         "tables": [TABLE]}
    )  # fmt: skip
    connector = SqlTableConnector(lambda: psycopg.connect(src), POSTGRES, "citizens", ["id"],
                                  cursor="updated_at")  # fmt: skip
    with hub_process(hub_url, work) as (url, keys):
        transport = HttpTransport(url)
        agency = AgencySync(
            pipeline, {"citizens": connector},
            Outbox(work / f"outbox-{uuid.uuid4().hex[:6]}.db"), transport, keys,
        )  # fmt: skip
        t0 = time.perf_counter()
        report = agency.run()
        elapsed = time.perf_counter() - t0
        out: dict[str, Any] = {"read": report.read, "applied": report.applied,
                               "quarantined": report.quarantined, "seconds": round(elapsed, 3),
                               "rows_per_s": round(report.read / elapsed),
                               "transport": "http (hub process)"}  # fmt: skip
        if follow_updates:
            out["freshness"] = freshness(agency, src, hub_url, follow_updates)
        agency.close()
    return out


def freshness(agency: AgencySync, src: str, hub_url: str, updates: int) -> dict[str, float]:
    """Update one row at a time at the source; time until the hub shows the new value."""
    stop = threading.Event()
    follower = threading.Thread(target=agency.follow, args=(stop, 0.05), daemon=True)
    follower.start()
    conn, _d = connect_hub(hub_url)
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
    q = statistics.quantiles(delays, n=20) if len(delays) > 1 else delays * 19
    return {"p50_s": round(statistics.median(delays), 3), "p95_s": round(q[18], 3)}


def dlt_copy(src: str, dst: str) -> dict[str, Any]:
    try:
        import dlt
        from dlt.sources.sql_database import sql_database
    except ImportError as exc:
        return {"error": f"dlt not installed: {exc}"}
    best: dict[str, Any] = {}
    # dlt insists on a password; the local server uses trust auth and ignores it
    dst_dlt = dst.replace("postgres@", "postgres:unused@")
    for backend in ("connectorx", "pyarrow"):
        try:
            source = sql_database(credentials=src, table_names=["citizens"], backend=backend)
            pipe = dlt.pipeline(
                pipeline_name=f"bench_{uuid.uuid4().hex[:6]}",
                destination=dlt.destinations.postgres(credentials=dst_dlt),
                dataset_name=f"dlt_{backend}", pipelines_dir=tempfile.mkdtemp(),
            )  # fmt: skip
            t0 = time.perf_counter()
            pipe.run(source, write_disposition="replace")
            elapsed = time.perf_counter() - t0
        except Exception as exc:  # a backend that does not install/run: try the next one
            best.setdefault("errors", {})[backend] = f"{type(exc).__name__}: {str(exc)[:120]}"
            continue
        with psycopg.connect(dst) as c:
            n = c.execute(f"SELECT count(*) FROM dlt_{backend}.citizens").fetchone()[0]
        rate = round(n / elapsed)
        if rate > best.get("rows_per_s", 0):
            best.update({"backend": backend, "rows_per_s": rate, "seconds": round(elapsed, 3)})
    return best


def copy_limit(src: str, dst: str) -> dict[str, Any]:
    with psycopg.connect(src) as a, psycopg.connect(dst) as b:
        b.execute("DROP TABLE IF EXISTS copy_citizens")
        b.execute("CREATE TABLE copy_citizens (LIKE citizens)" if False else
                  "CREATE TABLE copy_citizens (id BIGINT PRIMARY KEY, so_dinh_danh TEXT, "
                  "ho_ten TEXT, ngay_sinh TEXT, gioi_tinh TEXT, quoc_tich TEXT, "
                  "updated_at TIMESTAMPTZ NOT NULL)")  # fmt: skip
        b.commit()
        t0 = time.perf_counter()
        n = 0
        with (
            a.cursor().copy("COPY citizens TO STDOUT") as out,
            b.cursor().copy("COPY copy_citizens FROM STDIN") as into,
        ):
            for data in out:
                into.write(data)
        b.commit()
        elapsed = time.perf_counter() - t0
        n = b.execute("SELECT count(*) FROM copy_citizens").fetchone()[0]
    return {"rows_per_s": round(n / elapsed), "seconds": round(elapsed, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--skip-dlt", action="store_true")
    ap.add_argument("--freshness-updates", type=int, default=40)
    args = ap.parse_args()
    result: dict[str, Any] = {"rows": args.rows}
    with database() as src, database() as dst, tempfile.TemporaryDirectory() as tmp:
        make_source(src, args.rows)
        result["postgres"] = lienthong_sync(src, dst, Path(tmp), args.freshness_updates)
        result["sqlite"] = lienthong_sync(src, str(Path(tmp) / "consolidated.db"), Path(tmp))
        result["copy"] = copy_limit(src, dst)
        result["dlt"] = {} if args.skip_dlt else dlt_copy(src, dst)
    result["rows_per_s"] = result["postgres"]["rows_per_s"]
    result["sqlite_rows_per_s"] = result["sqlite"]["rows_per_s"]
    result["dlt_rows_per_s"] = result["dlt"].get("rows_per_s")
    result["copy_rows_per_s"] = result["copy"]["rows_per_s"]
    result["freshness_p95_s"] = result["postgres"].get("freshness", {}).get("p95_s")
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    print(f"{'what':<34}{'rows/s':>12}")
    for label, key in (("lienthong → PostgreSQL", "rows_per_s"),
                       ("lienthong → SQLite", "sqlite_rows_per_s"),
                       (f"dlt ({result['dlt'].get('backend', '-')})", "dlt_rows_per_s"),
                       ("PostgreSQL COPY (limit)", "copy_rows_per_s")):  # fmt: skip
        print(f"{label:<34}{result[key] or '-':>12}")
    print(f"freshness p95: {result['freshness_p95_s']} s")


if __name__ == "__main__":
    main()
