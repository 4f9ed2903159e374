"""Attacks on the signed envelope and on answers, through running gateways, beyond the cases
of test_security.py and test_policy_attacks.py: JSON nested past what a verifier can take,
the request line bent by a relay, duplicate delivery, signed refusals lifted or re-coded by a
relay, end-to-end answers cut or reordered at a record boundary, and what the message log,
the admin endpoints and ``gateway monitor`` show of a call naming a citizen.

One testbed (real processes on 127.0.0.1) for the module. We act as a compromised relay
(NDXP's TLS identity) towards the provider gateway BCA-GW, as NDXP's impostor towards the
client gateway BHXH-GW, or as an information system on BHXH's LAN. Every refusal checks the
uniform answer, that nothing reached the provider's service (or, for an answer, that the
caller got no forged one) and that the gateways go on serving the next call.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from aiohttp import web
from tests.exchange.conftest import Federation
from tests.exchange.craft import (
    HEADERS,
    ROUTE,
    RelayImpostor,
    ServerThread,
    build_request,
    make_call,
    relay_tls,
    send,
)

from lienthong.audit.entries import decode_entry
from lienthong.audit.log import AuditLog
from lienthong.exchange.e2e import b64e
from lienthong.exchange.envelope import KeyedSigner, _raw_signature, hop_receipt, token_hash
from lienthong.exchange.node import tls_contexts
from lienthong.exchange.protocol import ErrorCode, ServiceCall
from lienthong.exchange.testbed import GIAMDINH, SVC_ECHO, SVC_RESIDENCE, SVC_SECRET, SVC_SINK
from lienthong.trust.secrets import resolve_secret

PID = "011187747224"  # a (synthetic) citizen's personal ID
OTHER = "079195001234"  # another one
DEEP = 300  # nesting levels: valid JSON that orjson parses but will not write back (> 254)


@pytest.fixture(scope="module")
def kit(federation: Federation) -> dict[str, Any]:
    relay = federation.node("NDXP")
    client_gw = federation.node("BHXH-GW")
    giamdinh = make_call(GIAMDINH, SVC_ECHO).client
    echo = make_call(GIAMDINH, SVC_ECHO).service.subsystem
    return {
        "relay": relay,
        "tls": relay_tls(relay),
        "signers": client_gw.local[giamdinh].signers,
        "provider_signers": federation.node("BCA-GW").local[echo].signers,
        "port": federation.testbed.peer_ports["BCA-GW"],
    }


# --- helpers --------------------------------------------------------------------------------


def _internal(fed: Federation, service: str = SVC_ECHO) -> str:
    return f"{fed.testbed.internal_url('BHXH-GW')}/r1/{service}"


def _serves_others(fed: Federation) -> None:
    """A genuine call through the whole route still gets its answer."""
    resp = httpx.post(_internal(fed), headers=HEADERS, content=b"next", timeout=20)
    assert resp.status_code == 200 and resp.content == b"next", (resp.status_code, resp.text)


def _uniform(resp: httpx.Response, code: str) -> None:
    assert resp.headers.get("X-LT-Error") == code, (resp.status_code, resp.text)
    assert resp.status_code == ErrorCode(code).http_status
    assert resp.json() == {"error": code}, resp.text
    lt = {k.lower() for k in resp.headers if k.lower().startswith("x-lt-")}
    assert lt <= {"x-lt-error", "x-lt-refusal"}, lt  # a signed refusal at most


def refused(
    fed: Federation, action: Callable[[], httpx.Response], code: str, *, served: int = 0
) -> httpx.Response:
    """``action`` is answered with exactly the uniform refusal ``code``, the provider's service
    received ``served`` calls meanwhile (none, unless the attack is on the answer), and the
    gateways serve the next call."""
    before = len(fed.received())
    resp = action()
    _uniform(resp, code)
    time.sleep(0.05)  # a call that got through would be recorded by now
    assert len(fed.received()) == before + served, "the provider's service got a call"
    _serves_others(fed)
    return resp


def _deep_list() -> list[Any]:
    nest: list[Any] = []
    for _ in range(DEEP - 1):
        nest = [nest]
    return nest


def _b64_json(part: str) -> dict[str, Any]:
    """One JSON object part of a compact JWS."""
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def _claims(token: str) -> dict[str, Any]:
    return _b64_json(token.split(".")[1])


def _signed(claims: dict[str, Any], signer: KeyedSigner) -> str:
    """An ES256 token over ``claims`` written by the standard library's encoder (which writes
    nesting orjson refuses to write back)."""
    head = b64e(json.dumps({"alg": "ES256", "kid": signer.kid}).encode())
    payload = b64e(json.dumps(claims).encode())
    sig = _raw_signature(signer.signer, f"{head}.{payload}".encode(), signer.algorithm)
    return f"{head}.{payload}.{b64e(sig)}"


def _deep_header(token: str) -> str:
    """``token`` under a protected header nesting one member ``DEEP`` levels (still under the
    1,024 characters a header may have, so it is parsed before any signature is checked)."""
    head, payload, sig = token.split(".")
    kid = _b64_json(head)["kid"]
    raw = b'{"alg":"ES256","kid":"' + kid.encode() + b'","x":' + b"[" * DEEP + b"]" * DEEP + b"}"
    deep = b64e(raw)
    assert len(deep) <= 1024
    return f"{deep}.{payload}.{sig}"


def _to_provider(
    kit: dict[str, Any], call: ServiceCall, headers: dict[str, str], body: bytes
) -> Callable[[], httpx.Response]:
    """Sending the request to BCA-GW as NDXP (its TLS identity)."""
    return lambda: send(kit["tls"], kit["port"], call, headers, body)


def _echo_request(kit: dict[str, Any]) -> tuple[ServiceCall, dict[str, str], bytes]:
    """A genuine PUBLIC call of GIAMDINH to the echo service, as NDXP forwards it."""
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE, body=b"x"
    )
    return call, headers, body


# --- JSON nested past what the verifier writes back -----------------------------------------


@pytest.mark.parametrize("where", ["X-LT-Request", "X-LT-Request-PQ", "X-LT-Hops"])
def test_a_deeply_nested_jws_header_is_a_signature_refusal(
    federation: Federation, kit: dict[str, Any], where: str
) -> None:
    """The protected header is parsed before any signature is checked: whoever holds a
    directory node's TLS key could make the provider fail with LT.INTERNAL (a traceback
    per call) by nesting a member 300 levels deep — valid JSON that orjson reads but will
    not write back. It is a malformed token: LT.BAD_SIGNATURE."""
    call, headers, body = _echo_request(kit)
    if where == "X-LT-Request-PQ":  # a detached token, verified when present at any level
        deep, _, sig = _deep_header(headers["X-LT-Request"]).split(".")
        headers[where] = f"{deep}..{sig}"
    else:
        headers[where] = _deep_header(headers[where])
    refused(federation, _to_provider(kit, call, headers, body), "LT.BAD_SIGNATURE")


def test_deeply_nested_signed_claims_are_a_signature_refusal(
    federation: Federation, kit: dict[str, Any]
) -> None:
    """A member key signs claims with a member nested 300 levels (or such a route): refused
    as a malformed token, not LT.INTERNAL."""
    for extra in ({"x": _deep_list()}, {"route": [ROUTE[0], _deep_list()]}):
        call, headers, body = _echo_request(kit)
        token = _signed({**_claims(headers["X-LT-Request"]), **extra}, kit["signers"][0])
        headers["X-LT-Request"] = token
        relay = kit["relay"]
        headers["X-LT-Hops"] = hop_receipt(
            relay.name, token_hash(token), time.time(), relay.receipt_signer
        )
        refused(federation, _to_provider(kit, call, headers, body), "LT.BAD_SIGNATURE")


# --- the request line, bent by a relay ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("PUT", f"/r1/{SVC_ECHO}"),  # another method
        ("POST", f"/r1/{SVC_ECHO}?limit=1"),  # a query added
        ("POST", f"/r1/{SVC_ECHO}/"),  # a trailing slash (another sub-path)
        ("POST", f"/r1/{SVC_SINK}"),  # the same body and signature, another service
    ],
)
def test_a_relay_cannot_bend_the_request_line(
    federation: Federation, kit: dict[str, Any], method: str, target: str
) -> None:
    """The claims bind the method, the query, the sub-path and the service: the signed
    request sent under another request line is refused before the service sees it."""
    call, headers, body = _echo_request(kit)
    bent = dataclasses.replace(call, method=method)
    refused(
        federation,
        lambda: send(kit["tls"], kit["port"], bent, headers, body, target),
        "LT.BAD_SIGNATURE",
    )


@pytest.mark.parametrize(
    "tail",
    [
        *("/..;/ho-so-mat", "/.;/x", "/%2e%2e;/x", "/..;jsessionid=1/x", "/..%3B/x", "/a/..%3b"),
        *("/..%20/x", "/.%20/x", "/.../x", "/..%2e/x", "/.%20.%20/x", "/..%20;x/y"),
    ],
)
def test_a_dot_segment_with_path_parameters_never_reaches_a_service(
    federation: Federation, kit: dict[str, Any], tail: str
) -> None:
    """``/..;/`` is a dot segment to the servlet containers agencies run their services on
    (Tomcat, Jetty, Spring strip ``;parameters`` from a segment, then resolve ``..``): it
    climbs out of the service's base path, as ``..`` would; so are ``..%20`` and ``...`` to
    Windows (IIS drops a name's trailing dots and spaces). Refused at the entry gateway, and
    at the provider when a member key signs it anyway."""
    url = f"{_internal(federation)}{tail}"
    refused(federation, lambda: httpx.post(url, headers=HEADERS, content=b"x"), "LT.BAD_REQUEST")
    call = make_call(GIAMDINH, SVC_ECHO, tail, method="POST")
    headers, body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE, body=b"x"
    )
    refused(federation, _to_provider(kit, call, headers, body), "LT.BAD_REQUEST")


def test_two_copies_at_once_reach_the_service_once(
    federation: Federation, kit: dict[str, Any]
) -> None:
    """A relay sending one request twice at the same moment: one copy is served, the other is
    LT.REPLAY — the replay check holds no window between check and record."""
    call, headers, body = _echo_request(kit)
    before = len(federation.received())
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _to_provider(kit, call, headers, body)(), range(4)))
    codes = sorted(a.headers.get("X-LT-Error", str(a.status_code)) for a in answers)
    assert codes == ["200", "LT.REPLAY", "LT.REPLAY", "LT.REPLAY"], codes
    time.sleep(0.05)
    assert len(federation.received()) == before + 1
    _serves_others(federation)


# --- a relay bending answers and refusals ---------------------------------------------------


Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


def _unbent(status: int, headers: dict[str, str], body: bytes) -> Answer:
    return status, headers, body


class _Bending(RelayImpostor):
    """NDXP's TLS identity in front of BHXH-GW: forwards each call to BCA-GW like NDXP (with a
    genuine hop receipt, or none when ``strip``), then hands the answer to ``bend``, whose
    result goes back to the client gateway. ``times`` copies of the call are sent; the last
    answer is the one bent. ``hold`` runs (in a thread) before the call is forwarded.
    ``bend``, ``strip``, ``times`` and ``hold`` hold for the next call only: the one after
    passes through unaltered."""

    def __init__(self, fed: Federation, kit: dict[str, Any]) -> None:
        super().__init__(fed, kit)
        self.bend: Callable[[int, dict[str, str], bytes], Answer] = _unbent
        self.strip = False
        self.times = 1
        self.hold: Callable[[], None] | None = None
        self.answers: list[Answer] = []

    async def _answer(self, request: web.BaseRequest) -> web.Response:
        bend, strip, times, hold = self.bend, self.strip, self.times, self.hold
        self.bend, self.strip, self.times, self.hold = _unbent, False, 1, None
        body = await request.content.read()  # (read() stops at 1 MiB)
        if hold is not None:
            await asyncio.to_thread(hold)
        answer = await self.forward(request, body, receipt=not strip, times=times)
        self.answers.append(answer)
        status, out, data = bend(answer[0], dict(answer[1]), answer[2])
        return web.Response(status=status, body=data, headers=out)


@pytest.fixture
def bending(federation: Federation, kit: dict[str, Any]) -> Iterator[_Bending]:
    with _Bending(federation, kit) as relay:
        yield relay


def _post(
    fed: Federation, body: bytes = b"x", service: str = SVC_ECHO
) -> Callable[[], httpx.Response]:
    """The information system's call, through BHXH-GW."""
    return lambda: httpx.post(_internal(fed, service), headers=HEADERS, content=body, timeout=20)


