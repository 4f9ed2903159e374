"""Attacks on the layers above HTTP framing of running gateways: identity and signatures,
certificates, freshness, access and classification policy, end-to-end encryption, hop
receipts, header confusion, error uniformity and the message log.

One testbed (real gateway processes over real sockets on 127.0.0.1) for the whole module. We
act as a compromised relay (NDXP's TLS identity) or a compromised client gateway, or as an
information system on the agency LAN; every refused case checks the uniform answer and that
nothing reached the provider's service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from tests.exchange.conftest import LIMITS, Federation
from tests.exchange.craft import ServerThread, build_request, make_call, relay_tls, send

from lienthong.exchange.certs import fingerprint, load_pem_cert
from lienthong.exchange.envelope import KeyedSigner, hop_receipt, sign_claims, token_hash
from lienthong.exchange.processes import Running
from lienthong.exchange.protocol import Refused
from lienthong.exchange.replay import ReplayWindow
from lienthong.exchange.testbed import (
    CONGTT,
    GIAMDINH,
    SVC_ECHO,
    SVC_RESIDENCE,
    Testbed,
    build_testbed,
    demo_spec,
)
from lienthong.identifiers import SubsystemId
from lienthong.trust.enrol import make_csr
from lienthong.trust.keys import Algorithm, Signer
from lienthong.trust.keystore import FileKeyStore
from lienthong.trust.profiles import Profile

ROUTE = ["BHXH-GW", "NDXP", "BCA-GW"]
HEADERS = {"X-LT-Client": GIAMDINH, "X-LT-Purpose": "kiem-thu", "X-LT-Legal-Basis": "test"}
EXPIRING_IN_S = 8.0  # the short-lived signing certificate's remaining validity at start


def _signing_certificates(tb: Testbed, workdir: Path) -> dict[str, tuple[Signer, str]]:
    """Extra GIAMDINH signing certificates, listed in the directory before the start: one that
    expires a few seconds after it, and three for the CRL cases, each used for the first time
    by its test (so its check is not cached yet)."""
    now = dt.datetime.now(dt.UTC)
    store = FileKeyStore(workdir / "odd-keys", {"$env": tb.passphrase_env})
    out: dict[str, tuple[Signer, str]] = {}
    expiring_at = now - dt.timedelta(days=1) + dt.timedelta(seconds=EXPIRING_IN_S)
    for name, at in [
        ("expiring", expiring_at),
        ("crl-trigger", now),
        ("revoked-later", now),
        ("crl-probe", now),
    ]:
        signer = store.generate(name, Algorithm.ECDSA_P256)
        csr = make_csr(signer, SubsystemId.parse(GIAMDINH))
        cert = tb.ca.issue(csr, profile=Profile.SIGNING, now=at, days=1)
        out[name] = (signer, cert.public_bytes(serialization.Encoding.PEM).decode())
    directory = json.loads(tb.directory_path.read_text())
    for sub in directory["subsystems"]:
        if sub["id"] == GIAMDINH:
            sub["certs"] += [pem for _, pem in out.values()]
    tb.directory_path.write_text(json.dumps(directory))
    return out


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """The demo federation with certificate checks cached for 10 minutes (status_ttl_s) and
    the extra signing certificates above."""
    workdir = tmp_path_factory.mktemp("policy-attacks")
    tb = build_testbed(workdir, demo_spec(relay_links=2), limits={**LIMITS, "status_ttl_s": 600.0})
    extra = _signing_certificates(tb, workdir)
    record = workdir / "service-received.jsonl"
    with Running(tb, log_level="INFO") as running:
        running.start_all(record=record)
        federation = Federation(tb, running, record, extra)
        yield federation
        federation.close()


@pytest.fixture(scope="module")
def kit(fed: Federation) -> dict[str, Any]:
    relay = fed.node("NDXP")
    client_gw = fed.node("BHXH-GW")
    provider_gw = fed.node("BCA-GW")
    giamdinh = make_call(GIAMDINH, SVC_ECHO).client
    return {
        "relay": relay,
        "client_gw": client_gw,
        "tls": relay_tls(relay),
        "client_tls": relay_tls(client_gw),
        "signers": client_gw.local[giamdinh].signers,
        "portal": client_gw.local[make_call(CONGTT, SVC_ECHO).client].signers,
        "kem": provider_gw.directory.subsystems[
            make_call(GIAMDINH, SVC_RESIDENCE).service.subsystem
        ].kem,
        "client_kem": client_gw.directory.subsystems[giamdinh].kem,
        "port": fed.testbed.peer_ports["BCA-GW"],
        "provider_signers": provider_gw.local[
            make_call(GIAMDINH, SVC_ECHO).service.subsystem
        ].signers,
    }


def refused(fed: Federation, action: Callable[[], httpx.Response], code: str) -> httpx.Response:
    """``action`` is answered with exactly the uniform refusal ``code``; nothing reached the
    provider's service."""
    before = len(fed.received())
    resp = action()
    assert resp.headers.get("X-LT-Error") == code, (resp.status_code, resp.text)
    assert resp.json() == {"error": code}, resp.text  # nothing more for the peer
    lt = {k.lower() for k in resp.headers if k.lower().startswith("x-lt-")}
    assert lt <= {"x-lt-error", "x-lt-refusal"}, lt  # a signed refusal at most, between gateways
    assert resp.headers.get("server") == "lienthong"
    time.sleep(0.05)
    assert len(fed.received()) == before, "the provider's service must receive nothing"
    return resp


