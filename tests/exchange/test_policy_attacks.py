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
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.exchange.conftest import LIMITS, Federation, add_directory_certs
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
from lienthong.errors import CertificateError
from lienthong.exchange.certs import CrlStatus, fingerprint, load_pem_cert
from lienthong.exchange.config import load_config
from lienthong.exchange.e2e import b64e
from lienthong.exchange.envelope import KeyedSigner, hop_receipt, sign_claims, token_hash
from lienthong.exchange.exchange_log import Metrics
from lienthong.exchange.node import build_node, tls_contexts
from lienthong.exchange.processes import Running
from lienthong.exchange.protocol import Refused
from lienthong.exchange.replay import ReplayWindow
from lienthong.exchange.server import Watchdog, _listen, bound_port, build_servers
from lienthong.exchange.testbed import (
    CONGTT,
    GIAMDINH,
    SVC_ECHO,
    SVC_RESIDENCE,
    SVC_SECRET,
    FederationSpec,
    NodeSpec,
    ServiceSpec,
    SubsystemSpec,
    Testbed,
    build_testbed,
    demo_spec,
)
from lienthong.exchange.transport import make_sessions
from lienthong.identifiers import SubsystemId
from lienthong.trust.enrol import make_csr
from lienthong.trust.keys import Algorithm, Signer
from lienthong.trust.keystore import FileKeyStore
from lienthong.trust.profiles import Profile
from lienthong.trust.secrets import resolve_secret

EXPIRING_IN_S = 8.0  # the short-lived signing certificate's remaining validity at start


def _signing_certificates(tb: Testbed, workdir: Path) -> dict[str, tuple[Signer, str]]:
    """Extra GIAMDINH signing certificates, listed in the directory before the start: one that
    expires a few seconds after it, and the others for the CRL cases, each used for the first
    time by its test (so its check is not cached yet)."""
    now = dt.datetime.now(dt.UTC)
    store = FileKeyStore(workdir / "odd-keys", {"$env": tb.passphrase_env})
    out: dict[str, tuple[Signer, str]] = {}
    expiring_at = now - dt.timedelta(days=1) + dt.timedelta(seconds=EXPIRING_IN_S)
    for name, at in [
        ("expiring", expiring_at),
        ("crl-trigger", now),
        ("revoked-later", now),
        ("crl-probe", now),
        ("crl-held-1", now),
        ("crl-held-2", now),
        ("crl-held-3", now),
        ("crl-held-4", now),
    ]:
        signer = store.generate(name, Algorithm.ECDSA_P256)
        csr = make_csr(signer, SubsystemId.parse(GIAMDINH))
        cert = tb.ca.issue(csr, profile=Profile.SIGNING, now=at, days=1)
        out[name] = (signer, cert.public_bytes(serialization.Encoding.PEM).decode())
    add_directory_certs(tb, GIAMDINH, [pem for _, pem in out.values()])
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
    assert not journal.exists()
    w.check_and_record("ahead", 1060.0, 1001.0)
    assert journal.read_text().split() == ["1060.0", "ahead"]
    with journal.open("a") as fh:
        fh.write("10")  # a line torn by a crash while appending
    again = ReplayWindow(300, 1000, start=1010.0, journal=journal)  # restarted
    with pytest.raises(Refused, match="already seen"):
        again.check_and_record("ahead", 1060.0, 1061.0)
    with pytest.raises(Refused, match="process start"):
        again.check_and_record("synchronised", 1001.05, 1011.0)
    again.check_and_record("later", 1200.0, 1100.0)  # appended after the torn line
    third = ReplayWindow(300, 10_000, start=1100.0, journal=journal)
    assert len(third) == 1  # "ahead" is below its floor; "later" is remembered
    with pytest.raises(Refused, match="already seen"):
        third.check_and_record("later", 1200.0, 1101.0)
    for i in range(3000):  # 1 s ahead, 10 ms apart: about 100 alive at a time
        third.check_and_record(f"k{i}", 1102.0 + i * 0.01, 1101.0 + i * 0.01)
    assert len(journal.read_text().split()) <= 2 * (1024 + 2 * 200)  # compacted as it grew


def test_replay_journal_group_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """admit: the records queued before the committer runs share one fsync; each future ends
    once its own record is durable; a second copy of a key is refused at once; a journal
    that cannot be written refuses the requests of that commit (LT.UNAVAILABLE)."""
    real_fsync = os.fsync
    syncs: list[int] = []  # of the journal file (its directory is fsynced once, when created)

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("replay-ahead.journal"):
            syncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    journal = tmp_path / "state" / "replay-ahead.journal"

    async def run() -> None:
        w = ReplayWindow(300, 100_000, start=1000.0, journal=journal)
        assert w.admit("in-step", 1001.05, 1001.0) is None  # jitter: nothing to wait for
        queued = [w.admit(f"a{i}", 1060.0, 1001.0) for i in range(6)]  # one loop turn
        with pytest.raises(Refused, match="already seen"):
            w.admit("a3", 1060.0, 1001.0)
        assert not journal.exists()  # nothing written on the loop
        await asyncio.gather(*[f for f in queued if f is not None])
        assert len(syncs) == 1  # the six records: one commit, one fsync
        assert journal.read_text().split()[1::2] == [f"a{i}" for i in range(6)]
        later = w.admit("a6", 1060.0, 1001.0)
        assert later is not None and not later.done()  # durable only once its commit ran
        await later
        assert len(syncs) == 2
        for i in range(3000):  # compacted by the committer as it grows
            durable = w.admit(f"k{i}", 1102.0 + i * 0.01, 1101.0 + i * 0.01)
            assert durable is not None
            await durable
        assert len(journal.read_text().split()) <= 2 * (1024 + 2 * 200)
        again = ReplayWindow(300, 100_000, start=1131.0, journal=journal)
        assert len(again) == 100  # the keys still ahead of the last call, nothing else
        broken = ReplayWindow(300, 1000, start=1000.0, journal=tmp_path / "dir")
        (tmp_path / "dir").mkdir()
        durable = broken.admit("b", 1060.0, 1001.0)
        assert durable is not None
        with pytest.raises(Refused) as info:
            await durable
        assert info.value.lt_code.value == "LT.UNAVAILABLE"

    asyncio.run(run())


