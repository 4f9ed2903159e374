"""The node's own certificates: their expiry watched, their renewal taken without a restart.

Every certificate a gateway presents or signs with — its TLS certificate (mutual TLS, hop
receipts, signed refusals) and each local subsystem's signing certificates (ECDSA P-256,
ML-DSA-65) — is pinned by fingerprint in the federation configuration. Renewing one is
therefore two steps: the federation publishes the new certificate (beside the old one, so
that peers still on the previous configuration accept either), then the node starts using
it.

The operator replaces the files the gateway config names (same paths). With each re-read of
the federation view (``limits.reload_s``) the gateway looks at those files (size, time,
inode); when one changed, it reads both files once, off the event loop, and checks what it
read: an encrypted key of the slot's type (ECDSA P-256, ML-DSA-65 for ``pq``) that matches
the certificate, a certificate of the slot's usage (TLS: serverAuth and clientAuth, as
peers verify it both ways; signing: nonRepudiation, no extended usage) that chains to the
federation CA, is in force and not revoked — and that the configuration the node holds
**publishes** it for this node or subsystem (by fingerprint). Only then is it swapped in, on
the event loop: new TLS handshakes present it (the running TLS contexts are reloaded in
place from the very bytes checked, never from the files again, so certificate and key cannot
come from different writes; open connections keep theirs), new signatures carry its key and
``kid``, hop receipts and refusals are signed with the new node key. A file missing or
unreadable, a directory in its place, an unreadable passphrase: reported like the rest,
never raised into the loop that re-reads the view and flushes the monitoring records.
Until the federation publishes it, the old material stays in use and ``/health`` says the
renewal is pending and why; material that does not load (a key not matching its
certificate, a plaintext key, an expired certificate) keeps the old one too and is reported
with the reason. The message log keeps signing its checkpoints with the key it was opened
with until the gateway restarts (an audit log's checkpoints have one key); at the next start
the gateway keeps that log whole under a name of its own and starts a new one under the new
key (``node._message_log``). Key-agreement keys are read at a start only.

``/health`` also reports each certificate in use with its expiry: ``warning`` within
``limits.cert_warn_days`` of it, ``failing`` once expired or not yet valid (peers refuse it).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lienthong.errors import ConfigError, InputError, LienthongError
from lienthong.exchange.certs import fingerprint, load_pem_cert
from lienthong.exchange.config import GatewayConfig
from lienthong.exchange.envelope import KeyedSigner
from lienthong.exchange.node import Node, _load_cert, _same_key
from lienthong.identifiers import SubsystemId
from lienthong.trust.keys import SoftwareSigner, algorithm_of
from lienthong.trust.secrets import resolve_secret
from lienthong.trust.x509 import Usage, check_usage

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int] | None  # (inode, size, mtime ns) of a file, None when missing


@dataclass(frozen=True)
class OwnCert:
    """One certificate this node uses: ``role`` tls | sign | pq, ``owner`` the node name or
    subsystem id, and the files it comes from."""

    role: str
    owner: str
    cert_path: str
    key_path: str
    fingerprint: str
    not_before: float
    not_after: float

    def report(self, now: float, warn_s: float) -> dict[str, Any]:
        if now < self.not_before or now >= self.not_after:
            state = "failing"
        elif self.not_after - now <= warn_s:
            state = "warning"
        else:
            state = "ok"
        return {
            "role": self.role,
            "owner": self.owner,
            "fingerprint": self.fingerprint,
            "not_after": _iso(self.not_after),
            "days_left": round((self.not_after - now) / 86400, 1),
            "state": state,
        }


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def _stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _own(role: str, owner: str, cert_path: str, key_path: str, cert: x509.Certificate) -> OwnCert:
    return OwnCert(
        role,
        owner,
        cert_path,
        key_path,
        fingerprint(cert),
        cert.not_valid_before_utc.timestamp(),
        cert.not_valid_after_utc.timestamp(),
    )


def _slots(cfg: GatewayConfig) -> list[tuple[str, str, str, str]]:
    """(role, owner, certificate file, key file) of every certificate the config names."""
    out = [("tls", cfg.node, cfg.tls.cert, cfg.tls.key)]
    for sub in cfg.subsystems:
        sid = str(SubsystemId.parse(sub.id))  # as the certificate names it
        out.append(("sign", sid, sub.sign_cert, sub.sign_key))
        if sub.pq_key and sub.pq_cert:
            out.append(("pq", sid, sub.pq_cert, sub.pq_key))
    return out


@dataclass
class _Loaded:
    """New material read from one slot's files, checked on its own (not yet published).

    ``cert_pem`` and ``key_pem`` are the very bytes that were checked (the key still
    encrypted) and ``passphrase`` the one that decrypted it: the TLS contexts are loaded from
    these, never from the files again, so what is switched in is what was checked even if the
    files change in between."""

    own: OwnCert
    key: Any
    stamps: tuple[Stamp, Stamp]
    cert_pem: bytes = field(default=b"", repr=False)
    key_pem: bytes = field(default=b"", repr=False)
    passphrase: bytes = field(default=b"", repr=False)


# What cryptography raises on a malformed certificate or key besides ValueError
_PARSE_ERRORS = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
)


def _read(path: str, what: str) -> bytes:
    """A file's bytes; ConfigError naming it when it cannot be read (missing, a directory,
    no permission …)."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _load_slot(role: str, owner: str, cert_path: str, key_path: str, passphrase: bytes) -> _Loaded:
    """Read a slot's two files once and check them on their own: an encrypted key of the
    slot's type (ECDSA P-256, or ML-DSA-65 for ``pq``) certified by the certificate, of the
    slot's usage. ConfigError with the reason otherwise."""
    stamps = (_stamp(cert_path), _stamp(key_path))
    key_pem = _read(key_path, "key file")
    cert_pem = _read(cert_path, "certificate file")
    if stamps != (_stamp(cert_path), _stamp(key_path)):
        raise ConfigError(f"{cert_path} or {key_path} changed while being read")
    if b"ENCRYPTED" not in key_pem:
        raise ConfigError(f"key file {key_path} is not encrypted: plaintext keys are refused")
    try:
        key = serialization.load_pem_private_key(key_pem, passphrase)
    except _PARSE_ERRORS as exc:
        raise ConfigError(f"cannot decrypt key file {key_path}: {exc}") from exc
    kind = mldsa.MLDSA65PrivateKey if role == "pq" else ec.EllipticCurvePrivateKey
    if not isinstance(key, kind):
        raise ConfigError(f"key file {key_path} holds a {type(key).__name__}")
    try:
        algorithm_of(key)  # P-256 only: peers refuse any other curve
        cert = load_pem_cert(cert_pem)
        same = _same_key(key, cert)
        _ = cert.extensions  # parsed lazily: a malformed one raises here, not later
    except (LienthongError, *_PARSE_ERRORS) as exc:
        why = exc.message if isinstance(exc, LienthongError) else str(exc)
        raise ConfigError(f"{cert_path}: {why}") from exc
    if not same:
        raise ConfigError(f"key file {key_path} does not match certificate {cert_path}")
    try:  # a TLS certificate is presented both ways: peers check both usages
        for usage in (Usage.TLS_SERVER, Usage.TLS_CLIENT) if role == "tls" else (Usage.SIGNING,):
            check_usage(cert, usage)
    except LienthongError as exc:
        raise ConfigError(f"{cert_path}: {exc.message}") from exc
    own = _own(role, owner, cert_path, key_path, cert)
    return _Loaded(own, key, stamps, cert_pem, key_pem, passphrase)


