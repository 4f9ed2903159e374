"""Attacks on the gateway's own HTTP/1.1 server (``httpserver``), as an operator or auditor
would run them against a running gateway: request smuggling, framing tricks, odd targets,
half-closes, pipelining, slow and greedy clients.

Against a real federation (gateway processes and the sample service, which records every
request it receives), each refused case checks that (a) the answer is the uniform refusal (or
the behaviour RFC 9112 asks for), (b) nothing reached the provider's service and (c) the
gateway keeps serving. What needs a look inside the server (its write buffer, its body buffer,
its connection count) runs against the server in-process on uvloop, over real sockets too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable

import pytest
import uvloop
from tests.exchange.conftest import Federation

from lienthong.exchange.httpserver import (
    Answer,
    Connections,
    Request,
    Response,
    ServerConnection,
    ServerSettings,
    StreamResponse,
)
from lienthong.exchange.testbed import GIAMDINH, SVC_ECHO

_H = f"X-LT-Client: {GIAMDINH}\r\nX-LT-Purpose: kiem-thu\r\nX-LT-Legal-Basis: test\r\n".encode()
_ECHO = f"/r1/{SVC_ECHO}".encode()
_UNIFORM = b'{"error":"LT.BAD_REQUEST"}'
SAFETY = 10.0  # seconds: a bound on every wait, never an assertion


def _post(extra: bytes, body: bytes = b"", *, target: bytes = _ECHO, version: bytes = b"1.1"):
    """A call to the echo service through the client gateway, with ``extra`` header lines."""
    return b"POST %s HTTP/%s\r\nHost: gw\r\n%s%s\r\n%s" % (target, version, _H, extra, body)


def _get(target: bytes, extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: gw\r\n%s%s\r\n" % (target, _H, extra)


_INNER = _post(b"Content-Length: 5\r\n", b"EVIL!")  # a request smuggled inside another


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _talk(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send ``data``, optionally end our side, and read until the gateway closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return _read_all(sock)


def _answers(data: bytes) -> list[tuple[bytes, dict[str, str], bytes]]:
    """The answers in ``data`` (status line, lower-case headers, body by Content-Length)."""
    out = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"truncated answer: {head[:200]!r}"
        status, *lines = head.split(b"\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        size = int(headers.get("content-length", "0"))
        out.append((status, headers, data[:size]))
        data = data[size:]
    return out


def _assert_uniform_refusal(data: bytes) -> None:
    """Exactly one answer, the uniform LT.BAD_REQUEST, and the connection closed after it."""
    answers = _answers(data)
    assert len(answers) == 1, data[:600]
    status, headers, body = answers[0]
    assert status == b"HTTP/1.1 400 Bad Request", data[:300]
    assert headers["x-lt-error"] == "LT.BAD_REQUEST" and body == _UNIFORM
    assert headers["connection"] == "close"


@pytest.fixture(scope="module")
def port(federation: Federation) -> int:
    return federation.testbed.internal_ports["BHXH-GW"]


@pytest.fixture
def untouched(federation: Federation, port: int):
    """Around a test: the service receives nothing, and the gateway still serves after it."""
    before = len(federation.received())
    yield
    answer = _talk(port, b"GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:200]
    assert len(federation.received()) == before, "the provider's service must receive nothing"


_CHUNKED = b"Transfer-Encoding: chunked\r\n"

# smuggling and framing: each a uniform refusal, the connection closed, nothing served
MALFORMED = {
    "cl-te": _post(b"Content-Length: 40\r\n" + _CHUNKED, b"0\r\n\r\n" + _INNER),
    "te-cl": _post(_CHUNKED + b"Content-Length: 3\r\n", b"0\r\n\r\n" + _INNER),
    "cl-cl-same": _post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"EVIL!"),
    "cl-cl-differ": _post(b"Content-Length: 0\r\nContent-Length: 5\r\n", b"EVIL!"),
    "cl-list": _post(b"Content-Length: 5, 5\r\n", b"EVIL!"),
    "cl-plus": _post(b"Content-Length: +5\r\n", b"EVIL!"),
    "cl-negative": _post(b"Content-Length: -1\r\n", b"EVIL!"),
    "cl-hex": _post(b"Content-Length: 0x5\r\n", b"EVIL!"),
    "cl-overflow": _post(b"Content-Length: 99999999999999999999999\r\n", b"EVIL!"),
    "cl-empty": _post(b"Content-Length: \r\n", b"EVIL!"),
    "te-chunked-chunked": _post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"),
    "te-xchunked": _post(b"Transfer-Encoding: xchunked\r\n", b"5\r\nEVIL!\r\n0\r\n\r\n"),
    "te-identity": _post(b"Transfer-Encoding: identity\r\n" + _CHUNKED, b"0\r\n\r\n"),
    "te-twice": _post(_CHUNKED + _CHUNKED, b"0\r\n\r\n"),
    "te-gzip-line": _post(_CHUNKED + b"Transfer-Encoding: gzip\r\n", b"0\r\n\r\n"),
    "te-padded": _post(b"Transfer-Encoding:  chunked \r\n", b"0\r\n\r\n"),
    "te-http10": _post(_CHUNKED, b"5\r\nEVIL!\r\n0\r\n\r\n", version=b"1.0"),
    "te-http10-keepalive": _post(
        b"Connection: keep-alive\r\n" + _CHUNKED, b"0\r\n\r\n" + _INNER
    ).replace(b"HTTP/1.1", b"HTTP/1.0", 1),
    "chunk-overflow": _post(_CHUNKED, b"fffffffffffffffff\r\nEVIL!\r\n0\r\n\r\n"),
    "chunk-negative": _post(_CHUNKED, b"-5\r\nEVIL!\r\n0\r\n\r\n"),
    "chunk-0x": _post(_CHUNKED, b"0x5\r\nEVIL!\r\n0\r\n\r\n"),
    "chunk-bare-lf": _post(_CHUNKED, b"5\nEVIL!\n0\n\n"),
    "chunk-size-space": _post(_CHUNKED, b"5 \r\nEVIL!\r\n0\r\n\r\n"),
    "trailer-cl": _post(_CHUNKED, b"5\r\nEVIL!\r\n0\r\nContent-Length: 9\r\n\r\n"),
    "bare-lf-head": _post(b"Content-Length: 5\r\n", b"EVIL!").replace(b"\r\n", b"\n"),
    "cr-in-value": _post(b"X-A: a\rb\r\nContent-Length: 5\r\n", b"EVIL!"),
    "nul-in-value": _post(b"X-A: a\x00b\r\nContent-Length: 5\r\n", b"EVIL!"),
    "space-before-colon": _post(b"Content-Length : 5\r\n", b"EVIL!"),
    "tab-before-colon": _post(b"Transfer-Encoding\t: chunked\r\n", b"0\r\n\r\n"),
    "obs-fold": _post(b"Transfer-Encoding: gzip\r\n ,chunked\r\n", b"0\r\n\r\n"),
    "leading-space-field": _post(b" Content-Length: 5\r\n", b"EVIL!"),
    "no-host": _post(b"Content-Length: 5\r\n", b"EVIL!").replace(b"Host: gw\r\n", b""),
    "two-hosts": _post(b"Host: other\r\nContent-Length: 5\r\n", b"EVIL!"),
    "host-not-a-host": _post(b"Content-Length: 5\r\n", b"EVIL!").replace(b"gw", b"a/b@c"),
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "http09": b"GET " + _ECHO + b"\r\n\r\n",
    "http12": _get(_ECHO).replace(b"HTTP/1.1", b"HTTP/1.2"),
    "lowercase-version": _get(_ECHO).replace(b"HTTP/1.1", b"http/1.1"),
    "authority-form": b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n",
    "websocket": _get(_ECHO, b"Connection: Upgrade\r\nUpgrade: websocket\r\n"),
    "h2c": _get(_ECHO, b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"),
    "long-target": _get(_ECHO + b"/" + b"a" * 9000),
    "many-fields": _get(_ECHO, b"".join(b"X-%d: 1\r\n" % i for i in range(200))),
    "valid-then-malformed": _post(b"Content-Length: 5\r\n", b"EVIL!")
    + b"GET / HTTP/1.1\r\nX\r\n\r\n",
    "malformed-then-valid": b"GET / HTTP/1.1\r\nX: \x00\r\n\r\n" + _INNER,
    "body-longer-than-length": _post(b"Content-Length: 2\r\n", b"EVIL!\r\n\r\n"),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.usefixtures("untouched")
def test_smuggling_and_malformed_framing_are_refused_uniformly(port: int, raw: bytes) -> None:
    _assert_uniform_refusal(_talk(port, raw))


def test_leading_zeros_are_lengths_not_tricks(federation: Federation, port: int) -> None:
    """``Content-Length: 0005`` and a chunk size ``0005`` are valid (1*DIGIT, 1*HEXDIG): the
    body is those five bytes, no more, no less."""
    before = len(federation.received())
    for extra, body in [
        (b"Content-Length: 0005\r\nConnection: close\r\n", b"hello"),
        (_CHUNKED + b"Connection: close\r\n", b"0005;x=y\r\nhello\r\n000\r\n\r\n"),
    ]:
        (status, _, got), *more = _answers(_talk(port, _post(extra, body)))
        assert status == b"HTTP/1.1 200 OK" and got == b"hello" and not more
    assert [r["bytes"] for r in federation.received()[before:]] == [5, 5]


@pytest.fixture
def served_once(federation: Federation, port: int):
    """Around a test whose one legitimate call must reach the service exactly once."""
    before = len(federation.received())
    yield
    assert len(federation.received()) == before + 1
    assert _talk(port, b"GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")[:12] == (
        b"HTTP/1.1 200"
    )


@pytest.mark.usefixtures("served_once")
def test_trailer_fields_never_become_headers(port: int) -> None:
    """Trailer fields come after the headers were checked and acted on: merged into them, a
    trailer ``Content-Type`` went into the signed call unchecked (and a repeated header in a
    trailer could turn a valid call into a refusal, or the reverse). They are dropped."""
    raw = _post(
        _CHUNKED + b"Content-Type: text/plain\r\nConnection: close\r\n",
        b"5\r\nhello\r\n0\r\nContent-Type: text/evil\r\nX-LT-Client: VN/GOV/X/Y\r\n\r\n",
    )
    (status, headers, body), *more = _answers(_talk(port, raw))
    assert status == b"HTTP/1.1 200 OK" and body == b"hello" and not more
    assert headers["content-type"] == "text/plain"


@pytest.mark.usefixtures("untouched")
def test_endless_trailer_is_refused_without_being_held(port: int) -> None:
    """A trailer field that never ends was gathered whole in memory (56 MB in 4 s on one
    connection, each piece copying the whole so far) until the body's idle timeout: now its
    bytes are bounded like a head's and it is refused at once."""
    raw = _post(_CHUNKED, b"5\r\nhello\r\n0\r\nX-Trailer: " + b"a" * (512 << 10))
    _assert_uniform_refusal(_talk(port, raw))


