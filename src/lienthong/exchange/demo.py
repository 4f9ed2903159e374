"""``lienthong demo`` step ``exchange``: real gateway processes exchanging calls.

A health-insurance claims system (BHXH) reads a citizen's residence from the population
register (BCA) through the national platform (PERSONAL: end-to-end encrypted, signed); a
MAT-level document travels end-to-end encrypted with hybrid ECDSA + ML-DSA signatures through
the relay; and refused calls show their uniform error codes: no access right, insufficient
clearance, a tampered signature (sent as a compromised relay would). The federation here is
the exchange testbed (its own CA from the trust capability) so that every gateway has real
keys on disk; see ``docs/exchange.md``.

Each gateway's message log is signed (checkpoints with its TLS key, public key beside the log)
and names nobody in clear; the population register's gateway records each residence read as a
``personal_data.access`` entry (``audit.subject_from: path``), so that the citizen's access
history lists the demo's reads — the step checks it and prints the command that shows it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import msgspec

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
# the federation person key of the demo: shared with the audit step (same variable)
PERSON_KEY_ENV = "LIENTHONG_DEMO_PERSON_KEY"


def _headers(client: str) -> dict[str, str]:
    return {
        "X-LT-Client": client,
        "X-LT-Purpose": "giam-dinh-bao-hiem-y-te",
        "X-LT-Legal-Basis": "Luat Bao hiem y te 2008, Dieu 22",
    }


def _tampered_call(tb: Testbed) -> httpx.Response:
    """What a compromised platform would try: change the signed claims after signing."""
    scratch = tb.workdir / "scratch"  # never the running gateways' own message logs
    relay = build_node(_in(load_config(tb.configs["NDXP"]), scratch / "NDXP"))
    client_gw = build_node(_in(load_config(tb.configs["BHXH-GW"]), scratch / "BHXH-GW"))
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
        shutil.rmtree(scratch, ignore_errors=True)  # the forger's state is nobody's log


def _in(cfg: Any, state: Path) -> Any:
    return msgspec.structs.replace(cfg, state_dir=str(state))


def _person_key_file(workdir: Path) -> Path:
    """The demo's person key (the audit step's, when set) in a 0600 file the audit CLI reads."""
    text = os.environ.setdefault(PERSON_KEY_ENV, os.urandom(32).hex())
    path = workdir / "person-key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return path


def _record_residence_reads(tb: Testbed, key_file: Path) -> None:
    """BCA-GW logs a personal-data access per residence read (subject: first path segment)."""
    path = tb.configs["BCA-GW"]
    cfg = json.loads(path.read_text())
    cfg["audit"] = {"person_key": {"$file": str(key_file)}, "subject_from": {SVC_RESIDENCE: "path"}}
    path.write_text(json.dumps(cfg, indent=1))


def _message_logs(tb: Testbed, pid: str, key_file: Path) -> dict[str, Any]:
    """After the gateways stopped: verify each signed message log with its published key and
    the evidence beside it; the citizen's history from the provider's log."""
    from lienthong.audit.history import access_history
    from lienthong.audit.log import AuditLog
    from lienthong.audit.verify import verify_log
    from lienthong.exchange.messagelog import EvidenceStore, public_key_path, verify_evidence
    from lienthong.trust.keys import public_key_from_pem

    logs: dict[str, Any] = {}
    history: dict[str, Any] = {}
    for node in ("BHXH-GW", "NDXP", "BCA-GW"):
        path = tb.workdir / "state" / node / "message-log.auditlog"
        pub = public_key_from_pem(public_key_path(path).read_bytes())
        evidence = EvidenceStore(path.with_name("message-log.evidence.sqlite"), create=False)
        with AuditLog.open(path, create=False) as log:
            report = verify_log(log, public_key=pub)
            kinds = Counter(str(k) for rows in log.store.leaves(0, log.size()) for _, k, _ in rows)
            tokens = verify_evidence(log, evidence)["tokens_checked"]
            if node == "BCA-GW":
                found = access_history([log], pid, key_file.read_text().strip().encode(), {})
                history = {
                    "person": pid,
                    "accesses": len(found["accesses"]),
                    "complete": [h["completeness"]["statement"] for h in found["logs"]],
                    "command": (
                        f"lienthong audit access-history --person {pid} --log {path} "
                        f"--log-key {log.key_name}={public_key_path(path)} "
                        f"--person-key file:{key_file}"
                    ),
                }
        evidence.close()
        logs[node] = {
            "path": str(path),
            "public_key": str(public_key_path(path)),
            "entries": report.size,
            "kinds": dict(kinds),
            "checkpoints": report.checkpoints,
            "verified": report.entries_checked == report.size,
            "evidence_tokens": tokens,
        }
    return {"message_logs": logs, "access_history": history}


def run(ctx: Any) -> dict[str, Any]:
    """Start the gateways, make the calls, stop everything; count successes and refusals."""
    workdir = ctx.workdir / "exchange"
    if workdir.exists():
        shutil.rmtree(workdir)  # a fresh CA and keys every run
    tb = build_testbed(workdir, demo_spec(relay_links=2))
    key_file = _person_key_file(workdir)
    _record_residence_reads(tb, key_file)
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
    logged = _message_logs(tb, ids[0], key_file)
    history = logged["access_history"]
    ctx.say(
        f"exchange: signed message logs verified; {history['accesses']} access(es) to "
        f"citizen {ids[0]} in BCA-GW's log — {history['command']}"
    )
    return {
        "calls_ok": ok,
        "calls_refused": dict(refused),
        "route": ["BHXH-GW", "NDXP", "BCA-GW"],
        "residence_sample": samples.get("residence"),
        "mat_end_to_end": samples.get("mat_round_trip", False),
        "gateway_healthy": health,
        "federation_source": "exchange testbed (own CA via lienthong.trust)",
        **logged,
    }
