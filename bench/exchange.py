"""Exchange throughput and latency: direct call vs two gateways vs a relay at MAT.

    python bench/exchange.py [--json] [--seconds 5] [--connections 32]

Everything runs on this machine (127.0.0.1): the sample service, the gateways (real
processes, mutual TLS 1.3 between them) and the load generator (``wrk`` when installed, else
an aiohttp client). Rows:

- ``direct_rps``: the service endpoint alone (the peer to compare with);
- ``gateway_rps``: information system → client gateway → provider gateway → service, PUBLIC
  (signed request and response, direct link);
- ``relay_mat_rps``: the same through the national platform at MAT (hybrid ECDSA + ML-DSA
  signatures, end-to-end encrypted body, signed hop receipt);
- ``p50_added_ms``: median latency added by the two gateways, one request at a time;
- ``p99_ms``: 99th percentile latency of the gateway run under load;
- ``large_body_mb_per_s``: one 100 MB upload through the two gateways at PERSONAL (end-to-end
  encrypted, streamed record by record); ``large_body_plain_mb_per_s`` the same at PUBLIC
  (plaintext: hashed before signing, so spooled to disk at both gateways);
- ``p50_added_ms_no_fsync``: ``p50_added_ms`` again with the message log in JSON lines instead
  of the audit log — the share of the durable log write (one fsync per node) in the latency.

Figures on a shared 2-core machine are provisional.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from lienthong.exchange.processes import Running
from lienthong.exchange.testbed import (
    GIAMDINH,
    SVC_PUBLIC,
    SVC_SECRET,
    SVC_SINK,
    SVC_UPLOAD,
    build_testbed,
    demo_spec,
)

# A plain one-hop proxy (no TLS, no signing) per HTTP stack, to choose the stack by measuring.
PROXY = r"""
import asyncio, sys
stack, listen, target = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
URL = f"http://127.0.0.1:{target}/ping"
if stack == "aiohttp":
    import aiohttp, uvloop
    from aiohttp import web

    async def main():
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))

        async def h(request):
            async with session.get(URL) as r:
                return web.Response(body=await r.read(), content_type="application/json")

        app = web.Application()
        app.router.add_get("/ping", h)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", listen).start()
        await asyncio.Event().wait()

    uvloop.run(main())
else:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    clients = {}

    async def h(request):
        if stack == "uvicorn-httpx":
            import httpx
            if not clients:
                clients["c"] = httpx.AsyncClient(limits=httpx.Limits(max_connections=512))
            body = (await clients["c"].get(URL)).content
        else:
            import aiohttp
            if not clients:
                clients["c"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
            async with clients["c"].get(URL) as r:
                body = await r.read()
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/ping", h)])
    uvicorn.run(app, host="127.0.0.1", port=listen, log_level="warning", loop="uvloop")
"""


def compare_stacks(seconds: float, conns: int, workdir: Path) -> dict[str, float]:
    """Requests/s of a one-hop proxy in front of the sample service, per server/client stack."""
    import sys

    from lienthong.exchange.processes import wait_port
    from lienthong.exchange.testbed import free_port

    svc = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lienthong.exchange.sample_service", "--port", str(svc)],
            stdout=subprocess.DEVNULL,
        )
    ]
    out: dict[str, float] = {}
    try:
        wait_port(svc)
        out["direct"] = load(f"http://127.0.0.1:{svc}/ping", seconds, conns, workdir)["rps"]
        for stack in ("aiohttp", "uvicorn-aiohttp", "uvicorn-httpx"):
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-c", PROXY, stack, str(port), str(svc)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(proc)
            wait_port(port, proc=proc)
            out[stack] = load(f"http://127.0.0.1:{port}/ping", seconds, conns, workdir)["rps"]
            proc.terminate()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
    return {k: round(v) for k, v in out.items()}


HEADERS = {"X-LT-Client": GIAMDINH, "X-LT-Purpose": "benchmark", "X-LT-Legal-Basis": "test"}
LIMITS = {"max_body_bytes": 2 << 30}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(
    url: str, seconds: float, conns: int, workdir: Path, post: bytes | None = None
) -> dict[str, float]:
    script = workdir / "wrk.lua"
    lines = [f'wrk.headers["{k}"] = "{v}"' for k, v in HEADERS.items()]
    if post is not None:
        lines += ['wrk.method = "POST"', f"wrk.body = {json.dumps(post.decode())}"]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{conns}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk printed no rate: {out[-300:]}")
    rps = float(found.group(1))
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": _ms(pct.get("50", "")),
        "p99_ms": _ms(pct.get("99", "")),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


async def _aio_load(url: str, seconds: float, conns: int, post: bytes | None) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns)) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.request(
                    "POST" if post else "GET", url, headers=HEADERS, data=post
                ) as r:
                    await r.read()
                latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(conns)))
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "non_2xx": 0.0,
    }


def load(
    url: str, seconds: float, conns: int, workdir: Path, post: bytes | None = None
) -> dict[str, float]:
    if shutil.which("wrk"):
        return wrk(url, seconds, conns, workdir, post)
    return asyncio.run(_aio_load(url, seconds, conns, post))


async def _sequential_p50(url: str, n: int) -> float:
    async with aiohttp.ClientSession() as session:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            async with session.get(url, headers=HEADERS) as r:
                await r.read()
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times[10:])


async def _upload(url: str, size: int) -> float:
    chunk = b"\x07" * (1 << 20)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size >> 20):
            yield chunk

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        t0 = time.perf_counter()
        async with session.post(url, headers=HEADERS, data=body()) as r:
            answer = await r.json()
        elapsed = time.perf_counter() - t0
    if answer.get("bytes") != size:
        raise RuntimeError(f"large body: {answer}")
    return size / elapsed / 1e6


def run(seconds: float, conns: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lt-bench-") as tmp:
        work = Path(tmp)
        direct_tb = build_testbed(work / "direct", demo_spec(direct=True), limits=LIMITS)
        with Running(direct_tb) as procs:
            procs.start_service()
            procs.start_gateway("BCA-GW")
            procs.start_gateway("BHXH-GW")
            svc = f"http://127.0.0.1:{direct_tb.service_port}/ping"
            gw = f"{direct_tb.internal_url('BHXH-GW')}/r1/{SVC_PUBLIC}"
            direct = load(svc, seconds, conns, work)
            gateway = load(gw, seconds, conns, work)
            p50_direct = asyncio.run(_sequential_p50(svc, 300))
            p50_gateway = asyncio.run(_sequential_p50(gw, 300))
            base = direct_tb.internal_url("BHXH-GW")
            large = asyncio.run(_upload(f"{base}/r1/{SVC_UPLOAD}", 100 << 20))
            large_plain = asyncio.run(_upload(f"{base}/r1/{SVC_SINK}", 100 << 20))
        fast_tb = build_testbed(
            work / "jsonl", demo_spec(direct=True), limits=LIMITS, message_log="jsonl"
        )
        with Running(fast_tb) as procs:
            procs.start_service()
            procs.start_gateway("BCA-GW")
            procs.start_gateway("BHXH-GW")
            gw = f"{fast_tb.internal_url('BHXH-GW')}/r1/{SVC_PUBLIC}"
            p50_fast = asyncio.run(_sequential_p50(gw, 300))
        relay_tb = build_testbed(work / "relay", demo_spec(), limits=LIMITS)
        with Running(relay_tb) as procs:
            procs.start_all()
            url = f"{relay_tb.internal_url('BHXH-GW')}/r1/{SVC_SECRET}"
            relay = load(url, seconds, conns, work, post=b'{"ho_so":"mat"}')
    return {
        "direct_rps": round(direct["rps"]),
        "gateway_rps": round(gateway["rps"]),
        "gateway_share_of_direct": round(gateway["rps"] / direct["rps"], 3),
        "relay_mat_rps": round(relay["rps"]),
        "p50_added_ms": round(p50_gateway - p50_direct, 3),
        "p99_ms": round(gateway["p99_ms"], 2),
        "relay_mat_p99_ms": round(relay["p99_ms"], 2),
        "p50_added_ms_no_fsync": round(p50_fast - p50_direct, 3),
        "large_body_mb_per_s": round(large, 1),
        "large_body_plain_mb_per_s": round(large_plain, 1),
        "errors": {"gateway_non_2xx": gateway["non_2xx"], "relay_non_2xx": relay["non_2xx"]},
        "load_generator": "wrk" if shutil.which("wrk") else "aiohttp",
        "connections": conns,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--stacks", action="store_true", help="also compare HTTP server/client stacks (proxy)"
    )
    args = parser.parse_args()
    result = run(args.seconds, args.connections)
    if args.stacks:
        with tempfile.TemporaryDirectory(prefix="lt-stacks-") as tmp:
            result["stacks_proxy_rps"] = compare_stacks(args.seconds, args.connections, Path(tmp))
    if args.json:
        print(json.dumps(result))
        return
    targets = {"gateway_rps": 2000, "relay_mat_rps": 1000, "large_body_mb_per_s": 100}
    for key, value in result.items():
        mark = ""
        if key in targets:
            mark = "ok" if value >= targets[key] else f"below target {targets[key]}"
        if key == "p50_added_ms":
            mark = "ok" if value <= 2 else "below target (≤ 2 ms)"
        print(f"{key:28} {value!s:>12}  {mark}")


if __name__ == "__main__":
    main()
