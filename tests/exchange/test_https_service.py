"""A provider gateway calls its service endpoint over https (the gateway's own HTTP client):
the service's certificate is checked against the trust roots — here a private CA named by
``SSL_CERT_FILE`` in the gateways' environment — and against the endpoint's host name; a
name mismatch is ``LT.UNAVAILABLE`` and nothing reaches the service."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.exchange.craft import HEADERS, ServerThread

from lienthong.exchange.processes import Running
from lienthong.exchange.testbed import GIAMDINH, SVC_ECHO, SVC_SINK, build_testbed, demo_spec
from lienthong.ports import free_port

_PEM = serialization.Encoding.PEM


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
) -> x509.Certificate:
    """A certificate for ``key``: the CA's own (``ca`` None) or a server's for localhost."""
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca[0].subject if ca is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if ca is None:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        return builder.add_extension(usage, True).sign(key, hashes.SHA256())
    issuer_key = ca[1]
    return (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .sign(issuer_key, hashes.SHA256())
    )


def _service_tls(workdir: Path) -> tuple[Path, ssl.SSLContext]:
    """(the private CA's PEM file, the service's server context for ``localhost``)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("service test CA", ca_key, None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue("localhost", key, (ca, ca_key))
    ca_file = workdir / "service-ca.pem"
    ca_file.write_bytes(ca.public_bytes(_PEM))
    chain = workdir / "service.pem"
    chain.write_bytes(
        cert.public_bytes(_PEM)
        + key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(chain)
    return ca_file, ctx


class _TlsService(ServerThread):
    """A service on https in a thread of this process: answers with the body it received,
    remembers the request target and the calling subsystem."""

    def __init__(self, ctx: ssl.SSLContext, port: int) -> None:
        super().__init__()
        self.received: list[tuple[str, str | None]] = []
        self._ctx, self._port = ctx, port

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        body = await request.read()
        self.received.append((request.raw_path, request.headers.get("X-LT-Client")))
        return web.Response(body=body)

    async def start(self) -> None:
        self._runner = web.ServerRunner(web.Server(self._handle))
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._port, ssl_context=self._ctx).start()

    async def stop(self) -> None:
        await self._runner.cleanup()


@pytest.fixture(scope="module")
def https_federation(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, _TlsService]]:
    """(BHXH-GW's internal URL, the service): BCA-GW serves SVC_ECHO from
    ``https://localhost:PORT/echo`` and SVC_SINK from ``https://127.0.0.1:PORT/sink`` (a
    name the service's certificate does not carry)."""
    workdir = tmp_path_factory.mktemp("https-service")
    ca_file, server_ctx = _service_tls(workdir)
    port = free_port()
    urls = {SVC_ECHO: f"https://localhost:{port}/echo", SVC_SINK: f"https://127.0.0.1:{port}/sink"}
    spec = demo_spec()
    spec = dataclasses.replace(
        spec,
        services=[dataclasses.replace(s, url=urls.get(s.id)) for s in spec.services],
    )
    tb = build_testbed(workdir, spec)
    with (
        _TlsService(server_ctx, port) as service,
        pytest.MonkeyPatch.context() as env,
        Running(tb) as running,
    ):
        env.setenv("SSL_CERT_FILE", str(ca_file))  # the gateways' system roots: the private CA
        for node in spec.nodes:
            running.start_gateway(node.name)
        yield tb.internal_url("BHXH-GW"), service


def test_service_endpoint_over_https(https_federation: tuple[str, _TlsService]) -> None:
    url, service = https_federation
    body = "Hồ sơ qua https".encode() * 50
    resp = httpx.post(f"{url}/r1/{SVC_ECHO}/a?b=1", headers=HEADERS, content=body, timeout=20)
    assert resp.status_code == 200, resp.headers.get("X-LT-Error")
    assert resp.content == body
    assert service.received == [("/echo/a?b=1", GIAMDINH)]


def test_https_endpoint_whose_certificate_names_another_host(
    https_federation: tuple[str, _TlsService],
) -> None:
    url, service = https_federation
    before = len(service.received)
    resp = httpx.post(f"{url}/r1/{SVC_SINK}", headers=HEADERS, content=b"x", timeout=20)
    assert resp.status_code == 502 and resp.headers["X-LT-Error"] == "LT.UNAVAILABLE"
    assert len(service.received) == before