def _internal(fed: Federation) -> str:
    return fed.testbed.internal_url("BHXH-GW")


def _send(kit: dict[str, Any], call: Any, headers: dict[str, str], body: bytes) -> httpx.Response:
    return send(kit["tls"], kit["port"], call, headers, body)


# --- certificates ---------------------------------------------------------------------------


def test_a_certificate_is_refused_from_its_expiry_not_a_cache_period_later(
    fed: Federation, kit: dict[str, Any]
) -> None:
    """First in the module: the certificate is still valid for a few seconds. Its check is
    cached for status_ttl_s (10 min here); its expiry is known in advance and must end the
    cached verdict."""
    signer, pem = fed.extra_keys["expiring"]
    ks = KeyedSigner(signer, fingerprint(load_pem_cert(pem)))
    expires = load_pem_cert(pem).not_valid_after_utc.timestamp()
    if time.time() > expires - 1:
        pytest.fail("the testbed took too long to start: the certificate expired already")
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, [ks], kit["relay"], level=0, route=ROUTE)
    assert _send(kit, call, headers, body).status_code == 200  # valid: checked and cached
    time.sleep(max(0.0, expires - time.time()) + 1.0)
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, [ks], kit["relay"], level=0, route=ROUTE)
    refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_SIGNATURE")


# --- freshness and replay -------------------------------------------------------------------