def test_a_deeply_nested_answer_or_refusal_is_no_internal_error(
    federation: Federation, bending: _Bending
) -> None:
    """The client gateway reads X-LT-Response and X-LT-Refusal from whatever the first hop
    sends: a token whose header nests 300 levels is a forged answer (LT.BAD_SIGNATURE) or an
    unauthenticated refusal (LT.UNAVAILABLE), never LT.INTERNAL."""

    def deep_response(s: int, h: dict[str, str], b: bytes) -> Answer:
        h["x-lt-response"] = _deep_header(h["x-lt-response"])
        return s, h, b

    bending.bend = deep_response
    refused(federation, _post(federation), "LT.BAD_SIGNATURE", served=1)

    def deep_refusal(s: int, h: dict[str, str], b: bytes) -> Answer:
        return 403, {"X-LT-Error": "LT.ROUTE", "X-LT-Refusal": _deep_header(h["x-lt-response"])}, b

    bending.bend = deep_refusal
    refused(federation, _post(federation), "LT.UNAVAILABLE", served=1)


def test_a_provider_signing_deeply_nested_answer_claims_is_refused(
    federation: Federation, kit: dict[str, Any], bending: _Bending
) -> None:
    """As a compromised provider would sign it: answer claims with a member nested 300 levels,
    validly signed — LT.BAD_SIGNATURE at the client gateway, not LT.INTERNAL."""

    def resign(s: int, h: dict[str, str], b: bytes) -> Answer:
        rclaims = {**_claims(h["x-lt-response"]), "x": _deep_list()}
        h["x-lt-response"] = _signed(rclaims, kit["provider_signers"][0])
        return s, h, b

    bending.bend = resign
    refused(federation, _post(federation), "LT.BAD_SIGNATURE", served=1)


