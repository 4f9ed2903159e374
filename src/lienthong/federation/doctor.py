"""``lienthong doctor``: check a node's keys, certificates, certificate status and global
configuration; say exactly what is wrong and the command that fixes it.

Each check yields :class:`Finding` lines (``ok``, ``warn`` or ``fail``); the command exits 1 when
any check fails. Layout and settings: :mod:`lienthong.federation.node`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import typer
from cryptography import x509

from lienthong.cli.output import console, emit_json
from lienthong.errors import BackendError, CertificateError, InputError, LienthongError
from lienthong.federation.access import find_certificate
from lienthong.federation.globalconf import GlobalConfiguration
from lienthong.federation.node import DEFAULT_PASSPHRASE_ENV, NodeSettings, load_node
from lienthong.federation.publish import certificate_fingerprint
from lienthong.federation.store import ConfigStore, write_atomic
from lienthong.trust.identity import identity_of
from lienthong.trust.keys import Signer
from lienthong.trust.keystore import open_keystore
from lienthong.trust.status import StatusChecker, StatusSource
from lienthong.trust.x509 import Usage, load_certificate, verify_chain

EXPIRY_WARNING = dt.timedelta(days=30)
STATUS_CACHE = "status-cache"  # last verified status answers, so a later outage is judged fairly


def secret_option(ref: object) -> str:
    """A secret reference as the CLI takes it: ``env:NAME`` or ``file:PATH`` (never a dict)."""
    if isinstance(ref, dict) and len(ref) == 1:
        ((key, value),) = ref.items()
        if key in ("$env", "$file"):
            return f"{key[1:]}:{value}"
    return f"env:{DEFAULT_PASSPHRASE_ENV}"


def _store_options(node: NodeSettings) -> str:
    """The key-store options of ``ca keygen`` / ``ca csr`` for this node's key store."""
    spec = node.keystore
    if spec.get("type") == "pkcs11":
        return (
            f"--pkcs11-module {spec.get('module') or 'MODULE'} "
            f"--token {spec.get('token') or 'TOKEN'} --pin {secret_option(spec.get('pin'))}"
        )
    kdir = node.path(str(spec.get("dir", "keys")))
    return f"--keystore-dir {kdir} --passphrase {secret_option(spec.get('passphrase'))}"


def _ca_dir(node: NodeSettings) -> str:
    if "ca_dir" not in node.status:
        return "CA-DIR"
    return os.path.normpath(node.path(node.status["ca_dir"]))


def _current_certificate(node: NodeSettings, label: str) -> x509.Certificate | None:
    """The certificate on disk for ``label`` if it loads (to repeat its DNS names)."""
    try:
        path = node.path(node.certificates[label])
        return load_certificate(path.read_bytes(), source=str(path))
    except (OSError, LienthongError):
        return None


def _dns_options(label: str, cert: x509.Certificate | None) -> str:
    if label != "tls":
        return ""
    names: list[str] = []
    if cert is not None:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = list(san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            names = []
    return "".join(f" --dns {n}" for n in names or ["GATEWAY-HOST"])


def enrol_command(node: NodeSettings, label: str, cert: x509.Certificate | None = None) -> str:
    """``ca csr`` (on the node) then ``ca issue`` (by the operator, in CA-DIR), complete."""
    csr = node.directory / f"{label}.csr"
    profile = "tls" if label == "tls" else "signing"
    return (
        f"lienthong ca csr {_store_options(node)} --label {label} "
        f"--identity {node.identity or 'INSTANCE/CLASS/MEMBER/SUBSYSTEM'}"
        f"{_dns_options(label, cert)} --out {csr} && lienthong ca issue --dir {_ca_dir(node)} "
        f"--csr {csr} --profile {profile} --out {node.path(node.certificates[label])}"
    )


def keygen_command(node: NodeSettings, label: str) -> str:
    return f"lienthong ca keygen {_store_options(node)} --label {label}"


def _status_text(node: NodeSettings) -> str:
    if "url" in node.status:
        return f"the status service at {node.status['url']}"
    return f"the CA directory {_ca_dir(node)}"


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
        keygen = keygen_command(node, label)
        renew = f"{keygen} && {enrol_command(node, label, _current_certificate(node, label))}"
        file = kdir / f"{label}.key.pem"
        if spec.get("type") == "file" and not file.exists():
            out.append(Finding(name, "fail", f"key file {file} is missing", renew))
            continue
        if spec.get("type") == "file" and b"ENCRYPTED PRIVATE KEY" not in file.read_bytes():
            out.append(
                Finding(
                    name,
                    "fail",
                    f"{file} is not encrypted (plaintext keys are refused)",
                    f"rm {file} && {renew}",
                )
            )
            continue
        try:
            signers[label] = open_keystore(spec, base=node.directory).signer(label)
        except LienthongError as exc:
            ref = secret_option(spec.get("passphrase") or spec.get("pin"))
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
        enrol = enrol_command(node, label)
        try:
            cert = load_certificate(path.read_bytes(), source=str(path))
        except OSError:
            out.append(Finding(name, "fail", f"certificate {path} is missing", enrol))
            continue
        except LienthongError as exc:
            out.append(Finding(name, "fail", exc.message, enrol))
            continue
        enrol = enrol_command(node, label, cert)
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
        out += _registered(node, name, label, cert, path, config)
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
    node: NodeSettings,
    name: str,
    label: str,
    cert: x509.Certificate,
    path: Path,
    config: GlobalConfiguration | None,
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
                f"(operator) lienthong federation cert add REGISTRY.yaml --owner "
                f"{identity_of(cert)} --cert {path} --usage "
                f"{'tls' if label == 'tls' else 'signing'}, then publish the registry again "
                "(lienthong federation publish REGISTRY.yaml --ca-dir CA-DIR --key KEY --cert "
                "CERT --out FILE) and fetch it here (lienthong federation fetch --to "
                f"{node.path(node.globalconf)})",
            )
        ]
    return []


