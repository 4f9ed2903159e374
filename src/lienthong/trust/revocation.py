"""Revocation records and CRLs (RFC 5280).

The CA's ``index.json`` holds one record per issued serial (lower-case hex, no leading zeros);
writers take an exclusive ``flock`` and replace the file atomically so readers (the status
service) never see a partial index.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from cryptography.utils import CryptographyDeprecationWarning

from lienthong.errors import CertificateError, InputError, IntegrityError
from lienthong.trust.keys import Signer
from lienthong.trust.profiles import authority_key_id
from lienthong.trust.signing import sign_crl
from lienthong.trust.x509 import short_reason, signature_unused_bits

REASONS = {
    f.value.lower(): f
    for f in x509.ReasonFlags
    if f not in (x509.ReasonFlags.remove_from_crl, x509.ReasonFlags.aa_compromise)
}


def parse_reason(reason: str) -> x509.ReasonFlags:
    """``keyCompromise``, ``superseded``, ``cessationOfOperation``, ... (case-insensitive)."""
    flag = REASONS.get(reason.strip().lower())
    if flag is None:
        raise InputError(
            f"unknown revocation reason {reason!r}: use one of "
            f"{', '.join(sorted(f.value for f in REASONS.values()))}"
        )
    return flag


def serial_key(serial: str | int) -> str:
    """Normalise a serial (int, or hex with optional 0x/colons) to lower-case hex."""
    if isinstance(serial, int):
        value = serial
    else:
        text = serial.strip().lower().removeprefix("0x").replace(":", "")
        try:
            value = int(text, 16)
        except ValueError:
            raise InputError(f"serial {serial!r} is not a hexadecimal number") from None
    if value <= 0:
        raise InputError(f"serial {serial!r} must be positive")
    return f"{value:x}"


def read_index(path: Path) -> dict[str, Any]:
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"CA index {path} is unreadable: {exc}") from exc
    if not isinstance(index, dict) or not isinstance(index.get("certs"), dict):
        raise IntegrityError(f"CA index {path} is malformed")
    return index


@contextlib.contextmanager
def locked_index(path: Path) -> Iterator[dict[str, Any]]:
    """Read-modify-write ``index.json`` under an exclusive lock."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = read_index(path)
        yield index
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        os.replace(tmp, path)


def build_crl(
    records: dict[str, dict[str, Any]],
    *,
    issuer: x509.Certificate,
    signer: Signer,
    number: int,
    now: dt.datetime,
    next_update: dt.datetime,
) -> x509.CertificateRevocationList:
    """A CRL of every revoked record, signed by ``signer`` on behalf of ``issuer``."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(authority_key_id(issuer), critical=False)
    )
    for serial, record in sorted(records.items()):
        if record.get("status") != "revoked":
            continue
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(serial, 16))
            .revocation_date(dt.datetime.fromisoformat(record["revoked_at"]))
            .add_extension(x509.CRLReason(x509.ReasonFlags(record["reason"])), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(revoked)
    return sign_crl(builder, signer)


def load_crl(data: bytes, *, source: str = "CRL") -> x509.CertificateRevocationList:
    """Parse a PEM or DER CRL; raise InputError with the reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            if b"-----BEGIN" in data:
                crl = x509.load_pem_x509_crl(data)
            else:
                crl = x509.load_der_x509_crl(data)
            # force lazy parsing now, so that a malformed CRL fails here with one precise error
            _ = (
                crl.issuer.rfc4514_string(),
                crl.last_update_utc,
                crl.next_update_utc,
                list(crl.extensions),
                crl.tbs_certlist_bytes,
                crl.signature,
                crl.signature_algorithm_oid,
                [(r.serial_number, r.revocation_date_utc, list(r.extensions)) for r in crl],
            )
    except (
        ValueError,
        TypeError,
        x509.InvalidVersion,
        x509.DuplicateExtension,
        CryptographyDeprecationWarning,
    ) as exc:
        raise InputError(f"{source}: not a valid CRL ({short_reason(exc)})") from exc
    if signature_unused_bits(crl.public_bytes(serialization.Encoding.DER)) != 0:
        raise InputError(f"{source}: malformed CRL (signature BIT STRING has unused bits)")
    return crl


def verify_crl(
    crl: x509.CertificateRevocationList,
    *,
    issuer: x509.Certificate,
    now: dt.datetime,
    grace: dt.timedelta = dt.timedelta(0),
) -> None:
    """Raise CertificateError unless ``crl`` is signed by ``issuer`` and its ``next_update``
    (plus ``grace``) has not passed."""
    if crl.issuer != issuer.subject:
        raise CertificateError(
            f"CRL issued by {crl.issuer.rfc4514_string()}, expected "
            f"{issuer.subject.rfc4514_string()}",
            code="crl_wrong_issuer",
            reason="wrong_issuer",
        )
    key = issuer.public_key()
    if not isinstance(
        key, ec.EllipticCurvePublicKey | mldsa.MLDSA65PublicKey
    ) or not crl.is_signature_valid(key):
        raise CertificateError(
            "CRL signature does not verify", code="crl_bad_signature", reason="bad_signature"
        )
    if crl.next_update_utc is not None and now > crl.next_update_utc + grace:
        raise CertificateError(
            f"CRL expired at {crl.next_update_utc.isoformat()}",
            code="crl_expired",
            reason="expired",
        )


def check_not_revoked(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> None:
    """Raise CertificateError(reason="revoked") if ``cert`` is listed in a verified ``crl``."""
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is not None:
        raise CertificateError(
            f"certificate {cert.serial_number:x} was revoked at "
            f"{entry.revocation_date_utc.isoformat()}",
            code="cert_revoked",
            reason="revoked",
        )
