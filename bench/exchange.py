"""Exchange throughput and latency: direct call vs two gateways vs a relay at MAT.

    python bench/exchange.py [--json] [--seconds 5] [--connections 32]
                             [--load-generator auto|wrk|builtin] [--stacks]

Everything runs on this machine (127.0.0.1): the sample service, the gateways (real
processes, mutual TLS 1.3 between them) and the load generator (``wrk`` when installed, else
a built-in keep-alive generator on uvloop, ~10 µs CPU per request). Figures:

- ``direct_rps``: the service endpoint alone (the peer to compare with);
- ``gateway_rps``: information system → client gateway → provider gateway → service, PUBLIC
  (signed request and response, direct link, message log in the default durability);
- ``relay_mat_rps``: the same through the national platform at MAT (hybrid ECDSA + ML-DSA
  signatures, end-to-end encrypted body, signed hop receipt);
- ``p50_added_ms``: median latency added by the two gateways, one request at a time
  (gateway and direct calls alternated, so both medians see the same load);
  ``p50_added_ms_power_durability`` the same with ``message_log.durability: power`` (every
  node waits for the fsync of its message-log commit);
- ``p99_ms``: 99th percentile latency of the gateway run under load;
- ``large_body_mb_per_s``: one 100 MB upload through the two gateways at PERSONAL (end-to-end
  encrypted, streamed record by record); ``large_body_plain_mb_per_s`` the same at PUBLIC
  (plaintext: hashed before signing, so spooled to disk at both gateways);
- ``cpu_us_per_exchange``: CPU (user + system, from /proc) each process spent per exchange
  during each run, the load generator included — independent of what else loads the machine;
  ``ceiling_rps_idle_cores`` is what that CPU allows on this machine's cores if nothing else
  ran; ``load_average_1min`` is noted beside the runs;
- ``crypto_us_per_exchange``: the cryptography each process must do per exchange (the
  operations on the code path, ``CRYPTO_OPS``, times each primitive's cost timed in this run
  with the same ``cryptography`` library before and after the runs, the lower of the two:
  ``crypto_primitive_us``), and ``ceiling_rps_crypto_only``: the requests/s
  this machine's cores would allow if the gateways did nothing but that cryptography (the
  service and load generator at their measured CPU) — the physical limit a target is set
  against.

The figures of a shared 2-core machine are provisional: read them with the load averages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

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
    from lienthong.ports import free_port

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


class _LoadConnection(asyncio.Protocol):
    """One keep-alive connection of the built-in load generator: sends the same request again
    as soon as the previous answer is complete (answers must carry Content-Length, as every
    endpoint measured here does). Far cheaper per request than an HTTP client library, so the
    load generator takes less of the 2 cores it shares with what it measures."""

    def __init__(self, request: bytes, deadline: float, stats: dict[str, Any]) -> None:
        self.request, self.deadline, self.stats = request, deadline, stats
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.need = -1  # bytes of the current answer still to come (-1: headers not parsed)
        self.t0 = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport's methods without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.t0 = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need < 0:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buf[:end].decode("latin-1").split("\r\n")
                length = next(
                    (
                        int(h.split(":", 1)[1])
                        for h in head
                        if h.lower().startswith("content-length:")
                    ),
                    None,
                )
                if length is None:
                    self._fail(RuntimeError("answer without Content-Length"))
                    return
                if not head[0].split(" ")[1].startswith("2"):
                    self.stats["non_2xx"] += 1
                self.buf = self.buf[end + 4 :]
                self.need = length
            if len(self.buf) < self.need:
                return
            self.buf = self.buf[self.need :]
            self.need = -1
            now = time.perf_counter()
            self.stats["latencies"].append((now - self.t0) * 1000)
            if now >= self.deadline:
                assert self.transport is not None
                self.transport.close()
                if not self.done.done():
                    self.done.set_result(None)
                return
            self._send()

    def _fail(self, exc: Exception) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed by the server"))


async def _raw_load(url: str, seconds: float, conns: int, post: bytes | None) -> dict[str, float]:
    from urllib.parse import urlsplit

    target = urlsplit(url)
    if target.hostname is None or target.port is None:
        raise ValueError(f"load target needs a host and a port: {url}")
    host, port = target.hostname, target.port
    head = [f"{'POST' if post else 'GET'} {target.path} HTTP/1.1", f"Host: {target.netloc}"]
    head += [f"{k}: {v}" for k, v in HEADERS.items()]
    if post is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(post)}"]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + (post or b"")
    stats: dict[str, Any] = {"latencies": [], "non_2xx": 0}
    loop = asyncio.get_running_loop()
    t_start = time.perf_counter()
    deadline = t_start + seconds
    made = [
        await loop.create_connection(lambda: _LoadConnection(request, deadline, stats), host, port)
        for _ in range(conns)
    ]
    async with asyncio.timeout(seconds + 60):  # a stuck connection fails the run, not hangs it
        await asyncio.gather(*(proto.done for _, proto in made))
    elapsed = time.perf_counter() - t_start
    latencies = sorted(stats["latencies"])
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "non_2xx": float(stats["non_2xx"]),
    }


def _run_async(coro: Any) -> Any:
    """Run on uvloop when installed (as the gateways do)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


