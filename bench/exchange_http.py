"""CPU per request of the gateway's HTTP client: aiohttp ``ClientSession`` (the settings the
gateway used) against ``lienthong.exchange.httpclient.Client``, plain HTTP and TLS 1.3; with
``--servers`` also the server side: aiohttp's low-level server (the settings the gateway used),
the gateway's own ``lienthong.exchange.httpserver`` and a bare ``httptools`` protocol server
(the floor: parse and answer, nothing else), all loaded by ``wrk``.

    python bench/exchange_http.py [--json] [--requests 20000] [--rounds 2] [--servers]

A raw asyncio server in another process answers every request with the same 1 kB response (a
0.7 kB signature-sized header and a small JSON body), so the figure is the client's own CPU
(``time.process_time`` of the client process) per request, on uvloop as in the gateways.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

SERVER = r"""
import asyncio, ssl, sys, uvloop
BODY = b'{"ok":true,"data":"' + b"x" * 200 + b'"}'
RESP = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-LT-Response: " + b"a" * 700
        + b"\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY

class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""

    def data_received(self, data):
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self.buf[:end].split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            self.transport.write(RESP)

async def main():
    ctx = None
    if sys.argv[2] != "-":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answer, "127.0.0.1", int(sys.argv[1]), ssl=ctx)
    await server.serve_forever()

uvloop.run(main())
"""

SERVERS = r"""
import asyncio, sys, uvloop
BODY = b'{"ok":true,"data":"' + b"x" * 200 + b'"}'
HEADERS = {"X-LT-Response": "a" * 700, "Content-Type": "application/octet-stream"}

async def aiohttp_server(port):
    from aiohttp import web

    async def handle(request):
        if request.body_exists:
            async for _ in request.content.iter_any():
                pass
        return web.Response(status=200, body=BODY, headers=HEADERS)

    server = web.Server(handle, max_field_size=16384, keepalive_timeout=30.0,
                        read_bufsize=1 << 18, access_log=None)
    return await asyncio.get_running_loop().create_server(server, "127.0.0.1", port)

