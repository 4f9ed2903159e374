"""Property: no single-bit change to a certificate is ever accepted, and every rejection is
one of our precise errors (never a stray exception from a parser)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lienthong.errors import CertificateError, InputError
from lienthong.trust.enrol import make_csr, read_csr
from lienthong.trust.keys import Algorithm, SoftwareSigner, generate_private_key
from lienthong.trust.profiles import Profile
from lienthong.trust.x509 import load_certificate, load_csr, verify_chain

from .conftest import NOW, make_ca
from .helpers import IDENTITY, issue


@pytest.fixture(scope="module", params=list(Algorithm), ids=["ecdsa", "mldsa"])
def chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    mp = pytest.MonkeyPatch()
    mp.setenv("LT_TEST_CA_PASSPHRASE", "correct horse battery staple")
    ca = make_ca(Path(tmp_path_factory.mktemp("tamper")) / "ca", request.param)
    cert, _ = issue(ca, Profile.TLS, NOW)
    mp.undo()
    return ca, cert.public_bytes(serialization.Encoding.DER)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_single_bit_flips_are_rejected_precisely(chain: tuple, data: st.DataObject) -> None:
    ca, der = chain
    position = data.draw(st.integers(min_value=0, max_value=len(der) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    mutated = bytearray(der)
    mutated[position] ^= 1 << bit
    try:
        cert = load_certificate(bytes(mutated), source="mutated")
    except InputError:
        return
    with pytest.raises(CertificateError):
        verify_chain(
            cert, intermediates=ca.intermediates, roots=[ca.root], now=NOW + dt.timedelta(minutes=1)
        )


@pytest.fixture(scope="module")
def csr_der() -> bytes:
    signer = SoftwareSigner(generate_private_key())
    csr = make_csr(signer, IDENTITY, common_name="gw1", dns_names=["localhost"])
    return csr.public_bytes(serialization.Encoding.DER)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_single_bit_flips_in_csrs_are_refused(csr_der: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(csr_der) - 1))
    mutated = bytearray(csr_der)
    mutated[position] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    with pytest.raises(InputError):
        read_csr(load_csr(bytes(mutated)))