@pytest.mark.usefixtures("untouched")
def test_endless_chunk_extension_is_refused(port: int) -> None:
    raw = _post(_CHUNKED, b"5;ext=" + b"e" * (512 << 10))
    _assert_uniform_refusal(_talk(port, raw))


@pytest.mark.usefixtures("served_once")
def test_half_closed_client_still_gets_its_answer(port: int) -> None:
    """A client may end its sending side once its request is out (``shutdown(SHUT_WR)``):
    the request was served but its answer never sent (the connection closed on the FIN)."""
    answer = _talk(port, _post(b"Content-Length: 5\r\n", b"hello"), half_close=True)
    (status, headers, body), *more = _answers(answer)
    assert status == b"HTTP/1.1 200 OK" and body == b"hello" and not more
    assert headers["connection"] == "close"


@pytest.mark.parametrize(
    "raw",
    [
        _post(b"Content-Length: 10\r\n", b"EVIL!"),
        _post(_CHUNKED, b"5\r\nEVIL!\r\n"),
        _post(_CHUNKED, b"5\r\nEVI"),
    ],
    ids=["length", "chunked-last-chunk-missing", "chunked-mid-chunk"],
)
@pytest.mark.usefixtures("untouched")
def test_body_cut_short_by_a_half_close_is_refused(port: int, raw: bytes) -> None:
    """The client can still read: it gets a uniform refusal (no answer at all before)."""
    (status, headers, body), *more = _answers(_talk(port, raw, half_close=True))
    assert headers["x-lt-error"] in {"LT.UNAVAILABLE", "LT.BAD_REQUEST"}, status
    assert body == b'{"error":"%s"}' % headers["x-lt-error"].encode() and not more


