"""The certification authority for official-use signatures (chữ ký số chuyên dùng công vụ).

State lives in one directory::

    ca.json          settings (schema version, algorithm, key store spec, validity periods)
    root.pem         root CA certificate; intermediate.pem when an intermediate issues
    bundle.pem       root (+ intermediate): what relying parties trust / pass to openssl
    ocsp.pem tsa.pem delegated status-responder and time-stamping certificates
    index.json       every issued serial with identity, profile, validity and revocation
    issued/<serial>.pem, crl.pem
    keys/            private keys when the key store is the encrypted-file store

Private keys are only ever in the key store (encrypted PKCS#8 files or a PKCS#11 token).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from lienthong.errors import ConfigError, InputError, NotFound
from lienthong.trust import ocsp, revocation
from lienthong.trust.enrol import read_csr
from lienthong.trust.identity import (
    Identity,
    identity_uri,
    parse_identity,
    subject_for,
)
from lienthong.trust.keys import Algorithm, PublicKey, Signer
from lienthong.trust.keystore import KeyStore, open_keystore
from lienthong.trust.profiles import Profile, ca_certificate, leaf_certificate
from lienthong.trust.tsa import TimeStampAuthority

SCHEMA_VERSION = 1
_ROLES = ("root", "intermediate", "ocsp", "tsa")
_MAX_NAME = 38  # + " - Time-Stamping Authority" stays within the 64-character CN limit
_PEM = serialization.Encoding.PEM


def _write(path: Path, data: bytes) -> None:
    """Write atomically so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lienthong"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class Issued:
    """A certificate the CA issued, as recorded in ``index.json``."""

    certificate: x509.Certificate
    path: Path
    identity: Identity | None


class LocalStatusSource:
    """A :class:`~lienthong.trust.status.StatusSource` answering from a CA directory."""

    def __init__(self, ca: CertificateAuthority, clock: Callable[[], dt.datetime]) -> None:
        self.ca = ca
        self.clock = clock

    def fetch(self, request_der: bytes) -> bytes:
        return self.ca.ocsp_response(request_der, self.clock())


