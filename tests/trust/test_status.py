"""Revocation, CRL, OCSP answers and the outage-tolerant status checker."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp as cx_ocsp

from lienthong.errors import BackendError, CertificateError, InputError
from lienthong.trust.ca import CertificateAuthority, LocalStatusSource
from lienthong.trust.ocsp import CertStatus, build_request, verify_response
from lienthong.trust.profiles import Profile
from lienthong.trust.revocation import check_not_revoked, load_crl, verify_crl
from lienthong.trust.status import Health, StatusChecker, verify_certificate

from .conftest import NOW, make_ca
from .helpers import issue

H = dt.timedelta(hours=1)


class FlakySource:
    """A status source we can cut, like a real outage (fault injection, no mocks of crypto)."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.ca = ca
        self.now = NOW
        self.down = False
        self.calls = 0

    def fetch(self, request_der: bytes) -> bytes:
        self.calls += 1
        if self.down:
            raise BackendError("status service unreachable: connection refused")
        return self.ca.ocsp_response(request_der, self.now)


def test_revoke_publishes_crl_and_ocsp_says_revoked(ca: CertificateAuthority) -> None:
    cert, _ = issue(ca, Profile.SIGNING, NOW)
    req = build_request(cert, ca.issuer)
    good = verify_response(ca.ocsp_response(req, NOW), cert=cert, issuer=ca.issuer, now=NOW)
    assert good.status is CertStatus.GOOD and good.next_update == NOW + 4 * H
    ca.revoke(f"{cert.serial_number:x}", "keyCompromise", NOW + H)
    answer = verify_response(
        ca.ocsp_response(req, NOW + H), cert=cert, issuer=ca.issuer, now=NOW + H
    )
    assert answer.status is CertStatus.REVOKED and answer.reason == "keyCompromise"
    crl = x509.load_pem_x509_crl((ca.directory / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert crl.is_signature_valid(ca.issuer.public_key())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="already revoked"):
        ca.revoke(cert.serial_number, "superseded", NOW + H)
    with pytest.raises(InputError, match="unknown revocation reason"):
        ca.revoke(cert.serial_number, "bored", NOW + H)


def test_openssl_parses_crl(ecdsa_ca: CertificateAuthority) -> None:
    cert, _ = issue(ecdsa_ca, Profile.TLS, NOW)
    ecdsa_ca.revoke(cert.serial_number, "cessationOfOperation", NOW)
    out = subprocess.run(
        [
            "openssl",
            "crl",
            "-in",
            str(ecdsa_ca.directory / "crl.pem"),
            "-noout",
            "-text",
            "-CAfile",
            str(ecdsa_ca.bundle_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"{cert.serial_number:X}"[-8:] in out.stdout.replace(":", "").upper()
    assert "verify OK" in out.stderr + out.stdout


def test_ocsp_unknown_unauthorized_malformed(
    ecdsa_ca: CertificateAuthority, tmp_path: Path
) -> None:
    other = make_ca(tmp_path / "other", ecdsa_ca.algorithm)
    foreign, _ = issue(other, Profile.SIGNING, NOW)
    resp = cx_ocsp.load_der_ocsp_response(
        ecdsa_ca.ocsp_response(build_request(foreign, other.issuer), NOW)
    )
    assert resp.response_status is cx_ocsp.OCSPResponseStatus.UNAUTHORIZED
    resp = cx_ocsp.load_der_ocsp_response(ecdsa_ca.ocsp_response(b"junk", NOW))
    assert resp.response_status is cx_ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    with pytest.raises(CertificateError, match="unauthorized"):
        verify_response(
            ecdsa_ca.ocsp_response(build_request(foreign, other.issuer), NOW),
            cert=foreign,
            issuer=other.issuer,
            now=NOW,
        )


def test_expired_responder_certificate_is_rejected(ecdsa_ca: CertificateAuthority) -> None:
    cert, _ = issue(ecdsa_ca, Profile.SIGNING, NOW)
    later = ecdsa_ca.ocsp_certificate.not_valid_after_utc + H
    der = ecdsa_ca.ocsp_response(build_request(cert, ecdsa_ca.issuer), later)
    with pytest.raises(CertificateError, match="expired at"):
        verify_response(der, cert=cert, issuer=ecdsa_ca.issuer, now=later)


def test_renewed_responder_answers_again(ecdsa_ca: CertificateAuthority) -> None:
    cert, _ = issue(ecdsa_ca, Profile.SIGNING, NOW)
    old = ecdsa_ca.ocsp_certificate
    later = old.not_valid_after_utc - H
    ecdsa_ca.renew_service_certificates(later)
    assert ecdsa_ca.ocsp_certificate != old
    after = old.not_valid_after_utc + H
    der = ecdsa_ca.ocsp_response(build_request(cert, ecdsa_ca.issuer), after)
    assert (
        verify_response(der, cert=cert, issuer=ecdsa_ca.issuer, now=after).status is CertStatus.GOOD
    )


def test_tampered_ocsp_answer_is_rejected(ecdsa_ca: CertificateAuthority) -> None:
    cert, _ = issue(ecdsa_ca, Profile.SIGNING, NOW)
    der = bytearray(ecdsa_ca.ocsp_response(build_request(cert, ecdsa_ca.issuer), NOW))
    serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 7) // 8, "big")
    der[der.find(serial) + 2] ^= 0xFF
    with pytest.raises(CertificateError, match=r"does not verify|another certificate"):
        verify_response(bytes(der), cert=cert, issuer=ecdsa_ca.issuer, now=NOW)


def test_checker_caches_survives_outage_then_fails_closed(ca: CertificateAuthority) -> None:
    cert, _ = issue(ca, Profile.SIGNING, NOW)
    source = FlakySource(ca)
    checker = StatusChecker(source, grace=6 * H, refresh_before=0.5 * H)
    assert checker.health(NOW).state is Health.OK
    checker.check(cert, ca.issuer, now=NOW)
    checker.check(cert, ca.issuer, now=NOW + H)
    assert source.calls == 1  # cached until next_update - refresh_before
    assert checker.health(NOW + H).state is Health.OK
    source.down = True
    # past next_update (NOW+4h) the answer is stale but the grace period (6 h) carries us
    checker.check(cert, ca.issuer, now=NOW + 5 * H)
    health = checker.health(NOW + 5 * H)
    assert health.state is Health.WARNING
    assert health.seconds_until_fail_closed == pytest.approx(5 * 3600)
    assert "connection refused" in health.detail
    checker.check(cert, ca.issuer, now=NOW + 9 * H)
    with pytest.raises(CertificateError, match="failing closed") as exc:
        checker.check(cert, ca.issuer, now=NOW + 10 * H + dt.timedelta(seconds=1))
    assert exc.value.details["reason"] == "status_unavailable"
    assert checker.health(NOW + 11 * H).state is Health.FAILING
    source.down, source.now = False, NOW + 11 * H
    checker.check(cert, ca.issuer, now=NOW + 11 * H)  # recovers as soon as the service is back
    assert checker.health(NOW + 11 * H).state is Health.OK


def test_checker_rejects_revoked_and_unknown(ecdsa_ca: CertificateAuthority) -> None:
    cert, _ = issue(ecdsa_ca, Profile.SIGNING, NOW)
    ecdsa_ca.revoke(cert.serial_number, "keyCompromise", NOW)
    checker = StatusChecker(LocalStatusSource(ecdsa_ca, lambda: NOW))
    with pytest.raises(CertificateError, match="revoked") as exc:
        checker.check(cert, ecdsa_ca.issuer, now=NOW)
    assert exc.value.details["reason"] == "revoked"
    # a certificate the CA never issued (same issuer name and key, unknown serial)
    (ecdsa_ca.directory / "index.json").write_text(
        '{"schema_version": 1, "crl_number": 9, "certs": {}}'
    )
    fresh = StatusChecker(LocalStatusSource(ecdsa_ca, lambda: NOW))
    with pytest.raises(CertificateError, match="unknown to its CA"):
        fresh.check(cert, ecdsa_ca.issuer, now=NOW)


def test_no_answer_ever_fails_closed_at_once(ecdsa_ca: CertificateAuthority) -> None:
    cert, _ = issue(ecdsa_ca, Profile.SIGNING, NOW)
    source = FlakySource(ecdsa_ca)
    source.down = True
    checker = StatusChecker(source)
    with pytest.raises(CertificateError, match=r"failing closed"):
        checker.check(cert, ecdsa_ca.issuer, now=NOW)
    assert checker.health(NOW).state is Health.FAILING


def test_verify_certificate_combines_chain_and_status(ecdsa_ca: CertificateAuthority) -> None:
    cert, _ = issue(ecdsa_ca, Profile.TLS, NOW)

    def check(checker: StatusChecker) -> None:
        verify_certificate(
            cert,
            intermediates=ecdsa_ca.intermediates,
            roots=[ecdsa_ca.root],
            now=NOW,
            usage="tls-client",
            checker=checker,
        )

    check(StatusChecker(LocalStatusSource(ecdsa_ca, lambda: NOW)))
    ecdsa_ca.revoke(cert.serial_number, "superseded", NOW)
    with pytest.raises(CertificateError, match="revoked"):
        check(StatusChecker(LocalStatusSource(ecdsa_ca, lambda: NOW)))


def test_crl_verification_for_relying_parties(ca: CertificateAuthority, tmp_path: Path) -> None:
    cert, _ = issue(ca, Profile.SIGNING, NOW)
    ca.revoke(cert.serial_number, "keyCompromise", NOW)
    crl = load_crl((ca.directory / "crl.pem").read_bytes())
    verify_crl(crl, issuer=ca.issuer, now=NOW)
    with pytest.raises(CertificateError, match="revoked"):
        check_not_revoked(crl, cert)
    other, _ = issue(ca, Profile.SIGNING, NOW)
    check_not_revoked(crl, other)
    with pytest.raises(CertificateError, match="CRL expired"):
        verify_crl(crl, issuer=ca.issuer, now=NOW + dt.timedelta(days=8))
    verify_crl(crl, issuer=ca.issuer, now=NOW + dt.timedelta(days=8), grace=dt.timedelta(days=2))
    with pytest.raises(CertificateError, match="CRL issued by"):
        verify_crl(crl, issuer=ca.root, now=NOW)
    stranger = make_ca(tmp_path / "stranger", ca.algorithm)
    stranger_crl = load_crl((stranger.directory / "crl.pem").read_bytes())
    with pytest.raises(CertificateError, match="does not verify"):
        verify_crl(stranger_crl, issuer=ca.issuer, now=NOW)
    with pytest.raises(InputError, match="not a valid CRL"):
        load_crl(b"junk")


def test_outage_costs_one_fetch_per_retry_interval(ecdsa_ca: CertificateAuthority) -> None:
    cert, _ = issue(ecdsa_ca, Profile.SIGNING, NOW)
    source = FlakySource(ecdsa_ca)
    checker = StatusChecker(source, grace=6 * H, retry_interval=dt.timedelta(seconds=30))
    checker.check(cert, ecdsa_ca.issuer, now=NOW)
    source.down = True
    stale = NOW + 5 * H
    for second in range(0, 25, 5):  # many messages within one retry interval
        checker.check(cert, ecdsa_ca.issuer, now=stale + dt.timedelta(seconds=second))
    assert source.calls == 2  # the first answer, then one failed attempt
    checker.check(cert, ecdsa_ca.issuer, now=stale + dt.timedelta(seconds=31))
    assert source.calls == 3
    source.down, source.now = False, stale + dt.timedelta(seconds=70)
    checker.check(cert, ecdsa_ca.issuer, now=stale + dt.timedelta(seconds=70))
    assert source.calls == 4 and checker.health(source.now).state is Health.OK
