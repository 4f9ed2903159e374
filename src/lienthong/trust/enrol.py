"""Agency side of enrolment: generate keys where they live, write a CSR naming the identity."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

from lienthong.trust.identity import Identity, identity_uri, subject_for
from lienthong.trust.keys import Signer
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