@dataclass
class Renewal:
    """One slot's renewal in progress: loaded and checked, waiting for publication (or
    ready), or failed to load; ``reason`` says which."""

    state: str  # "pending" | "ready" | "error"
    reason: str
    loaded: _Loaded | None = None


@dataclass
class OwnCertificates:
    """The certificates in use, by slot, and the renewals under way (see the module doc)."""

    cfg: GatewayConfig
    in_use: dict[tuple[str, str], OwnCert]
    stamps: dict[tuple[str, str], tuple[Stamp, Stamp]]
    contexts: tuple[ssl.SSLContext, ...] = ()
    renewals: dict[tuple[str, str], Renewal] = field(default_factory=dict)
    renewed: int = 0
    restart_note: str | None = None  # what the next start needs done first, once known
    published_at: dict[str, float] = field(default_factory=dict)  # fingerprint -> first seen

    @classmethod
    def of(cls, cfg: GatewayConfig, contexts: tuple[ssl.SSLContext, ...] = ()) -> OwnCertificates:
        """The certificates the gateway started with (its files as they are now)."""
        in_use, stamps = {}, {}
        for role, owner, cert_path, key_path in _slots(cfg):
            stamps[(role, owner)] = (_stamp(cert_path), _stamp(key_path))
            cert = _load_cert(cert_path)
            in_use[(role, owner)] = _own(role, owner, cert_path, key_path, cert)
        return cls(cfg, in_use, stamps, contexts)

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Expose each certificate's expiry and the renewals under way to Prometheus."""
        registry.register(_Collector(self))

    def report(self, now: float) -> dict[str, Any]:
        """The ``own`` part of ``/health``'s certificate check."""
        warn_s = self.cfg.limits.cert_warn_days * 86400
        certs = [own.report(now, warn_s) for own in self.in_use.values()]
        renewals = [
            {"role": role, "owner": owner, "state": r.state, "reason": r.reason}
            for (role, owner), r in self.renewals.items()
        ]
        states = {c["state"] for c in certs}
        if any(r["state"] != "ready" for r in renewals):
            states.add("warning")  # the old certificate still serves: a warning, not a failure
        state = next((s for s in ("failing", "warning") if s in states), "ok")
        return {
            "state": state,
            "certificates": certs,
            "renewals": renewals,
            "renewed": self.renewed,
            "before_restart": self.restart_note,
        }

    def prepare(self, node: Node, now: float) -> bool:
        """Off the event loop: load the files that changed (or whose renewal waits) and check
        each against the federation view ``node`` holds; whether any renewal is ready."""
        # when this node's view first published each certificate (its peers' views follow
        # within their own fetch interval): a renewal waits limits.renewal_settle_s from it
        seen = self.published_at
        self.published_at = {fp: seen.get(fp, now) for fp in node.certs.fingerprints()}
        due = []
        for role, owner, cert_path, key_path in _slots(self.cfg):
            slot = (role, owner)
            now_stamps = (_stamp(cert_path), _stamp(key_path))
            if now_stamps != self.stamps[slot] or slot in self.renewals:
                due.append((role, owner, cert_path, key_path))
        if not due:
            return False
        renewals = dict(self.renewals)  # replaced whole: the loop may be reading the old one
        try:
            passphrase = resolve_secret(self.cfg.passphrase, what="gateway key passphrase")
        except InputError as exc:  # an unreadable passphrase file: reported, old keys kept
            for role, owner, *_ in due:
                renewals[(role, owner)] = Renewal("error", exc.message)
            self.renewals = renewals
            return False
        for role, owner, cert_path, key_path in due:
            renewals[(role, owner)] = self._check(
                node, now, role, owner, cert_path, key_path, passphrase
            )
        self.renewals = renewals
        return any(r.state == "ready" for r in renewals.values())

    def _check(
        self,
        node: Node,
        now: float,
        role: str,
        owner: str,
        cert_path: str,
        key_path: str,
        passphrase: bytes,
    ) -> Renewal:
        try:
            loaded = _load_slot(role, owner, cert_path, key_path, passphrase)
        except ConfigError as exc:
            return Renewal("error", exc.message)
        own = loaded.own
        if own.fingerprint == self.in_use[(role, owner)].fingerprint:
            renewal = Renewal("ready", "the same certificate, files rewritten", loaded)
        elif not own.not_before <= now < own.not_after:
            return Renewal(
                "error",
                f"{cert_path}: not in force (valid from {_iso(own.not_before)} "
                f"until {_iso(own.not_after)})",
            )
        elif own.fingerprint not in node.certs:
            return Renewal(
                "pending",
                f"certificate {own.fingerprint[:16]}… of {cert_path} is not (yet) published "
                f"for {owner} in the federation configuration",
                loaded,
            )
        else:
            lookup = node.certs.node_lookup if role == "tls" else node.certs.lookup
            try:
                key = lookup(own.fingerprint)
            except LienthongError as exc:  # revoked, of another usage, foreign CA, status …
                return Renewal("error", f"certificate of {cert_path}: {exc.message}")
            if key.identity != owner:
                return Renewal(
                    "error",
                    f"certificate {own.fingerprint[:16]}… of {cert_path} is published for "
                    f"{key.identity}, not {owner}",
                )
            since = self.published_at.get(own.fingerprint, now)
            settle = self.cfg.limits.renewal_settle_s
            if now - since < settle:  # peers on an older configuration would refuse it
                return Renewal(
                    "pending",
                    f"certificate {own.fingerprint[:16]}… published since {_iso(since)}: used "
                    f"from {_iso(since + settle)} (limits.renewal_settle_s), once every peer "
                    "holds the configuration",
                    loaded,
                )
            renewal = Renewal("ready", "published", loaded)
        if role == "tls":  # what OpenSSL takes, known before anything in use is touched
            try:
                _load_tls(loaded, (ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER),), self.cfg.state_dir)
            except (OSError, ssl.SSLError) as exc:
                return Renewal("error", f"TLS: {cert_path}, {key_path}: {exc}")
        return renewal

    def apply(self, node: Node) -> list[str]:
        """On the event loop: swap in every ready renewal; the slots renewed."""
        done: list[str] = []
        for slot, renewal in list(self.renewals.items()):
            loaded = renewal.loaded
            if renewal.state != "ready" or loaded is None:
                continue
            own = loaded.own
            if loaded.stamps != (_stamp(own.cert_path), _stamp(own.key_path)):
                continue  # rewritten again since it was checked: checked anew next time
            role, owner = slot
            if role == "tls":
                try:  # the bytes checked, not the files again: the pair cannot differ
                    _load_tls(loaded, self.contexts, self.cfg.state_dir)
                except (OSError, ssl.SSLError) as exc:
                    log.error("%s: cannot load the renewed TLS certificate: %s", node.name, exc)
                    self.renewals = {**self.renewals, slot: Renewal("error", f"TLS: {exc}")}
                    continue
                node.receipt_signer = KeyedSigner(SoftwareSigner(loaded.key), own.fingerprint)
            else:
                sid = SubsystemId.parse(owner)
                keys = node.local[sid]
                signers = list(keys.signers)
                signers[0 if role == "sign" else 1] = KeyedSigner(
                    SoftwareSigner(loaded.key), own.fingerprint
                )
                node.local[sid] = replace(keys, signers=signers)
            changed = own.fingerprint != self.in_use[slot].fingerprint
            self.in_use[slot] = own
            self.stamps[slot] = loaded.stamps
            self.renewals = {k: v for k, v in self.renewals.items() if k != slot}
            if not changed:  # the same certificate, its files rewritten
                continue
            self.renewed += 1
            done.append(f"{role} {owner} → {own.fingerprint[:16]}…")
            if role == "tls" and self.cfg.message_log_settings.kind == "audit":
                self.restart_note = _AUDIT_LOG_KEY
                log.warning("%s: %s", node.name, _AUDIT_LOG_KEY)
            log.warning(
                "%s: now using renewed %s certificate of %s (%s, valid until %s)",
                node.name,
                role,
                owner,
                own.fingerprint[:16],
                _iso(own.not_after),
            )
        return done


