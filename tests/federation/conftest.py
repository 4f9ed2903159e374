"""A real PKI for the federation tests: CA with intermediate, operator keys and certificates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from lienthong.federation.enrolment import enrol
from lienthong.federation.loader import registry_from_dict
from lienthong.federation.sample import OPERATOR, sample_registry
from lienthong.identifiers import parse_member
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.keys import Algorithm
from lienthong.trust.keystore import FileKeyStore
from lienthong.trust.profiles import Profile

from .pkihelp import NOW, PASS_ENV, Pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    mp = pytest.MonkeyPatch()
    mp.setenv(PASS_ENV, "test passphrase, synthetic")
    base = tmp_path_factory.mktemp("pki")
    spec = {"type": "file", "dir": "keys", "passphrase": {"$env": PASS_ENV}}
    start = NOW - dt.timedelta(days=1)
    ca = CertificateAuthority.init(base / "ca", keystore_spec=spec, now=start, intermediate=True)
    other = CertificateAuthority.init(
        base / "other", keystore_spec=spec, now=start, name="Rogue Root CA"
    )
    ks = FileKeyStore(base / "node-keys", {"$env": PASS_ENV})
    op = parse_member(f"VN/{OPERATOR}")
    yield Pki(
        dir=base,
        ca=ca,
        keystore=ks,
        operator=enrol(ca, ks, "operator", op, profile=Profile.SIGNING, now=start),
        operator_pq=enrol(
            ca,
            ks,
            "operator-pq",
            op,
            profile=Profile.SIGNING,
            now=start,
            algorithm=Algorithm.ML_DSA_65,
        ),
        member=enrol(
            ca,
            ks,
            "member",
            parse_member("VN/GOV/000.00.00.G01"),
            profile=Profile.SIGNING,
            now=start,
        ),
        foreign=enrol(other, ks, "foreign", op, profile=Profile.SIGNING, now=start),
        registry=registry_from_dict(sample_registry()),
    )
    mp.undo()
