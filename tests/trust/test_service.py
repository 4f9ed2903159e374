"""The trust HTTP service as a real process on 127.0.0.1, used through the client."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from lienthong.errors import BackendError, CertificateError
from lienthong.ports import free_port
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.client import TrustServiceClient
from lienthong.trust.ocsp import CertStatus, build_request, verify_response
from lienthong.trust.profiles import Profile
from lienthong.trust.status import Health, StatusChecker
from lienthong.trust.tsa import verify_timestamp

from .conftest import PASS_ENV
from .helpers import issue


@pytest.fixture
def served(
    ecdsa_ca: CertificateAuthority, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lienthong",
                "ca",
                "serve",
                "--dir",
                str(ecdsa_ca.directory),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            pytest.fail(f"service exited: {log.read_text()}")
    else:
        proc.kill()
        pytest.fail("service did not start within 20 s")
    yield url, proc
    proc.kill()
    proc.wait()


def test_remote_status_crl_tsa_then_outage(
    ecdsa_ca: CertificateAuthority, served: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, proc = served
    now = dt.datetime.now(dt.UTC)
    cert, _ = issue(ecdsa_ca, Profile.TLS, now)
    client = TrustServiceClient(url, timeout=2)
    checker = StatusChecker(client, grace=dt.timedelta(hours=2))
    assert checker.check(cert, ecdsa_ca.issuer, now=now).status.value == "good"
    der = build_request(cert, ecdsa_ca.issuer)
    via_get = httpx.get(f"{url}/ocsp/{quote(base64.b64encode(der).decode(), safe='')}")
    assert (
        verify_response(via_get.content, cert=cert, issuer=ecdsa_ca.issuer, now=now).status
        is CertStatus.GOOD
    )
    assert client.crl().is_signature_valid(ecdsa_ca.issuer.public_key())  # type: ignore[arg-type]
    assert b"BEGIN CERTIFICATE" in client.ca_bundle()
    digest = hashlib.sha256(b"log batch").digest()
    token = client.timestamp(digest)
    verify_timestamp(token, digest, roots=[ecdsa_ca.root], intermediates=ecdsa_ca.intermediates)

    cert_file = ecdsa_ca.directory / "peer.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issuer_file = ecdsa_ca.directory / "intermediate.pem"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lienthong",
            "ca",
            "status",
            "--url",
            url,
            "--issuer",
            str(issuer_file),
            "--cert",
            str(cert_file),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "good"

    revoked, _ = issue(ecdsa_ca, Profile.SIGNING, now)
    ecdsa_ca.revoke(revoked.serial_number, "keyCompromise", now)  # the server sees it at once
    with pytest.raises(CertificateError, match="revoked"):
        checker.check(revoked, ecdsa_ca.issuer, now=now)

    proc.kill()  # outage: cached answers keep working, health warns, then fail closed
    proc.wait()
    later = now + dt.timedelta(hours=5)
    with pytest.raises(BackendError):
        client.fetch(b"x")
    checker.check(cert, ecdsa_ca.issuer, now=later)
    health = checker.health(later)
    assert health.state is Health.WARNING and health.seconds_until_fail_closed
    with pytest.raises(CertificateError, match="failing closed"):
        checker.check(cert, ecdsa_ca.issuer, now=now + dt.timedelta(hours=7))
    client.close()


def test_bad_requests_get_precise_answers(served: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, _ = served
    resp = httpx.post(f"{url}/ocsp", content=b"junk")
    assert resp.status_code == 200  # OCSP says malformedRequest inside the body
    from cryptography.x509 import ocsp

    assert (
        ocsp.load_der_ocsp_response(resp.content).response_status
        is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    assert httpx.post(f"{url}/tsa", content=b"x" * 70_000).status_code == 413
    assert httpx.get(f"{url}/ocsp").status_code == 405
    bad = ocsp.load_der_ocsp_response(httpx.get(f"{url}/ocsp/%%%not-base64").content)
    assert bad.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_service_refuses_to_start_without_passphrase(
    ecdsa_ca: CertificateAuthority, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != PASS_ENV}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lienthong",
            "ca",
            "serve",
            "--dir",
            str(ecdsa_ca.directory),
            "--port",
            str(free_port()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert f"{PASS_ENV} is not set" in out.stderr
