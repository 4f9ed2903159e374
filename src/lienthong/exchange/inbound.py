"""Peer role: a request from another gateway over mutual TLS — relay it or serve it.

Checks, in order, each failing with one uniform code: the TLS peer is a directory node and the
previous hop of the signed route; no repeated protocol header; the signature(s) and
certificates; the signed text (id, user, purpose, legal, ctype, nonce) held to the internal
API's rules; the claims match the request line; freshness and replay (one id per client);
the access right and clearance; the route is the one the directory prescribes and allows the
level; encryption is present where required; fresh hop receipts. A relay then adds its signed
hop receipt and streams the (possibly encrypted) body on; the destination
decrypts, verifies, calls the real service endpoint and signs the response.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from lienthong.classification import Level
from lienthong.errors import IntegrityError
from lienthong.exchange import e2e
from lienthong.exchange.bodies import limited, paced, read_body
from lienthong.exchange.envelope import (
    hop_receipt,
    token_hash,
    verify_tokens,
)
from lienthong.exchange.exchange_log import Exchange
from lienthong.exchange.httpserver import Answer, Request, Response, StreamResponse
from lienthong.exchange.node import Node
from lienthong.exchange.policy import verify_access, verify_route
from lienthong.exchange.protocol import (
    H_ERROR,
    H_HOPS,
    H_REFUSAL,
    H_REQUEST,
    H_REQUEST_PQ,
    H_RESPONSE,
    H_RESPONSE_PQ,
    H_TIMING,
    METHODS,
    ErrorCode,
    Refused,
    parse_target,
    verify_claim_text,
    verify_query,
    verify_single_headers,
)
from lienthong.exchange.routing import next_hop, plan_route, previous_hop
from lienthong.exchange.transport import Sessions, send_to_node
from lienthong.identifiers import ServiceId, SubsystemId


@dataclass
class Verified:
    claims: dict[str, Any]
    tokens: list[str]
    req_hash: str
    level: Level
    hybrid: bool
    next_node: str | None
    hops: list[str]
    service: ServiceId | None = None  # parsed from the request line (equal to the claim)
    durable: Awaitable[None] | None = None  # the replay-journal record to await, if one is due


def _peer_identity(node: Node, request: Request) -> str:
    der = request.peer_der()
    if der is None:
        raise Refused(ErrorCode.ACCESS_DENIED, "no TLS client certificate")
    return node.certs.identity_of_der(der)


def verify_peer_request(node: Node, request: Request, ex: Exchange) -> Verified:
    """Every check of an incoming gateway request; return what the next step needs."""
    peer = _peer_identity(node, request)
    ex.tls_peer = peer  # named in the security event of any refusal from here on
    raw_path, _, query = request.raw_path.partition("?")
    if request.method not in METHODS:  # a member key could sign TRACE, OPTIONS, HEAD …
        raise Refused(ErrorCode.BAD_REQUEST, "method not allowed", method=request.method[:16])
    service, subpath = parse_target(raw_path)
    verify_query(query)
    level = node.directory.services.get(service)
    if level is None:
        raise Refused(ErrorCode.ACCESS_DENIED, "unknown service", service=str(service))
    policy = node.directory.policy[level]
    verify_single_headers(request.headers)
    tokens = [request.headers.get(H_REQUEST, ""), request.headers.get(H_REQUEST_PQ, "")]
    if tokens[0]:
        ex.req_hash = token_hash(tokens[0])  # from here a refusal is signed and bound to it
    # An ML-DSA token is verified whenever one came, also where the level needs none: it is
    # forwarded and kept as message-log evidence, never as an unverified "signed" token.
    hybrid = policy.hybrid_signature or bool(tokens[1])
    claims, ident = verify_tokens(tokens, node.certs.lookup, hybrid=hybrid)
    verify_claim_text(claims)  # before the claims name anything in a log or a header
    ex.begin(claims["id"], ident, service, request.method)
    ex.level = level.name
    expected = {
        "typ": "lt-req",
        "client": ident,
        "service": str(service),
        "method": request.method,
        "path": subpath,
        "query": query,
        "level": int(level),
    }
    for key, value in expected.items():
        if claims.get(key) != value:
            raise Refused(
                ErrorCode.BAD_SIGNATURE, f"signed claim {key!r} does not match", claim=key
            )
    ts = claims.get("ts")
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
        raise Refused(ErrorCode.BAD_SIGNATURE, "claims without timestamp")
    # One message id per client inside the window, whatever the nonce: the id is what the
    # service and the message log see, so a second call under it is a replay.
    # Signed ahead of this node's clock: the key's journal record is made durable off the
    # event loop; the request is accepted (handle_peer_call) once it is.
    try:
        durable = node.replay.admit(f"{ident}|{claims['id']}", ts, time.time())
    except Refused as exc:
        # This very request again (a relay's or a failover's second copy), or one signed
        # before this process started (a relay held it across the restart, a failover resent
        # it): it may have been served, so no signed refusal may tell the caller it was not —
        # unsigned, the client gateway answers LT.UNAVAILABLE (outcome unknown), never
        # LT.REPLAY.
        if exc.details.get("maybe_served"):
            ex.req_hash = ""
        raise
    decision = verify_access(node.directory, _subsystem(ident), service)
    route = claims.get("route")
    if route != plan_route(node.directory, decision.client_node, decision.provider_node):
        raise Refused(ErrorCode.ROUTE, "signed route is not the prescribed one", route=route)
    verify_route(node.directory, level, route)
    nxt = next_hop(route, node.name)
    prev = previous_hop(route, node.name)
    if peer != (prev if prev is not None else node.name):
        raise Refused(ErrorCode.ROUTE, "TLS peer is not the previous hop", peer=peer)
    if policy.encrypt and (not claims.get("enc") or claims["enc"].get("suite") != policy.suite):
        raise Refused(ErrorCode.CLEARANCE, "plaintext or wrong suite where encryption is required")
    req_hash = ex.req_hash
    hops_text = request.headers.get(H_HOPS, "")
    hops = hops_text.split(",") if hops_text else []
    if "" in hops:
        raise Refused(ErrorCode.ROUTE, "empty hop receipt")
    _verify_hops(node, hops, route, req_hash)
    ex.hops = len(route) - 1
    return Verified(
        claims, tokens, req_hash, level, policy.hybrid_signature, nxt, hops, service, durable
    )


@functools.lru_cache(maxsize=4096)
def _subsystem(text: str) -> SubsystemId:
    """A subsystem id from a certificate identity (few distinct values: parsed once each)."""
    return SubsystemId.parse(text)


def _verify_hops(node: Node, hops: list[str], route: list[str], req_hash: str) -> None:
    """Receipts of every relay before this node, in route order, bound to this request."""
    me = route.index(node.name)
    relays_before = route[1:me]
    if len(hops) != len(relays_before):
        raise Refused(ErrorCode.ROUTE, "hop receipts missing or extra", hops=len(hops))
    now = time.time()
    for token, relay in zip(hops, relays_before, strict=True):
        claims, ident = verify_tokens([token], node.certs.node_lookup, hybrid=False)
        ts = claims.get("ts")
        if (
            not isinstance(ts, int | float)
            or isinstance(ts, bool)
            or not abs(now - ts) <= node.replay.window_s
        ):
            raise Refused(ErrorCode.ROUTE, "hop receipt outside the freshness window")
        if (ident, claims.get("typ"), claims.get("node"), claims.get("req")) != (
            relay,
            "lt-hop",
            relay,
            req_hash,
        ):
            raise Refused(ErrorCode.ROUTE, "hop receipt does not match the route")


async def handle_peer_call(
    node: Node, sessions: Sessions, request: Request, ex: Exchange
) -> Answer:
    v = verify_peer_request(node, request, ex)
    if v.durable is not None:  # no request is accepted before its journal record is durable
        await v.durable
    ex.request_bytes = request.content_length or 0
    if v.next_node is not None:
        return await _relay(node, sessions, request, ex, v)
    from lienthong.exchange.provide import provide

    return await provide(node, sessions, request, ex, v)


_PASS_BACK = ("Content-Type", H_RESPONSE, H_RESPONSE_PQ, H_ERROR, H_REFUSAL)


def _timing(name: str, ms: float, downstream: str | None) -> str:
    own = f"{name}={ms:.3f}"
    return f"{own},{downstream}" if downstream and len(downstream) < 512 else own


async def _relay(
    node: Node, sessions: Sessions, request: Request, ex: Exchange, v: Verified
) -> Answer:
    """Forward without being able to decrypt; add this node's signed hop receipt."""
    assert v.next_node is not None
    receipt = hop_receipt(node.name, v.req_hash, time.time(), node.receipt_signer)
    headers = {
        H_REQUEST: v.tokens[0],
        H_HOPS: ",".join([*v.hops, receipt]),
        "Content-Type": request.headers.get("Content-Type", "application/octet-stream"),
    }
    if v.tokens[1]:
        headers[H_REQUEST_PQ] = v.tokens[1]
    limit = node.cfg.limits.max_body_bytes + (node.cfg.limits.max_body_bytes >> 4) + 4096
    body: Any = request.complete_body(min(65536, limit))  # a small body all in: no waiting
    if not request.body_exists:
        body = b""
    elif body is None:
        body = limited(paced(request.chunks(), node.cfg.limits.idle_timeout_s), limit)
        if request.content_length is not None and request.content_length <= 65536:
            body = (await read_body(body, limit=limit, memory_limit=65536)).in_memory
    t_up = time.perf_counter()
    resp = await send_to_node(
        node, sessions, v.next_node, request.method, request.raw_path, headers, body
    )
    try:
        hops = [*v.hops, receipt]
        await ex.log_relay(node, v.claims, v.req_hash, v.tokens, hops, resp.status, resp.headers)
        back = {k: resp.headers[k] for k in _PASS_BACK if k in resp.headers}
        back[H_TIMING] = _timing(node.name, ex.elapsed_ms(), resp.headers.get(H_TIMING))
        if resp.content_length is not None and resp.content_length <= 1 << 20:
            data = await resp.read()
            ex.upstream_ms = (time.perf_counter() - t_up) * 1000
            ex.response_bytes = len(data)
            return Response(status=resp.status, body=data, headers=back)
        out = StreamResponse(status=resp.status, headers=back)
        await out.prepare(request)
        ex.streaming = True
        async for chunk in resp.chunks():
            ex.response_bytes += len(chunk)
            await out.write(chunk)
        await out.write_eof()
        ex.upstream_ms = (time.perf_counter() - t_up) * 1000
        return out
    finally:
        resp.release()


def decrypt_secret(node: Node, v: Verified) -> tuple[e2e.Suite, bytes]:
    sub = (
        v.service.subsystem
        if v.service is not None
        else _subsystem(v.claims["service"].rsplit("/", 1)[0])
    )
    keys = node.local.get(sub)
    if keys is None or keys.kem is None:
        raise Refused(ErrorCode.ROUTE, "provider subsystem not served here")
    suite = e2e.suite_named(v.claims["enc"]["suite"])
    try:
        return suite, suite.decapsulate(keys.kem, v.claims["enc"], v.claims["id"].encode())
    except IntegrityError as exc:
        raise Refused(ErrorCode.BAD_SIGNATURE, "key agreement fails") from exc
