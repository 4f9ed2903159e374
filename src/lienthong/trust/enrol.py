"""Enrolment: the agency writes a CSR naming its identity (:func:`make_csr`); the CA reads and
checks it (:func:`read_csr`: proof of possession, identity, key algorithm, SANs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from cryptography.x509.oid import NameOID

from lienthong.errors import CertificateError, InputError
from lienthong.trust.identity import Identity, identity_of, identity_uri, subject_for
from lienthong.trust.keys import PublicKey, Signer, algorithm_of
from lienthong.trust.profiles import parse_ip, validate_dns
from lienthong.trust.signing import sign_csr


def make_csr(
    signer: Signer,
    identity: Identity,
    *,
    common_name: str | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
) -> x509.CertificateSigningRequest:
    """A CSR for ``identity`` signed by ``signer`` (works with HSM-held keys too).

    For a gateway TLS certificate pass the gateway name as ``common_name`` and its DNS names
    and IP addresses; they are carried as subjectAltName along with the identity URI.
    """
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity_uri(identity))]
    names += [x509.DNSName(validate_dns(d)) for d in dns_names]
    names += [x509.IPAddress(parse_ip(ip)) for ip in ip_addresses]
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject_for(identity, common_name=common_name))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
    )
    return sign_csr(builder, signer)


@dataclass(frozen=True)
class CsrRequest:
    """What a checked CSR asks for."""

    identity: Identity
    public_key: PublicKey
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]


def read_csr(csr: x509.CertificateSigningRequest) -> CsrRequest:
    """Check a CSR as the CA must (raise InputError with the reason) and return its request."""
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"CSR: cannot check its signature ({exc})") from exc
    if not valid:
        raise InputError("CSR: signature does not verify (no proof of possession of the key)")
    try:
        identity = identity_of(csr)
    except CertificateError as exc:
        raise InputError(str(exc)) from exc
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | mldsa.MLDSA65PublicKey):
        raise InputError(
            f"CSR: key type {type(key).__name__} is not allowed (use ECDSA P-256 or ML-DSA-65)"
        )
    try:
        algorithm_of(key)
    except InputError as exc:
        raise InputError(f"CSR: {exc}") from exc
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    return CsrRequest(identity, key, str(cns[0].value) if cns else None, dns, ips)
