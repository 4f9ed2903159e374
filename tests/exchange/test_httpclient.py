"""The gateway's HTTP/1.1 client against real servers on 127.0.0.1: an aiohttp server for the
well-behaved cases, raw sockets for the misbehaving ones."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from tests.exchange.conftest import Federation

from lienthong.exchange.config import load_config
from lienthong.exchange.httpclient import (
    BadResponse,
    Client,
    ClientTimeout,
    ConnectFailed,
    Disconnected,
    host_header,
)
from lienthong.exchange.node import tls_contexts
from lienthong.exchange.protocol import ErrorCode, Refused
from lienthong.exchange.transport import Endpoint, endpoint_of
from lienthong.trust.secrets import resolve_secret

Test = Callable[[Client, int], Awaitable[None]]


async def _echo(request: web.BaseRequest) -> web.StreamResponse:
    """Answers with what it saw: method, target, headers; the body back, streamed."""
    if request.path == "/big":
        out = web.StreamResponse(headers={"X-Seen": "big"})
        await out.prepare(request)
        for _ in range(64):
            await out.write(b"x" * 65536)
        await out.write_eof()
        return out
    body = await request.read()
    seen = {
        "X-Method": request.method,
        "X-Target": request.raw_path,
        "X-Chunked": str("chunked" in request.headers.get("Transfer-Encoding", "")),
        "X-Length": request.headers.get("Content-Length", "-"),
        "X-Host": request.headers.get("Host", "-"),
        "X-Peer-Port": str(request.transport.get_extra_info("peername")[1])
        if request.transport is not None
        else "-",
    }
    return web.Response(body=body, headers=seen)


def _with_aiohttp(test: Test, host: str = "127.0.0.1") -> None:
    async def main() -> None:
        runner = web.ServerRunner(web.Server(_echo))
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = runner.addresses[0][1]
        client = Client(None, connect_timeout=2, read_timeout=2)
        try:
            await test(client, port)
        finally:
            await client.close()
            await runner.cleanup()

    asyncio.run(main())


def _with_raw(answer: bytes | None, test: Test) -> None:
    """A server that reads one request head and writes ``answer`` (None: never answers)."""

    async def main() -> None:
        writers: list[asyncio.StreamWriter] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            await reader.readuntil(b"\r\n\r\n")
            if answer is not None:
                writer.write(answer)
                await writer.drain()
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = Client(None, connect_timeout=2, read_timeout=0.3)
        try:
            await test(client, port)
        finally:
            await client.close()
            server.close()
            for writer in writers:
                writer.close()
            await server.wait_closed()

    asyncio.run(main())


def test_bytes_body_answer_read_and_connection_kept() -> None:
    async def test(client: Client, port: int) -> None:
        ports = []
        for i in range(3):
            resp = await client.request(
                "POST", "http", "127.0.0.1", port, "/a%3bb?q=1", {"X-A": "1"}, b"hello %d" % i
            )
            assert resp.status == 200
            assert await resp.read() == b"hello %d" % i
            assert resp.headers["x-target"] == "/a%3bb?q=1"  # exactly as given, not normalised
            assert resp.headers.get("X-LENGTH") == "7"
            assert resp.headers["X-Host"] == f"127.0.0.1:{port}"
            ports.append(resp.headers["X-Peer-Port"])
            resp.release()
        assert len(set(ports)) == 1  # one keep-alive connection

    _with_aiohttp(test)


def test_host_header_names_the_port_and_brackets_ipv6() -> None:
    assert host_header("http", "::1", 8080) == "[::1]:8080"
    assert host_header("https", "2001:db8::7", 443) == "[2001:db8::7]"
    assert host_header("http", "127.0.0.1", 80) == "127.0.0.1"
    assert host_header("https", "gw.example", 8443) == "gw.example:8443"


def test_get_without_body_sends_no_length() -> None:
    async def test(client: Client, port: int) -> None:
        resp = await client.request("GET", "http", "127.0.0.1", port, "/", {}, b"")
        assert resp.headers["X-Length"] == "-"
        assert resp.headers["X-Method"] == "GET"
        resp.release()

    _with_aiohttp(test)


def test_streamed_request_and_response_bodies() -> None:
    async def body() -> AsyncIterator[bytes]:
        for i in range(20):
            yield bytes([65 + i]) * 40_000

    async def test(client: Client, port: int) -> None:
        resp = await client.request("PUT", "http", "127.0.0.1", port, "/up", {}, body())
        assert resp.headers["X-Chunked"] == "True"
        received = b"".join([chunk async for chunk in resp.chunks()])
        assert received == b"".join(bytes([65 + i]) * 40_000 for i in range(20))
        resp.release()
        big = await client.request("GET", "http", "127.0.0.1", port, "/big", {}, b"")
        assert big.content_length is None
        sizes = [len(chunk) async for chunk in big.chunks()]
        assert sum(sizes) == 64 * 65536
        big.release()

    _with_aiohttp(test)


def test_a_refusal_raised_by_the_body_comes_back_as_itself() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"first"
        raise Refused(ErrorCode.TOO_LARGE, "body larger than the limit")

    async def test(client: Client, port: int) -> None:
        with pytest.raises(Refused) as info:
            await client.request("POST", "http", "127.0.0.1", port, "/", {}, body())
        assert info.value.lt_code is ErrorCode.TOO_LARGE

    _with_aiohttp(test)


@pytest.mark.parametrize(
    "header",
    [{"X-A": "a\r\nX-Injected: 1"}, {"X-A": "a\nb"}, {"X-A": "a\rb"}, {"X-A\r\n": "a"}],
)
def test_cr_lf_in_a_header_is_refused_before_sending(header: dict[str, str]) -> None:
    async def test(client: Client, port: int) -> None:
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            await client.request("POST", "http", "127.0.0.1", port, "/", header, b"")

    _with_aiohttp(test)


def test_peer_check_runs_before_the_request_is_written() -> None:
    def verify_peer(der: bytes | None) -> None:
        assert der is None  # plain TCP: no certificate
        raise Refused(ErrorCode.UNAVAILABLE, "peer is not the expected node")

    async def test(client: Client, port: int) -> None:
        with pytest.raises(Refused):
            await client.request(
                "POST", "http", "127.0.0.1", port, "/", {}, b"x", verify_peer=verify_peer
            )

    _with_aiohttp(test)


def test_connection_refused_is_connect_failed() -> None:
    async def test(client: Client, port: int) -> None:
        with pytest.raises(ConnectFailed):
            await client.request("GET", "http", "127.0.0.1", 1, "/", {}, b"")

    _with_aiohttp(test)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"", Disconnected),  # closed before answering
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", Disconnected),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", BadResponse),
        (b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n", BadResponse),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: aaaaaaaa\r\n" * 6000 + b"\r\n", BadResponse),
        (b"NOT HTTP\r\n\r\n", BadResponse),
        (None, ClientTimeout),  # never answers: the read timeout
    ],
)
def test_broken_answers_raise_one_client_error(answer: bytes | None, error: Any) -> None:
    async def test(client: Client, port: int) -> None:
        with pytest.raises(error):
            resp = await client.request("GET", "http", "127.0.0.1", port, "/", {}, b"")
            await resp.read()

    _with_raw(answer, test)


def test_body_until_the_connection_ends() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"

    async def test(client: Client, port: int) -> None:
        resp = await client.request("GET", "http", "127.0.0.1", port, "/", {}, b"")
        assert resp.content_length is None
        assert await resp.read() == b"all of it"
        resp.release()

    _with_raw(answer, test)


def test_interim_answer_is_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"

    async def test(client: Client, port: int) -> None:
        resp = await client.request("POST", "http", "127.0.0.1", port, "/", {}, b"x")
        assert resp.status == 201
        assert await resp.read() == b"ok"
        resp.release()

    _with_raw(answer, test)


def test_a_connection_idle_past_keep_alive_is_not_reused() -> None:
    async def test(_unused: Client, port: int) -> None:
        client = Client(None, connect_timeout=2, read_timeout=2, keepalive_s=0.0)
        ports = []
        for _ in range(2):
            resp = await client.request("GET", "http", "127.0.0.1", port, "/", {}, b"")
            ports.append(resp.headers["X-Peer-Port"])
            resp.release()
        await client.close()
        assert ports[0] != ports[1]

    _with_aiohttp(test)


def test_service_endpoint_urls_split_once_and_bad_ones_are_unavailable() -> None:
    assert endpoint_of("http://127.0.0.1:8080/svc") == Endpoint("http", "127.0.0.1", 8080, "/svc")
    assert endpoint_of("https://dancu.example") == Endpoint("https", "dancu.example", 443, "")
    for bad in ("http://", "http://h:99999/x", "http://h:port/", "ftp://h/"):
        with pytest.raises(Refused) as info:
            endpoint_of(bad)
        assert info.value.lt_code is ErrorCode.UNAVAILABLE


def _contexts(federation: Federation, node: str) -> tuple[Any, Any]:
    cfg = load_config(federation.testbed.configs[node])
    return tls_contexts(cfg, resolve_secret(cfg.passphrase))


def test_a_peer_with_another_federation_identity_receives_nothing(federation: Federation) -> None:
    """mTLS to a real federation certificate (NDXP's) when BCA-GW was expected: the identity
    check runs after the handshake and before the request is written."""
    _, client_ctx = _contexts(federation, "BHXH-GW")
    server_ctx, _ = _contexts(federation, "NDXP")
    certs = federation.node("BHXH-GW").certs
    received: list[bytearray] = []
    closed: list[asyncio.Future[None]] = []

    class Record(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.data = bytearray()
            received.append(self.data)
            self.closed = asyncio.get_running_loop().create_future()
            closed.append(self.closed)

        def data_received(self, data: bytes) -> None:
            self.data.extend(data)
            if b"\r\n\r\n" in self.data and isinstance(self.transport, asyncio.WriteTransport):
                self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")

        def connection_lost(self, exc: Exception | None) -> None:
            self.closed.set_result(None)

    def expecting(node: str) -> Callable[[bytes | None], None]:
        def verify(der: bytes | None) -> None:
            if (certs.identity_of_der(der) if der else None) != node:
                raise Refused(ErrorCode.UNAVAILABLE, "peer is not the expected node")

        return verify

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Record, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        client = Client(client_ctx, connect_timeout=5, read_timeout=5)
        try:
            with pytest.raises(Refused, match="not the expected node"):
                await client.request(
                    "POST",
                    "https",
                    "127.0.0.1",
                    port,
                    "/r1/x",
                    {},
                    b"secret",
                    verify_peer=expecting("BCA-GW"),
                )
            resp = await client.request(
                "POST",
                "https",
                "127.0.0.1",
                port,
                "/r1/x",
                {},
                b"marker",
                verify_peer=expecting("NDXP"),
            )
            assert resp.status == 204
            resp.release()
        finally:
            await client.close()
            server.close()
        await asyncio.wait_for(asyncio.gather(*closed), 5)  # all they were sent is in
        assert sum(b"marker" in data for data in received) == 1
        assert not any(b"secret" in data for data in received)

    asyncio.run(main())


def test_a_link_that_never_answers_the_handshake_is_a_failed_link(
    federation: Federation,
) -> None:
    """TCP accepted, TLS never answered (a black-holed path): within the connect timeout the
    link counts as down (ConnectFailed, so the caller fails over to the node's second link);
    nothing of the request was written."""
    _, client_ctx = _contexts(federation, "BHXH-GW")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes TCP handshakes; nobody ever reads or writes
    port = silent.getsockname()[1]

    async def main() -> None:
        client = Client(client_ctx, connect_timeout=0.5, read_timeout=5)
        try:
            with pytest.raises(ConnectFailed, match="no answer in time"):
                await client.request("POST", "https", "127.0.0.1", port, "/r1/x", {}, b"x")
        finally:
            await client.close()

    try:
        asyncio.run(main())
    finally:
        silent.close()