async def httptools_server(port):
    import httptools

    class Serve(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.parser = transport, httptools.HttpRequestParser(self)

        def data_received(self, data):
            self.parser.feed_data(data)

        def on_message_begin(self):
            self.url, self.headers, self.body = b"", {}, []

        def on_url(self, url):
            self.url += url

        def on_header(self, name, value):
            self.headers[name.decode("latin-1").lower()] = value.decode()

        def on_body(self, body):
            self.body.append(body)

        def on_message_complete(self):
            keep = self.parser.should_keep_alive()
            asyncio.get_running_loop().create_task(self.answer(keep))

        async def answer(self, keep):
            head = "".join(["HTTP/1.1 200 OK\r\nServer: lienthong\r\n",
                            *(f"{k}: {v}\r\n" for k, v in HEADERS.items()),
                            f"Content-Length: {len(BODY)}\r\n\r\n"])
            self.transport.write(head.encode() + BODY)
            if not keep:
                self.transport.close()

    return await asyncio.get_running_loop().create_server(Serve, "127.0.0.1", port)

async def lienthong_server(port):
    from lienthong.exchange.httpserver import Connections, Response, ServerSettings

    async def handle(request):
        if request.body_exists:
            async for _ in request.chunks():
                pass
        return Response(status=200, body=BODY, headers=dict(HEADERS))

    def on_error(conn, status, exc):
        return Response(status=status)

    settings = ServerSettings(header_timeout=10.0, max_field_bytes=16384, max_head_bytes=65536)
    factory = Connections(handle, on_error, settings)
    return await asyncio.get_running_loop().create_server(factory, "127.0.0.1", port)

async def main():
    make = {"aiohttp": aiohttp_server, "httptools": httptools_server,
            "lienthong": lienthong_server}[sys.argv[1]]
    server = await make(int(sys.argv[2]))
    await server.serve_forever()

uvloop.run(main())
"""

HEADERS = {"X-LT-Request": "t" * 900, "Content-Type": "application/octet-stream"}
BODY = b'{"q":1}'


def _self_signed(workdir: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _client_ctx(cert: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cert)
    ctx.check_hostname = False
    return ctx


async def _measure(which: str, port: int, ctx: ssl.SSLContext | None, n: int, conc: int) -> float:
    import aiohttp
    from yarl import URL

    from lienthong.exchange.httpclient import Client

    scheme = "https" if ctx is not None else "http"
    one: Callable[[], Awaitable[None]]
    if which == "aiohttp":
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, ssl=ctx or True, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=30),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            read_bufsize=1 << 18,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )
        url = URL(f"{scheme}://127.0.0.1:{port}/r1/x?y", encoded=True)

        async def one() -> None:
            resp = await session.request("POST", url, headers=HEADERS, data=BODY)
            await resp.read()
            resp.release()

        close: Callable[[], Awaitable[None]] = session.close
    else:
        client = Client(ctx, connect_timeout=5, read_timeout=30)

        async def one() -> None:
            resp = await client.request("POST", scheme, "127.0.0.1", port, "/r1/x?y", HEADERS, BODY)
            await resp.read()
            resp.release()

        close = client.close

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await asyncio.gather(*(worker(50) for _ in range(conc)))  # connections open, caches warm
    cpu = time.process_time()
    await asyncio.gather(*(worker(n // conc) for _ in range(conc)))
    used = time.process_time() - cpu
    await close()
    return round(used / (n // conc * conc) * 1e6, 1)


def run(requests: int, rounds: int) -> dict[str, list[float]]:
    import uvloop

    from lienthong.exchange.processes import wait_port
    from lienthong.ports import free_port

    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="lt-http-") as tmp:
        cert, key = _self_signed(Path(tmp))
        ports = {"plain": free_port(), "tls": free_port()}
        servers = [
            subprocess.Popen([sys.executable, "-c", SERVER, str(ports["plain"]), "-", "-"]),
            subprocess.Popen(
                [sys.executable, "-c", SERVER, str(ports["tls"]), str(cert), str(key)]
            ),
        ]
        try:
            for port in ports.values():
                wait_port(port)
            cases = [("plain", 32), ("tls", 32), ("tls", 1)]
            for _ in range(rounds):  # alternated, so both clients see the same load
                for which in ("aiohttp", "lean"):
                    for mode, conc in cases:
                        ctx = _client_ctx(cert) if mode == "tls" else None
                        n = requests if conc > 1 else requests // 4
                        us = uvloop.run(_measure(which, ports[mode], ctx, n, conc))
                        out.setdefault(f"{which}_{mode}_c{conc}_cpu_us", []).append(us)
        finally:
            for server in servers:
                server.terminate()
                server.wait()
    out["load_average_1min"] = [round(os.getloadavg()[0], 2)]
    return out


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_servers(rounds: int, seconds: int = 4) -> dict[str, list[float]]:
    """Server CPU µs per request under ``wrk`` (32 connections, POST with a 0.9 kB header)."""
    from lienthong.exchange.processes import wait_port
    from lienthong.ports import free_port

    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="lt-http-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.body = \'{"q":1}\'\n'
            'wrk.headers["X-LT-Request"] = string.rep("t", 900)\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        for _ in range(rounds):
            for which in ("aiohttp", "lienthong", "httptools"):
                port = free_port()
                server = subprocess.Popen([sys.executable, "-c", SERVERS, which, str(port)])
                try:
                    wait_port(port)
                    before = _cpu_s(server.pid)
                    text = subprocess.run(
                        [
                            "wrk",
                            "-t1",
                            "-c32",
                            f"-d{seconds}s",
                            "-s",
                            str(script),
                            f"http://127.0.0.1:{port}/r1/x",
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    used = _cpu_s(server.pid) - before
                finally:
                    server.terminate()
                    server.wait()
                count = int(text.split(" requests in ")[0].split()[-1])
                out.setdefault(f"server_{which}_cpu_us", []).append(round(used / count * 1e6, 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--servers", action="store_true", help="also the server side (wrk)")
    args = parser.parse_args()
    if args.requests < 200 or args.rounds < 1:
        parser.error("--requests must be at least 200 and --rounds at least 1")
    if args.servers and not shutil.which("wrk"):
        parser.error("--servers needs wrk")
    result = run(args.requests, args.rounds)
    if args.servers:
        result.update(run_servers(args.rounds))
    if args.json:
        print(json.dumps(result))
        return
    for key, values in result.items():
        print(f"{key:36} {' '.join(str(v) for v in values)}")


if __name__ == "__main__":
    main()
