"""Loading and verifying certificates: precise reasons for every rejection.

:func:`verify_chain` first walks the chain itself so that a failure names its cause (expired,
not yet valid, wrong issuer, bad signature, not a CA, wrong key usage, unsupported algorithm),
then runs ``cryptography``'s RFC 5280 path validator (``x509.verification``) over the same
chain as the authoritative check. Both ECDSA P-256 and ML-DSA-65 chains are validated by
``cryptography`` 50; only ECDSA chains can also be checked by ``openssl verify`` 3.0.
"""

from __future__ import annotations

import datetime as dt
import enum
import warnings
from collections.abc import Iterable, Sequence

from asn1crypto import parser
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from lienthong.errors import CertificateError, InputError
from lienthong.trust.keys import PublicKey, algorithm_of

ALLOWED_SIGNATURES = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ML_DSA_65: "ML-DSA-65",
}
_MAX_DEPTH = 4


class Usage(enum.StrEnum):
    """What a leaf certificate is being accepted for."""

    ANY = "any"
    SIGNING = "signing"  # official-use signatures on messages/documents
    TLS_SERVER = "tls-server"
    TLS_CLIENT = "tls-client"
    TIMESTAMPING = "timestamping"
    OCSP_SIGNING = "ocsp-signing"


def load_certificate(data: bytes, *, source: str = "input") -> x509.Certificate:
    """Parse one PEM or DER certificate; raise InputError with a precise reason."""
    certs = load_certificates(data, source=source)
    if len(certs) != 1:
        raise InputError(f"{source}: expected one certificate, found {len(certs)}")
    return certs[0]


# What cryptography raises on malformed input besides ValueError (lazy parsing, duplicates)
_PARSE_ERRORS = (
    ValueError,
    TypeError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    CryptographyDeprecationWarning,
)


def load_certificates(data: bytes, *, source: str = "input") -> list[x509.Certificate]:
    """Parse a PEM bundle (one or more certificates) or a single DER certificate; every field
    is parsed now, so a malformed certificate fails here with InputError."""
    try:
        with warnings.catch_warnings():
            # non-conformant encodings (e.g. a negative serial) are errors, not warnings
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            if b"-----BEGIN" in data:
                certs = x509.load_pem_x509_certificates(data)
            else:
                certs = [x509.load_der_x509_certificate(data)]
            for cert in certs:
                parse_fully(cert)
    except _PARSE_ERRORS as exc:
        raise InputError(f"{source}: not a valid X.509 certificate ({short_reason(exc)})") from exc
    except CertificateError as exc:
        raise InputError(f"{source}: {exc.message}") from exc
    return certs


def short_reason(exc: BaseException) -> str:
    """The first sentence of a parser's error, without links or debug reprs."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if text.startswith("Unable to load PEM file"):
        return "the PEM block does not hold what its header says, or is damaged"
    return text.split(". See https://", 1)[0].split(" See https://", 1)[0]


def parse_fully(cert: x509.Certificate) -> None:
    """Force ``cryptography``'s lazy parsing of every field we read, so that a malformed
    certificate fails here with CertificateError(reason="malformed"), not later elsewhere."""
    try:
        _ = (
            cert.version,
            cert.subject.rfc4514_string(),
            cert.issuer.rfc4514_string(),
            cert.serial_number,
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
            cert.signature_algorithm_oid,
            cert.tbs_certificate_bytes,
            cert.signature,
            list(cert.extensions),
        )
        unused_bits = signature_unused_bits(cert.public_bytes(serialization.Encoding.DER))
    except _PARSE_ERRORS as exc:
        raise CertificateError(
            f"malformed certificate ({exc})", code="cert_malformed", reason="malformed"
        ) from exc
    if unused_bits != 0:
        # outside the signed TBS: a non-zero count would give one certificate many encodings
        raise CertificateError(
            "malformed certificate (signature BIT STRING has unused bits)",
            code="cert_malformed",
            reason="malformed",
        )


def signature_unused_bits(der: bytes) -> int:
    """The unused-bits octet of the outer signature BIT STRING of a certificate or CSR (both
    are SEQUENCE { signed part, signatureAlgorithm, signature })."""
    body = parser.parse(der)[4]
    offset = 0
    for _ in range(2):  # skip tbsCertificate and signatureAlgorithm
        header, content = parser.parse(body[offset:], strict=False)[3:5]
        offset += len(header) + len(content)
    signature = parser.parse(body[offset:], strict=False)[4]
    if not signature:
        raise ValueError("empty signature")
    return int(signature[0])


def load_csr(data: bytes, *, source: str = "CSR") -> x509.CertificateSigningRequest:
    """Parse a PEM/DER CSR and check its self-signature (proof of possession)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            if b"-----BEGIN" in data:
                csr = x509.load_pem_x509_csr(data)
            else:
                csr = x509.load_der_x509_csr(data)
            # force the lazy parsing of everything the CA reads
            _ = (csr.subject.rfc4514_string(), list(csr.extensions), csr.public_key())
            valid = csr.is_signature_valid
            unused_bits = signature_unused_bits(csr.public_bytes(serialization.Encoding.DER))
    except (*_PARSE_ERRORS, UnsupportedAlgorithm) as exc:
        raise InputError(f"{source}: not a valid certificate signing request ({exc})") from exc
    if not valid:
        raise InputError(f"{source}: signature does not verify (tampered or wrong key)")
    if unused_bits != 0:
        raise InputError(f"{source}: malformed CSR (signature BIT STRING has unused bits)")
    return csr


def describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial {cert.serial_number:x}"


def _fail(reason: str, message: str, cert: x509.Certificate) -> CertificateError:
    return CertificateError(
        message,
        code=f"cert_{reason}",
        reason=reason,
        subject=describe(cert),
        serial=f"{cert.serial_number:x}",
    )


def public_key_of(cert: x509.Certificate) -> PublicKey:
    """The certificate's public key, if it is of an allowed type (P-256 or ML-DSA-65)."""
    try:
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey | mldsa.MLDSA65PublicKey):
            raise InputError(f"public key type {type(key).__name__} is not allowed")
        algorithm_of(key)  # rejects curves other than P-256
    except (InputError, UnsupportedAlgorithm, ValueError) as exc:
        raise _fail("unsupported_algorithm", f"{describe(cert)}: {exc}", cert) from exc
    return key


def check_algorithm(cert: x509.Certificate) -> None:
    """Only ecdsa-with-SHA256 and ML-DSA-65 signatures and P-256/ML-DSA-65 keys are allowed."""
    oid = cert.signature_algorithm_oid
    if oid not in ALLOWED_SIGNATURES:
        raise _fail(
            "unsupported_algorithm",
            f"{describe(cert)}: signature algorithm {oid._name} ({oid.dotted_string}) "
            f"is not allowed (use {', '.join(ALLOWED_SIGNATURES.values())})",
            cert,
        )
    public_key_of(cert)