class _InProcessGateway(ServerThread):
    """BCA-GW's gateway in this process (a peer listener on a port of its own, state in a
    scratch directory), so a test can hold its replay-journal fsync."""

    def __init__(self, fed: Federation, name: str) -> None:
        super().__init__()
        cfg = load_config(fed.testbed.configs[name])
        self.cfg = msgspec.structs.replace(
            cfg,
            state_dir=str(fed.testbed.workdir / "scratch" / f"{name}-in-process"),
            peer=msgspec.structs.replace(cfg.peer, port=0),
            internal=None,
            admin=None,
        )
        self.port = 0

    async def start(self) -> None:
        cfg, lim = self.cfg, self.cfg.limits
        self.node = build_node(cfg)
        server_ctx, client_ctx = tls_contexts(cfg, resolve_secret(cfg.passphrase))
        self.sessions = make_sessions(client_ctx, lim.connect_timeout_s, lim.upstream_timeout_s)
        factories = build_servers(self.node, self.sessions, Metrics(), Watchdog())
        self.server = await _listen(factories["peer"], cfg.peer, server_ctx, lim.header_timeout_s)
        self.port = bound_port(self.server)

    async def stop(self) -> None:
        self.server.close()
        await self.sessions.close()
        self.node.close()


def test_a_request_signed_ahead_does_not_hold_other_calls(
    fed: Federation, kit: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal record of a request signed ahead of the provider's clock is made durable
    off the event loop: while its fsync is held, a normal call is served; the ahead request
    itself reaches the service only once its record is durable."""
    real_fsync = os.fsync
    held, release = threading.Event(), threading.Event()
    order: list[str] = []

    def fsync(fd: int) -> None:
        if "replay-ahead.journal" in os.readlink(f"/proc/self/fd/{fd}"):
            order.append("journal fsync")
            held.set()
            release.wait(8)  # a deadlock breaker only: a loop-blocking fsync holds the call
            order.append("journal durable")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    answers: dict[str, httpx.Response] = {}
    with _InProcessGateway(fed, "BCA-GW") as gw:
        ahead = make_call(GIAMDINH, SVC_ECHO, method="POST")
        a_headers, a_body, _ = build_request(
            ahead,
            kit["signers"][:1],
            kit["relay"],
            level=0,
            route=ROUTE,
            body=b"ahead",
            ts=time.time() + 60,
        )
        sender = threading.Thread(
            target=lambda: answers.update(ahead=send(kit["tls"], gw.port, ahead, a_headers, a_body))
        )
        before = len(fed.received())
        sender.start()
        assert held.wait(10), "the ahead-signed request was not journaled"
        call = make_call(GIAMDINH, SVC_ECHO, method="POST")
        headers, body, _ = build_request(
            call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE, body=b"normal"
        )
        resp = send(kit["tls"], gw.port, call, headers, body)
        order.append("normal call answered")
        assert resp.status_code == 200
        assert len(fed.received()) == before + 1  # the normal call only: the other waits
        assert "ahead" not in answers
        release.set()
        sender.join(15)
        assert answers["ahead"].status_code == 200
        assert len(fed.received()) == before + 2
    assert order == ["journal fsync", "normal call answered", "journal durable"]
    journal = Path(gw.cfg.state_dir) / "replay-ahead.journal"
    assert journal.read_text().split()[-1] == f"{GIAMDINH}|{ahead.message_id}"


def test_a_caller_chosen_id_stays_single_use_across_a_client_gateway_restart(
    fed: Federation,
) -> None:
    """BHXH-GW forgets the ids its callers chose when it restarts; the provider, which did
    not restart, still refuses the second call under the id (a signed LT.REPLAY)."""
    headers = {**HEADERS, "X-LT-Id": str(uuid.uuid4())}
    url = f"{_internal(fed)}/r1/{SVC_ECHO}"
    assert httpx.post(url, headers=headers, content=b"once").status_code == 200
    fed.running.stop("BHXH-GW")
    fed.running.start_gateway("BHXH-GW")
    refused(fed, lambda: httpx.post(url, headers=headers, content=b"twice"), "LT.REPLAY")


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
        {"level": 0.0},  # equal to 0 in Python, not an integer claim
        {"level": False},  # likewise
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


@pytest.mark.parametrize("level", [0.0, False, 4.0])
def test_the_level_claim_is_an_integer_at_every_node(
    fed: Federation, kit: dict[str, Any], level: Any
) -> None:
    """4.0 == 4 and False == 0 in Python: a signed level of another JSON type matched the
    service's level. Refused by the relay (NDXP, we are BHXH-GW) and by the provider (BCA-GW,
    we are NDXP), each with a signed LT.BAD_REQUEST."""
    mat = level == 4
    for node in ("NDXP", "BCA-GW"):
        call = make_call(GIAMDINH, SVC_SECRET if mat else SVC_ECHO, method="POST")
        headers, body, _ = build_request(
            call,
            kit["signers"][: 2 if mat else 1],
            kit["relay"],
            level=4 if mat else 0,
            route=ROUTE,
            body=b"x",
            encrypt_to=kit["kem"] if mat else None,
            overrides={"level": level},
        )
        if node == "NDXP":
            del headers["X-LT-Hops"]
            port, tls = fed.testbed.peer_ports["NDXP"], kit["client_tls"]
        else:
            port, tls = kit["port"], kit["tls"]
        resp = refused(
            fed,
            lambda t=tls, p=port, c=call, h=headers, b=body: send(t, p, c, h, b),
            "LT.BAD_REQUEST",
        )
        assert "X-LT-Refusal" in resp.headers


def _with_payload(headers: dict[str, str], raw: bytes, signer: KeyedSigner, relay: Any) -> None:
    """Replace the request token by one over the claims ``raw`` (JSON text as given), validly
    signed by ``signer``, and NDXP's receipt by one bound to it."""
    from lienthong.exchange.envelope import _raw_signature

    head = headers["X-LT-Request"].split(".")[0]
    payload = b64e(raw)
    sig = _raw_signature(signer.signer, f"{head}.{payload}".encode(), signer.algorithm)
    token = f"{head}.{payload}.{b64e(sig)}"
    headers["X-LT-Request"] = token
    headers["X-LT-Hops"] = hop_receipt("NDXP", token_hash(token), time.time(), relay.receipt_signer)


