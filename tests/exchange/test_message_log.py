"""The gateways' message logs through real processes: leaves name nobody (tokens in the
evidence store, verifiable against the leaves), checkpoints signed with the node key and its
public key published, refusals as security events, relays log what they carry, and the
provider records personal-data accesses that a citizen's access history lists."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lienthong.audit.entries import Entry, decode_entry
from lienthong.audit.log import AuditLog
from lienthong.errors import ConfigError, IntegrityError
from lienthong.exchange.config import load_config
from lienthong.exchange.demo import _tampered_call
from lienthong.exchange.messagelog import (
    EvidenceStore,
    evidence_path,
    public_key_path,
    verify_evidence,
)
from lienthong.exchange.processes import Running
from lienthong.exchange.testbed import (
    CONGTT,
    GIAMDINH,
    SVC_RESIDENCE,
    SVC_SECRET,
    SVC_UPLOAD,
    Testbed,
    build_testbed,
    demo_spec,
)

PID = "011187747224"  # a (synthetic) citizen's personal ID
OTHER = "079195001234"
USER = "VN-CCCD-001203004567"  # the civil servant at the keyboard
KEY_ENV = "LT_TEST_PERSON_KEY"
NODES = ("BHXH-GW", "NDXP", "BCA-GW")
HEADERS = {
    "X-LT-Client": GIAMDINH,
    "X-LT-Purpose": "giam-dinh-bhyt",
    "X-LT-Legal-Basis": "Luat BHYT 2008, Dieu 22",
    "X-LT-UserId": USER,
}


@dataclass
class Logged:
    testbed: Testbed
    statuses: dict[str, int]
    health: dict[str, Any]

    def path(self, node: str) -> Path:
        return self.testbed.workdir / "state" / node / "message-log.auditlog"

    def entries(self, node: str) -> list[dict[str, Any]]:
        with AuditLog.open(self.path(node), create=False) as log:
            return [decode_entry(log.entry(i)) for i in range(log.size())]


def _lt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    """Calls through real gateways (BCA-GW records residence reads), then every gateway
    stopped: the logs are closed, checkpointed and self-contained."""
    workdir = tmp_path_factory.mktemp("message-log")
    os.environ[KEY_ENV] = "test-person-key-" + "k" * 24
    tb = build_testbed(workdir, demo_spec())
    cfg = json.loads(tb.configs["BCA-GW"].read_text())
    cfg["audit"] = {"person_key": f"env:{KEY_ENV}", "subject_from": {SVC_RESIDENCE: "path"}}
    tb.configs["BCA-GW"].write_text(json.dumps(cfg))
    statuses: dict[str, int] = {}
    with Running(tb) as running:
        running.start_all()
        with httpx.Client(base_url=tb.internal_url("BHXH-GW"), headers=HEADERS) as c:
            for pid in (PID, PID, OTHER):
                statuses[f"read {pid}"] = c.get(f"/r1/{SVC_RESIDENCE}/{pid}").status_code
            statuses["mat"] = c.post(f"/r1/{SVC_SECRET}", content=b"x").status_code
            portal = {**HEADERS, "X-LT-Client": CONGTT}
            r = c.get(f"/r1/{SVC_RESIDENCE}/{PID}", headers=portal)
            statuses[r.headers.get("X-LT-Error", "")] = r.status_code
            r = c.get(f"/r1/{SVC_SECRET}/{PID}", headers=portal)
            statuses[r.headers.get("X-LT-Error", "")] = r.status_code
        r = _tampered_call(tb)
        statuses["tampered " + r.headers.get("X-LT-Error", "")] = r.status_code
        health = httpx.get(f"{tb.internal_url('BCA-GW')}/health").json()
    yield Logged(tb, statuses, health)


def test_calls_went_as_expected(logged: Logged) -> None:
    assert logged.statuses == {
        f"read {PID}": 200,
        f"read {OTHER}": 200,
        "mat": 200,
        "LT.CLEARANCE": 403,
        "LT.ACCESS_DENIED": 403,
        "tampered LT.BAD_SIGNATURE": 403,
    }


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _readable(text: str) -> str:
    """The text plus every base64url-decodable dot-separated part of it (JWS payloads)."""
    out = [text]
    for part in text.split("."):
        with contextlib.suppress(ValueError):
            out.append(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("latin-1"))
    return "\n".join(out)


def test_leaves_name_nobody(logged: Logged) -> None:
    for node in NODES:
        entries = logged.entries(node)
        assert entries, node
        for entry in entries:
            text = "\n".join(_readable(s) for s in _strings(entry))
            for secret in (PID, OTHER, USER, "001203004567"):
                assert secret not in text, (node, entry)
            assert not any(s.count(".") == 2 and len(s) > 100 for s in _strings(entry)), entry
        raw = logged.path(node).read_bytes()
        assert PID.encode() not in raw and USER.encode() not in raw


def test_tokens_are_kept_as_evidence_and_verify_against_the_leaves(
    logged: Logged, tmp_path: Path
) -> None:
    path = logged.path("BCA-GW")
    store = EvidenceStore(evidence_path(path), create=False)
    with AuditLog.open(path, create=False) as log:
        assert verify_evidence(log, store)["tokens_checked"] >= 3 * 3 + 5  # hops + MAT hybrid
        first = decode_entry(log.entry(0))
    tokens = store.for_message(first["message_id"])
    payloads = "".join(_readable(t) for t in tokens)
    assert f"/{PID}" in payloads  # the evidence holds what the leaf only commits to
    store.close()
    client = logged.path("BHXH-GW")
    assert evidence_path(client).stat().st_mode & 0o077 == 0  # personal data: owner only
    with (
        AuditLog.open(client, create=False) as log,
        EvidenceStore(evidence_path(client), create=False) as mine,
    ):
        # the client keeps its own signed requests and the provider's responses
        assert verify_evidence(log, mine)["tokens_checked"] == 3 * 2 + 4
    # a token altered in the evidence store no longer matches its leaf
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(path, copy / path.name)
    shutil.copy(evidence_path(path), copy / evidence_path(path).name)
    with sqlite3.connect(evidence_path(copy / path.name)) as db:
        db.execute(
            "UPDATE tokens SET token = token || 'x' WHERE sha256 = ?", (first["evidence"][0],)
        )
    store = EvidenceStore(evidence_path(copy / path.name), create=False)
    with AuditLog.open(copy / path.name, create=False) as log, pytest.raises(IntegrityError):
        verify_evidence(log, store)
    store.close()
    good = _lt("gateway", "evidence", "--log", str(path), "--message-id", first["message_id"])
    assert good.returncode == 0, good.stderr
    (exchange,) = json.loads(good.stdout)["message"]["exchanges"]
    assert (exchange["entry"], exchange["client"]) == (0, first["client"])
    shown = exchange["tokens"]
    assert {t["sha256"] for t in shown} == set(first["evidence"])
    bad = _lt("gateway", "evidence", "--log", str(copy / path.name))
    assert bad.returncode == 1 and "altered" in bad.stderr
    assert _lt("gateway", "evidence", "--log", str(evidence_path(path))).returncode == 2


def test_logs_are_signed_self_contained_and_verify_with_the_published_key(
    logged: Logged, tmp_path: Path
) -> None:
    for node in NODES:
        path = logged.path(node)
        assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
        alone = tmp_path / node / path.name  # the main file alone, as handed to an auditor
        alone.parent.mkdir()
        shutil.copy(path, alone)
        out = _lt("audit", "verify", "--log", str(alone), "--pubkey", str(public_key_path(path)))
        assert out.returncode == 0, out.stdout + out.stderr
        with AuditLog.open(alone, create=False) as log:
            cp = log.latest_checkpoint()
            assert cp is not None and cp[0].size == log.size()  # closing signed the last one


def test_a_rewritten_log_fails_verification(logged: Logged, tmp_path: Path) -> None:
    """The QA attack: entries rewritten and every hash recomputed, checkpoints kept."""
    path = logged.path("BHXH-GW")
    forged = tmp_path / "forged.auditlog"
    with AuditLog.open(path, create=False) as log:
        entries = [log.entry(i) for i in range(log.size())]
        origin, checkpoints = log.origin, log.store.checkpoints()
        pem = log.store.get_meta("public_key")
    entries[0] = entries[0].replace(b'"outcome":"ok"', b'"outcome":"error"')
    with AuditLog.open(forged, origin=origin) as log:
        log.append([Entry(decode_entry(e)["kind"], e) for e in entries])
        for size, note in checkpoints:
            log.store.add_checkpoint(size, note, "2026-01-01T00:00:00.000Z")
        log.store.set_meta("public_key", str(pem))
    out = _lt("audit", "verify", "--log", str(forged), "--pubkey", str(public_key_path(path)))
    assert out.returncode == 1, out.stdout + out.stderr


def test_refusals_are_security_events(logged: Logged) -> None:
    events = [e for e in logged.entries("BHXH-GW") if e["kind"] == "security"]
    by_code = {e["detail"]["code"]: e for e in events}
    assert by_code["LT.CLEARANCE"]["event"] == "clearance.violation"
    assert by_code["LT.ACCESS_DENIED"]["event"] == "access.denied"
    assert by_code["LT.ACCESS_DENIED"]["detail"]["client"] == CONGTT
    assert all(e["source"] == "BHXH-GW" and e["detail"]["reason"] for e in events)
    provider = [e for e in logged.entries("BCA-GW") if e["kind"] == "security"]
    assert [e["event"] for e in provider] == ["verification.failed"]
    assert provider[0]["detail"]["role"] == "peer" and provider[0]["severity"] == 7


def test_relay_logs_each_call_it_carries(logged: Logged) -> None:
    relayed = [e for e in logged.entries("NDXP") if e["kind"] == "exchange"]
    assert len(relayed) == 4 and all(e["role"] == "relay" for e in relayed)
    assert all(len(e["evidence"]) >= 3 and e["outcome"] == "ok" for e in relayed)
    assert {e["service"] for e in relayed} == {SVC_RESIDENCE, SVC_SECRET}


def test_personal_data_access_and_history(logged: Logged) -> None:
    accesses = [e for e in logged.entries("BCA-GW") if e["kind"] == "personal_data.access"]
    assert len(accesses) == 3 and all(e["requester"] == GIAMDINH for e in accesses)
    assert all(e["legal_basis"] == "Luat BHYT 2008, Dieu 22" for e in accesses)
    path = logged.path("BCA-GW")
    out = _lt(
        "audit",
        "access-history",
        "--person",
        PID,
        "--log",
        str(path),
        "--log-key",
        f"lienthong/exchange/BCA-GW={public_key_path(path)}",
        "--person-key",
        f"env:{KEY_ENV}",
        "--json",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    history = json.loads(out.stdout)
    assert len(history["accesses"]) == 2
    assert {a["service"] for a in history["accesses"]} == {SVC_RESIDENCE}
    assert history["logs"][0]["completeness"]["key_source"] == "given"


def test_health_reports_signing_and_unattributed_personal_services(logged: Logged) -> None:
    report = logged.health["checks"]["message_log"]
    assert logged.health["ok"] is True and report["ok"] is True and report["signed"] is True
    assert report["unattributed_services"] == sorted([SVC_SECRET, SVC_UPLOAD])  # no rule


@pytest.mark.parametrize(
    ("audit", "message"),
    [
        ({"subject_from": {SVC_RESIDENCE: "path"}}, "needs audit.person_key"),
        ({"person_key": "k" * 20}, "reference"),
        ({"person_key": "env:X", "subject_from": {SVC_RESIDENCE: "header"}}, "'path' or"),
        ({"person_key": "env:X", "subject_from": {"VN/GOV/G0.X/Y/z": "path"}}, "not served"),
    ],
)
def test_bad_audit_settings(logged: Logged, audit: dict[str, Any], message: str) -> None:
    cfg = json.loads(logged.testbed.configs["BCA-GW"].read_text())
    cfg["audit"] = audit
    bad = logged.testbed.workdir / "bad-gateway.json"
    bad.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=message):
        load_config(bad)


def test_refusal_detail_never_holds_a_personal_id() -> None:
    """Local reasons may quote what the caller sent: digit runs are redacted, unknown detail
    keys dropped (no processes needed)."""
    from types import SimpleNamespace
    from typing import cast

    from lienthong.exchange.exchange_log import Exchange
    from lienthong.exchange.node import Node
    from lienthong.exchange.protocol import ErrorCode, Refused

    exc = Refused(
        ErrorCode.BAD_REQUEST,
        f"bad sub-path segment '{PID}..'",
        route=["BHXH-GW", f"x{PID}"],
        key=f"{GIAMDINH}|{PID}",
    )
    node = cast(Node, SimpleNamespace(name="BHXH-GW"))
    entry = Exchange(role="client").security_entry(node, "LT.BAD_REQUEST", exc)
    assert PID not in entry.data.decode()
    detail = entry.to_dict()["detail"]
    assert entry.to_dict()["event"] == "request.malformed" and "key" not in detail
    assert detail["reason"] == "bad sub-path segment '[redacted]..'"


def test_redaction_keeps_fingerprints_whole() -> None:
    from lienthong.exchange.exchange_log import _scrub

    fp = "460ecdd1234567890123e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9"
    assert _scrub(f"kid {fp}") == f"kid {fp}"
    assert _scrub("id 001203004567 x001203004567") == "id [redacted] x[redacted]"


def test_evidence_of_a_message_id_two_clients_used_is_shown_per_exchange(tmp_path: Path) -> None:
    """Message ids are unique per client subsystem only: another client may send the id a
    victim used. ``gateway evidence --message-id`` listed every token filed under the id as
    one exchange — the other client's signed request among the victim's. Each exchange is
    now shown apart with its leaf's client, and ``--client`` picks one."""
    import asyncio

    from lienthong.exchange.messagelog import AuditMessageLog

    mid = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    path = tmp_path / "m.auditlog"
    mlog = AuditMessageLog(path, "o", durability="power")
    clients = ("VN/GOV/G07.BHXH/GIAMDINH", "VN/GOV/G04.BTC/THUE")

    async def both() -> None:
        for i, client in enumerate(clients):
            record = {"ts": 1.5, "id": mid, "client": client, "service": "VN/GOV/G01.BCA/DANCU/x"}
            await mlog.append(
                record | {"level": 0, "request_tokens": [f"req{i}"], "response_tokens": [f"r{i}"]}
            )

    asyncio.run(both())
    mlog.close()
    show = ("gateway", "evidence", "--log", str(path), "--message-id")
    out = _lt(*show, mid)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)["message"]["exchanges"]
    assert [(e["client"], [t["token"] for t in e["tokens"]]) for e in shown] == [
        (clients[0], ["req0", "r0"]),
        (clients[1], ["req1", "r1"]),
    ]
    one = _lt(
        "gateway", "evidence", "--log", str(path), "--message-id", mid, "--client", clients[1]
    )
    assert [e["client"] for e in json.loads(one.stdout)["message"]["exchanges"]] == [clients[1]]
    none = _lt(*show, "x", "--client", "y")
    assert none.returncode == 2 and "no exchange with message id x of client y" in none.stderr
    alone = _lt("gateway", "evidence", "--log", str(path), "--client", clients[0])
    assert alone.returncode == 2 and "--client needs --message-id" in alone.stderr