def test_a_signed_refusal_cannot_be_lifted_to_another_call(
    federation: Federation, bending: _Bending
) -> None:
    """BCA-GW's genuine signed refusal of one call (its hop receipt stripped), handed back by the
    relay as the answer to the next call: bound to the other request hash, the caller learns
    only LT.UNAVAILABLE."""
    bending.strip = True
    refused(federation, _post(federation), "LT.ROUTE")  # genuine: the code passes
    _, lifted, body = bending.answers[-2]  # (the last: the check that others are served)
    bending.bend = lambda s, h, b: (403, lifted, body)
    refused(federation, _post(federation), "LT.UNAVAILABLE", served=1)


@pytest.mark.parametrize("code", ["LT.ACCESS_DENIED", "LT.REPLAY", "lt.route", "LT.ROUTE "])
def test_a_relay_cannot_recode_a_signed_refusal(
    federation: Federation, bending: _Bending, code: str
) -> None:
    """The genuine signed LT.ROUTE of this very call, its X-LT-Error rewritten by the relay:
    the signed code no longer matches — LT.UNAVAILABLE, not the relay's code."""
    bending.strip = True

    def recode(s: int, h: dict[str, str], b: bytes) -> Answer:
        return s, {**h, "x-lt-error": code}, b

    bending.bend = recode
    refused(federation, _post(federation), "LT.UNAVAILABLE")