GENERATOR = {"name": "auto"}  # --load-generator: auto (wrk when installed), wrk, builtin


def generator() -> str:
    if GENERATOR["name"] == "auto":
        return "wrk" if shutil.which("wrk") else "builtin"
    return GENERATOR["name"]


def load(
    url: str, seconds: float, conns: int, workdir: Path, post: bytes | None = None
) -> dict[str, float]:
    if generator() == "wrk":
        return wrk(url, seconds, conns, workdir, post)
    result: dict[str, float] = _run_async(_raw_load(url, seconds, conns, post))
    return result


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (/proc accounting: independent of load)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _self_and_children_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def load_with_cpu(
    procs: Running, url: str, seconds: float, conns: int, workdir: Path, post: bytes | None = None
) -> dict[str, Any]:
    """``load`` plus the CPU microseconds each process spent per exchange during it (the
    load generator included): the figure that does not depend on what else runs."""
    pids = {name: p.pid for name, p in procs.procs.items() if not name.startswith("link:")}
    before = {name: _cpu_s(pid) for name, pid in pids.items()}
    gen_before = _self_and_children_cpu_s()
    t0 = time.perf_counter()
    result: dict[str, Any] = dict(load(url, seconds, conns, workdir, post))
    elapsed = time.perf_counter() - t0
    gen = _self_and_children_cpu_s() - gen_before
    after = {name: _cpu_s(pid) for name, pid in pids.items()}
    count = max(1.0, result["rps"] * elapsed)
    cpu = {name: round((after[name] - before[name]) / count * 1e6) for name in pids}
    cpu["load_generator"] = round(gen / count * 1e6)
    result["cpu_us"] = cpu
    return result


# Cryptographic operations per exchange on each process's code path, counted with cProfile
# in the gateways of this testbed (2026-12-07, seventh session): PUBLIC signs and verifies
# once per gateway; at MAT the client gateway signs the request (ECDSA + ML-DSA), agrees a
# key (X25519 + ML-KEM-768, three HKDFs), seals the body, verifies the hybrid answer and
# opens it; the relay verifies the hybrid request and signs its ECDSA hop receipt; the
# provider gateway verifies the request and the receipt, decapsulates, opens, seals the
# answer and signs it (hybrid).
CRYPTO_OPS: dict[str, dict[str, dict[str, int]]] = {
    "gateway": {
        "client": {"ecdsa_sign": 1, "ecdsa_verify": 1},
        "provider": {"ecdsa_sign": 1, "ecdsa_verify": 1},
    },
    "relay_mat": {
        "client": {
            "ecdsa_sign": 1,
            "mldsa_sign": 1,
            "ecdsa_verify": 1,
            "mldsa_verify": 1,
            "x25519_generate": 1,
            "x25519_exchange": 1,
            "mlkem_encapsulate": 1,
            "hkdf": 3,
            "aes_gcm": 2,
        },
        "relay": {"ecdsa_verify": 1, "mldsa_verify": 1, "ecdsa_sign": 1},
        "provider": {
            "ecdsa_verify": 2,
            "mldsa_verify": 1,
            "mldsa_sign": 1,
            "ecdsa_sign": 1,
            "x25519_exchange": 1,
            "mlkem_decapsulate": 1,
            "hkdf": 3,
            "aes_gcm": 2,
        },
    },
}