def test_evidence_of_a_message_id_shows_what_went_wrong_after_its_leaf(tmp_path: Path) -> None:
    """A streamed end-to-end answer is logged ``ok`` before its records are authenticated; a
    cut or altered stream then adds a ``verification.failed`` security entry. ``gateway
    evidence --message-id`` showed only the ``ok`` leaf: it now lists the security events of
    the message id (and client) beside the exchange."""
    import asyncio
    import datetime as dt

    from lienthong.audit.entries import security_event_entry
    from lienthong.exchange.messagelog import AuditMessageLog

    mid, other = "6f9619ff-8b86-d011-b42d-00c04fc964ff", "7f9619ff-8b86-d011-b42d-00c04fc964ff"
    client = "VN/GOV/G07.BHXH/GIAMDINH"
    path = tmp_path / "m.auditlog"
    mlog = AuditMessageLog(path, "o", durability="power")
    record = {"ts": 1.5, "id": mid, "client": client, "service": "VN/GOV/G01.BCA/DANCU/x"}

    async def log() -> None:
        await mlog.append(record | {"level": 5, "request_tokens": ["q"], "response_tokens": ["r"]})

    asyncio.run(log())
    for message_id in (mid, other):
        detail = {"code": "LT.BAD_SIGNATURE", "role": "client", "message_id": message_id}
        mlog.note(
            security_event_entry(
                at=dt.datetime.now(dt.UTC),
                event="verification.failed",
                severity=7,
                source="BHXH-GW",
                detail=detail | {"client": client, "reason": "encrypted body fails authentication"},
            )
        )
    mlog.close()
    out = _lt("gateway", "evidence", "--log", str(path), "--message-id", mid)
    assert out.returncode == 0, out.stderr
    message = json.loads(out.stdout)["message"]
    assert [e["outcome"] for e in message["exchanges"]] == ["ok"]
    (event,) = message["security_events"]
    assert event["event"] == "verification.failed" and event["code"] == "LT.BAD_SIGNATURE"
    assert event["reason"] == "encrypted body fails authentication"
    assert event["entry"] > message["exchanges"][0]["entry"]
    mine = _lt("gateway", "evidence", "--log", str(path), "--message-id", mid, "--client", "x/y")
    assert mine.returncode == 2  # no exchange of that client: nothing shown


