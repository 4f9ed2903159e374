"""``lienthong federation serve``: publish the signed configuration over HTTP.

The file is read on every request, so ``lienthong federation publish`` to the same path takes
effect without a restart. The document is self-authenticating (signed), so plain HTTP is
acceptable on the dedicated network; TLS can be terminated in front.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lienthong.errors import InputError, LienthongError
from lienthong.federation.confverify import verify_configuration
from lienthong.federation.globalconf import b64url_decode
from lienthong.trust.x509 import load_certificates

MEDIA_TYPE = "application/jose+json"


def check_document(document: Path, now: dt.datetime) -> None:
    """Refuse to serve ``document`` unless it is a signed configuration that verifies against
    the trust anchors it carries and has not expired (InputError naming the file)."""
    try:
        data = document.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot serve {document}: {exc.strerror}") from exc
    try:
        doc = json.loads(data)
        payload = json.loads(b64url_decode(doc["payload"], "payload"))
        anchors = payload["trust_anchors"]
        certs = load_certificates("".join(anchors).encode(), source=f"{document} trust anchors")
    except (ValueError, KeyError, TypeError, LienthongError) as exc:
        raise InputError(f"cannot serve {document}: not a published global configuration") from exc
    roots = [c for c in certs if c.subject == c.issuer]
    try:
        verify_configuration(data, roots=roots, now=now, require=())
    except LienthongError as exc:
        raise InputError(f"cannot serve {document}: {exc.message}") from exc


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