def test_a_request_delivered_twice_is_never_a_signed_refusal_to_the_caller(
    federation: Federation, bending: _Bending
) -> None:
    """A relay (or a failover after the first copy arrived) delivers one request twice and
    hands back the answer to the second copy: BCA-GW's LT.REPLAY. The first copy was served;
    a signed refusal would tell the caller (and its message log) "refused by BCA-GW", and
    the information system, told to retry LT.REPLAY with a new id, would pay twice. The
    refusal of this very request again is unsigned: the caller learns LT.UNAVAILABLE."""
    bending.times = 2
    refused(federation, _post(federation, b"pay 10", SVC_ECHO), "LT.UNAVAILABLE", served=1)


def test_a_request_held_by_a_relay_across_the_provider_restart_is_no_signed_refusal(
    federation: Federation, bending: _Bending
) -> None:
    """A relay holds the call until BCA-GW restarts, then delivers it. The restarted provider
    cannot know whether it served that request before the restart (nor could it tell a
    failover's resent copy): its refusal is unsigned and the caller learns LT.UNAVAILABLE
    (outcome unknown) — a signed LT.REPLAY would say "not served", and the information system,
    retrying with a new id, could pay twice."""

    def restart() -> None:
        federation.running.stop("BCA-GW")
        federation.running.start_gateway("BCA-GW")

    bending.hold = restart
    held = len(bending.answers)
    refused(federation, _post(federation, b"pay 10", SVC_ECHO), "LT.UNAVAILABLE")
    status, headers, _ = bending.answers[held]  # BCA-GW's answer to the held call
    assert status == 409 and headers.get("x-lt-error") == "LT.REPLAY"
    assert "x-lt-refusal" not in headers


