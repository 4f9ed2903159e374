"""Property: no single-bit change to a certificate, CSR, OCSP answer, CRL or time-stamp token is
ever accepted, and every rejection is one of our precise errors (never a stray exception from a
parser). Exhaustive scans of every bit found the lax spots these tests now pin (lazy parsing,
unsigned algorithm fields, BIT STRING padding, CMS versions)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lienthong.errors import CertificateError, InputError, LienthongError
from lienthong.trust.enrol import make_csr, read_csr
from lienthong.trust.keys import Algorithm, SoftwareSigner, generate_private_key
from lienthong.trust.ocsp import build_request, verify_response
from lienthong.trust.profiles import Profile
from lienthong.trust.revocation import load_crl, verify_crl
from lienthong.trust.tsa import verify_timestamp
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


@pytest.fixture(scope="module", params=list(Algorithm), ids=["ecdsa", "mldsa"])
def artefacts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A revoked certificate's OCSP answer, the CRL and a time-stamp token, as DER, with the
    check a relying party runs on each."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LT_TEST_CA_PASSPHRASE", "correct horse battery staple")
    ca = make_ca(Path(tmp_path_factory.mktemp("artefacts")) / "ca", request.param)
    cert, _ = issue(ca, Profile.TLS, NOW)
    ca.revoke(cert.serial_number, "keyCompromise", NOW)
    digest = hashlib.sha256(b"checkpoint").digest()
    crl = load_crl((ca.directory / "crl.pem").read_bytes())
    answer = ca.ocsp_response(build_request(cert, ca.issuer), NOW)
    token = ca.timestamp_authority().token_at(digest, now=NOW, serial=7)
    mp.undo()

    def check_crl(der: bytes) -> None:
        verify_crl(load_crl(der), issuer=ca.issuer, now=NOW)

    return {
        "ocsp": (
            answer,
            lambda der: verify_response(der, cert=cert, issuer=ca.issuer, now=NOW),
        ),
        "crl": (crl.public_bytes(serialization.Encoding.DER), check_crl),
        "tsa": (
            token,
            lambda der: verify_timestamp(
                der, digest, roots=[ca.root], intermediates=ca.intermediates
            ),
        ),
    }


@pytest.mark.parametrize("kind", ["ocsp", "crl", "tsa"])
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_single_bit_flips_in_signed_artefacts(
    artefacts: dict, kind: str, data: st.DataObject
) -> None:
    der, check = artefacts[kind]
    check(der)  # the genuine artefact passes
    position = data.draw(st.integers(min_value=0, max_value=len(der) - 1))
    mutated = bytearray(der)
    mutated[position] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    with pytest.raises(LienthongError):
        check(bytes(mutated))