def test_a_request_signed_ahead_of_the_provider_clock_cannot_be_replayed_after_its_restart(
    fed: Federation, kit: dict[str, Any]
) -> None:
    """A signer whose clock runs 60 s fast (inside the 300 s window): the request's timestamp
    lies after the provider's next start, so the process-start floor does not stop it; a
    relay that kept it replays it once BCA-GW restarted."""
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE, ts=time.time() + 60
    )
    assert _send(kit, call, headers, body).status_code == 200
    fed.running.stop("BCA-GW", kill=True)  # a crash: nothing written at shutdown
    fed.running.start_gateway("BCA-GW")
    refused(fed, lambda: _send(kit, call, headers, body), "LT.REPLAY")
    fresh = make_call(GIAMDINH, SVC_ECHO, method="POST")  # freshly signed: served
    headers, body, _ = build_request(fresh, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    assert _send(kit, fresh, headers, body).status_code == 200


def test_replay_journal_keeps_only_what_a_restart_needs(tmp_path: Path) -> None:
    journal = tmp_path / "state" / "replay-ahead.journal"
    w = ReplayWindow(300, 1000, start=1000.0, journal=journal)
    w.check_and_record("synchronised", 1001.05, 1001.0)  # jitter: not written
    w.check_and_record("ahead", 1060.0, 1001.0)
    assert journal.read_text() == "1060.0\tahead\n"
    again = ReplayWindow(300, 1000, start=1010.0, journal=journal)  # restarted
    with pytest.raises(Refused, match="already seen"):
        again.check_and_record("ahead", 1060.0, 1061.0)
    with pytest.raises(Refused, match="process start"):
        again.check_and_record("synchronised", 1001.05, 1011.0)
    journal.write_text(journal.read_text() + "10")  # a line torn by a crash
    third = ReplayWindow(300, 1000, start=1100.0, journal=journal)  # "ahead" is below its floor
    assert len(third) == 0 and journal.read_text() == ""


# --- signatures -----------------------------------------------------------------------------


def test_an_unverified_pq_token_is_not_taken_at_a_classical_level(
    fed: Federation, kit: dict[str, Any]
) -> None:
    """At PUBLIC no ML-DSA token is due; one that a relay adds was neither verified nor may it
    be kept as the message log's evidence of a signed token."""
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    headers["X-LT-Request-PQ"] = "eyJhbGciOiJNTC1EU0EtNjUiLCJraWQiOiJ4In0..AAAA"
    refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_SIGNATURE")


@pytest.mark.parametrize(
    "overrides",
    [
        {"enc": "X25519-MLKEM768-AES256GCM"},
        {"enc": ["X25519-MLKEM768-AES256GCM"]},
        {"enc": {"suite": 7}},
        {"body": "sha256"},
        {"body": ["x"]},
        {"body": {"sha256": 5, "len": 0}},
        {"body": {"sha256": "", "len": "0"}},
        {"route": "BHXH-GW,NDXP,BCA-GW"},
        {"purpose": "   "},
        {"legal": " "},
    ],
)
def test_malformed_signed_claims_are_uniform_refusals(
    fed: Federation, kit: dict[str, Any], overrides: dict[str, Any]
) -> None:
    """A member key signs what it likes: a claim of the wrong type is a refusal with its own
    code (never LT.INTERNAL, a bug, with a traceback in the provider's log)."""
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE, overrides=overrides
    )
    code = "LT.ROUTE" if "route" in overrides else "LT.BAD_REQUEST"
    refused(fed, lambda: _send(kit, call, headers, body), code)


@pytest.mark.parametrize(
    "overrides", [{"enc": "X25519-MLKEM768-AES256GCM"}, {"enc": {"suite": None}}, {"enc": {}}]
)
def test_malformed_enc_where_encryption_is_required(
    fed: Federation, kit: dict[str, Any], overrides: dict[str, Any]
) -> None:
    call = make_call(GIAMDINH, SVC_RESIDENCE, "/001203004567")
    headers, body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=2, route=ROUTE, overrides=overrides
    )
    refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_REQUEST")


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PROPFIND", "HEAD"])
def test_only_the_protocol_methods_reach_a_service(
    fed: Federation, kit: dict[str, Any], method: str
) -> None:
    """The internal API takes GET POST PUT PATCH DELETE; a member key signing another method
    (and a relay sending it) must not get it to the provider's service."""
    call = make_call(GIAMDINH, SVC_ECHO, method=method)
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    if method != "HEAD":
        refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_REQUEST")
        return
    resp = _send(kit, call, headers, body)  # an answer to HEAD has no body
    assert resp.headers.get("X-LT-Error") == "LT.BAD_REQUEST", resp.status_code


# --- encryption -----------------------------------------------------------------------------