def test_only_another_request_under_a_seen_id_gets_a_signed_replay_refusal(
    federation: Federation, kit: dict[str, Any]
) -> None:
    """At the provider: the same token again is refused unsigned (it may have been served);
    another token reusing the id is refused with a signed LT.REPLAY (it was not served)."""
    call, headers, body = _echo_request(kit)
    assert _to_provider(kit, call, headers, body)().status_code == 200
    again = refused(federation, _to_provider(kit, call, headers, body), "LT.REPLAY")
    assert "X-LT-Refusal" not in again.headers
    other, other_body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE, body=b"y"
    )
    reused = refused(federation, _to_provider(kit, call, other, other_body), "LT.REPLAY")
    assert "X-LT-Refusal" in reused.headers


def _records(data: bytes) -> list[bytes]:
    """The end-to-end records of a sealed body (4-byte header: final bit, length)."""
    out, i = [], 0
    while i < len(data):
        size = int.from_bytes(data[i : i + 4], "big") & 0x7FFF_FFFF
        out.append(data[i : i + 4 + size])
        i += 4 + size
    return out


_CUTS: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "drop-final": lambda recs: recs[:-1],  # the empty final record: every byte of data came
    "append": lambda recs: [*recs, recs[-1]],
    "reorder": lambda recs: [recs[0], recs[2], recs[1], *recs[3:]],
    "drop-first": lambda recs: recs[1:],
}


def _cut_records(cut: str) -> Callable[[int, dict[str, str], bytes], Answer]:
    def bend(status: int, headers: dict[str, str], body: bytes) -> Answer:
        recs = _records(body)
        assert len(recs) > 3 and b"".join(recs) == body
        return status, headers, b"".join(_CUTS[cut](recs))

    return bend


