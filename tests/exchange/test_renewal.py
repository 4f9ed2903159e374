"""A gateway's own certificates renewed while it runs: the operator replaces the files, the
federation publishes the new certificate, and the gateway switches once both are true —
never before publication (peers would refuse it), never to material that does not load.
Real gateway processes on 127.0.0.1; the directory is re-read every 0.3 s."""

from __future__ import annotations

import base64
import datetime as dt
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

from lienthong.audit.entries import decode_entry, security_event_entry
from lienthong.audit.log import AuditLog
from lienthong.exchange.config import load_config
from lienthong.exchange.lifecycle import OwnCert, OwnCertificates
from lienthong.exchange.messagelog import AuditMessageLog
from lienthong.exchange.processes import Running
from lienthong.exchange.testbed import (
    GIAMDINH,
    SVC_PUBLIC,
    Testbed,
    build_testbed,
    demo_spec,
    issue_renewal,
)

# the view re-read every 0.3 s; a renewed certificate used as soon as it is published (the
# wait for peers to fetch the configuration is tested apart)
_LIMITS = {"reload_s": 0.3, "renewal_settle_s": 0}


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    tb = build_testbed(tmp_path_factory.mktemp("renewal"), demo_spec(direct=True), limits=_LIMITS)
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


# --- review: failures that must never stop the flush loop, material peers would refuse ---


def _configuration_age(tb: Testbed, node: str) -> float:
    """Seconds since ``node`` last re-read the federation view: stays below a second while
    its flush loop (which also re-reads the view and takes renewals) runs."""
    health = httpx.get(f"{tb.internal_url(node)}/health", timeout=5).json()
    return float(health["checks"]["configuration"]["age_s"])


def test_a_missing_certificate_file_or_a_directory_in_its_place_is_reported(
    bed: Testbed,
) -> None:
    """The certificate file removed, then a directory where it was: each an error naming
    the file, the old certificate kept, the flush loop still running; put back: cleared."""
    cfg = load_config(bed.configs["BHXH-GW"])
    aside = Path(cfg.tls.cert + ".aside")
    os.replace(cfg.tls.cert, aside)
    try:
        errors = _until(lambda: _own(bed, "BHXH-GW")["renewals"])
        assert errors[0]["state"] == "error", errors
        assert f"cannot read certificate file {cfg.tls.cert}" in errors[0]["reason"]
        os.mkdir(cfg.tls.cert)
        _until(lambda: "directory" in str(_own(bed, "BHXH-GW")["renewals"]))
        time.sleep(1.0)
        assert _configuration_age(bed, "BHXH-GW") < 1.0  # the flush loop goes on
        assert _call(bed).status_code == 200
        body = httpx.get(f"{bed.internal_url('BHXH-GW')}/health", timeout=5).text
        assert os.environ[bed.passphrase_env] not in body  # no secret in the report
    finally:
        if os.path.isdir(cfg.tls.cert):
            os.rmdir(cfg.tls.cert)
        os.replace(aside, cfg.tls.cert)
    own = _until(lambda: (o := _own(bed, "BHXH-GW"))["renewals"] == [] and o)
    assert own["state"] == "ok"


def test_a_certificate_in_the_directory_that_does_not_parse_keeps_the_view(
    bed: Testbed,
) -> None:
    """A directory publishing a TLS certificate that is not PEM: the previous view is kept
    and the gateways go on re-reading it; once corrected, it is taken again."""
    saved = bed.directory_path.read_text()
    directory = json.loads(saved)
    entry = next(n for n in directory["nodes"] if n["name"] == "BCA-GW")
    entry["tls_certs"] = [
        *entry.get("tls_certs", []),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ]
    _write_directory(bed, directory)
    time.sleep(1.5)
    assert _call(bed).status_code == 200  # the previous view still serves
    _write_directory(bed, json.loads(saved))
    for node in ("BCA-GW", "BHXH-GW"):  # re-read again: the loop survived the bad file
        _until(lambda node=node: _configuration_age(bed, node) < 1.0, timeout=5)


