"""Signed status answers: RFC 6960 OCSP responses, built and verified (pure core).

The CA's delegated responder (profile ``ocsp``: EKU OCSPSigning, id-pkix-ocsp-nocheck) signs
every answer; the responder certificate travels inside the response so a relying party only
needs the CA certificate. Answers carry ``this_update`` and ``next_update``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import parser
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import SignatureAlgorithmOID

from lienthong.errors import CertificateError, SignatureError
from lienthong.trust.keys import Algorithm, Signer, algorithm_of, verify_signature
from lienthong.trust.signing import sign_ocsp
from lienthong.trust.x509 import (
    Usage,
    check_usage,
    check_validity,
    parse_fully,
    public_key_of,
)

_DER = serialization.Encoding.DER
_CLOCK_SKEW = dt.timedelta(minutes=5)
_SIGNATURE_OIDS = {
    Algorithm.ECDSA_P256: SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    Algorithm.ML_DSA_65: SignatureAlgorithmOID.ML_DSA_65,
}
_MALFORMED = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
)


class CertStatus(enum.StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class StatusAnswer:
    """A verified status answer for one certificate."""

    serial: int
    status: CertStatus
    this_update: dt.datetime
    next_update: dt.datetime
    revoked_at: dt.datetime | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "serial": f"{self.serial:x}",
            "status": self.status.value,
            "this_update": self.this_update.isoformat(),
            "next_update": self.next_update.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "reason": self.reason,
        }


def build_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """DER OCSP request for ``cert`` (SHA-256 CertID)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256())
    return builder.build().public_bytes(_DER)


def _key_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    spki = cert.public_key().public_bytes(_DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    # SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }; parsed
    # generically because asn1crypto's PublicKeyInfo does not know ML-DSA.
    body = parser.parse(spki)[4]
    algorithm_tlv = parser.parse(body, strict=False)
    rest = body[len(algorithm_tlv[3]) + len(algorithm_tlv[4]) :]
    bits = parser.parse(rest)[4][1:]  # drop the unused-bits byte
    digest = hashes.Hash(algorithm)
    digest.update(bits)
    return digest.finalize()


def build_response(
    request_der: bytes,
    *,
    issuer: x509.Certificate,
    responder: x509.Certificate,
    signer: Signer,
    lookup: Callable[[int], dict[str, Any] | None],
    now: dt.datetime,
    validity: dt.timedelta,
) -> bytes:
    """Answer an OCSP request from index records (``lookup(serial) -> record | None``).

    Requests about another issuer get ``unauthorized``; malformed ones ``malformed_request``.
    """
    try:
        req = ocsp.load_der_ocsp_request(request_der)
        serial, name_hash, key_hash, algo = (
            req.serial_number,
            req.issuer_name_hash,
            req.issuer_key_hash,
            req.hash_algorithm,
        )
    except (ValueError, UnsupportedAlgorithm):
        failed = ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        )
        return failed.public_bytes(_DER)
    ours_name = hashes.Hash(algo)
    ours_name.update(issuer.subject.public_bytes())
    if name_hash != ours_name.finalize() or key_hash != _key_hash(issuer, algo):
        return ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.UNAUTHORIZED
        ).public_bytes(_DER)
    record = lookup(serial)
    status, revoked_at, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
    if record is not None and record.get("status") == "revoked":
        status = ocsp.OCSPCertStatus.REVOKED
        revoked_at = dt.datetime.fromisoformat(record["revoked_at"])
        reason = x509.ReasonFlags(record["reason"])
    elif record is not None:
        status = ocsp.OCSPCertStatus.GOOD
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            name_hash, key_hash, serial, algo, status, now, now + validity, revoked_at, reason
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
        .certificates([responder])
    )
    return sign_ocsp(builder, signer).public_bytes(_DER)


def _status_error(message: str, reason: str = "status") -> CertificateError:
    return CertificateError(message, code=f"cert_{reason}", reason=reason)


def verify_response(
    response_der: bytes,
    *,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    now: dt.datetime,
) -> StatusAnswer:
    """Verify an OCSP response about ``cert`` and return the answer (revoked is NOT raised).

    Checks: successful status, responder is ``issuer`` itself or a delegated responder issued by
    it with EKU OCSPSigning, signature, matching serial, ``this_update`` not in the future.
    Freshness (``next_update``) is the caller's policy (see :class:`StatusChecker`).
    """
    try:
        resp = ocsp.load_der_ocsp_response(response_der)
        if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise _status_error(f"status service refused: {resp.response_status.name.lower()}")
        # force lazy parsing now: a malformed answer must fail as one precise error
        _ = (
            resp.serial_number,
            resp.this_update_utc,
            resp.next_update_utc,
            resp.certificate_status,
            resp.revocation_time_utc,
            resp.revocation_reason,
            resp.tbs_response_bytes,
            resp.signature,
        )
        for embedded in resp.certificates:
            parse_fully(embedded)
            public_key_of(embedded)
        responder = _responder(resp, issuer, now)
        basic = asn1_ocsp.OCSPResponse.load(response_der)["response_bytes"]["response"].parsed
        unused_bits = basic["signature"].contents[0]
    except _MALFORMED as exc:
        raise _status_error(f"status answer is not a valid OCSP response ({exc})") from exc
    # the signature algorithm and the BIT STRING padding are outside the signed data: pin them
    expected = _SIGNATURE_OIDS[algorithm_of(public_key_of(responder))]
    if resp.signature_algorithm_oid != expected or unused_bits != 0:
        raise _status_error("status answer has a malformed signature field", "bad_signature")
    try:
        verify_signature(public_key_of(responder), resp.signature, resp.tbs_response_bytes)
    except (SignatureError, CertificateError) as exc:
        raise _status_error(
            "status answer signature does not verify (tampered?)", "bad_signature"
        ) from exc
    if resp.serial_number != cert.serial_number:
        raise _status_error("status answer is about another certificate")
    if resp.this_update_utc > now + _CLOCK_SKEW:
        raise _status_error("status answer is dated in the future")
    next_update = resp.next_update_utc or resp.this_update_utc
    return StatusAnswer(
        serial=resp.serial_number,
        status=CertStatus(resp.certificate_status.name.lower()),
        this_update=resp.this_update_utc,
        next_update=next_update,
        revoked_at=resp.revocation_time_utc,
        reason=resp.revocation_reason.value if resp.revocation_reason else None,
    )


def _responder(
    resp: ocsp.OCSPResponse, issuer: x509.Certificate, now: dt.datetime
) -> x509.Certificate:
    for candidate in [issuer, *resp.certificates]:
        if resp.responder_name is not None:
            match = candidate.subject == resp.responder_name
        else:
            match = resp.responder_key_hash == _key_hash(candidate, hashes.SHA1())
        if not match:
            continue
        if candidate == issuer:
            return candidate
        try:
            candidate.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise _status_error(
                "status responder certificate is not issued by the CA", "bad_signature"
            ) from exc
        check_usage(candidate, Usage.OCSP_SIGNING)
        check_validity(candidate, now)
        return candidate
    raise _status_error("status answer is signed by an unknown responder", "bad_signature")