_AUDIT_LOG_KEY = (
    "the TLS key was renewed: the message log goes on signing its checkpoints with the key the "
    "gateway started with until it restarts; at the next start it is kept whole as "
    "state_dir/message-log.until-<time>.auditlog (with its evidence store and public key) and "
    "a new log starts, signed with the new key, whose first entry names the one before"
)


def _load_tls(loaded: _Loaded, contexts: tuple[ssl.SSLContext, ...], state_dir: str) -> None:
    """Load the checked certificate chain and (still encrypted) key into ``contexts``, in
    place: new handshakes present them, open connections keep theirs. ``ssl`` reads only
    files, so the checked bytes are written to a private directory (0700) in ``state_dir``
    for the time of the load, then removed."""
    with tempfile.TemporaryDirectory(prefix=".tls-renewal-", dir=state_dir) as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        key.touch(0o600)
        key.write_bytes(loaded.key_pem)
        cert.write_bytes(loaded.cert_pem)
        for ctx in contexts:
            ctx.load_cert_chain(cert, key, password=loaded.passphrase)


class _Collector(Collector):
    def __init__(self, own: OwnCertificates) -> None:
        self._own = own

    def collect(self) -> Iterator[Metric]:
        expiry = GaugeMetricFamily(
            "lienthong_own_certificate_not_after_seconds",
            "Expiry (Unix time) of each certificate this node presents or signs with",
            labels=["role", "owner", "fingerprint"],
        )
        for c in self._own.in_use.values():
            expiry.add_metric([c.role, c.owner, c.fingerprint[:16]], c.not_after)
        yield expiry
        waiting = GaugeMetricFamily(
            "lienthong_own_certificate_renewals",
            "Renewals of this node's certificates under way, by state (pending: not yet "
            "published in the federation configuration; error: the new files do not load)",
            labels=["state"],
        )
        states = [r.state for r in self._own.renewals.values()]
        for state in ("pending", "ready", "error"):
            waiting.add_metric([state], states.count(state))
        yield waiting


__all__ = ["OwnCert", "OwnCertificates", "Renewal"]
