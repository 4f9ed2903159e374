"""Small builders shared by trust tests."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from lienthong.identifiers import SubsystemId
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.enrol import make_csr
from lienthong.trust.keys import Algorithm, SoftwareSigner, generate_private_key
from lienthong.trust.profiles import Profile

IDENTITY = SubsystemId.parse("VN/GOV/G01.BCA/DANCU")


def issue(
    ca: CertificateAuthority,
    profile: Profile,
    now: dt.datetime,
    *,
    algorithm: Algorithm | None = None,
    days: int | None = None,
) -> tuple[x509.Certificate, SoftwareSigner]:
    signer = SoftwareSigner(generate_private_key(algorithm or ca.algorithm))
    tls = profile is Profile.TLS
    csr = make_csr(
        signer,
        IDENTITY,
        common_name="gw1" if tls else None,
        dns_names=["localhost"] if tls else (),
        ip_addresses=["127.0.0.1"] if tls else (),
    )
    return ca.issue(csr, profile=profile, now=now, days=days), signer