@pytest.mark.parametrize(
    "duplicate",
    [
        b',"purpose":"khac"',  # the same member twice: orjson keeps the last
        b',"purpos\\u0065":"khac"',  # the same name once decoded
        b',"method":"POST"',  # even with the same value
    ],
)
def test_claims_with_a_member_named_twice_are_refused(
    fed: Federation, kit: dict[str, Any], duplicate: bytes
) -> None:
    """RFC 7519 §4: a JWT parser must reject duplicate claim names or keep the last; a
    re-implementation (or an auditor's tool reading the message-log evidence) that keeps the
    first would read another value from the same signed token. Refused, like claims that are
    not JSON (the same token without the duplicate passes)."""
    es = kit["signers"][0]
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, [es], kit["relay"], level=0, route=ROUTE)
    raw = _claims(headers["X-LT-Request"])
    _with_payload(headers, raw, es, kit["relay"])
    assert _send(kit, call, headers, body).status_code == 200  # re-signed as it was: passes
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, [es], kit["relay"], level=0, route=ROUTE)
    raw = _claims(headers["X-LT-Request"])
    assert raw.endswith(b"}")
    _with_payload(headers, raw[:-1] + duplicate + b"}", es, kit["relay"])
    refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_SIGNATURE")


def test_a_jws_header_with_a_parameter_named_twice_is_refused(
    fed: Federation, kit: dict[str, Any]
) -> None:
    """RFC 7515 §4: the same for the protected header (here "alg" twice, "none" first)."""
    es = kit["signers"][0]
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, [es], kit["relay"], level=0, route=ROUTE)
    token = headers["X-LT-Request"]
    head = b64e(f'{{"alg":"none","kid":"{es.kid}","alg":"ES256"}}'.encode())
    from lienthong.exchange.envelope import _raw_signature

    payload = token.split(".")[1]
    sig = _raw_signature(es.signer, f"{head}.{payload}".encode(), es.algorithm)
    token = f"{head}.{payload}.{b64e(sig)}"
    headers["X-LT-Request"] = token
    headers["X-LT-Hops"] = hop_receipt(
        "NDXP", token_hash(token), time.time(), kit["relay"].receipt_signer
    )
    refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_SIGNATURE")


@pytest.mark.parametrize(
    "change",
    [
        {"X-LT-Purpose": None},
        {"X-LT-Legal-Basis": None},
        {"X-LT-Purpose": ""},
        {"X-LT-Purpose": "p" * 513},
        {"X-LT-Legal-Basis": "l" * 513},
        {"X-LT-UserId": "u" * 513},
        {"X-LT-Purpose": "muc\x7fdich"},
        {"X-LT-Id": "001203004567"},  # a personal ID is not a message id
        {"x-lt-purpose": "khac", "X-LT-PURPOSE": "khac nua"},  # case variants, repeated
    ],
)
def test_internal_api_purpose_legal_basis_and_header_confusion(
    fed: Federation, change: dict[str, str | None]
) -> None:
    headers = [(k, v) for k, v in HEADERS.items() if k not in change]
    headers += [(k, v) for k, v in change.items() if v is not None]
    url = f"{_internal(fed)}/r1/{SVC_ECHO}"
    refused(fed, lambda: httpx.post(url, headers=headers, content=b"x"), "LT.BAD_REQUEST")


def _mat_request(kit: dict[str, Any], pq: KeyedSigner | None = None, **kw: Any) -> tuple:
    call = make_call(GIAMDINH, SVC_SECRET, method="POST")
    signers = [kit["signers"][0], pq or kit["signers"][1]]
    headers, body, _ = build_request(
        call, signers, kit["relay"], level=4, route=ROUTE, body=b"x", encrypt_to=kit["kem"], **kw
    )
    return call, headers, body