@pytest.mark.parametrize("cut", ["drop-final", "append", "reorder"])
def test_an_end_to_end_answer_cut_or_reordered_mid_stream_is_cut_for_the_caller(
    federation: Federation, bending: _Bending, cut: str
) -> None:
    """A MAT answer large enough to be streamed (2 MiB: 33 records), cut, extended or reordered
    by the relay exactly at record boundaries, each record intact and the HTTP framing clean:
    the caller's stream is cut (never ended as if complete), and nothing from a record out of
    place is passed on."""
    payload = bytes(range(256)) * (8 << 10)
    bending.bend = _cut_records(cut)
    before = len(federation.received())
    got = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", _internal(federation, SVC_SECRET), headers=HEADERS, content=payload, timeout=30
        ) as resp,
    ):
        assert resp.status_code == 200  # headers go out with the first authenticated record
        for chunk in resp.iter_bytes():
            got += chunk
    assert payload.startswith(got)
    if cut == "reorder":
        assert len(got) <= 64 << 10  # the first record only
    assert len(federation.received()) == before + 1
    _serves_others(federation)


def test_an_end_to_end_answer_without_its_first_record_is_refused(
    federation: Federation, bending: _Bending
) -> None:
    """Nothing is answered before the first record is authenticated: a uniform refusal."""
    bending.bend = _cut_records("drop-first")
    body = bytes(range(256)) * (8 << 10)
    refused(federation, _post(federation, body, SVC_SECRET), "LT.BAD_SIGNATURE", served=1)


# --- what logs and admin endpoints show -----------------------------------------------------