def primitive_costs(rounds: int = 500) -> dict[str, float]:
    """Mean CPU µs of one call of each primitive in ``CRYPTO_OPS`` on this machine (one core)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, mldsa, mlkem, x25519
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    message = os.urandom(1024)  # about a JWS signing input
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_sig = ec_key.sign(message, ec.ECDSA(hashes.SHA256()))
    ml_key = mldsa.MLDSA65PrivateKey.generate()
    ml_sig = ml_key.sign(message)
    x_key = x25519.X25519PrivateKey.generate()
    x_peer = x25519.X25519PrivateKey.generate().public_key()
    kem_key = mlkem.MLKEM768PrivateKey.generate()
    _, kem_ct = kem_key.public_key().encapsulate()
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)
    calls = {
        "ecdsa_sign": lambda: ec_key.sign(message, ec.ECDSA(hashes.SHA256())),
        "ecdsa_verify": lambda: ec_key.public_key().verify(
            ec_sig, message, ec.ECDSA(hashes.SHA256())
        ),
        "mldsa_sign": lambda: ml_key.sign(message),
        "mldsa_verify": lambda: ml_key.public_key().verify(ml_sig, message),
        "x25519_generate": x25519.X25519PrivateKey.generate,
        "x25519_exchange": lambda: x_key.exchange(x_peer),
        "mlkem_encapsulate": lambda: kem_key.public_key().encapsulate(),
        "mlkem_decapsulate": lambda: kem_key.decapsulate(kem_ct),
        "hkdf": lambda: HKDF(hashes.SHA256(), 32, None, b"lt").derive(message[:64]),
        "aes_gcm": lambda: aead.encrypt(nonce, message[:64], None),
    }
    costs = {}
    for name, call in calls.items():
        t0 = time.process_time()
        for _ in range(rounds):
            call()
        # the mean, not the median: ML-DSA signing repeats a variable number of rounds
        # (rejection sampling), and throughput pays the average
        costs[name] = round((time.process_time() - t0) / rounds * 1e6, 1)
    return costs


def crypto_floor(
    costs: dict[str, float], measured: dict[str, dict[str, int]], cores: int
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Per path, the µs of cryptography each role must spend per exchange, and the ceiling in
    requests/s if the gateways spent nothing else (service and load generator as measured)."""
    per_path: dict[str, dict[str, float]] = {}
    ceilings: dict[str, int] = {}
    for path, roles in CRYPTO_OPS.items():
        us = {
            role: round(sum(costs[op] * n for op, n in ops.items()), 1)
            for role, ops in roles.items()
        }
        us["total"] = round(sum(us.values()), 1)
        per_path[path] = us
        rest = measured[path].get("service", 0) + measured[path].get("load_generator", 0)
        ceilings[path] = round(cores * 1e6 / (us["total"] + rest))
    return per_path, ceilings


def _ceiling(cpu: dict[str, int], cores: int) -> int:
    """Requests/s if ``cores`` idle cores ran only this (CPU per exchange, all processes)."""
    total = sum(cpu.values())
    return round(cores * 1e6 / total) if total else 0


async def _paired_p50(direct: str, gateway: str, n: int) -> tuple[float, float]:
    """Median latency of ``direct`` and of ``gateway``, one request at a time, the two
    alternated so both see the same load on a shared machine (the first 10 of each dropped)."""
    async with aiohttp.ClientSession() as session:
        times: dict[str, list[float]] = {direct: [], gateway: []}
        for _ in range(n):
            for url in (direct, gateway):
                t0 = time.perf_counter()
                async with session.get(url, headers=HEADERS) as r:
                    await r.read()
                times[url].append((time.perf_counter() - t0) * 1000)
    return statistics.median(times[direct][10:]), statistics.median(times[gateway][10:])


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


def _start_direct(procs: Running) -> None:
    procs.start_service()
    procs.start_gateway("BCA-GW")
    procs.start_gateway("BHXH-GW")


