"""Certificate checks for the exchange: which key a ``kid`` names, and whether to trust it.

Certificates come from the federation directory (subsystem signing certificates, node TLS
certificates). A certificate is trusted when it chains to a federation root
(:func:`lienthong.trust.x509.verify_chain`), is valid at ``now`` and is not on the CA's CRL;
the result is cached for ``status_ttl_s`` so the status service is not asked per message (and
a short outage of it does not stop traffic) — but never past the earliest expiry on the
certificate's chain, a date known in advance.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa

from lienthong.errors import CertificateError, InputError
from lienthong.exchange.envelope import VerifyKey
from lienthong.exchange.protocol import ErrorCode, Refused
from lienthong.trust.identity import identity_of
from lienthong.trust.keys import algorithm_of
from lienthong.trust.x509 import Usage, verify_chain

StatusCheck = Callable[[x509.Certificate, float], None]  # raises CertificateError if revoked


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_pem_cert(pem: str | bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise InputError(f"not a PEM certificate: {exc}") from exc


def load_bundle(pem: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise InputError(f"not a PEM certificate bundle: {exc}") from exc


class CrlStatus:
    """Revocation status from a CRL file published by the CA (re-read when it changes).

    A CRL past its next update is trusted ``grace_s`` longer (as the OCSP path trusts its last
    answer), then certificate checks fail closed: a revocation published after it would be
    missed. A file that cannot be used — unreadable, not a PEM CRL, a signature that does not
    verify, or a lower CRL number than the list held (an old file put back) — leaves the last
    good list in force under the same rule (its next update plus ``grace_s``), is reported
    once (``report``: a security event in the message log) and shown by :meth:`health` until
    a good file replaces it; with no good list read yet, checks fail closed."""

    def __init__(
        self, path: Path, issuers: list[x509.Certificate], *, grace_s: float = 86400.0
    ) -> None:
        self._path = path
        self._issuers = issuers
        self._grace_s = grace_s
        self._stamp: tuple[int, int, int] | None = None  # (mtime ns, size, inode) last read
        self._read = False  # the file was looked at once (its stamp or its absence)
        self._held = False  # a good list was read
        self._revoked: set[int] = set()
        self._number = -1
        self._next_update: float | None = None
        self.unusable: str | None = None  # why the file now in place is not used
        self.report: Callable[[str], None] | None = None  # told once per unusable file
        self._lock = threading.Lock()

    def __call__(self, cert: x509.Certificate, now: float) -> None:
        self._refresh()
        if not self._held:
            raise CertificateError(f"no usable CRL: {self.unusable}")
        if self._next_update is not None and now > self._next_update + self._grace_s:
            raise CertificateError("CRL is past its next update and grace period: failing closed")
        if cert.serial_number in self._revoked:
            raise CertificateError("certificate revoked", serial=cert.serial_number)

    def health(self, now: float) -> dict[str, Any]:
        """``ok``; ``warning`` while the file in place is unusable or the list held is past
        its next update (inside the grace period); ``failing`` once checks fail closed."""
        self._refresh()
        left: float | None = None
        if not self._held:
            state, left = "failing", 0.0
        else:
            if self._next_update is not None:
                left = max(0.0, self._next_update + self._grace_s - now)
            stale = self._next_update is not None and now > self._next_update
            state = "failing" if left == 0.0 else "warning" if self.unusable or stale else "ok"
        return {
            "state": state,
            "unusable": self.unusable,
            "crl_number": self._number if self._held else None,
            "next_update": self._next_update,
            "seconds_until_fail_closed": None if left is None else round(left, 1),
        }

    def _refresh(self) -> None:
        # the event loop (certificate checks, /health) and worker threads (the view's reload,
        # a renewal's check) all look: one reads a changed file, and reports it, once
        with self._lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        try:
            st = self._path.stat()
        except OSError as exc:
            if self._read and self._stamp is None:
                return  # still missing: told already
            self._read, self._stamp = True, None
            self._refuse(f"CRL file unavailable: {exc.strerror}")
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._read and stamp == self._stamp:
            return
        self._read, self._stamp = True, stamp
        try:
            self._load()
        except CertificateError as exc:
            self._refuse(exc.message)
        else:
            self.unusable = None

    def _refuse(self, reason: str) -> None:
        self.unusable = reason
        if self.report is not None:
            self.report(reason)

    def _load(self) -> None:
        """Take the file's list, or raise CertificateError (the list held stays)."""
        try:
            crl = x509.load_pem_x509_crl(self._path.read_bytes())
        except OSError as exc:
            raise CertificateError(f"CRL file unreadable: {exc.strerror}") from exc
        except ValueError as exc:  # cut short while being written, or not a CRL
            raise CertificateError("CRL file is not a PEM CRL") from exc
        if not any(_crl_signed_by(crl, i) for i in self._issuers):
            raise CertificateError("CRL signature does not verify")
        try:
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            number = 0
        if number < self._number:  # an older CRL than the one in force: keep the newer list
            raise CertificateError(f"CRL number {number} is below the one held ({self._number})")
        self._number = number
        self._revoked = {r.serial_number for r in crl}
        nxt = crl.next_update_utc
        self._next_update = nxt.timestamp() if nxt is not None else None
        self._held = True


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if issuer.subject != crl.issuer or not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    return crl.is_signature_valid(key)


