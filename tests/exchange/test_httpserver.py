"""The gateway's HTTP/1.1 server (``httpserver``) in-process on uvloop, driven over raw
sockets: framing, keep-alive and pipelining, streaming with back-pressure, limits, deadlines and
malformed requests. (The gateway's own behaviour on top of it: test_security, test_gateway.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from lienthong.exchange.httpconn import HIGH_WATER
from lienthong.exchange.httpserver import (
    Answer,
    Connections,
    Request,
    Response,
    ServerConnection,
    ServerSettings,
    StreamResponse,
)

SETTINGS = ServerSettings(header_timeout=0.5, max_field_bytes=1024, max_head_bytes=4096)
Client = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Seen:
    """What the handler saw, and the errors the server reported."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.errors: list[tuple[int, str]] = []
        self.body_errors: list[str] = []
        self.max_buffered = 0


async def _handler(seen: Seen, request: Request) -> Answer:
    path = request.raw_path
    if path == "/stream":
        out = StreamResponse(headers={"X-Kind": "stream"})
        await out.prepare(request)
        for i in range(3):
            await out.write(b"part%d;" % i)
        await out.write_eof()
        return out
    if path == "/fixed":
        return Response(body=b"12345")
    if path == "/refuse-early":
        return Response(status=403, body=b"no")
    if path == "/slow-handler":
        await asyncio.sleep(SETTINGS.header_timeout * 3)
        return Response(body=b"late but answered")
    if path == "/whole":  # the body at once when all of it is in and small enough
        first = request.complete_body(8)
        rest = b"" if first is not None else await request.read()
        return Response(body=b"%r %r" % (first, rest))
    if path == "/bad-header":
        return Response(body=b"x", headers={"X-Evil": "a\r\nSet-Cookie: b"})
    body = b""
    try:
        async for chunk in request.chunks():
            body += chunk
            seen.max_buffered = max(seen.max_buffered, request._buffered)
            if path == "/slow-reader":
                await asyncio.sleep(0.001)
    except Exception as exc:
        seen.body_errors.append(type(exc).__name__)
        raise
    seen.requests.append((request.method, path, body))
    if path == "/slow-reader":
        body = b"%d" % len(body)
    return Response(body=body, headers={"X-Method": request.method})


def _run(client: Client, seen: Seen | None = None) -> Seen:
    seen = seen or Seen()

    def on_error(conn: ServerConnection, status: int, exc: BaseException) -> Response:
        seen.errors.append((status, type(exc).__name__))
        return Response(status=status, body=b'{"error":"uniform"}', headers={"X-Err": "1"})

    async def main() -> None:
        factory = Connections(lambda r: _handler(seen, r), on_error, SETTINGS)
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await asyncio.wait_for(client(reader, writer), 20)
        finally:
            writer.close()
            server.close()
            await factory.shutdown(1.0)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    return seen