def _claims(token: str) -> bytes:
    import base64

    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# --- access, clearance, route ---------------------------------------------------------------


# --- header confusion -----------------------------------------------------------------------


# --- a relay tampering with answers ---------------------------------------------------------


class _TamperingRelay(ServerThread):
    """NDXP's TLS identity on its first-link port (the link proxy stopped): verifies nothing,
    forwards to BCA-GW with a genuine NDXP hop receipt, then alters the answer per ``mode``:
    ``pq`` adds an ``X-LT-Response-PQ`` of its own, ``swap`` answers with the previous call's
    answer, ``flip`` flips the last byte of the (encrypted) body."""

    def __init__(self, fed: Federation, kit: dict[str, Any]) -> None:
        super().__init__()
        self.mode = "pass"
        self.patch: dict[str, Any] = {}  # response claims changed in mode "resign"
        self._fed, self._kit = fed, kit
        self._previous: tuple[int, dict[str, str], bytes] | None = None

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        relay = self._kit["relay"]
        token = request.headers["X-LT-Request"]
        headers = {k: v for k, v in request.headers.items() if k.startswith("X-LT-Request")}
        headers["X-LT-Hops"] = hop_receipt(
            relay.name, token_hash(token), time.time(), relay.receipt_signer
        )
        body = await request.read()
        resp = await asyncio.to_thread(
            httpx.request,
            request.method,
            f"https://127.0.0.1:{self._kit['port']}{request.raw_path}",
            headers=headers,
            content=body,
            verify=self._kit["tls"],
        )
        keep = {"content-type", "x-lt-response", "x-lt-response-pq", "x-lt-error", "x-lt-refusal"}
        back = {k: v for k, v in resp.headers.items() if k.lower() in keep}
        answer = (resp.status_code, dict(back), resp.content)
        if self.mode == "pq":
            answer[1]["X-LT-Response-PQ"] = "eyJhbGciOiJNTC1EU0EtNjUiLCJraWQiOiJ4In0..AAAA"
        elif self.mode == "swap" and self._previous is not None:
            answer = self._previous
        elif self.mode == "flip":
            answer = (resp.status_code, back, resp.content[:-1] + bytes([resp.content[-1] ^ 1]))
        elif self.mode == "resign":  # as a compromised provider would sign it
            rclaims = {**json.loads(_claims(back["x-lt-response"])), **self.patch}
            answer[1]["x-lt-response"] = sign_claims(rclaims, self._kit["provider_signers"][:1])[0]
        self._previous = (resp.status_code, back, resp.content)
        status, out_headers, out_body = answer
        out = web.Response(status=status, body=out_body, headers=out_headers)
        out.force_close()  # no keep-alive connection left behind
        return out

    async def start(self) -> None:
        from lienthong.exchange.node import tls_contexts
        from lienthong.trust.secrets import resolve_secret

        relay = self._kit["relay"]
        server_ctx, _ = tls_contexts(relay.cfg, resolve_secret(relay.cfg.passphrase))
        port = self._fed.testbed.proxies["NDXP"][0]
        self._web = web.Server(self._handle)
        self._srv = await self._loop.create_server(self._web, "127.0.0.1", port, ssl=server_ctx)

    async def stop(self) -> None:
        self._srv.close()
        await self._web.shutdown(1.0)
        await self._srv.wait_closed()

    def __enter__(self) -> _TamperingRelay:
        self._fed.running.stop("link:NDXP")
        return super().__enter__()

    def __exit__(self, *_: object) -> None:
        super().__exit__()
        self._fed.running.start_link("NDXP")


def _uniform(resp: httpx.Response, code: str) -> None:
    assert resp.headers.get("X-LT-Error") == code, (resp.status_code, resp.text)
    assert resp.json() == {"error": code}
    assert not any(
        k.lower().startswith("x-lt-") and k.lower() != "x-lt-error" for k in resp.headers
    )