def test_hybrid_signature_from_another_subsystem_or_over_another_payload(
    fed: Federation, kit: dict[str, Any]
) -> None:
    call, headers, body = _mat_request(kit)
    assert _send(kit, call, headers, body).status_code == 200  # the genuine one passes
    call, headers, body = _mat_request(kit, pq=kit["portal"][1])  # CONGTT's ML-DSA key
    refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_SIGNATURE")
    call, headers, body = _mat_request(kit)
    _, other, _ = _mat_request(kit)  # GIAMDINH's ML-DSA token of another call
    headers["X-LT-Request-PQ"] = other["X-LT-Request-PQ"]
    refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_SIGNATURE")
    call, headers, body = _mat_request(kit)
    primary = headers["X-LT-Request"].split(".")
    detached = headers["X-LT-Request-PQ"].split(".")
    headers["X-LT-Request-PQ"] = f"{detached[0]}.{primary[1]}.{detached[2]}"  # not detached
    refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_SIGNATURE")


def _resigned(token: str, header: dict[str, Any], signer: KeyedSigner) -> str:
    """The token's payload under another protected header, validly signed by ``signer``."""
    from lienthong.exchange.envelope import _raw_signature

    head = b64e(json.dumps(header).encode())
    payload = token.split(".")[1]
    sig = _raw_signature(signer.signer, f"{head}.{payload}".encode(), signer.algorithm)
    return f"{head}.{payload}.{b64e(sig)}"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none"},
        {"alg": "HS256"},
        {"alg": "ES256", "b64": False, "crit": ["b64"]},
        {"alg": "ES256", "jku": "https://127.0.0.1/keys"},
        {"alg": "ES256", "kid": "PQ"},  # the ML-DSA certificate's kid under ES256
        {"alg": "ES256", "kid": "UPPER"},  # the right fingerprint, upper-case
    ],
)
def test_jws_header_tricks(fed: Federation, kit: dict[str, Any], header: dict[str, Any]) -> None:
    """Signatures are valid over the altered header (the plain ES256 header passes): only the
    header itself is refused."""
    es, pq = kit["signers"][0], kit["signers"][1]
    kid = {"PQ": pq.kid, "UPPER": es.kid.upper()}.get(header.get("kid", ""), es.kid)
    baseline = make_call(GIAMDINH, SVC_ECHO, method="POST")
    plain, body, _ = build_request(baseline, [es], kit["relay"], level=0, route=ROUTE)
    plain["X-LT-Request"] = _resigned(plain["X-LT-Request"], {"alg": "ES256", "kid": es.kid}, es)
    plain["X-LT-Hops"] = hop_receipt(
        "NDXP", token_hash(plain["X-LT-Request"]), time.time(), kit["relay"].receipt_signer
    )
    assert _send(kit, baseline, plain, body).status_code == 200
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, [es], kit["relay"], level=0, route=ROUTE)
    token = _resigned(headers["X-LT-Request"], {**header, "kid": kid}, es)
    headers["X-LT-Request"] = token
    headers["X-LT-Hops"] = hop_receipt(
        "NDXP", token_hash(token), time.time(), kit["relay"].receipt_signer
    )
    refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_SIGNATURE")


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


def test_key_agreement_confusion(fed: Federation, kit: dict[str, Any]) -> None:
    """Encrypted to the wrong recipient, or with the key-agreement parameters of another
    message: the provider cannot open the body, the service sees nothing."""
    call = make_call(GIAMDINH, SVC_RESIDENCE, "/001203004567")
    headers, body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=2, route=ROUTE, encrypt_to=kit["client_kem"]
    )
    refused(fed, lambda: _send(kit, call, headers, body), "LT.BAD_SIGNATURE")
    first = make_call(GIAMDINH, SVC_RESIDENCE, "/001203004567")
    h1, b1, _ = build_request(
        first, kit["signers"][:1], kit["relay"], level=2, route=ROUTE, encrypt_to=kit["kem"]
    )
    enc = json.loads(_claims(h1["X-LT-Request"]))["enc"]
    call = make_call(GIAMDINH, SVC_RESIDENCE, "/001203004567")
    headers, _, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=2, route=ROUTE, overrides={"enc": enc}
    )
    refused(fed, lambda: _send(kit, call, headers, b1), "LT.BAD_SIGNATURE")


def _claims(token: str) -> bytes:
    import base64

    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# --- access, clearance, route ---------------------------------------------------------------


def test_provider_enforces_the_client_clearance(fed: Federation, kit: dict[str, Any]) -> None:
    """CONGTT (cleared INTERNAL) holds an access right to a PERSONAL service: its gateway
    refuses it, and so does the provider when a compromised gateway sends it anyway."""
    call = make_call(CONGTT, SVC_RESIDENCE, "/001203004567")
    headers, body, _ = build_request(
        call, kit["portal"][:1], kit["relay"], level=2, route=ROUTE, encrypt_to=kit["kem"]
    )
    refused(fed, lambda: _send(kit, call, headers, body), "LT.CLEARANCE")


def test_a_client_gateway_cannot_skip_the_platform(fed: Federation, kit: dict[str, Any]) -> None:
    """BHXH-GW's own TLS identity sends straight to BCA-GW: no direct link is configured."""
    for route in (ROUTE, ["BHXH-GW", "BCA-GW"]):
        call = make_call(GIAMDINH, SVC_ECHO, method="POST")
        headers, body, _ = build_request(
            call, kit["signers"][:1], kit["relay"], level=0, route=route
        )
        del headers["X-LT-Hops"]

        def action(c: Any = call, h: dict[str, str] = headers, b: bytes = body) -> httpx.Response:
            return send(kit["client_tls"], kit["port"], c, h, b)

        refused(fed, action, "LT.ROUTE")