@pytest.mark.usefixtures("untouched")
def test_request_hidden_in_a_refused_body_is_never_served(port: int) -> None:
    """Refused on its declared length before its body is read: the body (a whole request)
    is read and dropped, never parsed, and the connection closed."""
    raw = _post(b"Content-Length: %d\r\n" % (len(_INNER) + (9 << 20)), _INNER * 3)
    (status, headers, _), *more = _answers(_talk(port, raw))
    assert headers["x-lt-error"] == "LT.TOO_LARGE" and headers["connection"] == "close"
    assert not more, status


@pytest.mark.parametrize(
    "target",
    [
        b"http://evil.example" + _ECHO,
        b"*",
        _ECHO + b"/%2e%2e/%2e%2e/secret",
        _ECHO.replace(b"DANCU/", b"DANCU%2f"),
        _ECHO.replace(b"/GOV/", b"%2FGOV/"),
        _ECHO + b"/%c0%ae%c0%ae/secret",
        _ECHO.replace(b"/echo", b"/%c0%afecho"),
        _ECHO + b"/..%5c..%5csecret",
        _ECHO + b"\\..\\secret",
        _ECHO + b"#fragment",
        _ECHO.replace(b"/DANCU", b"/./DANCU"),
    ],
)
@pytest.mark.usefixtures("untouched")
def test_odd_request_targets_never_reach_the_service(port: int, target: bytes) -> None:
    answers = _answers(
        _talk(port, _post(b"Content-Length: 5\r\nConnection: close\r\n", b"EVIL!", target=target))
    )
    assert len(answers) == 1 and "x-lt-error" in answers[0][1], answers
    assert answers[0][0].split(b" ")[1][:1] in {b"4", b"5"}


