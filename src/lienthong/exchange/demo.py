"""``lienthong demo`` step ``exchange``: real gateway processes exchanging calls.

A health-insurance claims system (BHXH) reads a citizen's residence from the population
register (BCA) through the national platform (PERSONAL: end-to-end encrypted, signed); a
MAT-level document travels end-to-end encrypted with hybrid ECDSA + ML-DSA signatures through
the relay; and refused calls show their uniform error codes: no access right, insufficient
clearance, a tampered signature (sent as a compromised relay would). The federation here is
the exchange testbed (its own CA from the trust capability) so that every gateway has real
keys on disk; see ``docs/exchange.md``.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections import Counter
from typing import Any

import httpx

from lienthong.exchange import e2e
from lienthong.exchange.config import load_config
from lienthong.exchange.envelope import hop_receipt, request_claims, sign_claims, token_hash
from lienthong.exchange.node import build_node, tls_contexts
from lienthong.exchange.processes import Running
from lienthong.exchange.protocol import H_HOPS, H_REQUEST, ServiceCall
from lienthong.exchange.testbed import (
    CONGTT,
    GIAMDINH,
    SVC_PUBLIC,
    SVC_RESIDENCE,
    SVC_SECRET,
    Testbed,
    build_testbed,
    demo_spec,
)
from lienthong.identifiers import ServiceId, SubsystemId
from lienthong.trust.secrets import resolve_secret

PERSON_IDS = ["001203004567", "079195001234", "048301000987"]  # synthetic people


def _headers(client: str) -> dict[str, str]:
    return {
        "X-LT-Client": client,
        "X-LT-Purpose": "giam-dinh-bao-hiem-y-te",
        "X-LT-Legal-Basis": "Luat Bao hiem y te 2008, Dieu 22",
    }


def _tampered_call(tb: Testbed) -> httpx.Response:
    """What a compromised platform would try: change the signed claims after signing."""
    relay = build_node(load_config(tb.configs["NDXP"]))
    client_gw = build_node(load_config(tb.configs["BHXH-GW"]))
    try:
        call = ServiceCall(
            method="GET",
            service=ServiceId.parse(SVC_PUBLIC),
            subpath="",
            query="",
            client=SubsystemId.parse(GIAMDINH),
            message_id=str(uuid.uuid4()),
            user_id=None,
            purpose="x",
            legal_basis="y",
        )
        claims = request_claims(
            call=call,
            level=0,
            route=["BHXH-GW", "NDXP", "BCA-GW"],
            ts=time.time(),
            nonce=e2e.b64e(os.urandom(16)),
            body={"sha256": e2e.b64e(b"\0" * 32), "len": 0},
            enc=None,
            ctype=None,
        )
        token = sign_claims(claims, client_gw.local[call.client].signers[:1])[0]
        header, payload, sig = token.split(".")
        forged = f"{header}.{payload}.{sig[:-4]}{'AAAA' if not sig.endswith('AAAA') else 'BBBB'}"
        receipt = hop_receipt("NDXP", token_hash(forged), time.time(), relay.receipt_signer)
        _, tls = tls_contexts(relay.cfg, resolve_secret(relay.cfg.passphrase))
        with httpx.Client(verify=tls, timeout=10) as client:
            return client.get(
                f"https://127.0.0.1:{tb.peer_ports['BCA-GW']}/r1/{SVC_PUBLIC}",
                headers={H_REQUEST: forged, H_HOPS: receipt},
            )
    finally:
        relay.close()
        client_gw.close()


def run(ctx: Any) -> dict[str, Any]:
    """Start the gateways, make the calls, stop everything; count successes and refusals."""
    workdir = ctx.workdir / "exchange"
    if workdir.exists():
        shutil.rmtree(workdir)  # a fresh CA and keys every run
    tb = build_testbed(workdir, demo_spec(relay_links=2))
    ok = 0
    refused: Counter[str] = Counter()
    samples: dict[str, Any] = {}
    ctx.say("exchange: starting 3 gateways (BHXH, BCA, national platform NDXP) and the register")
    with Running(tb) as procs:
        procs.start_all()
        base = tb.internal_url("BHXH-GW")
        with httpx.Client(base_url=base, timeout=15) as client:
            citizens = ctx.state.get("citizens") or []  # from the synth step when it ran
            ids = [c["personal_id"] for c in citizens[:3] if c.get("personal_id")] or PERSON_IDS
            for pid in ids:
                r = client.get(f"/r1/{SVC_RESIDENCE}/{pid}", headers=_headers(GIAMDINH))
                ok += r.status_code == 200
                samples.setdefault("residence", r.json())
            doc = "Biên bản giám định — MẬT".encode()
            r = client.post(f"/r1/{SVC_SECRET}", content=doc, headers=_headers(GIAMDINH))
            ok += r.status_code == 200 and r.content == doc
            samples["mat_round_trip"] = r.status_code == 200 and r.content == doc
            for client_id, svc in ((CONGTT, SVC_SECRET), (CONGTT, SVC_RESIDENCE)):
                r = client.get(f"/r1/{svc}/x", headers=_headers(client_id))
                refused[r.headers.get("X-LT-Error", f"HTTP {r.status_code}")] += 1
            r = _tampered_call(tb)
            refused[r.headers.get("X-LT-Error", f"HTTP {r.status_code}")] += 1
            ctx.say(f"exchange: {ok} calls carried, refused {dict(refused)}")
            health = client.get("/health").json()["ok"]
    return {
        "calls_ok": ok,
        "calls_refused": dict(refused),
        "route": ["BHXH-GW", "NDXP", "BCA-GW"],
        "residence_sample": samples.get("residence"),
        "mat_end_to_end": samples.get("mat_round_trip", False),
        "gateway_healthy": health,
        "federation_source": "exchange testbed (own CA via lienthong.trust)",
    }