def test_a_relay_cannot_alter_or_swap_answers(fed: Federation, kit: dict[str, Any]) -> None:
    """The client gateway takes only the provider's answer to this very request: an ML-DSA
    token a relay adds is verified (not logged as evidence unverified), an answer lifted from
    another call or a flipped ciphertext byte is LT.BAD_SIGNATURE."""
    echo = f"{_internal(fed)}/r1/{SVC_ECHO}"
    residence = f"{_internal(fed)}/r1/{SVC_RESIDENCE}/001203004567"

    def post(url: str, body: bytes) -> httpx.Response:
        return httpx.post(url, headers=HEADERS, content=body, timeout=20)

    with _TamperingRelay(fed, kit) as evil:
        assert post(echo, b"first").content == b"first"  # passes through unaltered
        evil.mode = "pq"
        _uniform(post(echo, b"pq"), "LT.BAD_SIGNATURE")
        evil.mode = "swap"
        _uniform(post(echo, b"second"), "LT.BAD_SIGNATURE")
        evil.mode = "flip"
        _uniform(post(residence, b""), "LT.BAD_SIGNATURE")


@pytest.mark.parametrize("body", [["x"], "sha256", {"sha256": 5, "len": "1"}, 7])
def test_a_provider_cannot_sign_a_response_body_claim_the_caller_cannot_take(
    fed: Federation, kit: dict[str, Any], body: object
) -> None:
    """A member key signs what it likes, the provider's too: a malformed body claim in its
    response is a uniform LT.BAD_SIGNATURE at the client gateway, not a 500."""
    echo = f"{_internal(fed)}/r1/{SVC_ECHO}"
    with _TamperingRelay(fed, kit) as evil:
        evil.mode, evil.patch = "resign", {"body": body}
        resp = httpx.post(echo, headers=HEADERS, content=b"x", timeout=20)
        _uniform(resp, "LT.BAD_SIGNATURE")
        evil.mode, evil.patch = "resign", {}  # the same path, re-signed unchanged: accepted
        resp = httpx.post(echo, headers=HEADERS, content=b"y", timeout=20)
        assert resp.status_code == 200 and resp.content == b"y"


# --- certificate status (last: it ends with a fresh CRL, as it found it) --------------------


def _signed_by(fed: Federation, kit: dict[str, Any], name: str) -> tuple[Any, dict, bytes]:
    signer, pem = fed.extra_keys[name]
    ks = KeyedSigner(signer, fingerprint(load_pem_cert(pem)))
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, [ks], kit["relay"], level=0, route=ROUTE)
    return call, headers, body


def test_an_old_or_stale_crl_does_not_unrevoke(fed: Federation, kit: dict[str, Any]) -> None:
    """A CRL file put back from before a revocation (lower CRL number) is ignored; a CRL long
    past its next update (beyond status_grace_s, 24 h) fails certificate checks closed."""
    ca = fed.testbed.ca
    crl_path = ca.directory / "crl.pem"
    old = crl_path.read_bytes()
    now = dt.datetime.now(dt.UTC)
    try:
        ca.revoke(
            load_pem_cert(fed.extra_keys["revoked-later"][1]).serial_number, "keyCompromise", now
        )
        call, headers, body = _signed_by(fed, kit, "crl-trigger")
        assert _send(kit, call, headers, body).status_code == 200  # the new CRL is read
        crl_path.write_bytes(old)  # the list from before the revocation, put back
        call, headers, body = _signed_by(fed, kit, "revoked-later")
        refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_SIGNATURE")
        ca.publish_crl(now - dt.timedelta(days=30))  # next update 23 days ago
        call, headers, body = _signed_by(fed, kit, "crl-probe")
        refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_SIGNATURE")
    finally:
        ca.publish_crl(dt.datetime.now(dt.UTC))


# --- an isolated zone: TUYET_MAT, direct links, an expired directory ------------------------
