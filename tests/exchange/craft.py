"""Hand-made gateway requests for the security suite: we act as a compromised relay (NDXP's
TLS identity) sending to the provider gateway, so every check past TLS is exercised."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Self

import httpx
from aiohttp import web

from lienthong.exchange import e2e
from lienthong.exchange.envelope import (
    KeyedSigner,
    body_digest,
    hop_receipt,
    request_claims,
    sign_claims,
    token_hash,
)
from lienthong.exchange.node import Node, tls_contexts
from lienthong.exchange.protocol import H_HOPS, H_REQUEST, H_REQUEST_PQ, ServiceCall
from lienthong.exchange.testbed import GIAMDINH
from lienthong.identifiers import ServiceId, SubsystemId
from lienthong.trust.secrets import resolve_secret

if TYPE_CHECKING:
    from tests.exchange.conftest import Federation


# the relay route of the testbed, and the headers of a test call from the client system
ROUTE = ["BHXH-GW", "NDXP", "BCA-GW"]
HEADERS = {"X-LT-Client": GIAMDINH, "X-LT-Purpose": "kiem-thu", "X-LT-Legal-Basis": "test"}


def relay_tls(relay: Node) -> ssl.SSLContext:
    _, client = tls_contexts(relay.cfg, resolve_secret(relay.cfg.passphrase))
    return client


def make_call(client: str, service: str, subpath: str = "", method: str = "GET") -> ServiceCall:
    return ServiceCall(
        method=method,
        service=ServiceId.parse(service),
        subpath=subpath,
        query="",
        client=SubsystemId.parse(client),
        message_id=str(uuid.uuid4()),
        user_id=None,
        purpose="kiem-thu",
        legal_basis="test",
    )


def build_request(
    call: ServiceCall,
    signers: list[KeyedSigner],
    relay: Node,
    *,
    level: int,
    route: list[str],
    body: bytes = b"",
    encrypt_to: dict[str, str] | None = None,
    ts: float | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[dict[str, str], bytes, str]:
    """(headers, wire body, request hash) as NDXP would forward them to BCA-GW."""
    enc = None
    wire = body
    body_claim: dict[str, Any] | None = body_digest(hashlib.sha256(body).digest(), len(body))
    if encrypt_to is not None:
        suite = e2e.suite_named("X25519-MLKEM768-AES256GCM")
        secret, params = suite.encapsulate(encrypt_to, call.message_id.encode())
        enc = {"suite": suite.name, **params}
        wire = e2e.seal_bytes(suite.sealer(secret, "req"), body)
        body_claim = None
    claims = request_claims(
        call=call,
        level=level,
        route=route,
        ts=ts if ts is not None else time.time(),
        nonce=e2e.b64e(os.urandom(16)),
        body=body_claim,
        enc=enc,
        ctype=None,
    )
    claims.update(overrides or {})
    tokens = sign_claims(claims, signers)
    req_hash = token_hash(tokens[0])
    headers = {
        H_REQUEST: tokens[0],
        H_HOPS: hop_receipt(relay.name, req_hash, time.time(), relay.receipt_signer),
    }
    if len(tokens) > 1:
        headers[H_REQUEST_PQ] = tokens[1]
    return headers, wire, req_hash


def send(
    tls: ssl.SSLContext,
    port: int,
    call: ServiceCall,
    headers: dict[str, str],
    body: bytes,
    path: str | None = None,
) -> httpx.Response:
    target = path or f"/r1/{call.service}{call.subpath}"
    with httpx.Client(verify=tls, timeout=10) as client:
        return client.request(
            call.method, f"https://127.0.0.1:{port}{target}", headers=headers, content=body
        )


class ServerThread:
    """A server on an event loop of its own in a daemon thread, as a context manager:
    :meth:`start` runs in that loop on entry, :meth:`stop` on exit."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        return None

    def _run(self) -> None:
        self._loop.run_until_complete(self.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.stop())
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class RelayImpostor(ServerThread):
    """NDXP's TLS identity on its first-link port, the link proxy stopped while it runs: a
    compromised relay whose answers a subclass decides in :meth:`_answer` (each answer closes
    its connection, so no keep-alive connection is left behind)."""

    def __init__(self, fed: Federation, kit: dict[str, Any]) -> None:
        super().__init__()
        self._fed, self._kit = fed, kit

    async def _answer(self, request: web.BaseRequest) -> web.Response:
        raise NotImplementedError

    _KEEP = frozenset({"content-type", "x-lt-response", "x-lt-response-pq"})
    _KEEP |= {"x-lt-error", "x-lt-refusal"}

    async def forward(
        self, request: web.BaseRequest, body: bytes, *, receipt: bool = True, times: int = 1
    ) -> tuple[int, dict[str, str], bytes]:
        """Send the call on to BCA-GW as NDXP would — ``times`` copies, with NDXP's genuine hop
        receipt unless ``receipt`` is False — and return the last answer: its status, the
        headers a relay passes back and its body."""
        relay = self._kit["relay"]
        headers = {k: v for k, v in request.headers.items() if k.startswith("X-LT-Request")}
        if receipt:
            headers[H_HOPS] = hop_receipt(
                relay.name, token_hash(headers[H_REQUEST]), time.time(), relay.receipt_signer
            )
        for _ in range(times):
            resp = await asyncio.to_thread(
                httpx.request,
                request.method,
                f"https://127.0.0.1:{self._kit['port']}{request.raw_path}",
                headers=headers,
                content=body,
                verify=self._kit["tls"],
                timeout=20,
            )
        back = {k: v for k, v in resp.headers.items() if k.lower() in self._KEEP}
        return resp.status_code, back, resp.content

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        resp = await self._answer(request)
        resp.force_close()
        return resp

    async def start(self) -> None:
        relay = self._kit["relay"]
        server_ctx, _ = tls_contexts(relay.cfg, resolve_secret(relay.cfg.passphrase))
        port = self._fed.testbed.proxies["NDXP"][0]
        self._web = web.Server(self._handle)
        self._srv = await self._loop.create_server(self._web, "127.0.0.1", port, ssl=server_ctx)

    async def stop(self) -> None:
        self._srv.close()
        await self._web.shutdown(1.0)
        for proto in self._web.connections:
            if proto.transport is not None:
                proto.transport.abort()
        await self._srv.wait_closed()

    def __enter__(self) -> Self:
        self._fed.running.stop("link:NDXP")
        return super().__enter__()

    def __exit__(self, *_: object) -> None:
        super().__exit__()
        self._fed.running.start_link("NDXP")