# In-process: one node's TLS slot in a private directory, its own contexts, a view that
# publishes what a test says.


def _tls_slot(
    bed: Testbed, tmp_path: Path, published: list[tuple[str, str]]
) -> tuple[Any, OwnCertificates, Any, tuple[ssl.SSLContext, ssl.SSLContext]]:
    import types

    import msgspec

    from lienthong.exchange.certs import CertificateStore
    from lienthong.exchange.node import tls_contexts

    cfg = load_config(bed.configs["BCA-GW"])
    shutil.copyfile(cfg.tls.cert, tmp_path / "tls.pem")
    shutil.copyfile(cfg.tls.key, tmp_path / "tls.key.pem")
    tls = msgspec.structs.replace(
        cfg.tls, cert=str(tmp_path / "tls.pem"), key=str(tmp_path / "tls.key.pem")
    )
    cfg = msgspec.structs.replace(cfg, tls=tls, subsystems=[], state_dir=str(tmp_path))
    contexts = tls_contexts(cfg, os.environ[bed.passphrase_env].encode())
    own = OwnCertificates.of(cfg, contexts)
    bundle = Path(cfg.tls.roots).read_text()
    store = CertificateStore([], published, bundle, clock=time.time)
    node = types.SimpleNamespace(name="BCA-GW", certs=store, receipt_signer=None, local={})
    return cfg, own, node, contexts


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[str, str]:
    """A TLS handshake in memory between the two contexts: (fingerprint the server side
    presents, fingerprint the client side presents)."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out)
    done = {"server": False, "client": False}
    for _ in range(10):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        c_in.write(s_out.read())
        s_in.write(c_out.read())
        if all(done.values()):
            break
    server_der, client_der = client.getpeercert(True), server.getpeercert(True)
    assert server_der is not None and client_der is not None
    return hashlib.sha256(server_der).hexdigest(), hashlib.sha256(client_der).hexdigest()


def test_the_tls_contexts_take_the_material_checked_not_the_files_again(
    bed: Testbed, tmp_path: Path
) -> None:
    """The key file rewritten in place between the check and the switch (same size, time
    put back: unseen by the stamps): both contexts still get the checked pair, as does the
    receipt signer — never a certificate without its key (no handshake at all)."""
    cert, key, pem = issue_renewal(bed, "BCA-GW", "tls")
    for _ in range(5):  # another key of the same size (encrypted P-256 keys all are)
        other = issue_renewal(bed, "BCA-GW", "tls")[1].read_bytes()
        if len(other) == key.stat().st_size:
            break
    cfg, own, node, (server_ctx, client_ctx) = _tls_slot(bed, tmp_path, [(pem, "BCA-GW")])
    _install(cert, key, cfg.tls.cert, cfg.tls.key)
    assert own.prepare(node, time.time())
    st = os.stat(cfg.tls.key)
    assert len(other) == st.st_size
    with open(cfg.tls.key, "r+b") as f:  # in place: same inode
        f.write(other)
    os.utime(cfg.tls.key, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert own.apply(node)
    new = _fingerprint(pem)
    assert _handshake(server_ctx, client_ctx) == (new, new)
    assert node.receipt_signer.kid == new
    assert own.in_use[("tls", "BCA-GW")].fingerprint == new
    report = own.report(time.time())
    assert report["renewed"] == 1 and report["renewals"] == []
    # the message log signs with the key it was opened with until the next start rolls it over
    assert "a new log starts, signed with the new key" in report["before_restart"]


def _custom_tls(
    bed: Testbed, out: Path, *, eku: list[Any], curve: Any = None
) -> tuple[Path, Path, str]:
    """A node TLS certificate from the testbed's CA with the given extended key usages (and
    curve), and its encrypted key: (certificate file, key file, PEM)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from lienthong.trust.profiles import authority_key_id
    from lienthong.trust.signing import sign_certificate

    key = ec.generate_private_key(curve or ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer = bed.ca.issuer
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bca-gw")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(authority_key_id(issuer), critical=False)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    )
    pem = sign_certificate(builder, bed.ca.issuer_signer()).public_bytes(serialization.Encoding.PEM)
    enc = serialization.BestAvailableEncryption(os.environ[bed.passphrase_env].encode())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    (out / "custom.pem").write_bytes(pem)
    (out / "custom.key.pem").write_bytes(key_pem)
    return out / "custom.pem", out / "custom.key.pem", pem.decode()


def test_a_tls_certificate_peers_would_refuse_as_a_server_is_not_switched_to(
    bed: Testbed, tmp_path: Path
) -> None:
    """Published, chained, in force, but without serverAuth: peers calling this node verify
    it as a TLS server and would refuse every handshake — so it is an error, not a switch."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    made = tmp_path / "made"
    made.mkdir()
    cert, key, pem = _custom_tls(bed, made, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    cfg, own, node, (server_ctx, client_ctx) = _tls_slot(bed, tmp_path, [(pem, "BCA-GW")])
    old = own.in_use[("tls", "BCA-GW")].fingerprint
    _install(cert, key, cfg.tls.cert, cfg.tls.key)
    own.prepare(node, time.time())
    own.apply(node)
    renewal = own.report(time.time())["renewals"]
    assert [r["state"] for r in renewal] == ["error"], renewal
    assert "serverAuth" in renewal[0]["reason"]
    assert own.in_use[("tls", "BCA-GW")].fingerprint == old
    assert _handshake(server_ctx, client_ctx) == (old, old)


def test_a_tls_key_on_a_curve_peers_refuse_is_an_error_not_a_pending_renewal(
    bed: Testbed, tmp_path: Path
) -> None:
    """A P-384 pair: no federation configuration can publish it (only P-256 is allowed), so
    "not yet published" would send the operator waiting for ever; the reason is said."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    made = tmp_path / "made"
    made.mkdir()
    eku = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert, key, _pem = _custom_tls(bed, made, eku=eku, curve=ec.SECP384R1())
    cfg, own, node, _contexts = _tls_slot(bed, tmp_path, [])
    _install(cert, key, cfg.tls.cert, cfg.tls.key)
    assert not own.prepare(node, time.time())
    renewal = own.report(time.time())["renewals"]
    assert [r["state"] for r in renewal] == ["error"], renewal
    assert "P-256" in renewal[0]["reason"]


def test_a_tls_certificate_published_for_another_node_is_not_switched_to(
    bed: Testbed, tmp_path: Path
) -> None:
    cert, key, pem = issue_renewal(bed, "BCA-GW", "tls")
    cfg, own, node, _contexts = _tls_slot(bed, tmp_path, [(pem, "BHXH-GW")])
    _install(cert, key, cfg.tls.cert, cfg.tls.key)
    assert not own.prepare(node, time.time())
    renewal = own.report(time.time())["renewals"]
    assert [r["state"] for r in renewal] == ["error"], renewal
    assert "published for BHXH-GW, not BCA-GW" in renewal[0]["reason"]


def test_a_renewal_started_then_reverted_leaves_no_trace(bed: Testbed, tmp_path: Path) -> None:
    """New files installed (pending: not published), then the old ones put back: the
    renewal is cleared, nothing counted as renewed, the old pair still presented."""
    cert, key, _pem = issue_renewal(bed, "BCA-GW", "tls")
    cfg, own, node, (server_ctx, client_ctx) = _tls_slot(bed, tmp_path, [])
    old = own.in_use[("tls", "BCA-GW")].fingerprint
    saved = Path(cfg.tls.cert).read_bytes(), Path(cfg.tls.key).read_bytes()
    _install(cert, key, cfg.tls.cert, cfg.tls.key)
    assert not own.prepare(node, time.time())
    report = own.report(time.time())
    assert report["state"] == "warning" and report["renewals"][0]["state"] == "pending"
    (tmp_path / "old.key.pem").write_bytes(saved[1])
    (tmp_path / "old.pem").write_bytes(saved[0])
    _install(tmp_path / "old.pem", tmp_path / "old.key.pem", cfg.tls.cert, cfg.tls.key)
    assert own.prepare(node, time.time())  # the same certificate: ready at once
    assert own.apply(node) == []  # but not a renewal
    report = own.report(time.time())
    assert report["state"] == "ok" and report["renewals"] == [] and report["renewed"] == 0
    assert report["before_restart"] is None
    assert _handshake(server_ctx, client_ctx) == (old, old)


def test_after_a_tls_renewal_the_next_start_rolls_the_message_log_over(
    tmp_path: Path,
) -> None:
    """The message log's checkpoints are signed with the TLS key the gateway started with:
    after a renewal the next start refused the log ("signed with another key"). Now the old
    log is kept whole beside the new one — still verifiable with its own key, evidence
    included — and the new log, under its own origin, starts by naming it."""
    import subprocess
    import sys

    tb = build_testbed(tmp_path / "tb", demo_spec(direct=True), limits=_LIMITS)
    cfg = load_config(tb.configs["BCA-GW"])
    state = Path(cfg.state_dir)
    with Running(tb) as running:
        running.start_service()
        running.start_gateway("BCA-GW")
        running.start_gateway("BHXH-GW")
        assert _call(tb).status_code == 200
        cert, key, pem = issue_renewal(tb, "BCA-GW", "tls")
        _publish_tls(tb, "BCA-GW", pem)
        _install(cert, key, cfg.tls.cert, cfg.tls.key)
        _until(lambda: _own(tb, "BCA-GW")["renewed"])
        assert _call(tb).status_code == 200
        running.stop("BCA-GW")
        running.start_gateway("BCA-GW")  # refused before: "signed with another key"
        assert _call(tb).status_code == 200
        assert httpx.get(f"{tb.internal_url('BCA-GW')}/health", timeout=5).json()["ok"]
    kept = sorted(state.glob("message-log.until-*.auditlog"))
    assert len(kept) == 1
    base = kept[0].name.removesuffix(".auditlog")
    assert (state / f"{base}.evidence.sqlite").exists() and (state / f"{base}.pub.pem").exists()

    def lt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lienthong", *args], capture_output=True, text=True
        )

    for log in (kept[0], state / "message-log.auditlog"):  # each with its own key
        pub = log.with_name(log.name.removesuffix(".auditlog") + ".pub.pem")
        out = lt("audit", "verify", "--log", str(log), "--pubkey", str(pub))
        assert out.returncode == 0, out.stderr
        out = lt("gateway", "evidence", "--log", str(log))
        assert out.returncode == 0, out.stderr
    with AuditLog.open(state / "message-log.auditlog", create=False, readonly=True) as new:
        first = decode_entry(new.entry(0))
        assert new.origin.startswith("lienthong/exchange/BCA-GW/key-")
    with AuditLog.open(kept[0], create=False, readonly=True) as old:
        assert old.origin == "lienthong/exchange/BCA-GW"
        latest = old.latest_checkpoint()
        assert latest is not None
    assert first["event"] == "message_log.key_changed"
    assert first["detail"]["previous_log"] == kept[0].name
    assert first["detail"]["previous_origin"] == "lienthong/exchange/BCA-GW"
    assert first["detail"]["previous_checkpoint_root"] == latest[0].root.hex()


