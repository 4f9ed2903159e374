"""``lienthong federation serve``: publish the signed configuration over HTTP.

The file is read on every request, so ``lienthong federation publish`` to the same path takes
effect without a restart. The document is self-authenticating (signed), so plain HTTP is
acceptable on the dedicated network; TLS can be terminated in front.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MEDIA_TYPE = "application/jose+json"


def make_app(document: Path) -> Starlette:
    """An ASGI app serving ``document`` at ``/globalconf`` (and a ``/healthz`` probe)."""

    def read() -> bytes | None:
        try:
            return document.read_bytes()
        except OSError:
            return None

    async def globalconf(request: Request) -> Response:
        data = read()
        if data is None:
            return JSONResponse(
                {"error": "not_found", "message": "no configuration published"}, status_code=404
            )
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(
            data, media_type=MEDIA_TYPE, headers={"ETag": etag, "Cache-Control": "no-cache"}
        )

    async def healthz(request: Request) -> Response:
        ok = read() is not None
        return JSONResponse({"status": "ok" if ok else "failing"}, status_code=200 if ok else 500)

    return Starlette(routes=[Route("/globalconf", globalconf), Route("/healthz", healthz)])
