"""Benchmark of the audit log against the physical limit (plain SQLite insert), same run.

    python bench/audit.py [--json] [--entries N] [--batch B] [--dir DIR]

Prints ``appends_per_s`` (durable, batched: each batch committed with fsync before the next),
``entry_build_per_s`` (constructing the entries: the caller's side), ``proof_ms`` and
``proof_hashes`` (inclusion proof at size N), ``consistency_ms``, ``verify_s`` (whole-log
verification of the N entries) and ``sqlite_insert_per_s`` (the same rows inserted into a
plain SQLite table in the same batches, WAL + synchronous=FULL: the limit).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from lienthong.audit import AuditLog, exchange_entry
from lienthong.audit.entries import Entry
from lienthong.audit.verify import verify_log
from lienthong.trust.keys import SoftwareSigner, generate_private_key

CLIENT = "VN/GOV/000.00.00.H29/dvc-portal"
SERVICE = "VN/GOV/000.00.00.G10/population/getCitizen"


def build(start: int, count: int, at: datetime) -> list[Entry]:
    return [
        exchange_entry(
            at=at,
            message_id=f"{start + i:016x}",
            client=CLIENT,
            service=SERVICE,
            status=200,
            request_hash=f"{start + i:064x}",
        )
        for i in range(count)
    ]


def plain_sqlite(path: Path, batches: list[list[tuple[int, bytes]]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, data BLOB)")
    t0 = time.perf_counter()
    for rows in batches:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def postgres_appends(dsn: str, entries: int, batch: int) -> float:
    """Durable appends/s into PostgreSQL (a throw-away schema of the given database)."""
    import psycopg

    schema = f"audit_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in dsn else "?"
    at = datetime(2026, 11, 23, tzinfo=UTC)
    try:
        with AuditLog.open(
            f"{dsn}{sep}options=-csearch_path%3D{schema}", origin="bench.example/pg"
        ) as log:
            elapsed = 0.0
            for start in range(0, entries, batch):
                chunk = build(start, min(batch, entries - start), at)
                t0 = time.perf_counter()
                log.append(chunk)
                elapsed += time.perf_counter() - t0
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return entries / elapsed


def run(entries: int, batch: int, workdir: Path) -> dict[str, float | int]:
    """The SQLite figures and the limit, in one run."""
    signer = SoftwareSigner(generate_private_key())
    at = datetime(2026, 11, 23, tzinfo=UTC)
    log = AuditLog.open(workdir / "bench.auditlog", signer=signer, origin="bench.example/log")
    build_s = append_s = 0.0
    sample: list[list[tuple[int, bytes]]] = []
    for start in range(0, entries, batch):
        t0 = time.perf_counter()
        chunk = build(start, min(batch, entries - start), at)
        t1 = time.perf_counter()
        log.append(chunk)
        t2 = time.perf_counter()
        build_s, append_s = build_s + t1 - t0, append_s + t2 - t1
        if len(sample) < 20:  # the limit is measured on the same rows (first 20 batches)
            sample.append([(start + i, e.data) for i, e in enumerate(chunk)])
    log.checkpoint(now=at)
    rng = random.Random(1)
    t0 = time.perf_counter()
    proofs = [log.prove(rng.randrange(entries), entries) for _ in range(1000)]
    proof_ms = (time.perf_counter() - t0) / 1000 * 1000
    t0 = time.perf_counter()
    for _ in range(200):
        log.consistency(rng.randrange(1, entries + 1), entries)
    consistency_ms = (time.perf_counter() - t0) / 200 * 1000
    t0 = time.perf_counter()
    verify_log(log, public_key=signer.public_key())
    verify_s = time.perf_counter() - t0
    sample_rows = sum(len(b) for b in sample)
    limit_s = plain_sqlite(workdir / "plain.sqlite", sample)
    size_mb = (workdir / "bench.auditlog").stat().st_size / 1e6
    log.close()
    return {
        "entries": entries,
        "batch": batch,
        "appends_per_s": round(entries / append_s),
        "entry_build_per_s": round(entries / build_s),
        "proof_ms": round(proof_ms, 4),
        "proof_hashes": len(proofs[0].hashes),
        "proof_bytes": 32 * len(proofs[0].hashes),
        "consistency_ms": round(consistency_ms, 4),
        "verify_s": round(verify_s, 2),
        "sqlite_insert_per_s": round(sample_rows / limit_s),
        "db_mb": round(size_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, default=None, help="Work directory (default: tmp).")
    parser.add_argument(
        "--pg-dsn", default=None, help="Also measure appends into this PostgreSQL database."
    )
    parser.add_argument("--pg-entries", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        result = run(args.entries, args.batch, Path(tmp))
    if args.pg_dsn:
        result["pg_appends_per_s"] = round(
            postgres_appends(args.pg_dsn, args.pg_entries, args.batch)
        )
    if args.json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(
        f"{'ratio_to_limit':<{width}}  "
        f"{result['appends_per_s'] / result['sqlite_insert_per_s']:.2f}"
    )


if __name__ == "__main__":
    main()
