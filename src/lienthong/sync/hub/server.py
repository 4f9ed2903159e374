"""The hub as a process: ``POST /sync/v1/batches`` (envelope in, signed ack out).

Rejections are uniform to the sender (HTTP 403 ``{"error": "rejected"}`` for trust failures,
409 for sequence conflicts, 400 for malformed batches); the hub's log keeps the detail.

Behind a gateway (the hub's sync service, ``docs/sync.md``) the same endpoint is the service
base URL ``http://HOST:PORT/sync/v1``; the provider gateway adds the authenticated calling
subsystem (``X-LT-Client``) and message id (``X-LT-Id``). With ``clients`` (source id →
subsystem id) the hub also refuses a batch of a bound source that did not arrive from its
subsystem — on top of the batch's own signature, which is always verified before anything
is applied. With ``max_level`` (the level of the hub's sync service in the federation
configuration) a batch classified above it is refused: data never travels on a channel
cleared for less (no write-down).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lienthong.classification import Level
from lienthong.errors import BackendError, InputError, IntegrityError, TrustError
from lienthong.sync.envelope import parse_header
from lienthong.sync.hub.service import Hub
from lienthong.sync.transport import BATCH_PATH

MAX_BATCH = 256 * 1024 * 1024
log = logging.getLogger("lienthong.sync.hub")


def _refusal(
    body: bytes, caller: str | None, clients: Mapping[str, str], max_level: Level | None
) -> str | None:
    """Why the channel may not carry this batch (None: it may; the hub then verifies it)."""
    try:
        header = parse_header(body)[0]
    except IntegrityError:
        return None  # malformed: hub.receive refuses it with the precise code
    source = str(header.get("source"))
    bound = clients.get(source)
    if bound is not None and bound != caller:
        return f"source {source} is bound to {bound}, the call came from {caller}"
    if max_level is not None:
        try:
            level = Level.parse(str(header.get("classification")))
        except InputError:
            return f"source {source}: unknown classification"
        if level > max_level:
            return f"source {source}: batch {level.name} above the channel's {max_level.name}"
    return None


async def _read_capped(request: Request) -> bytes | None:
    """The request body, or None as soon as it is known to exceed :data:`MAX_BATCH` (a
    declared length above it is refused before reading; a longer stream is cut off)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BATCH:
        return None
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > MAX_BATCH:
            return None
        parts.append(part)
    return b"".join(parts)


def make_app(
    hub: Hub, clients: Mapping[str, str] | None = None, max_level: Level | None = None
) -> Starlette:
    async def batches(request: Request) -> Response:
        body = await _read_capped(request)
        if body is None:
            return JSONResponse({"error": "too_large"}, status_code=413)
        caller, message = request.headers.get("x-lt-client"), request.headers.get("x-lt-id")
        why = _refusal(body, caller, clients or {}, max_level)
        if why is not None:
            log.warning("rejected sync batch (message %s): %s", message, why)
            return JSONResponse({"error": "rejected"}, status_code=403)
        try:
            ack = await run_in_threadpool(hub.receive, body)
        except TrustError:
            log.warning("rejected sync batch from %s (message %s)", caller, message)
            return JSONResponse({"error": "rejected"}, status_code=403)
        except IntegrityError as exc:
            status = 409 if exc.code.startswith("sequence") else 400
            return JSONResponse({"error": exc.code}, status_code=status)
        except BackendError:
            return JSONResponse({"error": "unavailable"}, status_code=503)
        return Response(ack, media_type="application/octet-stream")

    async def health(_request: Request) -> Response:
        return JSONResponse(hub.health())

    return Starlette(
        routes=[
            Route(BATCH_PATH, batches, methods=["POST"]),
            Route("/sync/v1/health", health, methods=["GET"]),
        ]
    )


def serve(
    hub: Hub,
    host: str = "127.0.0.1",
    port: int = 8765,
    clients: Mapping[str, str] | None = None,
    max_level: Level | None = None,
) -> None:
    """Run the hub until interrupted (uvicorn, one process)."""
    import uvicorn

    app = make_app(hub, clients, max_level)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


class HubThread:
    """The hub's HTTP endpoint in a background thread of this process (demo, tests).

    ``start()`` returns once the port accepts connections; ``stop()`` ends the server.
    """

    def __init__(
        self,
        hub: Hub,
        port: int,
        clients: Mapping[str, str] | None = None,
        max_level: Level | None = None,
    ) -> None:
        import uvicorn

        config = uvicorn.Config(
            make_app(hub, clients, max_level),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.port = port
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="sync-hub", daemon=True)

    @property
    def url(self) -> str:
        """The base URL of the hub's sync service (what a provider gateway forwards to)."""
        return f"http://127.0.0.1:{self.port}{BATCH_PATH.rsplit('/', 1)[0]}"

    def start(self, timeout: float = 10.0) -> HubThread:
        import time

        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise BackendError(f"the hub could not listen on 127.0.0.1:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> HubThread:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