def _lienthong(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``lienthong`` command line (as an operator would, beside the running gateway)."""
    return subprocess.run(
        [sys.executable, "-m", "lienthong", *args], capture_output=True, text=True, timeout=120
    )


def _leaves(fed: Federation, node: str) -> list[dict[str, Any]]:
    path = fed.testbed.workdir / "state" / node / "message-log.auditlog"
    with AuditLog.open(path, create=False) as log:
        return [decode_entry(log.entry(i)) for i in range(log.size())]


def test_a_personal_id_in_the_purpose_never_lands_in_a_leaf(federation: Federation) -> None:
    """Leaves name nobody (docs/exchange.md, "Message log"): the message id may not be a
    personal ID, and neither may the free text of the purpose or the legal basis that every
    node copies into its leaf — an information system writing "tra cuu 011187747224" there
    would put a citizen's ID in clear into logs handed to auditors, for good. The run of
    digits is redacted in the leaf (the signed token, in the evidence store, keeps it)."""
    headers = {**HEADERS, "X-LT-Purpose": f"tra-cuu-{PID}", "X-LT-Legal-Basis": f"ho so {PID}"}
    resp = httpx.get(f"{_internal(federation, SVC_RESIDENCE)}/{PID}", headers=headers, timeout=20)
    assert resp.status_code == 200
    mid = resp.headers["X-LT-Id"]
    for node in ROUTE:
        leaves = [e for e in _leaves(federation, node) if e.get("message_id") == mid]
        assert leaves, node
        for leaf in leaves:
            assert PID not in json.dumps(leaf), (node, leaf)
            assert leaf["purpose"].startswith("tra-cuu-"), leaf


def test_admin_endpoints_and_monitor_name_nobody(federation: Federation) -> None:
    """After a call naming a citizen (path) and an official (end user): neither /health nor
    /metrics nor ``gateway monitor`` shows either, nor the purpose; the peer listener (open to
    other gateways) has no admin endpoint at all."""
    user = "VN-CCCD-001203004567"
    headers = {**HEADERS, "X-LT-UserId": user, "X-LT-Purpose": "muc-dich-rieng"}
    resp = httpx.get(f"{_internal(federation, SVC_RESIDENCE)}/{PID}", headers=headers, timeout=20)
    assert resp.status_code == 200
    mid = resp.headers["X-LT-Id"]
    tb = federation.testbed
    shown = []
    for path in (f"{tb.internal_url(n)}{p}" for n in ROUTE[::2] for p in ("/health", "/metrics")):
        answer = httpx.get(path)
        assert answer.status_code in (200, 500) and answer.text  # 500: unhealthy, still a report
        shown.append(answer.text)
    for node in ROUTE:
        deadline = time.monotonic() + 10  # records are flushed twice a second
        while True:
            monitor = _lienthong("gateway", "monitor", "--config", str(tb.configs[node]))
            assert monitor.returncode == 0, monitor.stderr[-2000:]
            out = monitor.stdout
            if mid in out or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert mid in out, node
        shown.append(out)
    for text in shown:
        for secret in (PID, user, "001203004567", "muc-dich-rieng"):
            assert secret not in text
    with httpx.Client(verify=relay_tls(federation.node("NDXP")), timeout=10) as peer:
        for path in ("/health", "/metrics"):
            answer = peer.get(f"https://127.0.0.1:{tb.peer_ports['BCA-GW']}{path}")
            _uniform(answer, "LT.BAD_REQUEST")


class _ProviderImpostor(RelayImpostor):
    """BCA-GW's TLS identity on its peer port (the gateway stopped meanwhile, started again on
    exit; NDXP's link untouched): a compromised provider that answers every call ``status``
    with ``headers``. Serving and stopping as :class:`RelayImpostor`, another identity."""

    def __init__(self, fed: Federation, headers: dict[str, str], status: int = 403) -> None:
        super().__init__(fed, {"relay": fed.node("BCA-GW")})
        self._headers, self._status = headers, status

    async def _answer(self, request: web.BaseRequest) -> web.Response:
        await request.content.read()
        return web.Response(status=self._status, body=b"{}", headers=self._headers)

    async def start(self) -> None:
        cfg = self._kit["relay"].cfg
        server_ctx, _ = tls_contexts(cfg, resolve_secret(cfg.passphrase))
        self._web = web.Server(self._handle)
        port = self._fed.testbed.peer_ports["BCA-GW"]
        self._srv = await self._loop.create_server(self._web, "127.0.0.1", port, ssl=server_ctx)

    def __enter__(self) -> _ProviderImpostor:
        self._fed.running.stop("BCA-GW")
        ServerThread.__enter__(self)  # not RelayImpostor's: NDXP's link stays up
        return self

    def __exit__(self, *_: object) -> None:
        ServerThread.__exit__(self)
        self._fed.running.start_gateway("BCA-GW")


def test_a_downstream_error_text_never_lands_in_the_relay_leaf(federation: Federation) -> None:
    """The relay logs each call it carries with the refusal code that came back — unsigned
    text the next hop chose: only an LT.* code (or "other") may enter its leaf, never free
    text such as a citizen's ID."""
    with _ProviderImpostor(federation, {"X-LT-Error": f"LT.{PID}"}):
        resp = httpx.post(_internal(federation), headers=HEADERS, content=b"x", timeout=20)
    _uniform(resp, "LT.UNAVAILABLE")  # unsigned: the caller learns nothing more
    mid = resp.headers.get("X-LT-Id")
    leaves = [e for e in _leaves(federation, "NDXP") if e.get("role") == "relay"]
    assert leaves and leaves[-1]["outcome"] == "refused", leaves[-1:]
    assert PID not in json.dumps(leaves[-1]) and leaves[-1]["reason"] == "other", leaves[-1]
    assert mid is None or leaves[-1]["message_id"] == mid
    _serves_others(federation)


def test_gateway_evidence_shows_a_relayed_token_it_cannot_decode(federation: Federation) -> None:
    """A relay keeps the answer token it passes back unverified (the client gateway checks
    it). A compromised provider's token nesting 3,000 levels (8 KB, one header) then made
    ``gateway evidence --message-id`` on the relay's log fail with a RecursionError: the
    data-protection officer could not read that exchange's evidence. Its claims are shown
    as null, the other tokens as usual."""
    head = b64e(b'{"alg":"ES256","kid":"x"}')
    deep = f"{head}.{b64e(b'[' * 3000 + b']' * 3000)}.{b64e(bytes(64))}"
    mid = str(uuid.uuid4())
    with _ProviderImpostor(federation, {"X-LT-Response": deep}, status=200):
        resp = httpx.post(
            _internal(federation), headers={**HEADERS, "X-LT-Id": mid}, content=b"x", timeout=20
        )
    _uniform(resp, "LT.BAD_SIGNATURE")
    log = federation.testbed.workdir / "state" / "NDXP" / "message-log.auditlog"
    out = _lienthong("gateway", "evidence", "--log", str(log), "--message-id", mid)
    assert out.returncode == 0, out.stderr[-2000:]
    tokens = [t for e in json.loads(out.stdout)["message"]["exchanges"] for t in e["tokens"]]
    assert [t["claims"] for t in tokens if t["token"] == deep] == [None]
    assert any(t["claims"] and t["claims"].get("id") == mid for t in tokens)
    _serves_others(federation)


def test_a_relayed_token_repeated_by_the_next_hop_does_not_fail_the_relay_log(
    federation: Federation,
) -> None:
    """The next hop answers two calls with the same X-LT-Response (any text: the relay keeps
    it unverified as evidence of each call). Each leaf names it under its own message id;
    the evidence check must find the row of that message id, or the relay's intact log is
    reported altered (exit 1) from then on — a member node could make the national
    platform's message log fail every audit."""
    with _ProviderImpostor(federation, {"X-LT-Response": "e30.e30.AAAA"}, status=200):
        for _ in range(2):
            resp = httpx.post(_internal(federation), headers=HEADERS, content=b"x", timeout=20)
            _uniform(resp, "LT.BAD_SIGNATURE")
    log = federation.testbed.workdir / "state" / "NDXP" / "message-log.auditlog"
    out = _lienthong("gateway", "evidence", "--log", str(log))
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["tokens_checked"] > 0
    _serves_others(federation)


@pytest.mark.parametrize(
    ("rule", "path", "query", "subjects"),
    [
        ("path", f"/{PID};v=1", "", [PID]),  # a servlet container reads the segment as PID
        ("path", f"/{PID}%3Bjsessionid=x", "", [PID]),
        ("path", f"/{PID}", "", [PID]),
        ("path", "", "", []),
        ("query:so", "", f"so={OTHER}&so={PID}", [OTHER, PID]),  # Django reads the last
        ("query:so", "", f"so={PID}&so={PID}", [PID]),
        ("query:so", "", "so=+&x=1", []),
    ],
)
def test_the_data_subject_of_a_call_is_the_person_a_service_can_read(
    rule: str, path: str, query: str, subjects: list[str]
) -> None:
    """docs/exchange.md: the subject comes from the signed claims "so the client cannot log
    one person and read another". ``;parameters`` after the ID (stripped by servlet
    containers) or the ID given twice in the query (frameworks differ on which value they
    read: Flask and Spring the first, Django and PHP the last) made the provider log a
    ``personal_data.access`` for another string or another person than the one served, and
    the citizen's access history missed the read. Every person a service can read is logged."""
    from types import SimpleNamespace

    from lienthong.audit.entries import person_hash, person_ref
    from lienthong.exchange.exchange_log import personal_access

    key = b"k" * 32
    node: Any = SimpleNamespace(
        cfg=SimpleNamespace(audit=SimpleNamespace(subject_from={SVC_RESIDENCE: rule})),
        message_log=SimpleNamespace(person_key=key),
    )
    claims = {
        "id": str(uuid.uuid4()),
        "client": GIAMDINH,
        "service": SVC_RESIDENCE,
        "path": path,
        "query": query,
        "purpose": "kiem-thu",
        "legal": "test",
        "level": 2,
    }
    entries = personal_access(node, claims, {"status": 200})
    logged = [entry.to_dict()["person"] for entry in entries]
    assert logged == [person_ref(person_hash(s, key)) for s in subjects]