def test_evidence_past_its_retention_is_deleted_and_then_not_missing(tmp_path: Path) -> None:
    """The evidence store holds personal data (the tokens' claims) and only grew: at the end
    of the retention period ``gateway evidence --delete-before`` deletes the tokens of the
    older entries, overwritten on disk; the leaves stay, and the check counts those tokens
    as deleted, not missing — while a token of a newer entry that goes missing still fails."""
    import asyncio
    import time

    from lienthong.exchange.messagelog import AuditMessageLog

    path = tmp_path / "m.auditlog"
    mlog = AuditMessageLog(path, "o", durability="power")
    old_ts, new_ts = 946684800.0 - 86400, time.time()  # the day before 2000-01-01, and now

    async def log_two() -> None:
        for i, ts in enumerate((old_ts, new_ts)):
            record = {"ts": ts, "id": f"m{i}", "client": "c", "service": "s", "level": 0}
            await mlog.append(
                record
                | {"request_tokens": [f"secret-claims-of-{PID}-{i}"], "response_tokens": [f"r{i}"]}
            )

    asyncio.run(log_two())
    mlog.close()
    out = _lt("gateway", "evidence", "--log", str(path), "--delete-before", "2000-01-01")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) | {"log": ""} == {
        "log": "",
        "deleted_before": "2000-01-01T00:00:00.000Z",
        "tokens_deleted": 2,
    }
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if "evidence" in p.name)
    assert f"secret-claims-of-{PID}-0".encode() not in raw  # overwritten, not only unlinked
    assert f"secret-claims-of-{PID}-1".encode() in raw
    check = _lt("gateway", "evidence", "--log", str(path))
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout)
    assert (report["tokens_checked"], report["tokens_deleted_by_retention"]) == (2, 2)
    with sqlite3.connect(evidence_path(path)) as db:
        db.execute("DELETE FROM tokens WHERE message_id = 'm1' AND token = 'r1'")
    broken = _lt("gateway", "evidence", "--log", str(path))
    assert broken.returncode == 1 and "is missing" in broken.stderr
    bad = _lt("gateway", "evidence", "--log", str(path), "--delete-before", "365d")
    assert bad.returncode == 2 and "give a date or time" in bad.stderr