def test_hop_receipts_from_the_wrong_node_or_call(fed: Federation, kit: dict[str, Any]) -> None:
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, req_hash = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE
    )
    # BHXH-GW's node key signs a receipt naming NDXP
    headers["X-LT-Hops"] = hop_receipt(
        "NDXP", req_hash, time.time(), kit["client_gw"].receipt_signer
    )
    refused(fed, lambda: _send(kit, call, headers, body), "LT.ROUTE")
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    other = make_call(GIAMDINH, SVC_ECHO, method="POST")
    other_headers, _, _ = build_request(
        other, kit["signers"][:1], kit["relay"], level=0, route=ROUTE
    )
    headers["X-LT-Hops"] = other_headers["X-LT-Hops"]  # NDXP's genuine receipt of another call
    refused(fed, lambda: _send(kit, call, headers, body), "LT.ROUTE")


def test_the_relay_checks_its_previous_hop_and_receipts(
    fed: Federation, kit: dict[str, Any]
) -> None:
    """At NDXP: a receipt where no relay came before, the provider's gateway posing as the
    client's, and a MAT call without its ML-DSA token — each refused by the relay itself."""
    port = fed.testbed.peer_ports["NDXP"]
    cases = []
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    cases.append((kit["client_tls"], call, headers, body, "LT.ROUTE"))  # a receipt too many
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    del headers["X-LT-Hops"]
    cases.append((relay_tls(fed.node("BCA-GW")), call, headers, body, "LT.ROUTE"))
    call = make_call(GIAMDINH, SVC_SECRET, method="POST")
    headers, body, _ = build_request(
        call,
        kit["signers"][:1],
        kit["relay"],
        level=4,
        route=ROUTE,
        body=b"x",
        encrypt_to=kit["kem"],
    )
    del headers["X-LT-Hops"]
    cases.append((kit["client_tls"], call, headers, body, "LT.BAD_SIGNATURE"))
    for tls, c, h, b, code in cases:
        resp = refused(fed, lambda t=tls, c=c, h=h, b=b: send(t, port, c, h, b), code)
        assert "X-LT-Refusal" in resp.headers  # signed by NDXP, bound to this request


# --- header confusion -----------------------------------------------------------------------


def test_peer_refuses_case_variants_of_a_protocol_header(
    fed: Federation, kit: dict[str, Any]
) -> None:
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    other = make_call(GIAMDINH, SVC_ECHO, method="POST")
    other_headers, _, _ = build_request(
        other, kit["signers"][:1], kit["relay"], level=0, route=ROUTE
    )
    twice = [*headers.items(), ("x-lt-request", other_headers["X-LT-Request"])]
    url = f"https://127.0.0.1:{kit['port']}/r1/{call.service}"

    def action() -> httpx.Response:
        with httpx.Client(verify=kit["tls"], timeout=10) as c:
            return c.post(url, headers=twice, content=body)

    refused(fed, action, "LT.BAD_REQUEST")


@pytest.mark.parametrize(
    ("service", "code"),
    [
        ("VN/GOV/G01.BCA/DANCU/%2e%2e", "LT.BAD_REQUEST"),
        ("VN/GOV/G01.BCA/DANCU/..%2fecho", "LT.BAD_REQUEST"),
        ("VN/GOV/G01.BCA/DANCU/echo%00", "LT.BAD_REQUEST"),
        ("VN/GOV/G01.BCA/DANCU/ech%CE%BF", "LT.BAD_REQUEST"),  # Greek omicron
        ("VN/GOV/G01.BCA/DANCU/%EF%BD%85cho", "LT.BAD_REQUEST"),  # fullwidth e
        ("VN/GOV/G01.BCA/DANCU/ECHO", "LT.ACCESS_DENIED"),
        ("VN/GOV/g01.bca/DANCU/echo", "LT.BAD_REQUEST"),
        ("VN/GOV/G01.BCA/DANCU%2fecho/x", "LT.BAD_REQUEST"),
        ("VN/GOV/G01.BCA/DANCU/ho-so-mat%20", "LT.BAD_REQUEST"),
    ],
)
def test_service_identifier_tricks(fed: Federation, service: str, code: str) -> None:
    url = f"{_internal(fed)}/r1/{service}"
    refused(fed, lambda: httpx.post(url, headers=HEADERS, content=b"x"), code)


def test_percent_encoded_service_id_names_the_same_service(fed: Federation) -> None:
    before = len(fed.received())
    url = f"{_internal(fed)}/r1/VN/GOV/G01.BCA/DANCU/%65cho"
    resp = httpx.post(url, headers=HEADERS, content=b"same")
    assert resp.status_code == 200 and resp.content == b"same"
    assert len(fed.received()) == before + 1


# --- a relay tampering with answers ---------------------------------------------------------


