"""Client role: an information system calls its own gateway, which signs, encrypts and routes.

Steps: validate the request strictly; check the access right, the clearance rule and the
route; sign the claims (hybrid from MAT); encrypt the body end to end when the level requires
it (else hash it); send to the first hop with failover; verify the provider's signed response
(bound to the request hash); record the exchange in the message log before releasing it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

from lienthong.errors import InputError
from lienthong.exchange import e2e
from lienthong.exchange.bodies import EMPTY, Body, in_memory, limited, paced, read_body
from lienthong.exchange.directory import LevelPolicy
from lienthong.exchange.envelope import (
    body_digest,
    request_claims,
    sign_claims,
    token_hash,
    verify_body_digest,
    verify_tokens,
)
from lienthong.exchange.exchange_log import Exchange
from lienthong.exchange.httpserver import Answer, Request, Response, StreamResponse
from lienthong.exchange.node import Node
from lienthong.exchange.policy import verify_access, verify_route
from lienthong.exchange.protocol import (
    H_ERROR,
    H_ID,
    H_REFUSAL,
    H_REQUEST,
    H_REQUEST_HASH,
    H_REQUEST_PQ,
    H_RESPONSE,
    H_RESPONSE_PQ,
    H_TIMING,
    ErrorCode,
    Refused,
    ServiceCall,
    body_claim_ok,
    parse_service_call,
)
from lienthong.exchange.routing import plan_route
from lienthong.exchange.transport import Sessions, send_to_node


def _content_length(request: Request, limit: int) -> None:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise Refused(ErrorCode.TOO_LARGE, "declared body larger than the limit", size=declared)


_MS = re.compile(r"\d{1,7}\.\d{3}")


@dataclass
class _Outgoing:
    """The request body as it will travel: encrypted stream, or hashed plaintext."""

    payload: Any
    body_claim: dict[str, Any] | None = None
    enc: dict[str, Any] | None = None
    secret: bytes | None = None
    spooled: Body | None = None


async def _outgoing(
    node: Node, request: Request, call: ServiceCall, policy: LevelPolicy, ex: Exchange
) -> _Outgoing:
    limits = node.cfg.limits
    if not request.body_exists:  # GET and friends: no generator chain for nothing
        if policy.encrypt:
            return _sealed(node, call, policy, b"")
        return _Outgoing(b"", body_claim=body_digest(EMPTY.digest, 0))
    data = request.complete_body(min(limits.memory_body_bytes, limits.max_body_bytes))
    if data is not None:  # all of a small body is in: no generator chain, no waiting
        if policy.encrypt:
            return _sealed(node, call, policy, data)
        body = in_memory(data)
        ex.request_bytes = body.length
        return _Outgoing(data, body_claim=body_digest(body.digest, body.length), spooled=body)
    source = limited(paced(request.chunks(), limits.idle_timeout_s), limits.max_body_bytes)
    if policy.encrypt:
        suite = e2e.suite_named(policy.suite)
        secret, params = _encapsulate(node, call, suite)
        enc = {"suite": suite.name, **params}
        sealer = suite.sealer(secret, "req")
        size = request.content_length if request.body_exists else 0
        if size is not None and size <= limits.memory_body_bytes:
            # Small bodies go as one sized message: every hop takes its fast in-memory path.
            data = b"".join([chunk async for chunk in source])
            return _Outgoing(e2e.seal_bytes(sealer, data), enc=enc, secret=secret)
        return _Outgoing(e2e.seal_stream(source, sealer), enc=enc, secret=secret)
    body = await read_body(
        source,
        limit=limits.max_body_bytes,
        memory_limit=limits.memory_body_bytes,
        spool_dir=node.cfg.state_dir,
    )
    ex.request_bytes = body.length
    payload = body.in_memory if body.in_memory is not None else body.chunks()
    return _Outgoing(payload, body_claim=body_digest(body.digest, body.length), spooled=body)


def _encapsulate(node: Node, call: ServiceCall, suite: e2e.Suite) -> tuple[bytes, dict[str, str]]:
    """The body key agreed with the provider subsystem's published keys. None published (the
    federation's configuration lacks them): LT.UNAVAILABLE — no fault of the caller's."""
    provider_kem = node.directory.subsystems[call.service.subsystem].kem
    try:
        return suite.encapsulate(provider_kem, call.message_id.encode())
    except InputError as exc:
        raise Refused(
            ErrorCode.UNAVAILABLE,
            "the provider subsystem publishes no usable key-agreement key",
            service=str(call.service),
        ) from exc


def _sealed(node: Node, call: ServiceCall, policy: LevelPolicy, data: bytes) -> _Outgoing:
    suite = e2e.suite_named(policy.suite)
    secret, params = _encapsulate(node, call, suite)
    sealer = suite.sealer(secret, "req")
    enc = {"suite": suite.name, **params}
    return _Outgoing(e2e.seal_bytes(sealer, data), enc=enc, secret=secret)


async def handle_client_call(
    node: Node, sessions: Sessions, request: Request, ex: Exchange
) -> Answer:
    """Carry one call from a local information system to the provider and back."""
    raw_path, _, query = request.raw_path.partition("?")
    call = parse_service_call(request.method, raw_path, query, request.headers)
    ex.begin(call.message_id, str(call.client), call.service, call.method)
    keys = node.local.get(call.client)
    if keys is None:
        raise Refused(ErrorCode.ACCESS_DENIED, "client subsystem not served by this gateway")
    if not keys.allows(request.remote):
        raise Refused(ErrorCode.ACCESS_DENIED, "caller address may not act as this subsystem")
    if H_ID in request.headers:  # a caller-chosen id is single-use inside the replay window
        now = time.time()
        node.replay.check_and_record(f"out|{call.client}|{call.message_id}", now, now)
    decision = verify_access(node.directory, call.client, call.service)
    ex.level = decision.level.name
    route = plan_route(node.directory, node.name, decision.provider_node)
    verify_route(node.directory, decision.level, route)
    _content_length(request, node.cfg.limits.max_body_bytes)
    ex.request_bytes = request.content_length or 0
    hybrid = decision.policy.hybrid_signature
    signers = keys.signers[:2] if hybrid else keys.signers[:1]
    if hybrid and len(signers) < 2:
        raise Refused(ErrorCode.CLEARANCE, "client subsystem has no ML-DSA key for this level")
    out = await _outgoing(node, request, call, decision.policy, ex)
    try:
        claims = request_claims(
            call=call,
            level=int(decision.level),
            route=route,
            ts=time.time(),
            nonce=e2e.b64e(os.urandom(16)),
            body=out.body_claim,
            enc=out.enc,
            ctype=request.headers.get("Content-Type"),
        )
        tokens = sign_claims(claims, signers)
        headers = {H_REQUEST: tokens[0], "Content-Type": "application/octet-stream"}
        if len(tokens) > 1:
            headers[H_REQUEST_PQ] = tokens[1]
        first_hop = route[1] if len(route) > 1 else route[0]
        t_up = time.perf_counter()
        resp = await send_to_node(
            node, sessions, first_hop, call.method, request.raw_path, headers, out.payload
        )
    finally:
        if out.spooled is not None:
            out.spooled.close()
    ex.hops = len(route) - 1
    sent = _Sent(claims, token_hash(tokens[0]), out.secret, t_up, hybrid, tokens, first_hop)
    try:
        answer = await _relay_response(node, request, ex, resp, sent)
    except BaseException:
        resp.close()  # a refused or broken answer: never reuse that connection
        raise
    resp.release()
    return answer


@dataclass(frozen=True)
class _Sent:
    claims: dict[str, Any]
    req_hash: str
    secret: bytes | None
    t_up: float
    hybrid: bool
    tokens: list[str]  # the signed request (kept as message-log evidence)
    first_hop: str  # the TLS peer the answer came from (its identity checked on connect)


def _refused_by(node: Node, resp: Any, sent: _Sent, code: str | None) -> str | None:
    """The node whose signed ``X-LT-Refusal`` names this request and this code, or None."""
    token = resp.headers.get(H_REFUSAL)
    if code not in ErrorCode.__members__.values() or not token or len(token) > 4096:
        return None
    try:
        claims, ident = verify_tokens([token], node.certs.node_lookup, hybrid=False)
    except Refused:
        return None
    ts = claims.get("ts")
    fresh = isinstance(ts, int | float) and abs(time.time() - ts) <= node.replay.window_s
    ok = (claims.get("typ"), claims.get("node"), claims.get("req"), claims.get("code")) == (
        "lt-err",
        ident,
        sent.req_hash,
        code,
    )
    return ident if ok and fresh and ident in sent.claims["route"] else None


def _hop_ms(timing: str, route: list[str]) -> str | None:
    """``X-LT-Timing`` is unsigned: kept only as "node=ms" items naming nodes of the route
    or the service, at most one each, with plain numbers — never free text
    a relay chose."""
    if not timing or len(timing) > 64 * len(route):
        return None
    allowed = set(route) | {"service"}
    seen: set[str] = set()
    for item in timing.split(","):
        name, _, ms = item.partition("=")
        if name not in allowed or name in seen or not _MS.fullmatch(ms):
            return None
        seen.add(name)
    return timing


def _verify_response(node: Node, resp: Any, sent: _Sent) -> tuple[dict[str, Any], list[str]]:
    """The provider's signed response claims, bound to this request (else Refused)."""
    code = resp.headers.get(H_ERROR)
    if code is not None or H_RESPONSE not in resp.headers:
        by = _refused_by(node, resp, sent, code)
        if by is None:  # any relay could have said it: the caller learns only "unavailable"
            raise Refused(
                ErrorCode.UNAVAILABLE,
                f"unauthenticated refusal from {sent.first_hop}",
                peer=sent.first_hop,
                got=code if code in ErrorCode.__members__.values() else "other",
                peer_status=resp.status,
                remote=True,
            )
        raise Refused(
            ErrorCode(code),
            f"refused by {by} (signed)",
            node=by,
            peer_status=resp.status,
            remote=True,
        )
    tokens = [resp.headers[H_RESPONSE], resp.headers.get(H_RESPONSE_PQ, "")]
    # an ML-DSA token that came (a relay may add one) is verified before it is logged as evidence
    rclaims, ident = verify_tokens(tokens, node.certs.lookup, hybrid=sent.hybrid or bool(tokens[1]))
    provider = sent.claims["service"].rsplit("/", 1)[0]
    got = (ident, rclaims.get("typ"), rclaims.get("req"), rclaims.get("id"))
    if got != (provider, "lt-resp", sent.req_hash, sent.claims["id"]):
        raise Refused(ErrorCode.BAD_SIGNATURE, "response not bound to this request")
    return rclaims, tokens


