"""A running gateway node's state, assembled from its config (the composition root's parts).

Keys are loaded once from passphrase-encrypted PEM files; unencrypted key files are refused.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import logging
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, mlkem, x25519

from lienthong.audit.entries import security_event_entry
from lienthong.audit.log import AuditLog
from lienthong.errors import ConfigError, InputError
from lienthong.exchange import rollover
from lienthong.exchange.certs import (
    CertificateStore,
    CrlStatus,
    OcspStatus,
    StatusCheck,
    fingerprint,
    load_bundle,
    load_pem_cert,
)
from lienthong.exchange.config import GatewayConfig
from lienthong.exchange.directory import (
    Directory,
    DirectoryFile,
    directory_from_file,
    directory_from_json,
)
from lienthong.exchange.e2e import RecipientKeys
from lienthong.exchange.envelope import KeyedSigner
from lienthong.exchange.messagelog import AuditMessageLog, JsonlMessageLog, MessageLog
from lienthong.exchange.monitor import MonitorStore
from lienthong.exchange.replay import ReplayWindow
from lienthong.identifiers import ServiceId, SubsystemId
from lienthong.trust.keys import SoftwareSigner
from lienthong.trust.secrets import resolve_secret

if TYPE_CHECKING:
    from lienthong.exchange.lifecycle import OwnCertificates

log = logging.getLogger("lienthong.exchange")


@dataclass
class LocalKeys:
    signers: list[KeyedSigner]  # [ECDSA, (ML-DSA)]
    kem: RecipientKeys | None
    sources: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def allows(self, remote: str | None) -> bool:
        """Whether an information system at ``remote`` may call as this subsystem."""
        ip = _address(remote or "")
        return ip is not None and any(ip in net for net in self.sources)


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parsed caller address (callers are few: parse each once)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def load_private(path: str, passphrase: bytes) -> Any:
    """Load an encrypted PKCS#8 PEM private key; refuse a plaintext one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from exc
    if b"ENCRYPTED" not in data:
        raise ConfigError(f"key file {path} is not encrypted: plaintext keys are refused")
    try:
        return serialization.load_pem_private_key(data, passphrase)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot decrypt key file {path}: {exc}") from exc


def load_key_pair(
    key_path: str, cert_path: str, passphrase: bytes, kind: type
) -> tuple[Any, x509.Certificate]:
    """A signing key of type ``kind`` and the certificate of its public half (ConfigError
    naming the files otherwise)."""
    key = load_private(key_path, passphrase)
    if not isinstance(key, kind) or not isinstance(
        key, ec.EllipticCurvePrivateKey | mldsa.MLDSA65PrivateKey
    ):
        raise ConfigError(f"key file {key_path} holds a {type(key).__name__}")
    cert = _load_cert(cert_path)
    if not _same_key(key, cert):
        raise ConfigError(f"key file {key_path} does not match certificate {cert_path}")
    return key, cert


def _signer(key_path: str, cert_path: str, passphrase: bytes, kind: type) -> KeyedSigner:
    key, cert = load_key_pair(key_path, cert_path, passphrase, kind)
    return KeyedSigner(SoftwareSigner(key), fingerprint(cert))


def _load_cert(path: str) -> x509.Certificate:
    """A certificate file named in the config; ConfigError naming it when it is not one."""
    try:
        return load_pem_cert(Path(path).read_bytes())
    except InputError as exc:
        raise ConfigError(f"{path}: {exc.message}") from exc


