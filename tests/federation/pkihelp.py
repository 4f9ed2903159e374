"""PKI material shared by the federation tests (built by the ``pki`` fixture)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from lienthong.federation.model import Registry
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.keys import Signer
from lienthong.trust.keystore import FileKeyStore

PASS_ENV = "LIENTHONG_TEST_FED_PASS"
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


@dataclass
class Pki:
    dir: Path
    ca: CertificateAuthority
    keystore: FileKeyStore
    operator: tuple[Signer, x509.Certificate]
    operator_pq: tuple[Signer, x509.Certificate]
    member: tuple[Signer, x509.Certificate]  # a valid member, not the operator
    foreign: tuple[Signer, x509.Certificate]  # operator identity, other CA
    registry: Registry

    @property
    def roots(self) -> list[x509.Certificate]:
        return [self.ca.root]

    def chain(self, cert: x509.Certificate) -> list[x509.Certificate]:
        return [cert, *self.ca.intermediates]