class _TamperingRelay(RelayImpostor):
    """NDXP's TLS identity on its first-link port (the link proxy stopped): verifies nothing,
    forwards to BCA-GW with a genuine NDXP hop receipt, then alters the answer per ``mode``:
    ``pq`` adds an ``X-LT-Response-PQ`` of its own, ``strip-pq`` removes the provider's,
    ``reflect`` answers with the request's own (encrypted) body, ``swap`` with the previous
    call's answer, ``flip`` flips the last byte of the (encrypted) body, ``resign`` re-signs
    the answer's claims changed by ``patch`` with the provider's key."""

    def __init__(self, fed: Federation, kit: dict[str, Any]) -> None:
        super().__init__(fed, kit)
        self.mode = "pass"
        self.patch: dict[str, Any] = {}  # response claims changed in mode "resign"
        self._previous: tuple[int, dict[str, str], bytes] | None = None

    async def _answer(self, request: web.BaseRequest) -> web.Response:
        body = await request.read()
        status, back, data = await self.forward(request, body)
        answer = (status, dict(back), data)
        if self.mode == "pq":
            answer[1]["X-LT-Response-PQ"] = "eyJhbGciOiJNTC1EU0EtNjUiLCJraWQiOiJ4In0..AAAA"
        elif self.mode == "reflect":  # the caller's own ciphertext as the answer body
            answer = (status, back, body)
        elif self.mode == "strip-pq":
            answer[1].pop("x-lt-response-pq", None)
        elif self.mode == "swap" and self._previous is not None:
            answer = self._previous
        elif self.mode == "flip":
            answer = (status, back, data[:-1] + bytes([data[-1] ^ 1]))
        elif self.mode == "resign":  # as a compromised provider would sign it
            rclaims = {**json.loads(_claims(back["x-lt-response"])), **self.patch}
            answer[1]["x-lt-response"] = sign_claims(rclaims, self._kit["provider_signers"][:1])[0]
        self._previous = (status, back, data)
        status, out_headers, out_body = answer
        return web.Response(status=status, body=out_body, headers=out_headers)


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
        evil.mode = "reflect"  # sealed with the request key: not an answer
        _uniform(post(residence, b"q" * 64), "LT.BAD_SIGNATURE")
        evil.mode = "strip-pq"  # a MAT answer without its ML-DSA signature
        _uniform(post(f"{_internal(fed)}/r1/{SVC_SECRET}", b"mat"), "LT.BAD_SIGNATURE")


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


def _provider_health(fed: Federation) -> dict[str, Any]:
    return dict(httpx.get(f"{fed.testbed.internal_url('BCA-GW')}/health").json())


def _security_events(fed: Federation, node: str, event: str) -> list[dict[str, Any]]:
    path = fed.testbed.workdir / "state" / node / "message-log.auditlog"
    with AuditLog.open(path, readonly=True) as log:
        entries = [decode_entry(log.entry(i)) for i in range(log.size())]
    return [e for e in entries if e["kind"] == "security" and e["event"] == event]


