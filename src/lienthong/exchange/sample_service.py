"""A small real service endpoint for tests, the benchmark and the demo (not for production).

It plays the population register (Cơ sở dữ liệu quốc gia về dân cư) with synthetic people and
records every request it fully received (JSON lines) so security tests can prove that nothing
reached it. Run: ``python -m lienthong.exchange.sample_service --port P [--record FILE]``.

Routes: GET /residence/{personal id} (a synthetic residence, JSON), GET /ping, POST /echo[/…]
(the body back), POST /sink (size and SHA-256 of the body), GET /blob?bytes=N (N bytes). In a
gateway config give the route as the service's base URL, ``http://127.0.0.1:P/residence``:
callers then send ``…/residence-lookup/{personal id}``, whose first segment
``audit.subject_from: path`` reads as the citizen.
It prints ``{"ready": true, "port": P}`` once listening (``--port 0``: a free port, printed);
a port it cannot listen on is one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

_RESIDENCES = [
    "Phường Ba Đình, Thành phố Hà Nội",
    "Phường Sài Gòn, Thành phố Hồ Chí Minh",
    "Phường Hải Châu, Thành phố Đà Nẵng",
    "Xã Tân Hiệp, Tỉnh An Giang",
]


def build_app(record: Path | None) -> web.Application:
    log = record.open("a", encoding="utf-8") if record else None
    faults = os.environ.get("LIENTHONG_SAMPLE_FAULTS") == "1"  # never set outside fault tests

    def remember(request: web.Request, size: int, digest: str = "") -> None:
        if log is not None:
            entry: dict[str, Any] = {
                "method": request.method,
                "path": request.path_qs,
                "raw_path": request.raw_path,
                "bytes": size,
                "sha256": digest,
                "client": request.headers.get("X-LT-Client"),
                "purpose": request.headers.get("X-LT-Purpose"),
            }
            log.write(json.dumps(entry, ensure_ascii=False) + "\n")
            log.flush()

    async def ping(request: web.Request) -> web.Response:
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    async def residence(request: web.Request) -> web.Response:
        pid = request.match_info["pid"]
        remember(request, 0)
        place = _RESIDENCES[int(hashlib.sha256(pid.encode()).hexdigest(), 16) % len(_RESIDENCES)]
        return web.json_response({"so_dinh_danh": pid, "noi_thuong_tru": place})

    async def sink(request: web.Request) -> web.Response:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        remember(request, size, digest.hexdigest())
        return web.json_response({"bytes": size, "sha256": digest.hexdigest()})

    async def echo(request: web.Request) -> web.Response:
        data = await request.read()
        remember(request, len(data), hashlib.sha256(data).hexdigest())
        return web.Response(body=data, content_type=request.content_type)

    async def blob(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("bytes", "0"))
        # fault tests only: the process dies after sending this many bytes of the answer
        die_after = int(request.query.get("die_after", "-1")) if faults else -1
        remember(request, 0)
        out = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        out.content_length = size
        await out.prepare(request)
        chunk, sent = b"\x5a" * (1 << 20), 0
        while sent < size:
            if 0 <= die_after <= sent:
                await out.drain()
                os._exit(1)
            piece = chunk[: min(size - sent, len(chunk))]
            await out.write(piece)
            sent += len(piece)
        await out.write_eof()
        return out

    app = web.Application(client_max_size=1 << 34)
    app.router.add_get("/ping", ping)
    app.router.add_get("/residence/{pid}", residence)
    app.router.add_post("/sink", sink)
    app.router.add_post("/echo", echo)
    app.router.add_post("/echo/{tail:.*}", echo)
    app.router.add_get("/blob", blob)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True, help="Port on 127.0.0.1 (0: any).")
    parser.add_argument("--record", type=Path, help="Append each request received (JSON lines).")
    args = parser.parse_args(argv)
    # bound before "ready" is printed: a port in use is one line and exit 2, not a traceback
    # after a false "ready"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", args.port))
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        print(f"sample service: cannot listen on 127.0.0.1:{args.port}: {reason}", file=sys.stderr)
        sys.exit(2)
    sock.listen(1024)
    print(json.dumps({"ready": True, "port": sock.getsockname()[1]}), flush=True)
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop | None = uvloop.new_event_loop()
    except ImportError:
        loop = None
    web.run_app(
        build_app(args.record),
        loop=loop,
        sock=sock,
        print=None,
        access_log=None,
        handle_signals=True,
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