class CachedStatusSource:
    """A status source that keeps the last answer to each request in ``directory``.

    A gateway keeps its verified answers in memory through an outage; doctor runs are separate
    processes, so they keep them on disk: when the service is unreachable the saved answer is
    handed to :class:`StatusChecker`, which verifies it again and applies the same grace
    period — doctor then warns (with the hours of cover left) instead of failing at once.
    ``outage`` holds the reason when a saved answer was used.
    """

    def __init__(self, source: StatusSource, directory: Path) -> None:
        self.source = source
        self.directory = directory
        self.outage: str | None = None

    def fetch(self, request_der: bytes) -> bytes:
        file = self.directory / f"{hashlib.sha256(request_der).hexdigest()[:32]}.ocsp"
        try:
            der = self.source.fetch(request_der)
        except BackendError as exc:
            try:
                saved = file.read_bytes()
            except OSError:
                raise exc from None
            self.outage = exc.message
            return saved
        with contextlib.suppress(LienthongError, OSError):  # the cache is best effort
            write_atomic(file, der)
        return der


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


def _serve_hint(node: NodeSettings) -> str:
    if "url" in node.status:
        return (
            f"start or repair {_status_text(node)} (on the CA host: lienthong ca serve "
            "--dir CA-DIR --host HOST --port PORT)"
        )
    return f"repair {_status_text(node)} (lienthong ca list --dir {_ca_dir(node)})"


def _unlock_hint(node: NodeSettings, exc: LienthongError) -> str:
    """The fix when the status source itself fails: with ``status.ca_dir`` this is mostly the
    CA's key-store passphrase missing here (the CA directory answers with its own status key),
    which "repair the CA directory" did not say."""
    if "url" in node.status or "passphrase" not in exc.message:
        return _serve_hint(node)
    return (
        f"status.ca_dir signs answers with the status key of {_status_text(node)}: make its "
        "key-store passphrase available here (as the CA's ca.json names it, by default "
        "LIENTHONG_CA_PASSPHRASE) — or, on a gateway machine, which holds no CA key, name the "
        f'status service instead: "status": {{"url": "http://STATUS-HOST:8650"}} in '
        f"{node.directory / 'node.json'}"
    )


def _rekey_command(node: NodeSettings, label: str, cert: x509.Certificate) -> str:
    spec = node.keystore
    if spec.get("type") == "file":
        key = node.path(str(spec.get("dir", "keys"))) / f"{label}.key.pem"
        retire = f"mv {key} {key}.revoked && "
    else:
        retire = f"(delete key {label!r} from the token first) "
    return f"re-enrol with a new key: {retire}{keygen_command(node, label)} && " + enrol_command(
        node, label, cert
    )


def _status(
    node: NodeSettings,
    certs: dict[str, x509.Certificate],
    roots: list[x509.Certificate],
    now: dt.datetime,
) -> list[Finding]:
    try:
        source = _status_source(node, now)
    except LienthongError as exc:
        return [
            Finding(
                "status", "fail", exc.message, f"correct status in {node.directory / 'node.json'}"
            )
        ]
    if source is None:
        return [
            Finding(
                "status",
                "warn",
                "no status service configured: revocation is not checked",
                f'add "status": {{"url": "http://HOST:8650"}} to {node.directory / "node.json"}',
            )
        ]
    cached = CachedStatusSource(source, node.directory / STATUS_CACHE)
    out = []
    for label, cert in certs.items():
        issuer = next((r for r in roots if r.subject == cert.issuer), None)
        if issuer is None:
            continue
        cached.outage = None
        # one checker per certificate: an outage seen for one must not hide another's answer
        checker = StatusChecker(cached, grace=dt.timedelta(hours=node.status_grace_hours))
        try:
            answer = checker.check(cert, issuer, now=now)
        except CertificateError as exc:
            if exc.details.get("reason") in ("revoked", "status_unknown"):
                fix = _rekey_command(node, label, cert)
            else:
                fix = _serve_hint(node)
            out.append(Finding(f"status.{label}", "fail", exc.message, fix))
            continue
        except LienthongError as exc:  # e.g. the CA directory's key cannot be unlocked
            out.append(Finding(f"status.{label}", "fail", exc.message, _unlock_hint(node, exc)))
            continue
        cover = (answer.next_update + checker.grace - now).total_seconds() / 3600
        if cached.outage is not None:
            out.append(
                Finding(
                    f"status.{label}",
                    "warn",
                    f"status service unreachable ({cached.outage}); the answer saved at "
                    f"{answer.this_update:%Y-%m-%d %H:%M}Z says good until "
                    f"{answer.next_update:%Y-%m-%d %H:%M}Z, then {node.status_grace_hours} h "
                    f"grace: {cover:.1f} h before this node fails closed",
                    _serve_hint(node),
                )
            )
            continue
        out.append(
            Finding(
                f"status.{label}",
                "ok",
                f"good; answer valid until "
                f"{answer.next_update:%Y-%m-%d %H:%M}Z, then "
                f"{node.status_grace_hours} h grace ({cover:.1f} "
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
    if not node_dir.exists():
        raise InputError(f"--node-dir {node_dir}: no such directory")
    if not node_dir.is_dir():
        raise InputError(f"--node-dir {node_dir} is not a directory")
    load_node(node_dir)  # a malformed node.json is bad input: one line, exit 2
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
