"""Synthetic-federation generation speed, beside the physical limit of writing the same rows.

    python bench/synth.py [--json] [--citizens 200000] [--seed 1]

Runs ``lienthong synth`` (all four sources to SQLite, the tax exports and the ground truth)
into a throw-away directory and reports citizens per second (target ≥ 8,334: one million in
under two minutes) with the time spent generating and writing. ``limit_*`` is a plain SQLite
``executemany`` of the same number of source rows (pre-built 12-column tuples, same bulk
pragmas), measured in the same run: the floor below which no generator can write. Figures on
a shared 2-core machine are provisional.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lienthong.synth.config import SynthConfig
from lienthong.synth.generator import generate

TARGET_CITIZENS_PER_S = 8_334


def sqlite_limit(rows: int, folder: Path) -> float:
    """Seconds to bulk-insert ``rows`` ready-made rows into one SQLite table (the floor)."""
    row = ("012345678901", "Nguyễn Văn An", "1990-01-01", "1", "00004", "Số 12 Lê Lợi",
           "00004", "Số 12 Lê Lợi", "01", "00", "VN", "0912345678")  # fmt: skip
    data = [(f"{i:012d}", *row[1:]) for i in range(rows)]
    path = folder / "limit.sqlite"
    start = time.perf_counter()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("BEGIN")
    con.execute(
        f"CREATE TABLE t (k TEXT PRIMARY KEY, {', '.join(f'c{i} TEXT' for i in range(11))})"
    )
    con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * 12)})", data)
    con.execute("COMMIT")
    con.close()
    return time.perf_counter() - start


def measure(citizens: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lienthong-bench-synth-") as tmp:
        report = generate(SynthConfig(citizens=citizens, seed=seed), Path(tmp) / "out")
        rows = sum(s["rows"] for s in report["sources"].values())
        limit_s = sqlite_limit(rows, Path(tmp))
    elapsed = report["elapsed_s"]
    return {
        "citizens": citizens,
        "elapsed_s": elapsed,
        "build_s": report["build_s"],
        "write_s": round(elapsed - report["build_s"], 3),
        "citizens_per_s": round(citizens / elapsed),
        "target_citizens_per_s": TARGET_CITIZENS_PER_S,
        "meets_target": citizens / elapsed >= TARGET_CITIZENS_PER_S,
        "projected_1m_s": round(elapsed * 1_000_000 / citizens, 1),
        "source_rows": rows,
        "source_rows_per_s": round(rows / elapsed),
        "rows": {
            f"{name}.{table}": n
            for name, s in report["sources"].items()
            for table, n in s["tables"].items()
        },
        "links": report["links"],
        "defects": sum(report["defects"].values()),
        "limit_sqlite_executemany_s": round(limit_s, 3),
        "limit_rows_per_s": round(rows / limit_s),
    }


def _print(r: dict[str, Any]) -> None:
    print(f"lienthong synth: {r['citizens']:,} citizens")
    print(f"{'':<34}{'value':>14}")
    lines = [
        ("elapsed (s)", r["elapsed_s"]),
        ("  generating in memory (s)", r["build_s"]),
        ("  writing SQLite, exports, truth (s)", r["write_s"]),
        ("citizens per second", f"{r['citizens_per_s']:,}"),
        ("  target (1M in 2 min)", f"{r['target_citizens_per_s']:,}"),
        ("projected for 1M citizens (s)", r["projected_1m_s"]),
        ("source rows", f"{r['source_rows']:,}"),
        ("source rows per second", f"{r['source_rows_per_s']:,}"),
        ("limit: SQLite executemany (s)", r["limit_sqlite_executemany_s"]),
        ("limit: rows per second", f"{r['limit_rows_per_s']:,}"),
    ]
    for label, value in lines:
        print(f"{label:<34}{value!s:>14}")
    for table, n in r["rows"].items():
        print(f"  {table:<32}{n:>14,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--citizens", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.citizens < 1:
        parser.error("--citizens must be at least 1")
    result = measure(args.citizens, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