class CertificateAuthority:
    """A CA directory opened for use; see :meth:`init` and :meth:`open`."""

    def __init__(self, directory: Path, settings: dict[str, Any], keystore: KeyStore) -> None:
        self.directory = directory
        self.settings = settings
        self.keystore = keystore
        self._certs: dict[str, tuple[int, x509.Certificate]] = {}

    # -- creation and opening ---------------------------------------------------------------
    @classmethod
    def init(
        cls,
        directory: Path | str,
        *,
        keystore_spec: dict[str, Any],
        now: dt.datetime,
        algorithm: Algorithm = Algorithm.ECDSA_P256,
        intermediate: bool = False,
        name: str = "Lienthong Root CA",
        days: int = 3650,
    ) -> CertificateAuthority:
        """Create a new CA: root (± intermediate), OCSP responder and TSA keys/certificates.

        Files are built in a temporary sibling directory and renamed into place, so a failure
        leaves nothing half-written; HSM key labels carry a per-CA prefix so that several CAs
        (or a retried ``init``) can share one token.
        """
        directory = Path(directory)
        if not 0 < len(name) <= _MAX_NAME:
            raise InputError(f"CA name must be 1-{_MAX_NAME} characters, got {len(name)}")
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise InputError(f"{directory} already exists and is not empty")
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.parent / f".{directory.name}.init-{os.urandom(4).hex()}"
        prefix = f"ca-{os.urandom(4).hex()}-" if keystore_spec.get("type") == "pkcs11" else ""
        try:
            cls._populate(
                tmp,
                keystore_spec=keystore_spec,
                now=now,
                algorithm=algorithm,
                intermediate=intermediate,
                name=name,
                days=days,
                prefix=prefix,
            )
            if directory.exists():
                directory.rmdir()
            tmp.rename(directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls.open(directory)

    @classmethod
    def _populate(
        cls,
        directory: Path,
        *,
        keystore_spec: dict[str, Any],
        now: dt.datetime,
        algorithm: Algorithm,
        intermediate: bool,
        name: str,
        days: int,
        prefix: str,
    ) -> None:
        directory.mkdir()
        (directory / "issued").mkdir()
        settings = {
            "schema_version": SCHEMA_VERSION,
            "algorithm": algorithm.value,
            "keystore": keystore_spec,
            "key_labels": {role: prefix + role for role in _ROLES},
            "intermediate": intermediate,
            "crl_days": 7,
            "ocsp_hours": 4,
        }
        ca = cls(directory, settings, open_keystore(keystore_spec, base=directory))
        chain = ca._create_ca_chain(name=name, now=now, days=days)
        _write(directory / "bundle.pem", b"".join(c.public_bytes(_PEM) for c in chain))
        _write(directory / "index.json", b'{"schema_version": 1, "crl_number": 0, "certs": {}}')
        ca._create_service_certificates(name=name, now=now)
        _write(directory / "ca.json", json.dumps(settings, indent=2).encode())
        ca.publish_crl(now)

    def _create_ca_chain(self, *, name: str, now: dt.datetime, days: int) -> list[x509.Certificate]:
        """Root (and intermediate) keys and certificates; returns the chain root first."""
        intermediate = bool(self.settings["intermediate"])
        root_signer = self.keystore.generate(self.label("root"), self.algorithm)
        root = ca_certificate(
            subject=_ca_name(name),
            public_key=root_signer.public_key(),
            issuer=None,
            signer=root_signer,
            serial=x509.random_serial_number(),
            now=now,
            days=days,
            path_length=1 if intermediate else 0,
        )
        _write(self.directory / "root.pem", root.public_bytes(_PEM))
        if not intermediate:
            return [root]
        inter_signer = self.keystore.generate(self.label("intermediate"), self.algorithm)
        inter = ca_certificate(
            subject=_ca_name(f"{name} - Issuing CA"),
            public_key=inter_signer.public_key(),
            issuer=root,
            signer=root_signer,
            serial=x509.random_serial_number(),
            now=now,
            days=max(1, days // 2),
            path_length=0,
        )
        _write(self.directory / "intermediate.pem", inter.public_bytes(_PEM))
        return [root, inter]

    def _create_service_certificates(self, *, name: str, now: dt.datetime) -> None:
        """Delegated OCSP responder and TSA keys and certificates."""
        for role, profile, cn in (
            ("ocsp", Profile.OCSP, "OCSP Responder"),
            ("tsa", Profile.TSA, "Time-Stamping Authority"),
        ):
            signer = self.keystore.generate(self.label(role), self.algorithm)
            cert = self._issue_raw(
                profile=profile,
                subject=_ca_name(f"{name} - {cn}"),
                public_key=signer.public_key(),
                now=now,
                identity=None,
            )
            _write(self.directory / f"{role}.pem", cert.public_bytes(_PEM))

    def renew_service_certificates(self, now: dt.datetime) -> list[x509.Certificate]:
        """Issue fresh OCSP-responder and TSA certificates for their existing keys (run before
        ``lienthong ca list --expiring-within`` shows them expiring); a running service picks
        them up at its next request."""
        renewed = []
        for role, profile in (("ocsp", Profile.OCSP), ("tsa", Profile.TSA)):
            signer = self.keystore.signer(self.label(role))
            cert = self._issue_raw(
                profile=profile,
                subject=self._cert(role).subject,
                public_key=signer.public_key(),
                now=now,
                identity=None,
            )
            _write(self.directory / f"{role}.pem", cert.public_bytes(_PEM))
            renewed.append(cert)
        return renewed

    @classmethod
    def open(cls, directory: Path | str) -> CertificateAuthority:
        """Open an existing CA directory."""
        directory = Path(directory)
        try:
            settings = json.loads((directory / "ca.json").read_text())
        except (FileNotFoundError, NotADirectoryError):
            raise InputError(
                f"no CA in {directory} (no {directory / 'ca.json'}): give the directory made "
                "by lienthong ca init"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{directory / 'ca.json'} is unreadable: {exc.strerror}") from exc
        except ValueError as exc:
            raise ConfigError(f"{directory / 'ca.json'} is not valid JSON: {exc}") from exc
        if not isinstance(settings, dict) or settings.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(f"{directory / 'ca.json'}: unsupported schema version")
        return cls(directory, settings, open_keystore(settings["keystore"], base=directory))

    # -- certificates -----------------------------------------------------------------------
    def _cert(self, name: str) -> x509.Certificate:
        """A CA-side certificate, re-read when its file changes (e.g. after renewal)."""
        path = self.directory / f"{name}.pem"
        mtime = path.stat().st_mtime_ns
        cached = self._certs.get(name)
        if cached is None or cached[0] != mtime:
            self._certs[name] = (mtime, x509.load_pem_x509_certificate(path.read_bytes()))
        return self._certs[name][1]

    @property
    def algorithm(self) -> Algorithm:
        return Algorithm(self.settings["algorithm"])

    @property
    def root(self) -> x509.Certificate:
        return self._cert("root")

    @property
    def issuer(self) -> x509.Certificate:
        """The CA certificate that signs leaves (the intermediate when there is one)."""
        return self._cert("intermediate" if self.settings["intermediate"] else "root")

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return [self.issuer] if self.settings["intermediate"] else []

    @property
    def bundle_path(self) -> Path:
        return self.directory / "bundle.pem"

    @property
    def ocsp_certificate(self) -> x509.Certificate:
        return self._cert("ocsp")

    @property
    def tsa_certificate(self) -> x509.Certificate:
        return self._cert("tsa")

    def issuer_signer(self) -> Signer:
        return self.keystore.signer(
            self.label("intermediate" if self.settings["intermediate"] else "root")
        )

    def label(self, role: str) -> str:
        """The key-store label of one of the CA's keys (root, intermediate, ocsp, tsa)."""
        labels: dict[str, str] = self.settings.get("key_labels") or {}
        return labels.get(role, role)

    def _issue_raw(
        self,
        *,
        profile: Profile,
        subject: x509.Name,
        public_key: PublicKey,
        now: dt.datetime,
        identity: Identity | None,
        days: int | None = None,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
    ) -> x509.Certificate:
        cert = leaf_certificate(
            profile=profile,
            subject=subject,
            public_key=public_key,
            issuer=self.issuer,
            signer=self.issuer_signer(),
            serial=x509.random_serial_number(),
            now=now,
            days=days,
            identity_uri=identity_uri(identity) if identity else None,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )
        serial = f"{cert.serial_number:x}"
        rel = f"issued/{serial}.pem"
        _write(self.directory / rel, cert.public_bytes(_PEM))
        with revocation.locked_index(self.directory / "index.json") as index:
            index["certs"][serial] = {
                "subject": cert.subject.rfc4514_string(),
                "profile": profile.value,
                "identity": str(identity) if identity else None,
                "file": rel,
                "not_before": cert.not_valid_before_utc.isoformat(),
                "not_after": cert.not_valid_after_utc.isoformat(),
                "status": "good",
            }
        return cert

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        profile: Profile,
        now: dt.datetime,
        days: int | None = None,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
    ) -> x509.Certificate:
        """Issue a ``signing`` or ``tls`` certificate for the identity the CSR names.

        The CSR must be self-signed (checked by :func:`~lienthong.trust.x509.load_csr`) and
        carry a lienthong identity; TLS SANs come from the CSR plus ``dns_names``/``ip_addresses``.
        """
        if profile not in (Profile.SIGNING, Profile.TLS):
            raise InputError(f"profile {profile.value!r} is reserved for the CA's own services")
        request = read_csr(csr)
        tls = profile is Profile.TLS
        return self._issue_raw(
            profile=profile,
            subject=subject_for(request.identity, common_name=request.common_name),
            public_key=request.public_key,
            now=now,
            identity=request.identity,
            days=days,
            dns_names=sorted({*dns_names, *(request.dns_names if tls else ())}),
            ip_addresses=sorted({*ip_addresses, *(request.ip_addresses if tls else ())}),
        )

    def issued(self, serial: str | int) -> Issued:
        """The certificate with ``serial`` (hex string or int)."""
        key = revocation.serial_key(serial)
        record = revocation.read_index(self.directory / "index.json")["certs"].get(key)
        if record is None:
            raise NotFound(f"no certificate with serial {key} was issued by this CA")
        path = self.directory / record["file"]
        ident = record.get("identity")
        return Issued(
            x509.load_pem_x509_certificate(path.read_bytes()),
            path,
            parse_identity(ident) if ident else None,
        )

    # -- revocation -------------------------------------------------------------------------
    def revoke(self, serial: str | int, reason: str, now: dt.datetime) -> x509.Certificate:
        """Mark ``serial`` revoked (reason e.g. keyCompromise) and publish a fresh CRL."""
        flag = revocation.parse_reason(reason)
        issued = self.issued(serial)
        # Unlock the CRL signing key first: a missing passphrase must fail before the index
        # says "revoked" while the published CRL does not.
        signer = self.issuer_signer()
        with revocation.locked_index(self.directory / "index.json") as index:
            record = index["certs"][revocation.serial_key(serial)]
            if record["status"] == "revoked":
                raise InputError(f"certificate {revocation.serial_key(serial)} is already revoked")
            record.update(status="revoked", revoked_at=now.isoformat(), reason=flag.value)
        self.publish_crl(now, signer=signer)
        return issued.certificate

    def publish_crl(
        self, now: dt.datetime, *, signer: Signer | None = None
    ) -> x509.CertificateRevocationList:
        """Sign and write ``crl.pem`` listing every revoked serial (next update: crl_days)."""
        signer = signer or self.issuer_signer()
        with revocation.locked_index(self.directory / "index.json") as index:
            index["crl_number"] += 1
            number = index["crl_number"]
            records = dict(index["certs"])
        crl = revocation.build_crl(
            records,
            issuer=self.issuer,
            signer=signer,
            number=number,
            now=now,
            next_update=now + dt.timedelta(days=self.settings["crl_days"]),
        )
        _write(self.directory / "crl.pem", crl.public_bytes(_PEM))
        return crl

    def ocsp_response(self, request_der: bytes, now: dt.datetime) -> bytes:
        """A signed RFC 6960 answer to a DER OCSP request, from the current index."""
        records = self.status_records()
        return ocsp.build_response(
            request_der,
            issuer=self.issuer,
            responder=self.ocsp_certificate,
            signer=self.keystore.signer(self.label("ocsp")),
            now=now,
            lookup=lambda serial: records.get(f"{serial:x}"),
            validity=dt.timedelta(hours=self.settings["ocsp_hours"]),
        )

    def timestamp_authority(
        self, clock: Callable[[], dt.datetime] | None = None
    ) -> TimeStampAuthority:
        """The CA's RFC 3161 time-stamping authority."""
        signer = self.keystore.signer(self.label("tsa"))
        if clock is None:
            return TimeStampAuthority(signer, self.tsa_certificate)
        return TimeStampAuthority(signer, self.tsa_certificate, clock=clock)

    def status_records(self) -> dict[str, dict[str, Any]]:
        """Current index records keyed by lower-case hex serial."""
        certs: dict[str, dict[str, Any]] = revocation.read_index(self.directory / "index.json")[
            "certs"
        ]
        return certs
