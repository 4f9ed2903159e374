"""Destination role: decrypt or verify the body, call the real service, sign the response.

Nothing reaches the service endpoint before every check has passed: small bodies are
decrypted/verified whole; large encrypted bodies are streamed record by record (each record
authenticated before it is passed on, the stream aborted on the first bad one); large
plaintext bodies are spooled and hash-checked first.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from lienthong.errors import IntegrityError
from lienthong.exchange import e2e
from lienthong.exchange.bodies import EMPTY, Body, in_memory, limited, paced, read_body
from lienthong.exchange.envelope import (
    body_digest,
    response_claims,
    sign_claims,
    verify_body_digest,
)
from lienthong.exchange.exchange_log import Exchange
from lienthong.exchange.httpclient import Response as Upstream
from lienthong.exchange.httpserver import Answer, Request, Response, StreamResponse
from lienthong.exchange.inbound import Verified, decrypt_secret
from lienthong.exchange.node import Node
from lienthong.exchange.protocol import (
    H_CLIENT,
    H_ID,
    H_LEGAL,
    H_PURPOSE,
    H_REQUEST_HASH,
    H_RESPONSE,
    H_RESPONSE_PQ,
    H_TIMING,
    H_USER,
    ErrorCode,
    Refused,
)
from lienthong.exchange.transport import Sessions, endpoint_of
from lienthong.identifiers import ServiceId


def _service_headers(v: Verified) -> dict[str, str]:
    c = v.claims
    headers = {
        H_CLIENT: c["client"],
        H_ID: c["id"],
        H_PURPOSE: c["purpose"],
        H_LEGAL: c["legal"],
        H_REQUEST_HASH: v.req_hash,
    }
    if c.get("user"):
        headers[H_USER] = c["user"]
    if c.get("ctype"):
        headers["Content-Type"] = c["ctype"]
    return headers


async def _request_body(
    node: Node, request: Request, v: Verified, secret: bytes | None, suite: e2e.Suite | None
) -> tuple[Any, Body | None]:
    limits = node.cfg.limits
    if secret is None and not request.body_exists:
        verify_body_digest(v.claims.get("body") or {}, EMPTY.digest, 0)
        return b"", None
    wire_limit = limits.max_body_bytes + (limits.max_body_bytes >> 4) + 4096
    data = request.complete_body(min(limits.memory_body_bytes, limits.max_body_bytes))
    if data is not None:  # all of a small body is in: no generator chain, no waiting
        if secret is None or suite is None:
            verify_body_digest(v.claims.get("body") or {}, in_memory(data).digest, len(data))
            return data, None
        try:
            return e2e.open_bytes(suite.opener(secret, "req"), data), None
        except IntegrityError as exc:
            raise Refused(ErrorCode.BAD_SIGNATURE, "encrypted body fails authentication") from exc
    source = limited(paced(request.chunks(), limits.idle_timeout_s), wire_limit)
    if secret is None or suite is None:
        body = await read_body(
            source,
            limit=limits.max_body_bytes,
            memory_limit=limits.memory_body_bytes,
            spool_dir=node.cfg.state_dir,
        )
        try:
            verify_body_digest(v.claims.get("body") or {}, body.digest, body.length)
        except Refused:
            body.close()
            raise
        return (body.in_memory if body.in_memory is not None else body.chunks()), body
    plain = limited(e2e.open_stream(source, suite.opener(secret, "req")), limits.max_body_bytes)
    declared = request.content_length
    try:
        if declared is not None and declared <= limits.memory_body_bytes:
            return b"".join([c async for c in plain]), None
        first = await anext(plain, b"")  # authenticate before opening the service connection
    except IntegrityError as exc:
        raise Refused(ErrorCode.BAD_SIGNATURE, "encrypted body fails authentication") from exc
    return _prepend(first, plain), None


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    try:
        async for chunk in rest:
            yield chunk
    except IntegrityError as exc:  # a bad record after the first: cut, never pass it on
        raise Refused(ErrorCode.BAD_SIGNATURE, "encrypted body fails authentication") from exc


async def provide(
    node: Node, sessions: Sessions, request: Request, ex: Exchange, v: Verified
) -> Answer:
    service = v.service if v.service is not None else ServiceId.parse(v.claims["service"])
    keys = node.local.get(service.subsystem)
    endpoint = node.services.get(service)
    if keys is None or endpoint is None:
        raise Refused(ErrorCode.ROUTE, "service not served by this gateway", service=str(service))
    suite, secret = decrypt_secret(node, v) if v.claims.get("enc") else (None, None)
    payload, body = await _request_body(node, request, v, secret, suite)
    target = endpoint_of(endpoint)
    query = v.claims["query"]
    path = (target.base + v.claims["path"] or "/") + (f"?{query}" if query else "")
    t_up = time.perf_counter()
    try:
        resp = await sessions.services.request(
            request.method,
            target.scheme,
            target.host,
            target.port,
            path,  # the sub-path and query exactly as signed
            _service_headers(v),
            payload,
        )
    except OSError as exc:  # connection-level failures (httpclient.ClientError) included
        raise Refused(ErrorCode.UNAVAILABLE, f"service endpoint failed: {exc}") from exc
    finally:
        if body is not None:
            body.close()
    try:
        return await _answer(node, request, ex, v, resp, suite, secret, keys.signers, t_up)
    finally:
        resp.release()


async def _response_body(
    node: Node, ex: Exchange, resp: Upstream, sealer: e2e.StreamSealer | None
) -> tuple[Any, dict[str, Any] | None, Body | None]:
    """(body to send, body claim, spool to close): sealed records, or hashed plaintext."""
    limits = node.cfg.limits
    source = limited(resp.chunks(), limits.max_body_bytes)
    if sealer is not None:
        if resp.content_length is not None and resp.content_length <= limits.memory_body_bytes:
            data = await resp.read()
            ex.response_bytes = len(data)
            return e2e.seal_bytes(sealer, data), None, None
        return e2e.seal_stream(source, sealer), None, None
    declared = resp.content_length
    if declared is not None and declared <= limits.memory_body_bytes:
        rbody = in_memory(await resp.read())  # bounded by its declared length
    else:
        rbody = await read_body(
            source,
            limit=limits.max_body_bytes,
            memory_limit=limits.memory_body_bytes,
            spool_dir=node.cfg.state_dir,
        )
    ex.response_bytes = rbody.length
    out = rbody.in_memory if rbody.in_memory is not None else rbody.chunks()
    return out, body_digest(rbody.digest, rbody.length), rbody


async def _answer(
    node: Node,
    request: Request,
    ex: Exchange,
    v: Verified,
    resp: Upstream,
    suite: e2e.Suite | None,
    secret: bytes | None,
    signers: list[Any],
    t_up: float,
) -> Answer:
    sealer = suite.sealer(secret, "resp") if suite is not None and secret is not None else None
    out_body, body_claim, rbody = await _response_body(node, ex, resp, sealer)
    try:
        ex.upstream_ms = (time.perf_counter() - t_up) * 1000
        rclaims = response_claims(
            request=v.claims,
            req_hash=v.req_hash,
            status=resp.status,
            ctype=resp.headers.get("Content-Type"),
            ts=time.time(),
            body=body_claim,
        )
        tokens = sign_claims(rclaims, signers[:2] if v.hybrid else signers[:1])
        headers = {
            H_RESPONSE: tokens[0],
            "Content-Type": "application/octet-stream",
            H_TIMING: f"{node.name}={ex.elapsed_ms():.3f},service={ex.upstream_ms:.3f}",
        }
        if len(tokens) > 1:
            headers[H_RESPONSE_PQ] = tokens[1]
        await ex.log_message(node, v.claims, rclaims, tokens, v.req_hash, v.hops, v.tokens)
        if isinstance(out_body, bytes):
            return Response(status=200, body=out_body, headers=headers)
        out = StreamResponse(status=200, headers=headers)
        await out.prepare(request)
        ex.streaming = True
        async for chunk in out_body:
            await out.write(chunk)
        await out.write_eof()
        return out
    finally:
        if rbody is not None:
            rbody.close()