_HEADER_TEXT = re.compile(r"[\t -~]{1,1024}")  # visible ASCII, space, tab


def response_status(rclaims: dict[str, Any]) -> tuple[int, str | None]:
    """The status and content type a provider signed, checked before anything is answered or
    logged as a success: a final status (200–599, an integer), a content type that is a
    valid header value (visible ASCII, at most 1,024 characters; the service's own value,
    however odd, passes) and a body claim that is null or a hash and a length. A member node
    could otherwise sign a 1xx status (whose body the caller would read as the next answer), a
    header value the server must refuse or a body claim that fails the gateway itself."""
    status, ctype = rclaims.get("status"), rclaims.get("ctype")
    if type(status) is not int or not 200 <= status <= 599:
        raise Refused(ErrorCode.BAD_SIGNATURE, "signed response status is not a final status")
    if (
        ctype is not None
        and ctype != ""
        and (not isinstance(ctype, str) or not _HEADER_TEXT.fullmatch(ctype))
    ):
        raise Refused(ErrorCode.BAD_SIGNATURE, "signed response content type is malformed")
    if not body_claim_ok(rclaims.get("body")):
        raise Refused(ErrorCode.BAD_SIGNATURE, "signed response body claim is malformed")
    return status, ctype or None


async def _relay_response(
    node: Node, request: Request, ex: Exchange, resp: Any, sent: _Sent
) -> Answer:
    ex.hop_ms = _hop_ms(resp.headers.get(H_TIMING, ""), sent.claims["route"])
    rclaims, tokens = _verify_response(node, resp, sent)
    out_headers = {H_ID: sent.claims["id"], H_REQUEST_HASH: sent.req_hash}
    status, ctype = response_status(rclaims)
    if ctype:
        out_headers["Content-Type"] = ctype
    limits = node.cfg.limits
    if sent.secret is None:
        declared = resp.content_length
        if declared is not None and declared <= limits.memory_body_bytes:
            rbody = in_memory(await resp.read())  # bounded by its declared length
        else:
            rbody = await read_body(
                limited(resp.chunks(), limits.max_body_bytes),
                limit=limits.max_body_bytes,
                memory_limit=limits.memory_body_bytes,
                spool_dir=node.cfg.state_dir,
            )
        try:
            verify_body_digest(rclaims.get("body") or {}, rbody.digest, rbody.length)
        except Refused:
            rbody.close()
            raise
        ex.upstream_ms = (time.perf_counter() - sent.t_up) * 1000
        ex.response_bytes = rbody.length
        await ex.log_message(node, sent.claims, rclaims, tokens, sent.req_hash, None, sent.tokens)
        if rbody.in_memory is not None:
            return Response(status=status, body=rbody.in_memory, headers=out_headers)
        return await _stream_out(request, ex, status, out_headers, rbody.chunks(), rbody.close)
    suite = e2e.suite_named(sent.claims["enc"]["suite"])
    opener = suite.opener(sent.secret, "resp")
    if resp.content_length is not None and resp.content_length <= limits.memory_body_bytes:
        data = e2e.open_bytes(opener, await resp.read())
        ex.upstream_ms = (time.perf_counter() - sent.t_up) * 1000
        ex.response_bytes = len(data)
        await ex.log_message(node, sent.claims, rclaims, tokens, sent.req_hash, None, sent.tokens)
        return Response(status=status, body=data, headers=out_headers)
    plain = e2e.open_stream(resp.chunks(), opener)
    ex.upstream_ms = (time.perf_counter() - sent.t_up) * 1000
    await ex.log_message(node, sent.claims, rclaims, tokens, sent.req_hash, None, sent.tokens)
    return await _stream_out(request, ex, status, out_headers, plain, None)


async def _stream_out(
    request: Request,
    ex: Exchange,
    status: int,
    headers: dict[str, str],
    chunks: Any,
    close: Any,
) -> Answer:
    out = StreamResponse(status=status, headers=headers)
    try:
        first = await anext(chunks, b"")
        ex.response_bytes = len(first)
        await out.prepare(request)
        ex.streaming = True
        if first:
            await out.write(first)
        async for chunk in chunks:
            ex.response_bytes += len(chunk)
            await out.write(chunk)
        await out.write_eof()
    finally:
        if close is not None:
            close()
    return out
