"""Chain validation: every rejection has a precise reason; ECDSA chains pass openssl verify."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from lienthong.errors import CertificateError, InputError
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.enrol import make_csr
from lienthong.trust.identity import identity_of, subject_for
from lienthong.trust.keys import Algorithm, SoftwareSigner, generate_private_key
from lienthong.trust.profiles import Profile, leaf_certificate
from lienthong.trust.x509 import Usage, load_certificate, load_csr, public_key_of, verify_chain

from .conftest import NOW, make_ca
from .helpers import IDENTITY, issue

PEM = serialization.Encoding.PEM


def _verify(
    ca: CertificateAuthority,
    cert: x509.Certificate,
    *,
    now: dt.datetime = NOW,
    usage: Usage = Usage.ANY,
) -> None:
    verify_chain(cert, intermediates=ca.intermediates, roots=[ca.root], now=now, usage=usage)


def _reason(excinfo: pytest.ExceptionInfo[CertificateError]) -> str:
    return str(excinfo.value.details["reason"])


@pytest.mark.parametrize(
    "profile,usage",
    [
        (Profile.SIGNING, Usage.SIGNING),
        (Profile.TLS, Usage.TLS_SERVER),
        (Profile.TLS, Usage.TLS_CLIENT),
    ],
)
def test_issued_certificates_validate(
    ca: CertificateAuthority, profile: Profile, usage: Usage
) -> None:
    cert, _ = issue(ca, profile, NOW)
    _verify(ca, cert, usage=usage)
    assert identity_of(cert) == IDENTITY
    attrs = {a.oid._name: a.value for a in cert.subject}
    assert attrs["countryName"] == "VN" and attrs["organizationName"] == "G01.BCA"
    assert attrs["organizationalUnitName"] == "GOV"


def test_ca_service_certificates_validate(ca: CertificateAuthority) -> None:
    _verify(ca, ca.ocsp_certificate, usage=Usage.OCSP_SIGNING)
    _verify(ca, ca.tsa_certificate, usage=Usage.TIMESTAMPING)
    with pytest.raises(CertificateError, match="OCSPSigning"):
        _verify(ca, ca.tsa_certificate, usage=Usage.OCSP_SIGNING)


def test_ecdsa_chains_pass_openssl_verify(ecdsa_ca: CertificateAuthority, tmp_path: Path) -> None:
    paths = []
    for profile in (Profile.SIGNING, Profile.TLS):
        cert, _ = issue(ecdsa_ca, profile, dt.datetime.now(dt.UTC))
        path = tmp_path / f"{profile.value}.pem"
        path.write_bytes(cert.public_bytes(PEM))
        paths.append(str(path))
    for extra in ("ocsp.pem", "tsa.pem"):
        paths.append(str(ecdsa_ca.directory / extra))
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ecdsa_ca.bundle_path), *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    tls = subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            str(ecdsa_ca.bundle_path),
            paths[1],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert tls.returncode == 0, tls.stdout + tls.stderr


def test_expired_and_not_yet_valid(ca: CertificateAuthority) -> None:
    cert, _ = issue(ca, Profile.SIGNING, NOW, days=10)
    with pytest.raises(CertificateError, match="expired at") as exc:
        _verify(ca, cert, now=NOW + dt.timedelta(days=11))
    assert _reason(exc) == "expired"
    with pytest.raises(CertificateError, match="not valid before") as exc:
        _verify(ca, cert, now=NOW - dt.timedelta(days=1))
    assert _reason(exc) == "not_yet_valid"


def test_wrong_issuer(ca: CertificateAuthority, tmp_path: Path) -> None:
    other = make_ca(tmp_path / "other", ca.algorithm)
    cert, _ = issue(other, Profile.SIGNING, NOW)
    with pytest.raises(CertificateError) as exc:
        _verify(ca, cert)
    assert _reason(exc) in ("wrong_issuer", "bad_signature")


def test_same_name_other_key_is_bad_signature(tmp_path: Path) -> None:
    # two CAs with identical names: the name matches, the key does not
    a = make_ca(tmp_path / "a", Algorithm.ECDSA_P256, intermediate=False)
    b = make_ca(tmp_path / "b", Algorithm.ECDSA_P256, intermediate=False)
    cert, _ = issue(b, Profile.SIGNING, NOW)
    with pytest.raises(CertificateError, match="does not verify") as exc:
        verify_chain(cert, roots=[a.root], now=NOW)
    assert _reason(exc) == "bad_signature"


def test_wrong_key_usage(ca: CertificateAuthority) -> None:
    tls, _ = issue(ca, Profile.TLS, NOW)
    signing, _ = issue(ca, Profile.SIGNING, NOW)
    with pytest.raises(CertificateError, match="not a signing certificate") as exc:
        _verify(ca, tls, usage=Usage.SIGNING)
    assert _reason(exc) == "wrong_key_usage"
    with pytest.raises(CertificateError, match="serverAuth") as exc:
        _verify(ca, signing, usage=Usage.TLS_SERVER)
    assert _reason(exc) == "wrong_key_usage"
    with pytest.raises(CertificateError, match="timeStamping"):
        _verify(ca, tls, usage=Usage.TIMESTAMPING)


def test_leaf_cannot_act_as_ca(ca: CertificateAuthority) -> None:
    leaf, leaf_signer = issue(ca, Profile.SIGNING, NOW)
    child, _ = issue(ca, Profile.SIGNING, NOW)
    forged = leaf_certificate(
        profile=Profile.SIGNING,
        subject=child.subject,
        public_key=public_key_of(child),
        issuer=leaf,
        signer=leaf_signer,
        serial=7,
        now=NOW,
    )
    with pytest.raises(CertificateError, match="not a CA") as exc:
        verify_chain(forged, intermediates=[leaf, *ca.intermediates], roots=[ca.root], now=NOW)
    assert _reason(exc) == "not_a_ca"


def test_tampered_certificate(ca: CertificateAuthority) -> None:
    cert, _ = issue(ca, Profile.SIGNING, NOW)
    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    # flip one byte inside the subject's CN (the TBS), keeping the DER well-formed
    pos = der.find(b"DANCU")
    der[pos] ^= 0x01
    tampered = x509.load_der_x509_certificate(bytes(der))
    with pytest.raises(CertificateError, match="does not verify") as exc:
        _verify(ca, tampered)
    assert _reason(exc) == "bad_signature"


def _self_signed(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "rogue")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA384()
    return builder.sign(key, algo)


@pytest.mark.parametrize(
    "key",
    [ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP384R1())],
    ids=["ed25519", "p384-sha384"],
)
def test_wrong_algorithm(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
    cert = _self_signed(key)
    with pytest.raises(CertificateError, match="not allowed") as exc:
        verify_chain(cert, roots=[cert], now=NOW)
    assert _reason(exc) == "unsupported_algorithm"


def test_csr_with_wrong_algorithm_is_refused(ecdsa_ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject_for(IDENTITY))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(InputError, match="P-256"):
        ecdsa_ca.issue(csr, profile=Profile.SIGNING, now=NOW)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        b"\x30\x03\x02\x01\x01",
    ],
)
def test_malformed_certificates(data: bytes) -> None:
    with pytest.raises(InputError, match=r"not a valid X\.509 certificate"):
        load_certificate(data, source="cert.pem")


def test_malformed_and_tampered_csr(ecdsa_ca: CertificateAuthority) -> None:
    with pytest.raises(InputError, match="not a valid certificate signing request"):
        load_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
    csr = make_csr(SoftwareSigner(generate_private_key()), IDENTITY)
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[der.find(b"DANCU")] ^= 0x01
    with pytest.raises(InputError, match="signature does not verify"):
        load_csr(bytes(der))
    # the CA checks proof of possession itself, whoever parsed the CSR
    with pytest.raises(InputError, match="no proof of possession"):
        ecdsa_ca.issue(x509.load_der_x509_csr(bytes(der)), profile=Profile.SIGNING, now=NOW)


def test_csr_without_identity_is_refused(ecdsa_ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "nobody")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    with pytest.raises(InputError, match="no lienthong identity"):
        ecdsa_ca.issue(csr, profile=Profile.SIGNING, now=NOW)
