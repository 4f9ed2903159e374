"""Demo step ``audit``: two node logs that witness each other, citizens' access history.

Leaves ``ctx.state["audit"]`` (the national platform's :class:`AuditLog`, open) so that later
steps (exchange, sync) append their entries to it; ``ctx.state["audit_logs"]`` maps origin →
log and ``ctx.state["audit_person_key"]`` holds the person-key bytes for this run. A closer in
``ctx.state["closers"]`` (run at the end of the demo) signs a last checkpoint and closes every
log, so each ``.auditlog`` file alone holds its whole log and can be handed to an auditor, with
its public key beside it (``<log>.pub.pem``) and — synthetic, for the demo only — the person key
in ``audit/person-key.SYNTHETIC-DEMO-ONLY`` (mode 0600).
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from lienthong.audit.archive import archive_segment, verify_archives
from lienthong.audit.entries import Entry, admin_entry, personal_data_access_entry
from lienthong.audit.export import security_events
from lienthong.audit.history import access_history
from lienthong.audit.log import AuditLog
from lienthong.audit.verify import VerifyReport, verify_log
from lienthong.audit.witness import LocalLogSource, Witness, WitnessState
from lienthong.demo import DemoContext
from lienthong.trust.keys import public_key_to_pem
from lienthong.trust.keystore import FileKeyStore
from lienthong.trust.secrets import resolve_secret

PERSON_KEY_ENV = "LIENTHONG_DEMO_PERSON_KEY"
PERSON_KEY_FILE = "person-key.SYNTHETIC-DEMO-ONLY"
NODES = {"NDXP": "lienthong.gov.vn/audit/NDXP", "H29": "lienthong.gov.vn/audit/000.00.00.H29"}
SERVICES = [
    (
        "VN/GOV/000.00.00.H29/dvc-portal",
        "population/getCitizen",
        "issue passport",
        "Law 49/2019 Art. 14",
    ),
    (
        "VN/GOV/000.00.00.G12/bhxh",
        "population/getCitizen",
        "health insurance card",
        "Decree 13/2023 Art. 17",
    ),
    (
        "VN/GOV/000.00.00.H41/tax",
        "population/getAddress",
        "tax registration",
        "Law 38/2019 Art. 30",
    ),
]


def _citizen_ids(ctx: DemoContext, rng: random.Random, n: int) -> list[str]:
    people = ctx.state.get("citizens")
    if isinstance(people, list) and people and isinstance(people[0], dict):
        ids = [str(p.get("personal_id") or p.get("id")) for p in people[:n]]
        if all(len(i) == 12 and i.isdigit() for i in ids):
            return ids
    return [
        f"001{rng.choice('0123')}{rng.randint(60, 99):02d}{rng.randint(0, 999999):06d}"
        for _ in range(n)
    ]


def _pki(ctx: DemoContext) -> Any:
    pki = ctx.state.get("pki")
    if not (hasattr(pki, "ca") and hasattr(pki, "ca_bundle")):
        from lienthong.trust.demo import build_pki

        pki = build_pki(ctx.workdir / "audit" / "pki", [])
    return pki


def _entries(rng: random.Random, ids: list[str], key: bytes, start: datetime) -> list[Entry]:
    out: list[Entry] = []
    for k in range(300):
        pid = ids[k % len(ids)]
        client, service, purpose, basis = SERVICES[k % len(SERVICES)]
        out.append(
            personal_data_access_entry(
                pid,
                client,
                service,
                purpose,
                basis,
                at=start + timedelta(seconds=k),
                key=key,
                fields=["full_name", "birth_date", "address"],
                message_id=f"demo-{k:05d}",
                outcome="refused" if k % 97 == 0 else "ok",
            )
        )
    out.append(
        admin_entry(
            at=start,
            actor="ops@ndxp",
            action="config.change",
            target="federation/global-config",
            detail={"version": 2},
        )
    )
    out.append(
        admin_entry(
            at=start,
            actor="ca@ndxp",
            action="cert.issue",
            target="VN/GOV/000.00.00.H29/dvc-portal",
            detail={"serial": "01"},
        )
    )
    out.append(admin_entry(at=start, actor="gateway", action="key.use", target="signing"))
    rng.shuffle(out)
    return out


def run(ctx: DemoContext) -> dict[str, Any]:
    """Write, checkpoint, witness, verify, prove completeness, archive and export."""
    rng = random.Random(ctx.seed)
    home = ctx.workdir / "audit"
    if home.exists():  # a rerun starts afresh: the demo's keys were encrypted for another run
        shutil.rmtree(home)
    home.mkdir(parents=True)
    # one synthetic federation person key for the whole demo (the exchange step may have made
    # it already), written where the auditor's command reads it: never a real key
    os.environ.setdefault(PERSON_KEY_ENV, os.urandom(32).hex())
    person_key = resolve_secret({"$env": PERSON_KEY_ENV}, what="person key")
    key_file = home / PERSON_KEY_FILE
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(person_key + b"\n")
    key_ref = f"file:{key_file}"
    pki = _pki(ctx)
    tsa = pki.ca.timestamp_authority()
    keys = FileKeyStore(home / "keys", {"$env": "LIENTHONG_DEMO_PASSPHRASE"})
    now = datetime.now(UTC)
    ids = _citizen_ids(ctx, rng, 20)
    logs: dict[str, AuditLog] = {}
    public_keys: dict[str, str] = {}
    for code, origin in NODES.items():
        signer = keys.signer(code) if code in keys.labels() else keys.generate(code)
        log = AuditLog.open(
            home / f"{code}.auditlog", signer=signer, origin=origin, timestamper=tsa
        )
        log.append(_entries(rng, ids, person_key, now))
        log.checkpoint(now=now)
        logs[origin] = log
        pub = home / f"{code}.auditlog.pub.pem"
        pub.write_bytes(public_key_to_pem(signer.public_key()))
        public_keys[str(home / f"{code}.auditlog")] = str(pub)
    ctx.say(f"audit: {sum(lg.size() for lg in logs.values())} entries in {len(logs)} logs")
    a, b = logs.values()
    for me, other in ((a, b), (b, a)):  # each node witnesses the other
        assert me.signer is not None and other.signer is not None
        wit = Witness(
            me.key_name,
            me.signer,
            WitnessState(home / f"witness-{me.key_name.rsplit('/', 1)[-1]}.json"),
        )
        wit.witness(LocalLogSource(other), other.key_name, other.signer.public_key())
    witness_keys = {lg.key_name: lg.signer.public_key() for lg in logs.values() if lg.signer}
    archive = archive_segment(b, home / "archives", 128, now=now)
    b.checkpoint(now=now)
    archives = verify_archives([archive], b.key_name, witness_keys[b.key_name])
    others = _verify_other_logs(ctx, home)
    for lg in logs.values():  # stamps are taken in the background; here now, to show them
        assert lg.stamper is not None
        lg.stamper.stamp_pending()
    tsa_certs = x509.load_pem_x509_certificates(pki.ca_bundle.read_bytes())
    reports = [
        verify_log(
            lg,
            public_key=witness_keys[lg.key_name],
            witnesses=witness_keys,
            tsa_certificates=tsa_certs,
        )
        for lg in logs.values()
    ]
    history = access_history(list(logs.values()), ids[0], person_key)
    ctx.state["audit"] = a
    ctx.state["audit_logs"] = logs
    ctx.state["audit_person_key"] = person_key
    ctx.state.setdefault("closers", []).append(lambda: close_logs(logs.values()))
    latest = a.latest_checkpoint()
    command = history_command(ids[0], public_keys, logs, key_ref)
    ctx.say(f"audit: a citizen's access history, as an auditor runs it: {command}")
    return {
        "entries": sum(r.size for r in reports) + sum(r.size for r in others.values()),
        "verified": all(r.entries_checked == r.size for r in [*reports, *others.values()]),
        "logs": [str(home / f"{code}.auditlog") for code in NODES] + sorted(others),
        "public_keys": public_keys,
        "person_key": {"ref": key_ref, "synthetic": True},
        "checkpoint": latest[1] if latest else None,
        "cosignatures": sum(r.cosignatures for r in reports),
        "archives": archives,
        "access_history": {
            "person": ids[0],
            "command": command,
            "accesses": len(history["accesses"]),
            "complete": [h["completeness"]["statement"] for h in history["logs"]],
        },
        "security_events": sum(1 for lg in logs.values() for _ in security_events(lg)),
        "timestamps_verified": sum(r.stamps_verified for r in reports),
        "timestamps_pending": sum(r.stamps_pending for r in reports),
    }


def history_command(
    person: str, public_keys: dict[str, str], logs: dict[str, AuditLog], key_ref: str
) -> str:
    """The exact ``lienthong audit access-history`` command for ``person`` on the demo logs."""
    parts = ["lienthong", "audit", "access-history", "--person", person]
    for (path, pem), log in zip(public_keys.items(), logs.values(), strict=True):
        parts += ["--log", path, "--log-key", f"{log.key_name}={pem}"]
    parts += ["--person-key", key_ref]
    return shlex.join(parts)


def close_logs(logs: Iterable[AuditLog]) -> None:
    """Sign a last checkpoint over what later steps appended, then close each log (its WAL is
    folded into the main file, so the ``.auditlog`` file alone is the whole log)."""
    for log in logs:
        if log.signer is not None and log.size() > (log.store.checkpoints() or [(0, "")])[-1][0]:
            log.checkpoint()
        log.close()


def _verify_other_logs(ctx: DemoContext, home: Path) -> dict[str, VerifyReport]:
    """Verify the logs earlier steps wrote (e.g. the gateways' message logs)."""
    out: dict[str, VerifyReport] = {}
    for path in sorted(ctx.workdir.rglob("*.auditlog")):
        if home in path.parents:
            continue
        with AuditLog.open(path, create=False, readonly=True) as log:
            out[str(path)] = verify_log(log)
    return out