async def _answer(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """One answer: status line, headers (lower-case names), body (length or chunked)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status, *lines = head.split("\r\n")[:-2]
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readexactly(2)
        return status, headers, body
    return status, headers, await reader.read()


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read(65536) == b""
    except ConnectionResetError:
        return True


def test_keep_alive_and_pipelined_requests_answered_in_turn() -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"PUT /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nde\r\n1;ext=1\r\nf\r\n0\r\n\r\n"
            b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        for method, body in [("POST", b"abc"), ("PUT", b"def"), ("GET", b"")]:
            status, headers, got = await _answer(reader)
            assert status == "HTTP/1.1 200 OK" and headers["x-method"] == method
            assert got == body and headers["server"] == "lienthong" and "date" in headers
            assert "connection" not in headers  # kept alive
        writer.write(b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, _ = await _answer(reader)
        assert headers["connection"] == "close" and await _closed(reader)

    seen = _run(client)
    assert [r[1] for r in seen.requests] == ["/a", "/b", "/c", "/d"] and not seen.errors


def test_http_1_0_keep_alive_and_streamed_answer() -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        _, headers, _ = await _answer(reader)
        assert headers["connection"] == "keep-alive"
        writer.write(b"GET /stream HTTP/1.0\r\n\r\n")  # no chunked coding for HTTP/1.0
        _, headers, body = await _answer(reader)
        assert "transfer-encoding" not in headers and body == b"part0;part1;part2;"

    _run(client)


def test_streamed_answer_is_chunked() -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\nHEAD /fixed HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        _, headers, body = await _answer(reader)
        assert headers["transfer-encoding"] == "chunked" and headers["x-kind"] == "stream"
        assert body == b"part0;part1;part2;"
        head = await reader.readuntil(b"\r\n\r\n")  # HEAD: the length, no body
        assert b"\r\nContent-Length: 5\r\n" in head
        writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = await _answer(reader)
        assert status == "HTTP/1.1 200 OK"  # nothing of a body after the HEAD answer

    _run(client)


def test_large_body_is_streamed_with_back_pressure() -> None:
    size = 24 * HIGH_WATER

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"POST /slow-reader HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"z" * 65536
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
        _, _, body = await _answer(reader)
        assert body == b"%d" % size

    # reading paused at the high-water mark (at most one more socket read came in after it):
    # the slow handler never had more than that unread, not the whole body
    assert _run(client).max_buffered < 2 * HIGH_WATER


def test_complete_body_only_when_all_of_it_is_in_and_small() -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"POST /whole HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        assert (await _answer(reader))[2] == b"b'abc' b''"
        writer.write(b"POST /whole HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n123456789")
        assert (await _answer(reader))[2] == b"None b'123456789'"  # above the limit
        writer.write(
            b"POST /whole HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
        )
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"abcd")
        assert (await _answer(reader))[2] == b"None b'abcd'"  # not in yet when asked

    _run(client)


def test_expect_100_continue() -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        )
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        _, _, body = await _answer(reader)
        assert body == b"ok"

    _run(client)


def test_answer_before_the_body_closes_after_the_rest_is_read() -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"POST /refuse-early HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        status, headers, _ = await _answer(reader)
        assert status.startswith("HTTP/1.1 403") and headers["connection"] == "close"
        writer.write(b"q" * 300000)  # the rest is read and dropped: no reset for the client
        await writer.drain()
        assert await _closed(reader)

    _run(client)


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"GET /a HTTP/0.9\r\nHost: x\r\n\r\n",
        b"GET /a HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(129)) + b"\r\n",
        b"GET /a HTTP/1.1\r\nX-Big: " + b"a" * 1025 + b"\r\n\r\n",
        b"GET /a HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 500) for i in range(9)),
        b"GET /" + b"p" * 8200 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
    ],
    ids=["upgrade", "connect", "te-gzip", "http09", "fields", "field", "head", "target", "nul"],
)
def test_malformed_requests_get_the_hook_answer_and_the_connection_closes(raw: bytes) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        status, headers, body = await _answer(reader)
        assert status.startswith("HTTP/1.1 400") and headers["x-err"] == "1"
        assert body == b'{"error":"uniform"}' and headers["connection"] == "close"
        assert await _closed(reader)

    seen = _run(client)
    assert [status for status, _ in seen.errors] == [400] and not seen.requests


def test_bad_chunk_framing_reaches_the_handler_as_an_error() -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"
        )
        await asyncio.sleep(0.05)
        writer.write(b"zz\r\n")
        status, headers, _ = await _answer(reader)
        assert status.startswith("HTTP/1.1 500") and headers["connection"] == "close"

    seen = _run(client)
    assert seen.body_errors == ["MalformedRequest"] and seen.errors == [(500, "MalformedRequest")]


def test_header_injection_in_an_answer_is_an_internal_error() -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /bad-header HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = await _answer(reader)
        assert status.startswith("HTTP/1.1 500") and "set-cookie" not in headers

    assert _run(client).errors == [(500, "ValueError")]


def test_a_head_that_never_ends_is_cut_at_the_deadline() -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n")
        for _ in range(200):  # one field per 50 ms: the 0.5 s deadline comes first
            if reader.at_eof():
                break
            writer.write(b"X-Slow: 1\r\n")
            await asyncio.sleep(0.05)
        assert await _closed(reader)

    _run(client)


def test_idle_keep_alive_connection_is_closed_but_a_slow_handler_is_not_cut() -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /slow-handler HTTP/1.1\r\nHost: x\r\n\r\n")
        _, _, body = await _answer(reader)
        assert body == b"late but answered"
        assert await _closed(reader)  # then idle: closed at the header deadline

    _run(client)


def test_client_gone_mid_body_is_an_error_for_the_handler() -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        await asyncio.sleep(0.05)
        writer.transport.abort()
        await asyncio.sleep(0.05)

    assert _run(client).body_errors == ["ConnectionResetError"]


def test_watchdog_times_out_an_exchange_past_its_deadline() -> None:
    from lienthong.exchange.server import Watchdog, _run_within

    async def main() -> None:
        watchdog = Watchdog()
        slow = asyncio.ensure_future(_run_within(watchdog, 0.0, asyncio.sleep(30, Response())))
        other = asyncio.ensure_future(_run_within(watchdog, 60.0, asyncio.sleep(30, Response())))
        quick = await _run_within(watchdog, 60.0, asyncio.sleep(0, Response(status=201)))
        await asyncio.sleep(0)
        watchdog.sweep(asyncio.get_running_loop().time())  # only the first is past its deadline
        with pytest.raises(TimeoutError):
            await slow
        assert quick.status == 201 and not other.done()
        other.cancel()  # a cancellation of its own stays a cancellation
        with pytest.raises(asyncio.CancelledError):
            await other

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
