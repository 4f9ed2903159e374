"""Serving a log to witnesses and auditors over HTTP, and the witness's HTTP client.

Endpoints (read-only except co-signature submission):

- ``GET /checkpoint`` — the latest signed note (``text/plain``), without co-signatures;
- ``GET /checkpoint/full`` — the same with witness co-signatures appended;
- ``GET /consistency?old=M&new=N`` — ``{"hashes": [hex…]}``;
- ``GET /proof?index=I[&size=N]`` — inclusion proof JSON (as ``lienthong audit prove --json``);
- ``POST /cosignature`` — ``{"size": N, "name": W, "line": "— W …"}``: accepted only from a
  witness whose key the server was given, and only if the co-signature verifies (so nobody
  can overwrite a real co-signature with garbage).
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from lienthong.audit.checkpoint import parse_note, verify_cosignature
from lienthong.audit.log import AuditLog
from lienthong.errors import AccessDenied, BackendError, InputError, LienthongError, NotFound
from lienthong.trust.keys import PublicKey


def _int(request: Request, name: str, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise InputError(f"query parameter {name} is required")
        return default
    if not (raw.isascii() and raw.isdigit()):  # isdigit() alone takes "²" and "١"
        raise InputError(f"query parameter {name} must be a non-negative integer")
    return int(raw)


def log_app(log: AuditLog, witnesses: dict[str, PublicKey] | None = None) -> Starlette:
    """An ASGI app exposing ``log`` (run it on 127.0.0.1 or behind the gateway's TLS);
    ``witnesses`` (name → key) are the witnesses whose co-signatures it accepts."""
    known = witnesses or {}

    def latest() -> str:
        cps = log.store.checkpoints()
        if not cps:
            raise NotFound("this log has no checkpoint yet")
        return cps[-1][1]

    async def checkpoint(_request: Request) -> Response:
        return PlainTextResponse(latest())

    async def checkpoint_full(_request: Request) -> Response:
        size = log.store.checkpoints()[-1][0] if log.store.checkpoints() else -1
        return PlainTextResponse(log.checkpoint_note(size))

    async def consistency(request: Request) -> Response:
        proof = log.consistency(_int(request, "old"), _int(request, "new", log.size()))
        return JSONResponse({"hashes": [h.hex() for h in proof]})

    async def proof(request: Request) -> Response:
        index = _int(request, "index")
        return JSONResponse(log.prove(index, _int(request, "size", log.size())).to_json())

    async def cosignature(request: Request) -> Response:
        try:
            body = await request.json()
            size, name, line = body["size"], str(body["name"]), str(body["line"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"co-signature must be JSON with size, name, line: {exc}") from exc
        if type(size) is not int:  # not 1e999 (int() overflowed: HTTP 500), true, 12.5 or "12"
            raise InputError(f"co-signature must be JSON with size, name, line: size {size!r}")
        if name not in known:
            raise AccessDenied(f"co-signatures of {name!r} are not accepted here")
        notes = dict(log.store.checkpoints())
        if size not in notes:
            raise NotFound(f"no checkpoint of size {size}")
        verify_cosignature(parse_note(notes[size])[0], line, name, known[name])
        log.store.add_cosignature(size, name, line.strip() + "\n")
        return JSONResponse({"stored": True})

    async def on_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LienthongError)
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    return Starlette(
        routes=[
            Route("/checkpoint", checkpoint),
            Route("/checkpoint/full", checkpoint_full),
            Route("/consistency", consistency),
            Route("/proof", proof),
            Route("/cosignature", cosignature, methods=["POST"]),
        ],
        exception_handlers={LienthongError: on_error},
    )


class HttpLogSource:
    """A witness's view of a remote log served by :func:`log_app`."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            response = self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise BackendError(f"log server {self.client.base_url}: {exc}") from exc
        if response.status_code != 200:
            raise BackendError(
                f"log server {self.client.base_url}{path}: HTTP "
                f"{response.status_code} {response.text[:200]}"
            )
        return response

    def latest_note(self) -> str:
        return self._get("/checkpoint").text

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        try:
            hashes = self._get("/consistency", old=old_size, new=new_size).json()["hashes"]
            return [bytes.fromhex(h) for h in hashes]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"log server sent a malformed consistency proof: {exc}") from exc

    def add_cosignature(self, size: int, name: str, line: str) -> None:
        try:
            response = self.client.post(
                "/cosignature", json={"size": size, "name": name, "line": line}
            )
        except httpx.HTTPError as exc:
            raise BackendError(f"log server {self.client.base_url}: {exc}") from exc
        if response.status_code != 200:
            raise BackendError(
                f"log server refused the co-signature: HTTP "
                f"{response.status_code} {response.text[:200]}"
            )

    def close(self) -> None:
        self.client.close()