def test_expect_100_continue(federation: Federation, port: int) -> None:
    """A body refused on its declared size gets no ``100 Continue``, and nothing is served;
    an acceptable one is invited, then served."""
    before = len(federation.received())
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        sock.sendall(_post(b"Expect: 100-continue\r\nContent-Length: %d\r\n" % (9 << 20)))
        (status, headers, _), *more = _answers(_read_all(sock))
        assert headers["x-lt-error"] == "LT.TOO_LARGE" and not more, status
    assert len(federation.received()) == before
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        sock.sendall(_post(b"Expect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n"))
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        (status, _, body), *more = _answers(_read_all(sock))
        assert status == b"HTTP/1.1 200 OK" and body == b"hello" and not more
    assert len(federation.received()) == before + 1


def test_head_answers_carry_no_body_and_the_connection_stays_usable(port: int) -> None:
    raw = (
        b"HEAD /health HTTP/1.1\r\nHost: gw\r\n\r\n"
        b"HEAD /nothing HTTP/1.1\r\nHost: gw\r\n\r\n"
        b"GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    )
    data = _talk(port, raw)
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200") and b"\r\nContent-Length: " in first
    second, _, rest = rest.partition(b"\r\n\r\n")  # no body in between
    assert second.startswith(b"HTTP/1.1 400") and b"X-LT-Error: LT.BAD_REQUEST" in second
    (status, _, body), *more = _answers(rest)
    assert status == b"HTTP/1.1 200 OK" and body.startswith(b"{") and not more


@pytest.mark.usefixtures("untouched")
def test_refusals_keep_the_connection_but_a_parse_error_ends_it(port: int) -> None:
    """A refused call leaves a well-framed connection usable; after a malformed request
    nothing more on that connection is read, even a valid call already sent behind it."""
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        sock.sendall(_get(b"/nothing"))
        head = b""
        while not head.endswith(b"\r\n\r\n" + _UNIFORM):
            head += sock.recv(1)
        assert b"X-LT-Error: LT.BAD_REQUEST" in head and b"Connection" not in head
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: gw\r\nBad Header: 1\r\n\r\n" + _INNER)
        _assert_uniform_refusal(_read_all(sock))


@pytest.mark.usefixtures("untouched")
def test_head_arriving_in_small_pieces_is_held_to_its_limits(port: int) -> None:
    """Fields and a long value trickled in small pieces (as fast as the socket takes them):
    refused on the field count and on the head size, not left to the deadline."""
    for pieces in [
        [_get(_ECHO)[:-2]] + [b"X-%d: v\r\n" % i for i in range(200)] + [b"\r\n"],
        [_get(_ECHO)[:-2], b"X-Long: "] + [b"v" * 512] * 200 + [b"\r\n\r\n"],
    ]:
        with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with contextlib.suppress(OSError):
                for piece in pieces:
                    sock.sendall(piece)
            _assert_uniform_refusal(_read_all(sock))


@pytest.mark.usefixtures("untouched")
def test_ten_thousand_pipelined_requests_on_one_connection(port: int) -> None:
    """10,000 tiny requests in one go, answered in turn while the client reads; the
    connection is still usable after them."""
    count = 10_000
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        sender = threading.Thread(
            target=sock.sendall, args=(b"GET /x HTTP/1.1\r\nHost: gw\r\n\r\n" * count,)
        )
        sender.start()
        data = b""
        marker = b"\r\n\r\n" + _UNIFORM
        while data.count(marker) < count:
            chunk = sock.recv(1 << 20)
            assert chunk, f"closed after {data.count(marker)} answers"
            data += chunk
        sender.join(SAFETY)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        data += _read_all(sock)
    answers = _answers(data)
    assert len(answers) == count + 1
    assert all(a[1]["x-lt-error"] == "LT.BAD_REQUEST" for a in answers[:count])
    assert answers[-1][0] == b"HTTP/1.1 200 OK"


@pytest.mark.usefixtures("untouched")
def test_many_idle_and_half_sent_connections(port: int) -> None:
    """Hundreds of connections that send nothing, or half a head: others are served
    meanwhile, and each of those is closed by the gateway (header deadline)."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=SAFETY) for _ in range(400)]
    try:
        for sock in socks[::2]:
            sock.sendall(b"POST " + _ECHO + b" HTTP/1.1\r\nHost: gw\r\n")
        assert (
            _talk(port, b"GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")[:12]
            == b"HTTP/1.1 200"
        )
        for sock in socks:
            assert _read_all(sock) == b""
    finally:
        for sock in socks:
            sock.close()


# ---------------------------------------------------------------- in-process, on uvloop

Client = Callable[[int], Awaitable[None]]
SETTINGS = ServerSettings(header_timeout=0.5, max_field_bytes=1024, max_head_bytes=4096)


class Probe:
    """The server's side of an in-process test: what its handler saw."""

    def __init__(self) -> None:
        self.max_write_buffer = 0
        self.max_pieces = 0
        self.errors: list[tuple[int, str]] = []
        self.requests: list[str] = []
        self.shed: list[str] = []  # connections closed or refused to keep within the limits
        self.release = asyncio.Event()  # lets the /block requests finish


async def _handler(probe: Probe, request: Request) -> Answer:
    path = request.raw_path
    probe.requests.append(path)
    if request.transport is not None:
        size = request.transport.get_write_buffer_size()
        probe.max_write_buffer = max(probe.max_write_buffer, size)
    if path == "/big":
        return Response(body=b"b" * 65536)
    if path == "/hold":  # reads nothing for a while: the body piles up to the high-water mark
        while not request._conn._reading_paused:
            await asyncio.sleep(0.01)
        probe.max_pieces = len(request._chunks)
        return Response(body=b"%d" % len(await request.read()))
    if path == "/block":  # being answered until the test releases it
        await probe.release.wait()
        return Response(body=b"released")
    if path == "/refuse":
        return Response(status=403, body=b"no")
    if path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        return Response(status=status, body=b"must not be sent")
    if path.startswith("/stream/"):
        out = StreamResponse(status=int(path.rsplit("/", 1)[1]))
        await out.prepare(request)
        await out.write(b"must not be sent")
        await out.write_eof()
        return out
    return Response(body=b"ok")


def _serve(
    client: Callable[[int, Connections], Awaitable[None]],
    settings: ServerSettings = SETTINGS,
    probe: Probe | None = None,
) -> Probe:
    probe = probe if probe is not None else Probe()

    def on_error(conn: ServerConnection, status: int, exc: BaseException) -> Response:
        probe.errors.append((status, type(exc).__name__))
        return Response(status=status, body=b"uniform")

    async def main() -> None:
        factory = Connections(lambda r: _handler(probe, r), on_error, settings, probe.shed.append)
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        try:
            await asyncio.wait_for(client(server.sockets[0].getsockname()[1], factory), 30)
        finally:
            server.close()
            await factory.shutdown(1.0)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    return probe


async def _read_answers(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        head = await reader.readuntil(b"\r\n\r\n")
        size = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                size = int(line.split(b":")[1])
        out.append(head + await reader.readexactly(size))
    return out


def test_answers_wait_for_a_client_that_does_not_read() -> None:
    """Pipelined requests whose answers are never read: each whole answer went into the
    write buffer (190 MB from 90 KB of requests); now the next request waits until the
    answers before it have drained, and the client's sending blocks instead."""
    count = 300

    async def client(port: int, _: Connections) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * count)
        await asyncio.sleep(0.3)  # (not an assertion: time for the server to misbehave)
        answers = await _read_answers(reader, count)
        assert all(a.startswith(b"HTTP/1.1 200") and a.endswith(b"b" * 65536) for a in answers)
        writer.close()

    probe = _serve(client)
    assert len(probe.requests) == count
    assert probe.max_write_buffer < 1 << 20, probe.max_write_buffer


def test_a_client_that_never_reads_is_cut() -> None:
    async def client(port: int, factory: Connections) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        _reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 300)
        while factory.open:  # cut after a few header deadlines without progress
            await asyncio.sleep(0.05)
        writer.close()

    assert len(_serve(client).requests) < 300