def run(seconds: float, conns: int) -> dict[str, Any]:
    loads = {"start": os.getloadavg()[0]}
    costs_before = primitive_costs()
    with tempfile.TemporaryDirectory(prefix="lt-bench-") as tmp:
        work = Path(tmp)
        direct_tb = build_testbed(work / "direct", demo_spec(direct=True), limits=LIMITS)
        with Running(direct_tb) as procs:
            _start_direct(procs)
            svc = f"http://127.0.0.1:{direct_tb.service_port}/ping"
            gw = f"{direct_tb.internal_url('BHXH-GW')}/r1/{SVC_PUBLIC}"
            direct = load_with_cpu(procs, svc, seconds, conns, work)
            gateway = load_with_cpu(procs, gw, seconds, conns, work)
            loads["gateway_run"] = os.getloadavg()[0]
            p50_direct, p50_gateway = asyncio.run(_paired_p50(svc, gw, 500))
            base = direct_tb.internal_url("BHXH-GW")
            large = asyncio.run(_upload(f"{base}/r1/{SVC_UPLOAD}", 100 << 20))
            large_plain = asyncio.run(_upload(f"{base}/r1/{SVC_SINK}", 100 << 20))
        power_tb = build_testbed(
            work / "power",
            demo_spec(direct=True),
            limits=LIMITS,
            message_log={"kind": "audit", "durability": "power"},
        )
        with Running(power_tb) as procs:
            _start_direct(procs)
            gw = f"{power_tb.internal_url('BHXH-GW')}/r1/{SVC_PUBLIC}"
            svc = f"http://127.0.0.1:{power_tb.service_port}/ping"
            p50_power_direct, p50_power = asyncio.run(_paired_p50(svc, gw, 300))
        relay_tb = build_testbed(work / "relay", demo_spec(), limits=LIMITS)
        with Running(relay_tb) as procs:
            procs.start_all()
            url = f"{relay_tb.internal_url('BHXH-GW')}/r1/{SVC_SECRET}"
            relay = load_with_cpu(procs, url, seconds, conns, work, post=b'{"ho_so":"mat"}')
            loads["relay_run"] = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    measured = {"gateway": gateway["cpu_us"], "relay_mat": relay["cpu_us"]}
    # timed before and after the runs; each primitive's lower figure (the machine drifts)
    costs = {op: min(us, costs_before[op]) for op, us in primitive_costs().items()}
    crypto_us, crypto_ceiling = crypto_floor(costs, measured, cores)
    return {
        "direct_rps": round(direct["rps"]),
        "gateway_rps": round(gateway["rps"]),
        "gateway_share_of_direct": round(gateway["rps"] / direct["rps"], 3),
        "relay_mat_rps": round(relay["rps"]),
        "p50_added_ms": round(p50_gateway - p50_direct, 3),
        "p99_ms": round(gateway["p99_ms"], 2),
        "relay_mat_p99_ms": round(relay["p99_ms"], 2),
        "p50_added_ms_power_durability": round(p50_power - p50_power_direct, 3),
        "large_body_mb_per_s": round(large, 1),
        "large_body_plain_mb_per_s": round(large_plain, 1),
        "cpu_us_per_exchange": {
            "direct": direct["cpu_us"],
            "gateway": gateway["cpu_us"],
            "relay_mat": relay["cpu_us"],
        },
        "ceiling_rps_idle_cores": {
            "cores": cores,
            "gateway": _ceiling(gateway["cpu_us"], cores),
            "relay_mat": _ceiling(relay["cpu_us"], cores),
        },
        "crypto_primitive_us": costs,
        "crypto_us_per_exchange": crypto_us,
        "ceiling_rps_crypto_only": crypto_ceiling,
        "load_average_1min": {k: round(v, 2) for k, v in loads.items()},
        "errors": {"gateway_non_2xx": gateway["non_2xx"], "relay_non_2xx": relay["non_2xx"]},
        "load_generator": generator(),
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
    parser.add_argument(
        "--load-generator",
        choices=["auto", "wrk", "builtin"],
        default="auto",
        help="wrk when installed (auto), or the built-in keep-alive generator",
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.connections <= 0:
        parser.error("--seconds and --connections must be positive")
    if args.load_generator == "wrk" and not shutil.which("wrk"):
        parser.error("--load-generator wrk: wrk is not installed")
    GENERATOR["name"] = args.load_generator
    result = run(args.seconds, args.connections)
    if args.stacks:
        with tempfile.TemporaryDirectory(prefix="lt-stacks-") as tmp:
            result["stacks_proxy_rps"] = compare_stacks(args.seconds, args.connections, Path(tmp))
    if args.json:
        print(json.dumps(result))
        return
    print(table(result))


TARGETS = {
    "gateway_rps": (">=", 2000),
    "gateway_share_of_direct": (">=", 0.15),
    "relay_mat_rps": (">=", 1000),
    "p50_added_ms": ("<=", 2.0),
    "large_body_mb_per_s": (">=", 100),
}


def table(result: dict[str, Any]) -> str:
    """The human-readable form: one line per figure, target and verdict where there is one."""
    lines = [f"{'figure':32} {'value':>12}  target"]
    for key, value in result.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                lines.append(f"{key + '.' + sub:32} {json.dumps(inner):>12}")
            continue
        mark = ""
        if key in TARGETS:
            op, goal = TARGETS[key]
            ok = value >= goal if op == ">=" else value <= goal
            mark = f"{op} {goal}  {'ok' if ok else 'BELOW TARGET'}"
        lines.append(f"{key:32} {value!s:>12}  {mark}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
