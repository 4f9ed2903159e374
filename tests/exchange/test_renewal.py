"""A gateway's own certificates renewed while it runs: the operator replaces the files, the
federation publishes the new certificate, and the gateway switches once both are true —
never before publication (peers would refuse it), never to material that does not load.
Real gateway processes on 127.0.0.1; the directory is re-read every 0.3 s."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.exchange.craft import HEADERS

from lienthong.exchange.config import load_config
from lienthong.exchange.lifecycle import OwnCert, OwnCertificates
from lienthong.exchange.processes import Running
from lienthong.exchange.testbed import (
    GIAMDINH,
    SVC_PUBLIC,
    Testbed,
    build_testbed,
    demo_spec,
    issue_renewal,
)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    tb = build_testbed(
        tmp_path_factory.mktemp("renewal"), demo_spec(direct=True), limits={"reload_s": 0.3}
    )
    with Running(tb) as running:
        running.start_service()
        running.start_gateway("BCA-GW")
        running.start_gateway("BHXH-GW")
        yield tb


def _call(tb: Testbed) -> httpx.Response:
    url = f"{tb.internal_url('BHXH-GW')}/r1/{SVC_PUBLIC}"
    return httpx.get(url, headers=HEADERS, timeout=20)


def _own(tb: Testbed, node: str) -> dict[str, Any]:
    health = httpx.get(f"{tb.internal_url(node)}/health", timeout=5).json()
    own: dict[str, Any] = health["checks"]["certificates"]["own"]
    return own


def _in_use(own: dict[str, Any], role: str, owner: str) -> str:
    return next(
        str(c["fingerprint"])
        for c in own["certificates"]
        if c["role"] == role and c["owner"] == owner
    )


def _until(what: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {what}")
        time.sleep(0.1)


def _peer_fingerprint(tb: Testbed, node: str) -> str:
    """SHA-256 of the certificate a new TLS connection to ``node``'s peer port is shown."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", tb.peer_ports[node]), timeout=5) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def _fingerprint(pem: str) -> str:
    der = ssl.PEM_cert_to_DER_cert(pem)
    return hashlib.sha256(der).hexdigest()


def _publish_tls(tb: Testbed, node: str, pem: str) -> None:
    directory = json.loads(tb.directory_path.read_text())
    entry = next(n for n in directory["nodes"] if n["name"] == node)
    entry["tls_certs"] = [*entry.get("tls_certs", []), pem]  # beside the old one
    _write_directory(tb, directory)


def _publish_signing(tb: Testbed, subsystem: str, pem: str) -> None:
    directory = json.loads(tb.directory_path.read_text())
    next(s for s in directory["subsystems"] if s["id"] == subsystem)["certs"].append(pem)
    _write_directory(tb, directory)


def _write_directory(tb: Testbed, directory: dict[str, Any]) -> None:
    tmp = tb.directory_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(directory))
    os.replace(tmp, tb.directory_path)  # the gateways never read half a file


def _install(cert: Path, key: Path, cert_to: str, key_to: str) -> None:
    """Replace the configured files, the key first (as an operator would)."""
    os.replace(key, key_to)
    os.replace(cert, cert_to)


def test_a_renewed_tls_certificate_is_used_once_the_federation_publishes_it(
    bed: Testbed,
) -> None:
    cfg = load_config(bed.configs["BCA-GW"])
    old = _peer_fingerprint(bed, "BCA-GW")
    assert _in_use(_own(bed, "BCA-GW"), "tls", "BCA-GW") == old
    cert, key, pem = issue_renewal(bed, "BCA-GW", "tls")
    new = _fingerprint(pem)
    _install(cert, key, cfg.tls.cert, cfg.tls.key)

    # not published yet: peers would refuse it, so the old one stays in use
    pending = _until(lambda: _own(bed, "BCA-GW")["renewals"])
    assert [r["state"] for r in pending] == ["pending"]
    assert "not (yet) published for BCA-GW" in pending[0]["reason"]
    assert _own(bed, "BCA-GW")["state"] == "warning"
    assert _peer_fingerprint(bed, "BCA-GW") == old
    assert _call(bed).status_code == 200

    _publish_tls(bed, "BCA-GW", pem)
    own = _until(lambda: (o := _own(bed, "BCA-GW"))["renewed"] and o)
    assert _in_use(own, "tls", "BCA-GW") == new
    assert own["renewals"] == [] and own["state"] == "ok"
    assert _peer_fingerprint(bed, "BCA-GW") == new  # new handshakes present it
    assert _call(bed).status_code == 200  # and the peer accepts it
    metrics = httpx.get(f"{bed.internal_url('BCA-GW')}/metrics", timeout=5).text
    expiry = [
        line
        for line in metrics.splitlines()
        if line.startswith("lienthong_own_certificate_not_after_seconds{") and 'role="tls"' in line
    ]
    assert len(expiry) == 1 and f'fingerprint="{new[:16]}"' in expiry[0], expiry


def test_a_renewed_signing_certificate_signs_the_next_calls(bed: Testbed) -> None:
    cfg = load_config(bed.configs["BHXH-GW"])
    sub = next(s for s in cfg.subsystems if s.id == GIAMDINH)
    old = _in_use(_own(bed, "BHXH-GW"), "sign", GIAMDINH)
    cert, key, pem = issue_renewal(bed, GIAMDINH, "sign")
    new = _fingerprint(pem)
    _publish_signing(bed, GIAMDINH, pem)  # published first: switched as soon as installed
    time.sleep(0.5)  # both gateways hold the new directory
    _install(cert, key, sub.sign_cert, sub.sign_key)
    own = _until(lambda: (o := _own(bed, "BHXH-GW"))["renewed"] and o)
    assert _in_use(own, "sign", GIAMDINH) == new
    assert _call(bed).status_code == 200  # the provider verifies the new kid
    time.sleep(0.1)  # the message log commits within its flush interval
    kids = _kids_of_last_exchange(bed, "BHXH-GW")
    assert new in kids and old not in kids


