"""Enrolment glue for the federation: key in a key store → CSR → certificate from the CA.

Thin composition over :mod:`lienthong.trust` (identity naming, CSR signing, issuance) used by
the demo and onboarding tests; the operator-facing commands are ``lienthong ca …``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509

from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.identity import Identity, identity_uri, subject_for
from lienthong.trust.keys import Algorithm, Signer
from lienthong.trust.keystore import KeyStore
from lienthong.trust.profiles import Profile
from lienthong.trust.signing import sign_csr


def make_csr(
    signer: Signer,
    identity: Identity,
    *,
    common_name: str | None = None,
    dns_names: Sequence[str] = (),
) -> x509.CertificateSigningRequest:
    """A CSR naming ``identity`` (subject + ``urn:lienthong:`` SAN), signed by ``signer``."""
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity_uri(identity))]
    names += [x509.DNSName(d) for d in dns_names]
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject_for(identity, common_name=common_name))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
    )
    return sign_csr(builder, signer)


def enrol(
    ca: CertificateAuthority,
    keystore: KeyStore,
    label: str,
    identity: Identity,
    *,
    profile: Profile,
    now: dt.datetime,
    algorithm: Algorithm = Algorithm.ECDSA_P256,
    dns_names: Sequence[str] = (),
    common_name: str | None = None,
) -> tuple[Signer, x509.Certificate]:
    """Generate ``label`` in ``keystore`` (or reuse it), ask the CA for a certificate."""
    signer = (
        keystore.signer(label)
        if label in keystore.labels()
        else keystore.generate(label, algorithm)
    )
    csr = make_csr(signer, identity, common_name=common_name, dns_names=dns_names)
    cert = ca.issue(csr, profile=profile, now=now, dns_names=dns_names)
    return signer, cert