def _forged_crl(ca: Any, number: int) -> bytes:
    """A CRL under the CA's name with a high CRL number, signed by another key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    now = dt.datetime.now(dt.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.issuer.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=7))
        .add_extension(x509.CRLNumber(number), critical=False)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.PEM)


def test_an_unusable_crl_file_keeps_the_last_good_list(
    fed: Federation, kit: dict[str, Any]
) -> None:
    """A crl.pem that does not parse (garbage, cut short while being written) or does not
    verify (another key, a high CRL number) made every certificate check fail. The last good
    list is kept (inside its next update plus status_grace_s, like the OCSP path), its
    revocations still count, the bad file is reported in /health and as a security event,
    and a good file ends the warning."""
    ca = fed.testbed.ca
    crl_path = ca.directory / "crl.pem"
    ca.publish_crl(dt.datetime.now(dt.UTC))
    call, headers, body = _signed_by(fed, kit, "crl-held-1")
    assert _send(kit, call, headers, body).status_code == 200  # the good list is read
    good = crl_path.read_bytes()
    before = len(_security_events(fed, "BCA-GW", "certificate.status_unusable"))
    try:
        for name, data in [
            ("crl-held-2", b"not a CRL at all\n"),
            ("crl-held-3", good[: len(good) // 2]),
            ("crl-held-4", _forged_crl(ca, 1_000_000)),
        ]:
            crl_path.write_bytes(data)
            call, headers, body = _signed_by(fed, kit, name)
            assert _send(kit, call, headers, body).status_code == 200, name
            report = _provider_health(fed)["checks"]["certificates"]
            assert report["crl"]["state"] == "warning", report
            assert report["crl"]["unusable"], report
            # revoked earlier in this module: the kept list still says so
            call, headers, body = _signed_by(fed, kit, "revoked-later")
            refused(fed, lambda c=call, h=headers, b=body: _send(kit, c, h, b), "LT.BAD_SIGNATURE")
        for _ in range(50):  # the event is committed with the next batch of the message log
            if len(_security_events(fed, "BCA-GW", "certificate.status_unusable")) >= before + 3:
                break
            time.sleep(0.1)
        events = _security_events(fed, "BCA-GW", "certificate.status_unusable")[before:]
        assert len(events) == 3, events  # one per unusable file, not one per check
        assert all(e["source"] == "BCA-GW" and e["detail"]["reason"] for e in events)
    finally:
        ca.publish_crl(dt.datetime.now(dt.UTC))
    call, headers, body = _signed_by(fed, kit, "crl-held-1")
    _send(kit, call, headers, body)
    report = _provider_health(fed)["checks"]["certificates"]
    assert report["crl"]["state"] == "ok" and report["crl"]["unusable"] is None, report


def test_an_unusable_crl_fails_closed_only_after_the_kept_list_is_over(
    fed: Federation, tmp_path: Path
) -> None:
    """CrlStatus itself: no good list yet → closed; a good list kept through an unusable file
    until its next update plus grace_s, then closed; a lower CRL number is still ignored."""
    ca = fed.testbed.ca
    cert = load_pem_cert(fed.extra_keys["crl-probe"][1])
    issuers = [ca.issuer]
    path = tmp_path / "crl.pem"
    path.write_bytes(b"garbage")
    status = CrlStatus(path, issuers, grace_s=3600.0)
    with pytest.raises(CertificateError):
        status(cert, time.time())  # nothing good to keep
    now = dt.datetime.now(dt.UTC)
    crl = ca.publish_crl(now)
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    status(cert, time.time())
    next_update = crl.next_update_utc.timestamp()
    path.write_bytes(b"garbage, written later")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    status(cert, next_update + 3000.0)  # past next update, inside the grace: kept
    health = status.health(next_update + 3000.0)
    assert health["state"] == "warning" and "garbage" not in health["unusable"]
    with pytest.raises(CertificateError, match="grace"):
        status(cert, next_update + 3700.0)
    assert status.health(next_update + 3700.0)["state"] == "failing"


# --- an isolated zone: TUYET_MAT, direct links, an expired directory ------------------------

BQP = "VN/GOV/G02.BQP"
BCY = "VN/GOV/G03.BCY"
TACCHIEN = f"{BQP}/TACCHIEN"  # inside the isolated zone Z
KHOA = f"{BCY}/KHOA"  # the provider, inside zone Z
SVC_TUYET_MAT = f"{KHOA}/tuyet-mat"
SVC_TOI_MAT = f"{KHOA}/toi-mat"
THUONG = f"{BCY}/THUONG"  # a provider subsystem cleared only MAT
SVC_ABOVE = f"{THUONG}/qua-muc"  # its TOI_MAT service: above its own clearance
ZONE_ROUTE = ["BQP-GW", "BCY-GW"]  # the configured direct link


def _zone_spec() -> FederationSpec:
    """BQP-GW and BCY-GW in isolated zone Z with a direct link; BHXH-GW outside any zone; the
    national platform NDXP allows up to TOI_MAT."""
    return FederationSpec(
        instance="VN",
        nodes=[
            NodeSpec("NDXP", "platform", "VN/GOV/G00.NDXP"),
            NodeSpec("BQP-GW", "agency", BQP, parent="NDXP", zone="Z", max_level="TUYET_MAT"),
            NodeSpec("BCY-GW", "agency", BCY, parent="NDXP", zone="Z", max_level="TUYET_MAT"),
            NodeSpec("BHXH-GW", "agency", "VN/GOV/G07.BHXH", parent="NDXP"),
        ],
        subsystems=[
            SubsystemSpec(TACCHIEN, "BQP-GW", "TUYET_MAT"),
            SubsystemSpec(KHOA, "BCY-GW", "TUYET_MAT"),
            SubsystemSpec(GIAMDINH, "BHXH-GW", "TUYET_MAT"),  # cleared, but outside the zone
            SubsystemSpec(THUONG, "BCY-GW", "MAT"),
        ],
        services=[
            ServiceSpec(SVC_TUYET_MAT, "TUYET_MAT", "/echo"),
            ServiceSpec(SVC_TOI_MAT, "TOI_MAT", "/echo"),
            ServiceSpec(SVC_ABOVE, "TOI_MAT", "/echo"),
        ],
        access=[
            (TACCHIEN, SVC_TUYET_MAT),
            (GIAMDINH, SVC_TUYET_MAT),
            (GIAMDINH, SVC_TOI_MAT),
            (TACCHIEN, SVC_ABOVE),
        ],
        direct_links=[("BQP-GW", "BCY-GW")],
    )


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    workdir = tmp_path_factory.mktemp("isolated-zone")
    tb = build_testbed(workdir, _zone_spec(), limits=LIMITS)
    record = workdir / "service-received.jsonl"
    with Running(tb, log_level="INFO") as running:
        running.start_all(record=record)
        federation = Federation(tb, running, record, {})
        yield federation
        federation.close()


ZONE_HEADERS = {"X-LT-Purpose": "kiem-thu", "X-LT-Legal-Basis": "test"}


def _zone_call(zone: Federation, node: str, client: str, service: str) -> httpx.Response:
    url = f"{zone.testbed.internal_url(node)}/r1/{service}"
    headers = {**ZONE_HEADERS, "X-LT-Client": client}
    return httpx.post(url, headers=headers, content=b"tuyet mat", timeout=20)


def test_tuyet_mat_travels_inside_its_isolated_zone_only(zone: Federation) -> None:
    before = len(zone.received())
    resp = _zone_call(zone, "BQP-GW", TACCHIEN, SVC_TUYET_MAT)  # direct link inside zone Z
    assert resp.status_code == 200 and resp.content == b"tuyet mat", resp.text
    assert len(zone.received()) == before + 1
    # cleared TUYET_MAT, holds the right, but its gateway is outside the zone (via NDXP)
    refused(zone, lambda: _zone_call(zone, "BHXH-GW", GIAMDINH, SVC_TUYET_MAT), "LT.ROUTE")
    resp = _zone_call(zone, "BHXH-GW", GIAMDINH, SVC_TOI_MAT)  # TOI_MAT may cross NDXP
    assert resp.status_code == 200 and resp.content == b"tuyet mat", resp.text


def test_provider_enforces_the_zone_and_the_direct_link(zone: Federation) -> None:
    """A compromised NDXP sends BCY-GW what its own policy refuses: a TUYET_MAT call from
    outside the zone on the prescribed route, and a zone-internal call routed through NDXP
    although the directory lists a direct link."""
    relay = zone.node("NDXP")
    provider = zone.node("BCY-GW")
    kem = provider.directory.subsystems[make_call(TACCHIEN, SVC_TUYET_MAT).service.subsystem].kem
    port = zone.testbed.peer_ports["BCY-GW"]
    tls = relay_tls(relay)
    for client, node, route in [
        (GIAMDINH, "BHXH-GW", ["BHXH-GW", "NDXP", "BCY-GW"]),
        (TACCHIEN, "BQP-GW", ["BQP-GW", "NDXP", "BCY-GW"]),
    ]:
        call = make_call(client, SVC_TUYET_MAT, method="POST")
        signers = zone.node(node).local[call.client].signers[:2]
        headers, body, _ = build_request(
            call, signers, relay, level=6, route=route, body=b"x", encrypt_to=kem
        )

        def action(c: Any = call, h: dict[str, str] = headers, b: bytes = body) -> httpx.Response:
            return send(tls, port, c, h, b)

        refused(zone, action, "LT.ROUTE")


def test_no_write_down_from_a_provider_cleared_below_its_service(zone: Federation) -> None:
    """THUONG (cleared MAT) offers a TOI_MAT service; the caller is cleared TUYET_MAT and holds
    the right: refused at the client gateway, and at the provider when sent anyway."""
    refused(zone, lambda: _zone_call(zone, "BQP-GW", TACCHIEN, SVC_ABOVE), "LT.CLEARANCE")
    provider = zone.node("BCY-GW")
    call = make_call(TACCHIEN, SVC_ABOVE, method="POST")
    kem = provider.directory.subsystems[call.service.subsystem].kem
    signers = zone.node("BQP-GW").local[call.client].signers[:2]
    headers, body, _ = build_request(
        call, signers, zone.node("NDXP"), level=5, route=ZONE_ROUTE, body=b"x", encrypt_to=kem
    )
    del headers["X-LT-Hops"]  # the direct link: BQP-GW is the previous hop, no relay
    tls = relay_tls(zone.node("BQP-GW"))
    port = zone.testbed.peer_ports["BCY-GW"]
    refused(zone, lambda: send(tls, port, call, headers, body), "LT.CLEARANCE")


def test_an_expired_directory_fails_closed(zone: Federation) -> None:
    """BCY-GW restarted on a directory that expired two days ago (beyond the 24 h grace):
    every call is LT.UNAVAILABLE, signed by BCY-GW, and its service sees nothing."""
    tb = zone.testbed
    config_path = tb.configs["BCY-GW"]
    original = config_path.read_text()
    stale = json.loads(tb.directory_path.read_text())
    stale["expires_at"] = time.time() - 2 * 86400
    stale_path = tb.workdir / "directory-expired.json"
    stale_path.write_text(json.dumps(stale))
    config_path.write_text(json.dumps({**json.loads(original), "directory": str(stale_path)}))
    try:
        zone.running.stop("BCY-GW")
        zone.running.start_gateway("BCY-GW")
        refused(zone, lambda: _zone_call(zone, "BQP-GW", TACCHIEN, SVC_TUYET_MAT), "LT.UNAVAILABLE")
    finally:
        config_path.write_text(original)
        zone.running.stop("BCY-GW")
        zone.running.start_gateway("BCY-GW")
    assert _zone_call(zone, "BQP-GW", TACCHIEN, SVC_TUYET_MAT).status_code == 200


def test_an_unsigned_tampered_or_expired_global_configuration_is_refused(
    tmp_path: Path,
) -> None:
    """The federation view from the signed global configuration: a document with its
    signature removed, one with a changed byte, and one read after its expiry are refused
    (ConfigError: the gateway does not start, a running one keeps its previous view)."""
    import base64

    from lienthong.demo import DemoContext
    from lienthong.errors import ConfigError
    from lienthong.exchange.config import GatewayConfig, Listen, TlsSettings
    from lienthong.exchange.node import load_directory
    from lienthong.federation.demo import run as federation_demo

    ctx = DemoContext(workdir=tmp_path)
    federation_demo(ctx)
    store = Path(next(iter(ctx.state["federation"]["nodes"].values()))["globalconf"])
    cfg = GatewayConfig(
        node="NDXP",
        role="platform",
        peer=Listen(),
        tls=TlsSettings("c", "k", "r"),
        state_dir=str(tmp_path / "s"),
        passphrase={"$env": "X"},
        globalconf=str(store),
    )
    good = load_directory(cfg, time.time())
    assert good.expires_at is not None
    with pytest.raises(ConfigError):
        load_directory(cfg, good.expires_at + 1)  # expired: fails closed
    path = store / "globalconf.json"
    document = json.loads(path.read_bytes())
    payload = json.loads(base64.urlsafe_b64decode(document["payload"] + "=="))
    payload["expires_at"] = "2099-01-01T00:00:00Z"  # a longer life, under the old signatures
    widened = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    for bad in [
        {"payload": document["payload"]},
        {"payload": document["payload"], "signatures": []},
        {**document, "payload": widened},
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError):
            load_directory(cfg, time.time())
    path.write_text(json.dumps(document))
    assert load_directory(cfg, time.time()).expires_at == good.expires_at