def _kids_of_last_exchange(tb: Testbed, node: str) -> set[str]:
    """The kids of the tokens of the last exchange in ``node``'s evidence store (request
    and answer)."""
    path = tb.workdir / "state" / node / "message-log.evidence.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT token FROM tokens WHERE message_id = "
            "(SELECT message_id FROM tokens ORDER BY rowid DESC LIMIT 1)"
        ).fetchall()
    kids = set()
    for (token,) in rows:
        head = token.split(".", 1)[0]
        kids.add(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"])
    return kids


def test_material_that_does_not_load_keeps_the_old_certificate(bed: Testbed) -> None:
    """A certificate installed without its key: reported, the old pair stays in use; putting
    the old certificate back clears it."""
    cfg = load_config(bed.configs["BHXH-GW"])
    saved = Path(cfg.tls.cert).read_bytes()
    before = _own(bed, "BHXH-GW")
    cert, _key, _pem = issue_renewal(bed, "BHXH-GW", "tls")
    shutil.copyfile(cert, cfg.tls.cert)
    errors = _until(lambda: _own(bed, "BHXH-GW")["renewals"])
    assert errors[0]["state"] == "error"
    assert "does not match certificate" in errors[0]["reason"]
    assert _call(bed).status_code == 200  # still presenting the old certificate
    assert _in_use(_own(bed, "BHXH-GW"), "tls", "BHXH-GW") == _in_use(before, "tls", "BHXH-GW")

    Path(cfg.tls.cert).write_bytes(saved)
    own = _until(lambda: (o := _own(bed, "BHXH-GW"))["renewals"] == [] and o)
    assert own["state"] == "ok"
    assert _call(bed).status_code == 200


def test_a_renewed_certificate_not_in_force_is_refused(bed: Testbed) -> None:
    import datetime as dt

    cfg = load_config(bed.configs["BHXH-GW"])
    saved = Path(cfg.tls.cert).read_bytes(), Path(cfg.tls.key).read_bytes()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    cert, key, pem = issue_renewal(bed, "BHXH-GW", "tls", now=past, days=2)
    _publish_tls(bed, "BHXH-GW", pem)
    _install(cert, key, cfg.tls.cert, cfg.tls.key)
    errors = _until(lambda: _own(bed, "BHXH-GW")["renewals"])
    assert errors[0]["state"] == "error" and "not in force" in errors[0]["reason"]
    assert _call(bed).status_code == 200
    Path(cfg.tls.key).write_bytes(saved[1])
    Path(cfg.tls.cert).write_bytes(saved[0])
    _until(lambda: _own(bed, "BHXH-GW")["renewals"] == [])


def test_a_published_but_revoked_certificate_is_refused(bed: Testbed) -> None:
    """Published by the federation, then revoked by the CA (a compromised key): never used."""
    import datetime as dt

    from cryptography import x509

    cfg = load_config(bed.configs["BHXH-GW"])
    saved = Path(cfg.tls.cert).read_bytes(), Path(cfg.tls.key).read_bytes()
    cert, key, pem = issue_renewal(bed, "BHXH-GW", "tls")
    serial = x509.load_pem_x509_certificate(pem.encode()).serial_number
    bed.ca.revoke(serial, "keyCompromise", dt.datetime.now(dt.UTC))
    _publish_tls(bed, "BHXH-GW", pem)
    _install(cert, key, cfg.tls.cert, cfg.tls.key)
    errors = _until(lambda: _own(bed, "BHXH-GW")["renewals"])
    assert errors[0]["state"] == "error" and "revoked" in errors[0]["reason"]
    assert _call(bed).status_code == 200
    assert _peer_fingerprint(bed, "BHXH-GW") != _fingerprint(pem)
    Path(cfg.tls.key).write_bytes(saved[1])
    Path(cfg.tls.cert).write_bytes(saved[0])
    _until(lambda: _own(bed, "BHXH-GW")["renewals"] == [])


def _cert(not_before: float, not_after: float) -> OwnCert:
    return OwnCert("tls", "BCA-GW", "tls.pem", "tls.key.pem", "ab" * 32, not_before, not_after)


def test_expiry_is_a_warning_within_the_notice_and_a_failure_once_past() -> None:
    now, day = 1_800_000_000.0, 86400.0
    warn = 30 * day
    assert _cert(now - day, now + 31 * day).report(now, warn)["state"] == "ok"
    near = _cert(now - day, now + 10 * day).report(now, warn)
    assert near["state"] == "warning" and near["days_left"] == 10.0
    assert _cert(now - 40 * day, now - 1).report(now, warn)["state"] == "failing"
    assert _cert(now + day, now + 40 * day).report(now, warn)["state"] == "failing"


def test_the_worst_certificate_sets_the_state(bed: Testbed) -> None:
    own = OwnCertificates.of(load_config(bed.configs["BCA-GW"]))
    now = time.time()
    assert own.report(now)["state"] == "ok"
    first = next(iter(own.in_use))
    own.in_use[first] = _cert(now - 86400, now + 5 * 86400)
    assert own.report(now)["state"] == "warning"
    own.in_use[first] = _cert(now - 86400 * 3, now - 60)
    assert own.report(now)["state"] == "failing"