def _same_key(key: Any, cert: x509.Certificate) -> bool:
    """Whether ``cert`` certifies the public half of the private ``key``."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki))


def load_local_keys(cfg: GatewayConfig, passphrase: bytes) -> dict[SubsystemId, LocalKeys]:
    out: dict[SubsystemId, LocalKeys] = {}
    for sub in cfg.subsystems:
        signers = [_signer(sub.sign_key, sub.sign_cert, passphrase, ec.EllipticCurvePrivateKey)]
        if sub.pq_key and sub.pq_cert:
            signers.append(_signer(sub.pq_key, sub.pq_cert, passphrase, mldsa.MLDSA65PrivateKey))
        kem = None
        if sub.kem_x25519 and sub.kem_mlkem:
            xk = load_private(sub.kem_x25519, passphrase)
            mk = load_private(sub.kem_mlkem, passphrase)
            if not isinstance(xk, x25519.X25519PrivateKey) or not isinstance(
                mk, mlkem.MLKEM768PrivateKey
            ):
                raise ConfigError(f"subsystem {sub.id}: key-agreement keys of the wrong type")
            kem = RecipientKeys(xk, mk)
        sources = tuple(ipaddress.ip_network(n) for n in sub.allowed_sources)
        out[SubsystemId.parse(sub.id)] = LocalKeys(signers, kem, sources)
    return out


def tls_contexts(cfg: GatewayConfig, passphrase: bytes) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts: TLS 1.3 only, certificates required both ways."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for ctx in (server, client):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        try:
            ctx.load_cert_chain(cfg.tls.cert, cfg.tls.key, password=passphrase)
            ctx.load_verify_locations(cfg.tls.roots)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TLS material: {exc}") from exc
        ctx.verify_mode = ssl.CERT_REQUIRED
    # Peers are identified by the federation identity in their certificate, checked against
    # the directory after the handshake, not by host name.
    client.check_hostname = False
    return server, client


@dataclass
class Node:
    cfg: GatewayConfig
    directory: Directory
    certs: CertificateStore
    local: dict[SubsystemId, LocalKeys]
    receipt_signer: KeyedSigner
    services: dict[ServiceId, str]
    replay: ReplayWindow
    monitor: MonitorStore
    message_log: MessageLog
    status: StatusCheck | None = None
    started_at: float = field(default_factory=time.time)
    in_flight: int = 0  # exchanges being handled now (both listeners)
    directory_loaded_at: float = field(default_factory=time.time)
    own: OwnCertificates | None = None  # own certificates: expiry, renewal (set by serve)

    @property
    def name(self) -> str:
        return self.cfg.node

    def reload(self, now: float) -> bool:
        """Swap in a fresh directory and certificate view; keep the old one on any error."""
        try:
            directory, certs = load_view(self.cfg, now, self.status)
        except InputError as exc:  # also a certificate in it that does not parse (not a PEM …)
            log.warning(
                "%s: configuration reload failed, keeping the previous one: %s", self.name, exc
            )
            return False
        self.directory, self.certs, self.directory_loaded_at = directory, certs, now
        return True

    def close(self) -> None:
        self.monitor.close()
        self.message_log.close()


def load_directory(cfg: GatewayConfig, now: float) -> Directory:
    """The federation view: the verified global configuration (``globalconf``) projected by
    the federation capability, or a directory JSON file (``directory``)."""
    if cfg.globalconf is not None:
        import datetime as dt

        from lienthong.errors import LienthongError
        from lienthong.federation.projection import to_exchange_directory
        from lienthong.federation.store import ConfigStore

        try:
            config = ConfigStore(Path(cfg.globalconf)).current(
                dt.datetime.fromtimestamp(now, dt.UTC)
            )
        except LienthongError as exc:
            raise ConfigError(f"global configuration: {exc.message}") from exc
        doc, warnings = to_exchange_directory(config)
        for warning in warnings:
            log.warning("global configuration projection: %s", warning)
        try:
            return directory_from_file(msgspec.convert(doc, DirectoryFile))
        except msgspec.ValidationError as exc:
            raise ConfigError(f"global configuration projection: {exc}") from exc
    assert cfg.directory is not None
    try:
        return directory_from_json(Path(cfg.directory).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read federation directory: {exc.strerror}") from exc


def _read_bundle(cfg: GatewayConfig) -> str:
    """The CA bundle's text; ConfigError when it cannot be read (also on a reload: the old
    view is kept) or is not text."""
    try:
        return Path(cfg.tls.roots).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read CA bundle {cfg.tls.roots}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"CA bundle {cfg.tls.roots} is not PEM text ({exc.reason})") from exc


def status_check(cfg: GatewayConfig) -> StatusCheck | None:
    """How certificate status is checked: OCSP via the trust service, a CRL file, or not."""
    issuers = load_bundle(_read_bundle(cfg))
    if cfg.tls.status_url:
        return OcspStatus(
            cfg.tls.status_url,
            issuers,
            grace_s=cfg.limits.status_grace_s,
            timeout_s=cfg.limits.connect_timeout_s,
        )
    if cfg.tls.crl:
        return CrlStatus(Path(cfg.tls.crl), issuers, grace_s=cfg.limits.status_grace_s)
    return None


def load_view(
    cfg: GatewayConfig, now: float, status: StatusCheck | None = None
) -> tuple[Directory, CertificateStore]:
    """Directory and certificate store (re-done when the configuration changes)."""
    directory = load_directory(cfg, now)
    if cfg.node not in directory.nodes:
        known = sorted(directory.nodes)
        raise ConfigError(
            f"node {cfg.node!r} is not in the federation directory (its nodes: "
            f"{', '.join(known[:12])}{', …' if len(known) > 12 else ''}); under globalconf "
            "an agency's node is its member id (e.g. VN/GOV/000.00.00.G01), a platform's its code"
        )
    signing = [c for sub in directory.subsystems.values() for c in sub.certs]
    tls = [(pem, n.name) for n in directory.nodes.values() for pem in n.all_tls_certs()]
    bundle = _read_bundle(cfg)
    certs = CertificateStore(
        signing,
        tls,
        bundle,
        clock=time.time,
        status_ttl_s=cfg.limits.status_ttl_s,
        status=status,
    )
    return directory, certs


def build_node(cfg: GatewayConfig, *, message_log: MessageLog | None = None) -> Node:
    """Load everything a gateway needs; raise ConfigError with one line if anything is wrong."""
    passphrase = resolve_secret(cfg.passphrase, what="gateway key passphrase")
    status = status_check(cfg)
    directory, certs = load_view(cfg, time.time(), status)
    tls_key = load_private(cfg.tls.key, passphrase)
    tls_cert = _load_cert(cfg.tls.cert)
    if not _same_key(tls_key, tls_cert):
        raise ConfigError(f"tls.key {cfg.tls.key} does not match tls.cert {cfg.tls.cert}")
    state = Path(cfg.state_dir)
    if state.exists() and not state.is_dir():
        raise ConfigError(f"gateway config: state_dir {state} is not a directory")
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"gateway config: state_dir {state}: {exc.strerror}") from exc
    if not os.access(state, os.W_OK | os.X_OK):
        raise ConfigError(f"gateway config: state_dir {state} is not writable")
    message_log = message_log or _message_log(cfg, state, SoftwareSigner(tls_key))
    if isinstance(status, CrlStatus):
        status.report = functools.partial(_status_unusable, message_log, cfg.node)
    return Node(
        cfg=cfg,
        directory=directory,
        certs=certs,
        local=load_local_keys(cfg, passphrase),
        receipt_signer=KeyedSigner(SoftwareSigner(tls_key), fingerprint(tls_cert)),
        services={ServiceId.parse(k): v.rstrip("/") for k, v in cfg.services.items()},
        replay=ReplayWindow(
            cfg.limits.replay_window_s,
            cfg.limits.replay_max_entries,
            start=time.time(),
            journal=state / "replay-ahead.journal",
        ),
        monitor=MonitorStore(state / "monitor.sqlite"),
        message_log=message_log,
        status=status,
    )


def _status_unusable(message_log: MessageLog, node: str, reason: str) -> None:
    """A security event when the certificate status source in place cannot be used (a CRL
    file that does not parse or verify, or an older one put back)."""
    log.warning("%s: certificate status: %s (the last good list is kept)", node, reason)
    try:
        message_log.note(
            security_event_entry(
                at=dt.datetime.now(dt.UTC),
                event="certificate.status_unusable",
                severity=6,
                source=node,
                detail={"reason": reason},
            )
        )
    except Exception:  # any message-log failure: the certificate check itself must go on
        log.exception("%s: cannot log the unusable certificate status", node)


def _message_log(cfg: GatewayConfig, state: Path, signer: SoftwareSigner) -> MessageLog:
    """The message log, its checkpoints signed with the node's TLS key (the key that signs
    its hop receipts); the person key resolved now, so a missing one stops the start."""
    settings = cfg.message_log_settings
    if settings.kind == "jsonl":
        return JsonlMessageLog(state / "message-log.jsonl")
    person_key = None
    if cfg.audit.person_key is not None:
        try:
            person_key = resolve_secret(cfg.audit.person_key, what="audit.person_key")
        except InputError as exc:
            raise ConfigError(f"gateway config: {exc.message}") from exc
        if len(person_key) < 16:
            raise ConfigError("gateway config: audit.person_key must be at least 16 bytes")
    path = state / "message-log.auditlog"

    def open_log(origin: str) -> AuditMessageLog:
        return AuditMessageLog(
            path,
            origin=origin,
            durability=settings.durability,
            sync_interval_s=settings.sync_interval_ms / 1000,
            signer=signer,
            checkpoint_interval_s=settings.checkpoint_interval_s,
            person_key=person_key,
        )

    intent = rollover.pending(state)  # a start stopped half-way through a rollover
    if intent is not None:
        rollover.finish(path, intent)
    try:
        mlog = open_log(
            _stored_origin(path) or rollover.origin_for(cfg.node, state, signer.public_key())
        )
    except InputError as exc:
        if "signed with another key" not in exc.message:
            raise ConfigError(f"message log {path}: {exc.message}") from exc
        # the node's TLS key changed (a renewal): see rollover.py
        intent = rollover.move_aside(path)
        mlog = open_log(rollover.origin_for(cfg.node, state, signer.public_key()))
        log.warning(
            "%s: TLS key changed: message log kept as %s, a new one started",
            cfg.node,
            intent["log"],
        )
    if intent is not None:
        rollover.record(mlog, cfg.node, intent)
    return mlog


def _stored_origin(path: Path) -> str | None:
    """The origin an existing message log was created with (a rolled-over log has its own)."""
    if not path.exists():
        return None
    try:
        with AuditLog.open(path, create=False, readonly=True) as existing:
            return existing.origin
    except InputError:
        return None  # not (yet) an audit log: opening it says why
