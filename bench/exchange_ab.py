"""A/B of two versions of the exchange code in the same time window: both versions' testbeds
run at once (idle while the other is loaded) and the load alternates between them, A B B A …,
so both see the same load from the rest of a shared machine.

    python bench/exchange_ab.py A_SRC B_SRC [--rounds 8] [--seconds 4] [--json]

``A_SRC`` and ``B_SRC`` are ``src`` folders of two checkouts (e.g. from ``git archive``); each
side's processes run with ``PYTHONPATH`` pointing at its folder. Per round and side: 32
connections of ``wrk`` (or the built-in generator) through the two gateways at PUBLIC and
through the relay at MAT, the CPU microseconds each process spent per exchange, and the p50
latency the gateways add (one call at a time, alternated with direct calls). Prints min–max
and median per side.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from lienthong.exchange.processes import Running
from lienthong.exchange.testbed import SVC_PUBLIC, SVC_SECRET, build_testbed, demo_spec

# the sibling bench script (load generators, CPU per exchange), loaded by path
_SPEC = importlib.util.spec_from_file_location(
    "bench_exchange", Path(__file__).with_name("exchange.py")
)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def _round(beds: tuple[Any, ...], seconds: float, work: Path) -> dict[str, Any]:
    direct, direct_procs, relay, relay_procs = beds
    gateway = f"{direct.internal_url('BHXH-GW')}/r1/{SVC_PUBLIC}"
    service = f"http://127.0.0.1:{direct.service_port}/ping"
    public = bench.load_with_cpu(direct_procs, gateway, seconds, 32, work)
    mat_url = f"{relay.internal_url('BHXH-GW')}/r1/{SVC_SECRET}"
    mat = bench.load_with_cpu(relay_procs, mat_url, seconds, 32, work, post=b'{"ho_so":"mat"}')
    p50_direct, p50_gateway = asyncio.run(bench._paired_p50(service, gateway, 200))
    return {
        "gateway_rps": public["rps"],
        "cpu_us_public": public["cpu_us"],
        "relay_mat_rps": mat["rps"],
        "cpu_us_mat": mat["cpu_us"],
        "p50_added_ms": round(p50_gateway - p50_direct, 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def run(sources: dict[str, str], rounds: int, seconds: float) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in sources}
    running: list[Running] = []
    with tempfile.TemporaryDirectory(prefix="lt-ab-") as tmp:
        work = Path(tmp)
        beds: dict[str, tuple[Any, ...]] = {}
        try:
            for side, src in sources.items():
                os.environ["PYTHONPATH"] = src  # read when each process is spawned
                limits = bench.LIMITS
                direct = build_testbed(
                    work / f"direct-{side}", demo_spec(direct=True), limits=limits
                )
                relay = build_testbed(work / f"relay-{side}", demo_spec(), limits=limits)
                direct_procs, relay_procs = Running(direct), Running(relay)
                running += [direct_procs, relay_procs]
                bench._start_direct(direct_procs)
                relay_procs.start_all()
                beds[side] = (direct, direct_procs, relay, relay_procs)
            os.environ.pop("PYTHONPATH", None)
            order = list(sources)
            for i in range(rounds):
                for side in order if i % 2 == 0 else reversed(order):
                    results[side].append(_round(beds[side], seconds, work))
        finally:
            for procs in running:
                procs.stop_all()
    return results


def summary(rows: list[dict[str, Any]]) -> dict[str, str]:
    def spread(values: list[float]) -> str:
        return f"{min(values)}–{max(values)}, median {statistics.median(values)}"

    out = {
        key: spread([row[key] for row in rows])
        for key in ("gateway_rps", "relay_mat_rps", "p50_added_ms", "load_average_1min")
    }
    for figure in ("cpu_us_public", "cpu_us_mat"):
        for process in rows[0][figure]:
            out[f"{figure}.{process}"] = spread([row[figure][process] for row in rows])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a_src", type=Path)
    parser.add_argument("b_src", type=Path)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--json", action="store_true", help="print every run as JSON")
    args = parser.parse_args()
    for src in (args.a_src, args.b_src):
        if not (src / "lienthong" / "exchange").is_dir():
            parser.error(f"{src}: not a src folder with lienthong/exchange")
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be at least 1 and --seconds positive")
    sources = {"A": str(args.a_src.resolve()), "B": str(args.b_src.resolve())}
    results = run(sources, args.rounds, args.seconds)
    if args.json:
        print(json.dumps(results))
        return
    for side, rows in results.items():
        print(f"{side} ({sources[side]}, {len(rows)} runs)")
        for key, text in summary(rows).items():
            print(f"  {key:34} {text}")


if __name__ == "__main__":
    main()