_NOT_HASHES = "its evidence is not a list of SHA-256 hashes"


@pytest.mark.parametrize(
    ("forged", "messages"),
    [
        ({"evidence": [1, 2]}, (_NOT_HASHES, _NOT_HASHES)),
        ({"evidence": "ab" * 32}, (_NOT_HASHES, _NOT_HASHES)),
        (  # the check: its token is missing; a deletion must not take it for old enough
            {"evidence": ["ab" * 32], "at": "yesterday"},
            ("is missing", "its time 'yesterday' is not one a gateway writes"),
        ),
    ],
)
def test_a_leaf_no_gateway_wrote_is_named_not_a_crash_nor_a_deletion(
    tmp_path: Path, forged: dict[str, object], messages: tuple[str, str]
) -> None:
    """A leaf whose evidence is not a list of hashes (or whose time is not a gateway's) was an
    "unexpected TypeError" in ``gateway evidence``, and with ``--delete-before`` a leaf with
    no usable time had its tokens deleted whatever the date: now the leaf is named, exit 1,
    and nothing is deleted."""
    import asyncio
    import datetime as dt
    import time

    from lienthong.audit.entries import KIND_EXCHANGE, encode_fields
    from lienthong.exchange.messagelog import AuditMessageLog

    path = tmp_path / "m.auditlog"
    mlog = AuditMessageLog(path, "o", durability="power")
    record = {"ts": time.time(), "id": "m0", "client": "c", "service": "s", "level": 0}
    asyncio.run(mlog.append(record | {"request_tokens": ["q0"], "response_tokens": ["r0"]}))
    mlog.close()
    fields = {"v": 1, "kind": KIND_EXCHANGE, "message_id": "m1", "client": "c", "service": "s"}
    fields |= {"at": "2001-01-01T00:00:00.000Z", "outcome": "ok"} | forged
    with AuditLog.open(path, create=False) as log:
        log.append_one(Entry(KIND_EXCHANGE, encode_fields(fields)))
    runs = ((), ("--delete-before", dt.date.today().isoformat()))
    for args, message in zip(runs, messages, strict=True):
        out = _lt("gateway", "evidence", "--log", str(path), *args)
        assert out.returncode == 1, out.stderr
        assert "entry 1:" in out.stderr and message in out.stderr, out.stderr
        assert "unexpected" not in out.stderr
    with sqlite3.connect(evidence_path(path)) as db:
        assert db.execute("SELECT count(*) FROM tokens").fetchone() == (2,)


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/residence/001203004567", "id_not_digits"), ("/0012030045", "id_length")],
)
def test_a_subject_that_is_no_personal_id_is_flagged_not_logged_as_a_person(
    path: str, reason: str
) -> None:
    """With the service URL set to the bare host, ``subject_from: path`` took the route
    segment ("residence") for the person: every read was filed under a person named
    "residence" and no citizen's history showed it. Now no access entry is made for what is
    not a personal ID; a ``personal_data.subject_unrecognised`` security event says so (the
    reason code, never the value)."""
    import types

    from lienthong.exchange.exchange_log import personal_access

    service = "VN/GOV/G01.BCA/DANCU/cu-tru"
    node: Any = types.SimpleNamespace(  # what personal_access reads of a node
        name="BCA-GW",
        cfg=types.SimpleNamespace(audit=types.SimpleNamespace(subject_from={service: "path"})),
        message_log=types.SimpleNamespace(person_key=b"k" * 32),
    )
    claims = {"level": 2, "service": service, "client": "VN/GOV/G07.BHXH/GIAMDINH"}
    claims |= {"path": path, "id": "m1", "purpose": "p", "legal": "l"}
    (entry,) = personal_access(node, claims, {"status": 200})
    data = decode_entry(entry.data)
    assert data["kind"] == "security" and data["event"] == "personal_data.subject_unrecognised"
    assert data["detail"]["reason"] == reason and data["detail"]["rule"] == "path"
    assert "residence" not in entry.data.decode() and "0012030045" not in entry.data.decode()
    claims["path"] = "/001203004567"
    (access,) = personal_access(node, claims, {"status": 200})
    assert decode_entry(access.data)["kind"] == "personal_data.access"
