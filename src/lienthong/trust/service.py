"""HTTP service for status (OCSP), CRL, CA bundle and time-stamps (RFC 3161) — an adapter.

Endpoints (all on one port, meant for 127.0.0.1 or behind the gateway's TLS):

=========================  ==============================================================
``GET  /health``           ``{"status": "ok", "issuer": ...}``
``POST /ocsp``             body ``application/ocsp-request`` → ``application/ocsp-response``
``GET  /ocsp/{b64}``       the same, request in the URL (RFC 6960 appendix A.1)
``GET  /crl``              the current CRL, DER (``application/pkix-crl``); ``/crl.pem`` PEM
``GET  /ca``               the CA bundle (PEM)
``POST /tsa``              body ``application/timestamp-query`` → ``application/timestamp-reply``
=========================  ==============================================================
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lienthong.trust.ca import CertificateAuthority

MAX_BODY = 64 * 1024


def create_app(
    directory: Path | str, *, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
) -> Starlette:
    """A Starlette app serving the CA in ``directory`` (keys opened once, at start-up)."""
    ca = CertificateAuthority.open(directory)
    ca.timestamp_authority(clock)  # fail at start-up if the TSA key is unavailable
    ca.keystore.signer(
        ca.label("ocsp")
    )  # fail at start-up, not on the first request, if keys are locked

    async def _body(request: Request) -> bytes | Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return Response("request too large\n", status_code=413)
        return body

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "issuer": ca.issuer.subject.rfc4514_string()})

    async def ocsp_endpoint(request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, Response):
            return body
        return Response(ca.ocsp_response(body, clock()), media_type="application/ocsp-response")

    async def ocsp_get(request: Request) -> Response:
        # RFC 6960 A.1: GET {url}/{url-encoding of base64 of the DER request}
        try:
            der = base64.b64decode(unquote(request.path_params["encoded"]), validate=True)
        except (ValueError, binascii.Error):
            der = b""  # answered as malformedRequest
        return Response(ca.ocsp_response(der, clock()), media_type="application/ocsp-response")

    async def crl(_request: Request) -> Response:
        pem = (ca.directory / "crl.pem").read_bytes()
        der = x509.load_pem_x509_crl(pem).public_bytes(serialization.Encoding.DER)
        return Response(der, media_type="application/pkix-crl")

    async def crl_pem(_request: Request) -> Response:
        return Response((ca.directory / "crl.pem").read_bytes(), media_type="text/plain")

    async def bundle(_request: Request) -> Response:
        return Response(ca.bundle_path.read_bytes(), media_type="application/pem-certificate-chain")

    async def tsa_endpoint(request: Request) -> Response:
        body = await _body(request)
        if isinstance(body, Response):
            return body
        # built per request so that a renewed TSA certificate is used at once
        tsa = ca.timestamp_authority(clock)
        return Response(tsa.respond(body), media_type="application/timestamp-reply")

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/ocsp", ocsp_endpoint, methods=["POST"]),
            Route("/ocsp/{encoded:path}", ocsp_get, methods=["GET"]),
            Route("/crl", crl),
            Route("/crl.pem", crl_pem),
            Route("/ca", bundle),
            Route("/tsa", tsa_endpoint, methods=["POST"]),
        ]
    )


def serve(directory: Path | str, *, host: str = "127.0.0.1", port: int = 8650) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(directory), host=host, port=port, log_level="warning", access_log=False)