class OcspStatus:
    """Status from the CA's OCSP service through the trust capability's StatusChecker:
    answers are cached until their next update, and during an outage the last good answer
    is used for ``grace`` after it (then fail closed) — traffic does not stop the moment the
    status service does, unlike X-Road."""

    def __init__(
        self, url: str, issuers: list[x509.Certificate], *, grace_s: float, timeout_s: float
    ):
        from lienthong.trust.client import TrustServiceClient
        from lienthong.trust.status import StatusChecker

        self._issuers = issuers
        self.checker = StatusChecker(
            TrustServiceClient(url, timeout=timeout_s), grace=dt.timedelta(seconds=grace_s)
        )

    def __call__(self, cert: x509.Certificate, now: float) -> None:
        issuer = next((i for i in self._issuers if i.subject == cert.issuer), None)
        if issuer is None:
            raise CertificateError("issuer of the certificate is not in the CA bundle")
        self.checker.check(cert, issuer, now=dt.datetime.fromtimestamp(now, dt.UTC))


@dataclass
class _Entry:
    cert: x509.Certificate
    key: VerifyKey
    usage: Usage
    checked_at: float = float("-inf")
    valid_until: float = float("-inf")  # earliest expiry on its chain: ends a cached verdict


class CertificateStore:
    """Certificates by fingerprint, verified lazily and re-checked every ``status_ttl_s``.

    ``signing`` certificates carry the identity written in them; ``tls`` certificates of
    gateway nodes are given with the node name they belong to in the directory.
    """

    def __init__(
        self,
        signing: Iterable[str],
        tls: Iterable[tuple[str, str]],
        trust_bundle: str,
        *,
        clock: Callable[[], float],
        status: StatusCheck | None = None,
        status_ttl_s: float = 60.0,
    ) -> None:
        certs = load_bundle(trust_bundle)
        self.roots = [c for c in certs if c.subject == c.issuer]
        self.intermediates = [c for c in certs if c.subject != c.issuer]
        self._clock = clock
        self._status = status
        self._ttl = status_ttl_s
        self._entries: dict[str, _Entry] = {}
        for pem in signing:
            cert = load_pem_cert(pem)
            self._add(cert, str(identity_of(cert)), Usage.SIGNING)
        for pem, node in tls:
            self._add(load_pem_cert(pem), node, Usage.TLS_CLIENT)

    def _add(self, cert: x509.Certificate, identity: str, usage: Usage) -> None:
        pub = cert.public_key()
        if isinstance(pub, ec.EllipticCurvePublicKey | mldsa.MLDSA65PublicKey):
            vk = VerifyKey(pub, identity, algorithm_of(pub))
            self._entries[fingerprint(cert)] = _Entry(cert, vk, usage)

    def fingerprints(self) -> list[str]:
        """Every certificate the directory publishes, by fingerprint."""
        return list(self._entries)

    def __contains__(self, kid: object) -> bool:
        """Whether the directory publishes a certificate with this fingerprint (trusted or not)."""
        return kid in self._entries

    def lookup(self, kid: str) -> VerifyKey:
        """The key of a subsystem *signing* certificate (requests, responses)."""
        return self._checked(kid, Usage.SIGNING)

    def node_lookup(self, kid: str) -> VerifyKey:
        """The key of a gateway node's TLS certificate (hop receipts, TLS peers)."""
        return self._checked(kid, Usage.TLS_CLIENT)

    def _checked(self, kid: str, usage: Usage) -> VerifyKey:
        """The verified key for ``kid``; raise Refused(LT.BAD_SIGNATURE) if unknown, of another
        usage (a node key cannot sign as a subsystem, nor the reverse) or untrusted."""
        entry = self._entries.get(kid)
        if entry is None or entry.usage is not usage:
            raise Refused(ErrorCode.BAD_SIGNATURE, "unknown certificate", kid=kid)
        now = self._clock()
        if now - entry.checked_at > self._ttl or now > entry.valid_until:
            try:
                verify_chain(
                    entry.cert,
                    intermediates=self.intermediates,
                    roots=self.roots,
                    now=dt.datetime.fromtimestamp(now, dt.UTC),
                    usage=entry.usage,
                )
                if self._status is not None:
                    self._status(entry.cert, now)
            except CertificateError as exc:
                raise Refused(
                    ErrorCode.BAD_SIGNATURE, f"certificate rejected: {exc}", kid=kid
                ) from exc
            entry.checked_at = now
            entry.valid_until = self._valid_until(entry.cert)
        return entry.key

    def _valid_until(self, cert: x509.Certificate) -> float:
        """When the verdict on ``cert`` ends whatever the cache period: the earliest expiry
        on its chain (its own or a CA's above it) — a known date, unlike a revocation."""
        until = cert.not_valid_after_utc.timestamp()
        cas = [*self.intermediates, *self.roots]
        current = cert
        for _ in range(len(cas)):  # bounded: no issuer loop can keep this going
            if current.issuer == current.subject:
                break
            issuer = next((c for c in cas if c.subject == current.issuer), None)
            if issuer is None:
                break
            until = min(until, issuer.not_valid_after_utc.timestamp())
            current = issuer
        return until

    def identity_of_der(self, der: bytes) -> str:
        """Node name of a TLS peer certificate (must be a directory certificate, checked)."""
        return self.node_lookup(hashlib.sha256(der).hexdigest()).identity

    def status_summary(self) -> dict[str, int]:
        now = self._clock()
        fresh = sum(1 for e in self._entries.values() if now - e.checked_at <= self._ttl)
        return {"certificates": len(self._entries), "recently_checked": fresh}
