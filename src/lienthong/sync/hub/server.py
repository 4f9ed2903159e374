"""The hub as a process: ``POST /sync/v1/batches`` (envelope in, signed ack out).

Rejections are uniform to the sender (HTTP 403 ``{"error": "rejected"}`` for trust failures,
409 for sequence conflicts, 400 for malformed batches); the hub's log keeps the detail.

Behind a gateway (the hub's sync service, ``docs/sync.md``) the same endpoint is the service
base URL ``http://HOST:PORT/sync/v1``; the provider gateway adds the authenticated calling
subsystem (``X-LT-Client``) and message id (``X-LT-Id``). With ``clients`` (source id →
subsystem id) the hub also refuses a batch of a bound source that did not arrive from its
subsystem — on top of the batch's own signature, which is always verified before anything
is applied.
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

from lienthong.errors import BackendError, IntegrityError, TrustError
from lienthong.sync.envelope import parse_header
from lienthong.sync.hub.service import Hub
from lienthong.sync.transport import BATCH_PATH

MAX_BATCH = 256 * 1024 * 1024
log = logging.getLogger("lienthong.sync.hub")


def _caller_ok(body: bytes, caller: str | None, clients: Mapping[str, str]) -> bool:
    """A bound source must come from its subsystem (unbound sources: signature only)."""
    try:
        header = parse_header(body)[0]
    except (IntegrityError, TrustError, ValueError, KeyError):
        return True  # malformed: hub.receive refuses it with the precise code
    bound = clients.get(str(header.get("source")))
    return bound is None or bound == caller


def make_app(hub: Hub, clients: Mapping[str, str] | None = None) -> Starlette:
    async def batches(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BATCH:
            return JSONResponse({"error": "too_large"}, status_code=413)
        caller, message = request.headers.get("x-lt-client"), request.headers.get("x-lt-id")
        if clients and not _caller_ok(body, caller, clients):
            log.warning("rejected sync batch: source not bound to caller %s (message %s)",
                        caller, message)  # fmt: skip
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
        return JSONResponse({"status": "ok"})

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
) -> None:
    """Run the hub until interrupted (uvicorn, one process)."""
    import uvicorn

    uvicorn.run(make_app(hub, clients), host=host, port=port, log_level="warning", access_log=False)


class HubThread:
    """The hub's HTTP endpoint in a background thread of this process (demo, tests).

    ``start()`` returns once the port accepts connections; ``stop()`` ends the server.
    """

    def __init__(self, hub: Hub, port: int, clients: Mapping[str, str] | None = None) -> None:
        import uvicorn

        config = uvicorn.Config(
            make_app(hub, clients),
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