def test_tiny_chunks_are_gathered() -> None:
    """A body in two-byte chunks held unread up to the 1 MiB mark was half a million
    objects (28 MB for 1 MiB); now pieces are gathered into buffers of 64 KiB."""

    async def client(port: int, _: Connections) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /hold HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 3 << 19  # 1.5 MiB: above the mark at which reading pauses
        for _ in range(sent // 20_000):
            writer.write(b"2\r\nxx\r\n" * 10_000)
            await writer.drain()
        rest = sent % 20_000
        writer.write(b"2\r\nxx\r\n" * (rest // 2) + b"0\r\n\r\n")
        (answer,) = await _read_answers(reader, 1)
        assert answer.endswith(b"\r\n\r\n%d" % sent), answer[-40:]
        writer.close()

    probe = _serve(client)
    assert 0 < probe.max_pieces < 100, probe.max_pieces


@pytest.mark.parametrize("kind", ["status", "stream"])
def test_no_body_with_204_304_or_head(kind: str) -> None:
    async def client(port: int, _: Connections) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /%s/204 HTTP/1.1\r\nHost: x\r\n\r\nGET /%s/304 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /%s/200 HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
            % (kind.encode(), kind.encode(), kind.encode())
        )
        for status in [b"204", b"304", b"200"]:
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 " + status), head
            if status != b"200":
                assert b"Content-Length" not in head and b"Transfer-Encoding" not in head
        (last,) = await _read_answers(reader, 1)  # nothing of a body in between
        assert last.startswith(b"HTTP/1.1 200 OK") and last.endswith(b"\r\n\r\nok")
        writer.close()

    _serve(client)


@pytest.mark.parametrize("status", [100, 101, 199, 0, 600, 1000])
def test_no_interim_or_invalid_status_as_an_answer(status: int) -> None:
    """An answer's status comes from signed claims a member node wrote: a 1xx with a body
    would have its body read as the next answer (response splitting)."""

    async def client(port: int, _: Connections) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /status/%d HTTP/1.1\r\nHost: x\r\n\r\n" % status)
        (answer,) = await _read_answers(reader, 1)
        assert answer.startswith(b"HTTP/1.1 500") and answer.endswith(b"uniform")
        assert await reader.read() == b""
        writer.close()

    assert _serve(client).errors == [(500, "ValueError")]


def test_no_second_answer_after_an_early_refusal() -> None:
    """Answered before its body was read, a request's body is dropped; broken framing in
    that body then closes the connection without a second, unasked-for answer."""

    async def client(port: int, _: Connections) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /refuse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        (answer,) = await _read_answers(reader, 1)
        assert answer.startswith(b"HTTP/1.1 403")
        writer.write(b"5\r\nhello\r\nzz\r\n")
        assert await reader.read() == b""
        writer.close()

    assert _serve(client).errors == []


def _capped(listener: int, per_address: int) -> ServerSettings:
    """Connection limits for a test (a header deadline long enough to keep idle ones open)."""
    return ServerSettings(
        header_timeout=30.0,
        max_field_bytes=1024,
        max_head_bytes=4096,
        max_connections=listener,
        max_connections_per_address=per_address,
    )


def test_idle_connections_beyond_the_cap_make_room() -> None:
    """More connections than the cap: the oldest not being answered is closed so that a new
    client is still served (before: no cap, every idle connection held a descriptor)."""
    settings = _capped(8, 8)

    async def client(port: int, factory: Connections) -> None:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
        while len(factory.open) < 8:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        (answer,) = await _read_answers(reader, 1)
        assert answer.endswith(b"ok")
        assert await idle[0][0].read() == b""  # the oldest idle one was closed
        assert len(factory.open) <= 8
        for _, w in [*idle, (reader, writer)]:
            w.close()

    _serve(client, settings)


LIMITED = _capped(8, 3)


async def _connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.01)


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
    writer.write(b"GET %b HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    (answer,) = await _read_answers(reader, 1)
    return answer


def test_one_address_cannot_take_more_than_its_share() -> None:
    """Idle connections from one address beyond its share: its own longest-open one is closed,
    not another address's (before: only the listener-wide cap, so one address could hold
    every slot and each new client of another address pushed out the oldest, whoever's)."""

    async def client(port: int, factory: Connections) -> None:
        other = await _connect(port, "127.0.0.2")
        idle = [await _connect(port, "127.0.0.1") for _ in range(3)]
        await _until(lambda: len(factory.open) == 4)
        reader, writer = await _connect(port, "127.0.0.1")  # a 4th from the same address
        assert (await _ask(reader, writer, "/ok")).endswith(b"ok")
        assert await idle[0][0].read() == b""  # its own oldest idle connection was closed
        assert (await _ask(*other, "/ok")).endswith(b"ok")  # the other address kept its own
        assert len(factory.open) == 4
        for _, w in [other, *idle, (reader, writer)]:
            w.close()

    probe = _serve(client, LIMITED)
    assert probe.shed == ["per_address"]


def test_a_new_connection_is_refused_when_its_address_share_is_busy() -> None:
    """Every connection of the address is being answered: the new one from that address is
    refused (closed at once, nothing read from it), the busy ones finish, and another address
    is still served."""

    async def client(port: int, factory: Connections) -> None:
        busy = [await _connect(port, "127.0.0.1") for _ in range(3)]
        for _, w in busy:
            w.write(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        await _until(lambda: probe.requests.count("/block") == 3)
        reader, writer = await _connect(port, "127.0.0.1")
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""  # refused: closed without an answer
        assert "/ok" not in probe.requests
        other = await _connect(port, "127.0.0.2")
        assert (await _ask(*other, "/ok")).endswith(b"ok")
        probe.release.set()
        for r, _ in busy:
            (answer,) = await _read_answers(r, 1)
            assert answer.endswith(b"released")
        for _, w in [*busy, other, (reader, writer)]:
            w.close()

    probe = Probe()
    _serve(client, LIMITED, probe)
    assert probe.shed == ["per_address"]


def test_a_full_listener_takes_room_from_the_address_holding_the_most() -> None:
    """The listener at its cap: the address with the most connections gives one up, so a
    client of a lightly used address gets in without closing its neighbours' connections."""
    settings = _capped(4, 3)

    async def client(port: int, factory: Connections) -> None:
        light = await _connect(port, "127.0.0.2")
        heavy = [await _connect(port, "127.0.0.1") for _ in range(3)]
        await _until(lambda: len(factory.open) == 4)
        newcomer = await _connect(port, "127.0.0.3")
        assert (await _ask(*newcomer, "/ok")).endswith(b"ok")
        assert await heavy[0][0].read() == b""  # the heaviest address's oldest gave way
        assert (await _ask(*light, "/ok")).endswith(b"ok")  # the light one was kept
        for _, w in [light, *heavy, newcomer]:
            w.close()

    probe = _serve(client, settings)
    assert probe.shed == ["listener_full"]
