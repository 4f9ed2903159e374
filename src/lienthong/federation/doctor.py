"""``lienthong doctor``: check a node's keys, certificates, certificate status and global
configuration; say exactly what is wrong and the command that fixes it.

Each check yields :class:`Finding` lines (``ok``, ``warn`` or ``fail``); the command exits 1 when
any check fails. Layout and settings: :mod:`lienthong.federation.node`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path

import typer
from cryptography import x509

from lienthong.cli.output import console, emit_json
from lienthong.errors import CertificateError, LienthongError
from lienthong.federation.access import find_certificate
from lienthong.federation.globalconf import GlobalConfiguration
from lienthong.federation.node import NodeSettings, load_node
from lienthong.federation.publish import certificate_fingerprint
from lienthong.federation.store import ConfigStore
from lienthong.trust.identity import identity_of
from lienthong.trust.keys import Signer
from lienthong.trust.keystore import open_keystore
from lienthong.trust.status import StatusChecker, StatusSource
from lienthong.trust.x509 import Usage, load_certificate, verify_chain

EXPIRY_WARNING = dt.timedelta(days=30)


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok | warn | fail
    message: str
    fix: str | None = None


def _keys(node: NodeSettings) -> tuple[list[Finding], dict[str, Signer]]:
    spec = node.keystore
    kdir = node.path(str(spec.get("dir", "keys")))
    out, signers = [], {}
    for label in node.certificates:
        name = f"keys.{label}"
        keygen = f"lienthong ca keygen --keystore-dir {kdir} --label {label}"
        file = kdir / f"{label}.key.pem"
        if spec.get("type") == "file" and not file.exists():
            out.append(Finding(name, "fail", f"key file {file} is missing", keygen))
            continue
        if spec.get("type") == "file" and b"ENCRYPTED PRIVATE KEY" not in file.read_bytes():
            out.append(
                Finding(
                    name,
                    "fail",
                    f"{file} is not encrypted (plaintext keys are refused)",
                    f"{keygen}  (then re-enrol; delete the plaintext key)",
                )
            )
            continue
        try:
            signers[label] = open_keystore(spec, base=node.directory).signer(label)
        except LienthongError as exc:
            ref = spec.get("passphrase") or spec.get("pin")
            out.append(
                Finding(
                    name,
                    "fail",
                    exc.message,
                    f"set the secret {ref} to the value this key store was made with",
                )
            )
            continue
        out.append(
            Finding(
                name,
                "ok",
                f"{signers[label].algorithm.value} key loads ({spec.get('type')} key store)",
            )
        )
    return out, signers


def _usage(label: str) -> Usage:
    return Usage.TLS_SERVER if label == "tls" else Usage.SIGNING


def _certificates(
    node: NodeSettings,
    signers: dict[str, Signer],
    config: GlobalConfiguration | None,
    roots: list[x509.Certificate],
    now: dt.datetime,
) -> tuple[list[Finding], dict[str, x509.Certificate]]:
    out, certs = [], {}
    for label, rel in node.certificates.items():
        name, path = f"certificates.{label}", node.path(rel)
        enrol = (
            f"lienthong ca csr --label {label} --identity {node.identity or 'ID'} --out "
            f"{label}.csr && lienthong ca issue --dir CA --csr {label}.csr --profile "
            f"{'tls' if label == 'tls' else 'signing'} --out {path}"
        )
        try:
            cert = load_certificate(path.read_bytes(), source=str(path))
        except OSError:
            out.append(Finding(name, "fail", f"certificate {path} is missing", enrol))
            continue
        except LienthongError as exc:
            out.append(Finding(name, "fail", exc.message, enrol))
            continue
        problem = _cert_problem(node, label, cert, signers, roots, now)
        if problem is not None:
            out.append(Finding(name, "fail", problem, enrol))
            continue
        certs[label] = cert
        left = cert.not_valid_after_utc - now
        if left < EXPIRY_WARNING:
            out.append(
                Finding(
                    name,
                    "warn",
                    f"expires in {left.days} days ({cert.not_valid_after_utc:%Y-%m-%d})",
                    f"renew: {enrol}",
                )
            )
        else:
            out.append(
                Finding(
                    name,
                    "ok",
                    f"{identity_of(cert)} valid until "
                    f"{cert.not_valid_after_utc:%Y-%m-%d}, chains to the federation root",
                )
            )
        out += _registered(name, cert, path, config)
    return out, certs


def _cert_problem(
    node: NodeSettings,
    label: str,
    cert: x509.Certificate,
    signers: dict[str, Signer],
    roots: list[x509.Certificate],
    now: dt.datetime,
) -> str | None:
    if label in signers and cert.public_key() != signers[label].public_key():
        return f"certificate does not match key {label!r} (issued for another key)"
    if not roots:
        return "no federation root to verify against (fetch the global configuration first)"
    try:
        verify_chain(cert, roots=roots, now=now, usage=_usage(label))
        identity = identity_of(cert)
    except CertificateError as exc:
        return exc.message
    if node.identity and str(identity) != node.identity:
        return f"certificate is for {identity}, but this node is {node.identity}"
    return None


def _registered(
    name: str, cert: x509.Certificate, path: Path, config: GlobalConfiguration | None
) -> list[Finding]:
    if config is None:
        return []
    try:
        find_certificate(config, certificate_fingerprint(cert))
    except LienthongError:
        return [
            Finding(
                name,
                "warn",
                f"not registered in global configuration version "
                f"{config.version}: peers will not accept it",
                f"lienthong federation cert add REGISTRY.yaml --owner {identity_of(cert)} "
                f"--cert {path} && lienthong federation publish ...",
            )
        ]
    return []


def _status_source(node: NodeSettings, now: dt.datetime) -> StatusSource | None:
    if "url" in node.status:
        from lienthong.trust.client import TrustServiceClient

        return TrustServiceClient(node.status["url"])
    if "ca_dir" in node.status:
        from lienthong.trust.ca import CertificateAuthority, LocalStatusSource

        return LocalStatusSource(
            CertificateAuthority.open(node.path(node.status["ca_dir"])), lambda: now
        )
    return None


def _status(
    node: NodeSettings,
    certs: dict[str, x509.Certificate],
    roots: list[x509.Certificate],
    now: dt.datetime,
) -> list[Finding]:
    try:
        source = _status_source(node, now)
    except LienthongError as exc:
        return [Finding("status", "fail", exc.message, "fix status in node.json")]
    if source is None:
        return [
            Finding(
                "status",
                "warn",
                "no status service configured: revocation is not checked",
                f'add "status": {{"url": "http://HOST:8650"}} to {node.directory / "node.json"}',
            )
        ]
    checker = StatusChecker(source, grace=dt.timedelta(hours=node.status_grace_hours))
    out = []
    for label, cert in certs.items():
        issuer = next((r for r in roots if r.subject == cert.issuer), None)
        if issuer is None:
            continue
        try:
            answer = checker.check(cert, issuer, now=now)
        except CertificateError as exc:
            fix = (
                "re-enrol with a new key: lienthong ca keygen … && lienthong ca csr … && "
                "lienthong ca issue …"
                if exc.details.get("reason") == "revoked"
                else f"start or repair the status service ({node.status}): lienthong ca serve"
            )
            out.append(Finding(f"status.{label}", "fail", exc.message, fix))
            continue
        grace = answer.next_update + checker.grace - now
        out.append(
            Finding(
                f"status.{label}",
                "ok",
                f"good; answer valid until "
                f"{answer.next_update:%Y-%m-%d %H:%M}Z, then "
                f"{node.status_grace_hours} h grace ({grace.total_seconds() / 3600:.1f} "
                "h of cover left if the status service goes down now)",
            )
        )
    return out


def _configuration(node: NodeSettings, now: dt.datetime) -> tuple[list[Finding], ConfigStore]:
    store = ConfigStore(node.path(node.globalconf))
    health = store.health(now)
    fetch = f"lienthong federation fetch --to {store.directory}"
    if health.status == "failing":
        fix = (
            fetch
            if (store.directory / "anchor.json").exists()
            else f"{fetch} --from URL --anchor ROOT.pem --operator OPERATOR-ID"
        )
        return [Finding("configuration", "fail", "; ".join(health.problems), fix)], store
    if health.status == "warning":
        return [Finding("configuration", "warn", p, fetch) for p in health.problems], store
    return [
        Finding(
            "configuration",
            "ok",
            f"version {health.version} verified, {health.hours_left} h until expiry",
        )
    ], store


def diagnose(node_dir: Path, now: dt.datetime) -> list[Finding]:
    """Run every check on ``node_dir``."""
    try:
        node = load_node(node_dir)
    except LienthongError as exc:
        return [Finding("node", "fail", exc.message, f"repair or remove {node_dir}/node.json")]
    findings, store = _configuration(node, now)
    config = None
    roots: list[x509.Certificate] = []
    try:
        config = store.current(now)
        roots = config.roots()
    except LienthongError:
        try:
            roots = store.anchor().roots()
        except LienthongError:
            roots = []
    key_findings, signers = _keys(node)
    cert_findings, certs = _certificates(node, signers, config, roots, now)
    return key_findings + cert_findings + _status(node, certs, roots, now) + findings


app = typer.Typer()


@app.command()
def doctor(
    node_dir: Path = typer.Option(Path("."), "--node-dir", help="The node's directory."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Check a node's keys, certificates, status and configuration; print fixes.

    Exit code 1 when any check fails."""
    findings = diagnose(node_dir, dt.datetime.now(dt.UTC))
    failed = any(f.status == "fail" for f in findings)
    if json_out:
        emit_json({"ok": not failed, "checks": [asdict(f) for f in findings]})
    else:
        style = {"ok": "[green]  ok[/]", "warn": "[yellow]WARN[/]", "fail": "[red]FAIL[/]"}
        for f in findings:
            fix = f"  → fix: {f.fix}" if f.fix and f.status != "ok" else ""
            console.print(
                f"{style[f.status]} {f.check}: {f.message}{fix}", highlight=False, soft_wrap=True
            )
    if failed:
        raise typer.Exit(1)
