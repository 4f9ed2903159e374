"""The hub as a process: ``POST /sync/v1/batches`` (envelope in, signed ack out).

Rejections are uniform to the sender (HTTP 403 ``{"error": "rejected"}`` for trust failures,
409 for sequence conflicts, 400 for malformed batches); the hub's log keeps the detail.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lienthong.errors import BackendError, IntegrityError, TrustError
from lienthong.sync.hub.service import Hub
from lienthong.sync.transport import BATCH_PATH

MAX_BATCH = 256 * 1024 * 1024


def make_app(hub: Hub) -> Starlette:
    async def batches(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BATCH:
            return JSONResponse({"error": "too_large"}, status_code=413)
        try:
            ack = await run_in_threadpool(hub.receive, body)
        except TrustError:
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


def serve(hub: Hub, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the hub until interrupted (uvicorn, one process)."""
    import uvicorn

    uvicorn.run(make_app(hub), host=host, port=port, log_level="warning", access_log=False)