def test_a_published_renewal_waits_until_every_peer_can_hold_the_configuration(
    bed: Testbed, tmp_path: Path
) -> None:
    """Peers fetch the configuration on their own schedule: switching as soon as this node's
    view publishes the certificate had peers still on the previous one refuse every call. The
    switch waits limits.renewal_settle_s from when this node first saw it published."""
    import msgspec

    cert, key, pem = issue_renewal(bed, "BCA-GW", "tls")
    cfg, own, node, (server_ctx, client_ctx) = _tls_slot(bed, tmp_path, [(pem, "BCA-GW")])
    limits = msgspec.structs.replace(cfg.limits, renewal_settle_s=600.0)
    own.cfg = msgspec.structs.replace(cfg, limits=limits)
    _install(cert, key, cfg.tls.cert, cfg.tls.key)
    t0 = time.time()
    assert not own.prepare(node, t0)
    (waiting,) = own.report(t0)["renewals"]
    assert waiting["state"] == "pending" and "published since" in waiting["reason"]
    assert not own.prepare(node, t0 + 599)  # still inside the period
    assert own.prepare(node, t0 + 601)
    assert own.apply(node)
    new = _fingerprint(pem)
    assert _handshake(server_ctx, client_ctx) == (new, new)


@pytest.mark.parametrize("stopped", ["after-the-first-move", "before-the-first-entry"])
def test_a_start_stopped_half_way_through_a_rollover_finishes_it(
    tmp_path: Path, stopped: str
) -> None:
    """The rollover moves several files and then writes the new log's first entry: a start
    stopped in between (power cut, kill -9) must neither open the new log beside the old
    one's write-ahead log, nor start it under the old origin, nor lose the entry that names
    the old log. The intent file recorded first lets the next start finish the job."""
    import msgspec
    from cryptography.hazmat.primitives.asymmetric import ec
    from tests.exchange.configs import MINIMAL

    from lienthong.exchange import rollover
    from lienthong.exchange.node import _message_log
    from lienthong.trust.keys import SoftwareSigner

    path = tmp_path / "gw.json"
    path.write_text(json.dumps(MINIMAL))
    state = tmp_path / "state"
    state.mkdir()
    cfg = msgspec.structs.replace(load_config(path), state_dir=str(state))
    first = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    second = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    old = _message_log(cfg, state, first)
    assert isinstance(old, AuditMessageLog)
    old.log.append_one(security_event_entry(
        at=dt.datetime.now(dt.UTC), event="test.event", severity=1, source="A"
    ))  # fmt: skip
    old.close()  # its final checkpoint, signed with the first key
    log = state / "message-log.auditlog"
    intent = {
        "log": "message-log.until-20261207T000000Z.auditlog",
        "origin": "lienthong/exchange/A",
    }
    intent |= {"entries": 1, "checkpoint_size": 1, "checkpoint_root": "ab" * 32}
    rollover._write_synced(state / rollover.INTENT, json.dumps(intent))
    moves = rollover._moves(log, intent)
    for src, dst in moves[:1] if stopped == "after-the-first-move" else moves:
        if src.exists():
            os.replace(src, dst)
    new = _message_log(cfg, state, second)
    assert isinstance(new, AuditMessageLog)
    assert not (state / rollover.INTENT).exists()
    kept_as = "message-log.until-20261207T000000Z"
    for suffix in (".auditlog", ".evidence.sqlite", ".pub.pem"):  # all moved, none left behind
        assert (state / f"{kept_as}{suffix}").exists(), suffix
    pub = (state / f"{kept_as}.pub.pem").read_bytes()
    assert pub != (state / "message-log.pub.pem").read_bytes()  # each log its own key
    assert new.log.origin.startswith("lienthong/exchange/A/key-")
    entry = decode_entry(new.log.entry(0))
    assert entry["event"] == "message_log.key_changed"
    assert entry["detail"]["previous_log"] == intent["log"]
    new.close()
    kept = state / intent["log"]
    with AuditLog.open(kept, create=False, readonly=True) as before:
        assert before.size() == 1 and before.origin == "lienthong/exchange/A"
