"""RFC 3161 time-stamps: our verifier and openssl ts -verify accept them; tampering fails."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path

import pytest

from lienthong.errors import CertificateError, InputError, SignatureError
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.keys import Algorithm
from lienthong.trust.tsa import token_from_response, verify_timestamp

from .conftest import NOW, make_ca

DIGEST = hashlib.sha256(b"audit checkpoint 42").digest()


def test_token_verifies_and_openssl_accepts(ecdsa_ca: CertificateAuthority, tmp_path: Path) -> None:
    tsa = ecdsa_ca.timestamp_authority()
    token = tsa.timestamp(DIGEST)
    when = verify_timestamp(
        token, DIGEST, roots=[ecdsa_ca.root], intermediates=ecdsa_ca.intermediates
    )
    assert abs((when - dt.datetime.now(dt.UTC)).total_seconds()) < 60
    (tmp_path / "tok.der").write_bytes(token)
    (tmp_path / "data.bin").write_bytes(b"audit checkpoint 42")
    for data_args in (["-digest", DIGEST.hex()], ["-data", str(tmp_path / "data.bin")]):
        out = subprocess.run(
            [
                "openssl",
                "ts",
                "-verify",
                *data_args,
                "-token_in",
                "-in",
                str(tmp_path / "tok.der"),
                "-CAfile",
                str(ecdsa_ca.bundle_path),
                "-untrusted",
                str(ecdsa_ca.directory / "tsa.pem"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0 and "Verification: OK" in out.stdout, out.stderr


def test_openssl_request_response_roundtrip(ecdsa_ca: CertificateAuthority, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"payload")
    subprocess.run(
        [
            "openssl",
            "ts",
            "-query",
            "-data",
            str(data),
            "-sha256",
            "-cert",
            "-out",
            str(tmp_path / "q.tsq"),
        ],
        check=True,
        capture_output=True,
    )
    resp = ecdsa_ca.timestamp_authority().respond((tmp_path / "q.tsq").read_bytes())
    (tmp_path / "r.tsr").write_bytes(resp)
    out = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-queryfile",
            str(tmp_path / "q.tsq"),
            "-in",
            str(tmp_path / "r.tsr"),
            "-CAfile",
            str(ecdsa_ca.bundle_path),
            "-untrusted",
            str(ecdsa_ca.directory / "tsa.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    token_from_response(resp)


def test_post_quantum_time_stamps(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "pq", Algorithm.ML_DSA_65)
    assert ca.tsa_certificate.signature_algorithm_oid.dotted_string == "2.16.840.1.101.3.4.3.18"
    tsa = ca.timestamp_authority()
    assert tsa.signer.algorithm is Algorithm.ML_DSA_65
    token = tsa.token_at(DIGEST, now=NOW, serial=9)
    assert verify_timestamp(token, DIGEST, roots=[ca.root], intermediates=ca.intermediates) == NOW
    bad = bytearray(token)
    bad[bad.find(DIGEST) + 1] ^= 0x01
    with pytest.raises(SignatureError):
        verify_timestamp(bytes(bad), DIGEST, roots=[ca.root], intermediates=ca.intermediates)


def test_wrong_digest_tampered_and_untrusted(
    ecdsa_ca: CertificateAuthority, tmp_path: Path
) -> None:
    token = ecdsa_ca.timestamp_authority().token_at(DIGEST, now=NOW, serial=5)
    with pytest.raises(SignatureError, match="another digest"):
        verify_timestamp(token, hashlib.sha256(b"other").digest(), roots=[ecdsa_ca.root])
    bad = bytearray(token)
    bad[bad.find(DIGEST) + 3] ^= 0x01
    with pytest.raises(SignatureError):
        verify_timestamp(bytes(bad), DIGEST, roots=[ecdsa_ca.root])
    other = make_ca(tmp_path / "other", ecdsa_ca.algorithm)
    with pytest.raises(CertificateError):
        verify_timestamp(token, DIGEST, roots=[other.root])
    with pytest.raises(SignatureError, match="malformed"):
        verify_timestamp(b"\x30\x00", DIGEST, roots=[ecdsa_ca.root])
    with pytest.raises(InputError, match="32 bytes"):
        ecdsa_ca.timestamp_authority().timestamp(b"short")
    # a signing certificate is not a TSA certificate: wrong key usage
    from lienthong.trust.profiles import Profile
    from lienthong.trust.tsa import TimeStampAuthority

    from .helpers import issue

    cert, signer = issue(ecdsa_ca, Profile.SIGNING, NOW)
    rogue = TimeStampAuthority(signer, cert).token_at(DIGEST, now=NOW, serial=6)
    with pytest.raises(CertificateError, match="timeStamping"):
        verify_timestamp(rogue, DIGEST, roots=[ecdsa_ca.root], intermediates=ecdsa_ca.intermediates)