def check_validity(cert: x509.Certificate, now: dt.datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise _fail(
            "not_yet_valid",
            f"{describe(cert)} is not valid before {cert.not_valid_before_utc.isoformat()}",
            cert,
        )
    if now > cert.not_valid_after_utc:
        raise _fail(
            "expired", f"{describe(cert)} expired at {cert.not_valid_after_utc.isoformat()}", cert
        )


def _ext(cert: x509.Certificate, cls: type) -> object | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _check_ca(cert: x509.Certificate) -> None:
    bc = _ext(cert, x509.BasicConstraints)
    ku = _ext(cert, x509.KeyUsage)
    if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
        raise _fail("not_a_ca", f"{describe(cert)} is not a CA certificate", cert)
    if not isinstance(ku, x509.KeyUsage) or not ku.key_cert_sign:
        raise _fail("wrong_key_usage", f"{describe(cert)} may not sign certificates", cert)


_EKU = {
    Usage.TLS_SERVER: ExtendedKeyUsageOID.SERVER_AUTH,
    Usage.TLS_CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH,
    Usage.TIMESTAMPING: ExtendedKeyUsageOID.TIME_STAMPING,
    Usage.OCSP_SIGNING: ExtendedKeyUsageOID.OCSP_SIGNING,
}


def check_usage(cert: x509.Certificate, usage: Usage) -> None:
    """Raise ``cert_wrong_key_usage`` unless the leaf's KU/EKU allow ``usage``."""
    if usage is Usage.ANY:
        return
    ku = _ext(cert, x509.KeyUsage)
    eku = _ext(cert, x509.ExtendedKeyUsage)
    ekus = list(eku) if isinstance(eku, x509.ExtendedKeyUsage) else []
    if not isinstance(ku, x509.KeyUsage) or not ku.digital_signature:
        raise _fail(
            "wrong_key_usage",
            f"{describe(cert)}: key usage lacks digitalSignature (needed for {usage.value})",
            cert,
        )
    if usage is Usage.SIGNING:
        if not ku.content_commitment or ekus:
            raise _fail(
                "wrong_key_usage",
                f"{describe(cert)} is not a signing certificate "
                "(needs nonRepudiation and no extended key usage)",
                cert,
            )
        return
    if _EKU[usage] not in ekus:
        raise _fail(
            "wrong_key_usage",
            f"{describe(cert)}: extended key usage lacks "
            f"{_EKU[usage]._name} (needed for {usage.value})",
            cert,
        )


def _issuer_of(cert: x509.Certificate, pool: Sequence[x509.Certificate]) -> x509.Certificate:
    candidates = [c for c in pool if c.subject == cert.issuer]
    if not candidates:
        raise _fail(
            "wrong_issuer",
            f"{describe(cert)}: issuer "
            f"{cert.issuer.rfc4514_string()} is not a trusted or supplied CA",
            cert,
        )
    for candidate in candidates:
        try:
            cert.verify_directly_issued_by(candidate)
            return candidate
        except InvalidSignature:
            continue
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise _fail(
                "bad_signature",
                f"{describe(cert)}: cannot check signature by {describe(candidate)} ({exc})",
                cert,
            ) from exc
    raise _fail(
        "bad_signature",
        f"{describe(cert)}: signature does not verify with the key "
        f"of {cert.issuer.rfc4514_string()} (tampered or signed by another key)",
        cert,
    )


def build_chain(
    leaf: x509.Certificate,
    *,
    intermediates: Iterable[x509.Certificate],
    roots: Iterable[x509.Certificate],
    now: dt.datetime,
) -> list[x509.Certificate]:
    """Walk from ``leaf`` to a root; return ``[leaf, ..., root]`` or raise CertificateError."""
    roots = list(roots)
    pool = list(intermediates) + roots
    for cert in (leaf, *pool):
        parse_fully(cert)
    chain = [leaf]
    current = leaf
    for _ in range(_MAX_DEPTH):
        check_algorithm(current)
        check_validity(current, now)
        if current in roots:
            return chain
        issuer = _issuer_of(current, pool)
        _check_ca(issuer)
        chain.append(issuer)
        if issuer == current:
            break
        current = issuer
    if chain[-1] in roots:
        check_algorithm(chain[-1])
        check_validity(chain[-1], now)
        return chain
    raise _fail("wrong_issuer", f"{describe(leaf)} does not chain to a trusted root", leaf)


def verify_chain(
    leaf: x509.Certificate,
    *,
    intermediates: Iterable[x509.Certificate] = (),
    roots: Iterable[x509.Certificate],
    now: dt.datetime,
    usage: Usage | str = Usage.ANY,
) -> None:
    """Raise :class:`CertificateError` unless ``leaf`` chains to one of ``roots`` at ``now``
    and may be used for ``usage``. ``err.details['reason']`` is one of: expired,
    not_yet_valid, wrong_issuer, bad_signature, not_a_ca, wrong_key_usage,
    unsupported_algorithm, malformed, path_validation."""
    usage = Usage(usage)
    intermediates, roots = list(intermediates), list(roots)
    if not roots:
        raise CertificateError(
            "no trusted root certificates given", code="cert_wrong_issuer", reason="wrong_issuer"
        )
    chain = build_chain(leaf, intermediates=intermediates, roots=roots, now=now)
    check_usage(leaf, usage)
    if leaf in roots:
        return
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(roots))
        .time(now)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, chain[1:-1])
    except verification.VerificationError as exc:
        raise _fail(
            "path_validation", f"{describe(leaf)}: path validation failed: {exc}", leaf
        ) from exc
