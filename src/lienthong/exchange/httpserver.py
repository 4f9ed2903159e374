"""The gateway's HTTP/1.1 server: one asyncio protocol per connection (on uvloop), requests
parsed by llhttp (``httptools``), bodies buffered with back-pressure on the socket, answers
written whole or streamed.

Measured against aiohttp's low-level server it does far less per request (no request,
payload-stream, response-writer and multidict objects per request, no timer per request): see
docs/exchange.md, "HTTP stack". It does what the gateway needs and nothing more:

- keep-alive (HTTP/1.1 by default, HTTP/1.0 on request), pipelined requests answered in turn;
- ``Content-Length`` and chunked request bodies, streamed to the handler with back-pressure
  (reading pauses beyond 1 MiB unread); any other ``Transfer-Encoding`` is refused;
- answers whole (``Content-Length``) or streamed (chunked; closed-delimited for HTTP/1.0),
  their writes waiting for the socket to drain;
- limits: the request target (8,190 bytes), one header value (``max_field_bytes``), the
  number of header fields (128) and the whole head (``max_head_bytes``, counted even while a
  head is still arriving);
- a header deadline (slow-loris defence): a connection must deliver each request's complete
  head within ``header_timeout`` of its opening or of the previous answer, else it is closed —
  never while a request is being handled, and an answer still draining gets a few more
  periods;
- malformed requests (llhttp's strict parsing: CL+TE, repeated Content-Length, obs-fold, bytes
  outside the grammar, protocol upgrades, HTTP versions other than 1.0/1.1 …) are answered by
  the ``on_error`` hook (the gateway's uniform refusal, nothing echoed) and the connection is
  closed; a request whose answer goes out before its body was read has the rest of the body
  discarded (until the header deadline) and the connection closed after it;
- a chunked body's trailer fields are counted against the head limits and dropped (never
  merged into the headers the handler already checked), and its framing without payload
  (chunk extensions, trailers) is bounded like a head; tiny body pieces are gathered;
- HTTP/1.1 requests need exactly one valid ``Host``; ``Transfer-Encoding`` in HTTP/1.0 is
  refused (RFC 9112 3.2, 6.1);
- the next pipelined request waits while earlier answers have not drained (a client that
  does not read is cut after a few header deadlines, not buffered for);
- a client that half-closes still gets the answers to the requests it sent (plain TCP);
- only final statuses (200-599) are sent; 204, 304 and answers to HEAD carry no body;
- at most ``max_connections`` open connections per listener, and at most
  ``max_connections_per_address`` from one address: beyond the listener's cap the address
  holding the most connections gives up its longest-open one not being answered; beyond an
  address's share its own longest-open idle connection is closed, or the new one refused when
  all of them are being answered (one address cannot crowd out the others).
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import http
import re
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable, ItemsView, Iterator, Mapping
from dataclasses import dataclass
from typing import cast

import httptools

from lienthong.exchange.httpconn import (
    HIGH_WATER,
    LOW_WATER,
    FlowControl,
    Headers,
    encode_head,
    tls_peer_der,
)

MAX_TARGET_BYTES = 8190  # the request target (aiohttp's default line limit)
MAX_FIELDS = 128  # header fields per request
WRITE_GRACES = 4  # a caller that does not read its answer is cut after 5 header deadlines
SERVER_NAME = "lienthong"  # the Server header: no framework or Python version for a prober
SMALL_PIECE = 4096  # body pieces below this are gathered into one buffer (tiny-chunk floods)
GATHER_BYTES = 65536  # ... of at most this size
# Host = uri-host [ ":" port ] (RFC 9112 section 3.2, RFC 3986): a reg-name or an IP literal
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
_REASONS = {int(s): s.phrase for s in http.HTTPStatus}
NO_BODY = frozenset((204, 304))  # statuses sent with neither a body nor framing (RFC 9110 6.4.1)


class MalformedRequest(ValueError):
    """Not well-formed HTTP/1.1 or beyond a limit (the gateway's ``LT.BAD_REQUEST``)."""


class RequestHeaders(Headers):
    """Request headers, looked up case-insensitively (the first copy counts); ``items()``
    lists every copy of a repeated header, so that a caller can refuse repetitions."""

    __slots__ = ("repeats",)

    def __init__(self) -> None:
        super().__init__()
        self.repeats: list[tuple[str, str]] = []  # the second and later copies

    def add(self, key: str, value: str) -> None:
        if key in self._items:
            self.repeats.append((key, value))
        else:
            self._items[key] = value

    def items(self) -> ItemsView[str, str]:
        return _AllItems(self)


class _AllItems(ItemsView[str, str]):
    def __init__(self, headers: RequestHeaders) -> None:
        super().__init__(headers)
        self._headers = headers

    def __iter__(self) -> Iterator[tuple[str, str]]:
        yield from self._headers._items.items()
        yield from self._headers.repeats

    def __len__(self) -> int:
        return len(self._headers._items) + len(self._headers.repeats)


class Request:
    """One request: method, target exactly as received, headers, and its body as it arrives."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_waiter",
        "chunked",
        "complete",
        "content_length",
        "discarding",
        "error",
        "expect_continue",
        "head_sent",
        "headers",
        "keep_alive",
        "method",
        "raw_path",
        "version",
    )

    def __init__(
        self,
        conn: ServerConnection,
        method: str,
        raw_path: str,
        version: str,
        headers: RequestHeaders,
        content_length: int | None,
        chunked: bool,
        keep_alive: bool,
    ) -> None:
        self._conn = conn
        self.method = method
        self.raw_path = raw_path
        self.version = version
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.expect_continue = False
        self.complete = False  # the whole body is in (or there is none)
        self.error: BaseException | None = None
        self.head_sent = False
        self.discarding = False  # answered before the body was read: the rest is dropped
        self._chunks: collections.deque[bytes | bytearray] = collections.deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None

    @property
    def body_exists(self) -> bool:
        return self.chunked or bool(self.content_length)

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._conn.transport

    @property
    def remote(self) -> str | None:
        """The caller's IP address."""
        return self._conn.remote()

    def peer_der(self) -> bytes | None:
        """The DER certificate the TLS client presented (None without TLS)."""
        return self._conn.peer_der()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it comes (reading from the socket pauses while 1 MiB is unread)."""
        while chunk := await self._next_chunk():
            yield chunk

    def complete_body(self, limit: int) -> bytes | None:
        """The whole body at once, without waiting, when all of it has arrived and it is at
        most ``limit`` bytes (the small body of most calls); else None: read :meth:`chunks`."""
        if not self.complete or self.error is not None or self._buffered > limit:
            return None
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return data

    async def read(self) -> bytes:
        """The whole body (callers bound it first: ``limited``)."""
        return b"".join([chunk async for chunk in self.chunks()])

    async def _next_chunk(self) -> bytes:
        while not self._chunks:
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            if self.expect_continue:
                self.expect_continue = False
                self._conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._waiter = self._conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < LOW_WATER:
            self._conn.body_drained()
        return chunk if isinstance(chunk, bytes) else bytes(chunk)

    # fed by the connection

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _push(self, data: bytes) -> bool:
        """Buffer ``data``; True when the unread body is above the high-water mark."""
        if self.discarding:
            return False
        chunks = self._chunks
        if len(data) < SMALL_PIECE:  # tiny pieces: one buffer, not an object each (memory)
            last = chunks[-1] if chunks else None
            if isinstance(last, bytearray) and len(last) < GATHER_BYTES:
                last += data
            else:
                chunks.append(bytearray(data))
        else:
            chunks.append(data)
        self._buffered += len(data)
        self._wake()
        return self._buffered > HIGH_WATER

    def _finish(self) -> None:
        self.complete = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if not self.complete and self.error is None:
            self.error = exc
            self._wake()

    def _discard(self) -> None:
        self.discarding = True
        self._chunks.clear()
        self._buffered = 0


class Response:
    """A whole answer (``Content-Length``)."""

    __slots__ = ("body", "force_close", "headers", "status")

    def __init__(
        self, *, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else {}
        self.force_close = False


class StreamResponse:
    """A streamed answer: :meth:`prepare` sends the head, :meth:`write` each chunk (waiting
    for the socket to drain), :meth:`write_eof` ends it."""

    __slots__ = ("_bodiless", "_chunked", "_conn", "finished", "headers", "status")

    def __init__(self, *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers if headers is not None else {}
        self._conn: ServerConnection | None = None
        self._chunked = True
        self._bodiless = False  # HEAD, 204, 304: what is written is dropped
        self.finished = False

    @property
    def prepared(self) -> bool:
        return self._conn is not None

    async def prepare(self, request: Request) -> None:
        conn = request._conn
        self._chunked = request.version != "1.0"  # HTTP/1.0: the end of the connection ends it
        # HEAD: the framing a GET would have had, and no body; 204, 304: no framing at all
        self._bodiless = request.method == "HEAD" or self.status in NO_BODY
        conn.send_head(request, self.status, self.headers, None if self._chunked else -1)
        self._conn = conn

    async def write(self, data: bytes) -> None:
        conn = self._conn
        if conn is None:
            raise RuntimeError("write before prepare")
        if data and not self._bodiless:
            conn.write(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)
            await conn.drain()

    async def write_eof(self) -> None:
        if self._conn is not None and not self.finished:
            self.finished = True
            if self._chunked and not self._bodiless:
                self._conn.write(b"0\r\n\r\n")
            await self._conn.drain()


Answer = Response | StreamResponse
Handler = Callable[[Request], Awaitable[Answer]]
# (connection, 400 for a malformed request or 500 for a handler's failure, the exception):
# the answer to send before the connection is closed
ErrorHook = Callable[["ServerConnection", int, BaseException], Response]


@dataclass(frozen=True)
class ServerSettings:
    header_timeout: float
    max_field_bytes: int  # one header value
    max_head_bytes: int  # the request line and all header fields together
    # open connections per listener; 0: half the process's open-file limit (the rest is left
    # for the gateway's own connections and files). Beyond it the longest-open connection that
    # is not being answered is closed to make room (many idle or slow-loris connections).
    max_connections: int = 0
    # open connections from one address; 0: half of max_connections (a parent platform that
    # relays a whole ministry's calls comes from one address: keep it generous)
    max_connections_per_address: int = 0


def _default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, soft // 2) if soft != resource.RLIM_INFINITY else 1 << 15


_date_cache: list[object] = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[:] = [now, email.utils.formatdate(now, usegmt=True)]
    return cast(str, _date_cache[1])


def response_head(status: int, headers: Mapping[str, str], length: int | None, keep: bool) -> bytes:
    """Status line and headers; ``length`` None for chunked, -1 for close-delimited.

    Only a final status (200-599) is sent: an interim 1xx as the answer would leave its body to
    be read as the next answer (response splitting). A 204 or 304 has no body and no framing
    header (RFC 9110 8.6, RFC 9112 6.3)."""
    if not 200 <= status <= 599:
        raise ValueError(f"not a final HTTP status: {status!r}")
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n",
        f"Server: {SERVER_NAME}\r\n",
        f"Date: {_http_date()}\r\n",
    ]
    lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
    if status in NO_BODY:
        pass  # no framing header at all
    elif length is None:
        lines.append("Transfer-Encoding: chunked\r\n")
    elif length >= 0:
        lines.append(f"Content-Length: {length}\r\n")
    if not keep:
        lines.append("Connection: close\r\n")
    return encode_head(lines, len(lines))


class ServerConnection(FlowControl):
    """One client connection: parses requests, runs the handler for each in turn, writes its
    answer, and enforces the limits and deadlines described in the module's docstring."""

    def __init__(
        self,
        handler: Handler,
        on_error: ErrorHook,
        settings: ServerSettings,
        owner: Connections,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._owner = owner
        self._handler = handler
        self._on_error = on_error
        self._settings = settings
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._peer: tuple[bytes | None] | None = None
        self._remote: str | None = None
        # the request being parsed
        self._parsing: Request | None = None
        self._target = b""
        self._headers = RequestHeaders()
        self._fields = 0
        self._head_bytes = 0  # the target and the fields of the head being parsed
        self._raw_head = 0  # the bytes received while that head was unfinished
        self._in_head = True
        self._heads = 0  # heads completed so far
        self._payload = 0  # body bytes received on this connection
        self._framing = 0  # bytes of a chunked body since its last payload byte (trailers …)
        self._eof = False  # the client ended its side (half-close): answer, then close
        # answering
        self._queue: collections.deque[Request] = collections.deque()  # pipelined, waiting
        self._active: Request | None = None
        self._task: asyncio.Task[None] | None = None
        self._broken = False  # a malformed request: no further request on this connection
        self._closing = False  # the answer in progress ends the connection
        self._reading_paused = False
        # header deadline: one timer, moved lazily
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._graces = 0

    # identity of the caller

    def remote(self) -> str | None:
        if self._remote is None and self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            self._remote = peer[0] if isinstance(peer, tuple) else None
        return self._remote

    def peer_der(self) -> bytes | None:
        if self._peer is None:
            self._peer = (tls_peer_der(self.transport) if self.transport else None,)
        return self._peer[0]

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not an asyncio.Transport subclass, but has its methods
        self.transport = cast(asyncio.Transport, transport)
        if not self._owner.admit(self):
            self._broken = True  # refused: its address holds its share, all of them busy
            self.transport.abort()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return
        heads = self._heads
        parsing = self._parsing
        payload = self._payload
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._malformed(MalformedRequest("protocol upgrade or CONNECT"))
            return
        except Exception as exc:  # llhttp's error, or one raised by a callback below
            self._malformed(exc)
            return
        if self._in_head and heads == self._heads:  # all of it went into one unfinished head
            self._raw_head += len(data)  # (llhttp holds a field's pieces until it ends)
            if self._raw_head > self._settings.max_head_bytes:
                self._malformed(MalformedRequest("request head too large"))
                return
        elif parsing is not None and parsing is self._parsing and parsing.chunked:
            # a chunked body's framing (chunk extensions, trailer fields) carries no payload:
            # bounded like a head (llhttp and httptools would gather a trailer field whole)
            if self._payload != payload:
                self._framing = 0
            else:
                self._framing += len(data)
                if self._framing > self._settings.max_head_bytes:
                    self._malformed(MalformedRequest("chunk extensions or trailers too large"))
                    return
        if self._queue:
            if self._active is None:
                self._start_next()
            else:
                self._pause_reading()  # pipelined requests wait for their turn

    def eof_received(self) -> bool | None:
        """The client ended its side (a TCP half-close): requests already in are answered,
        then the connection closed; a body cut short is refused (it can still be told)."""
        self._eof = True
        req = self._parsing
        if req is not None:
            req._fail(ConnectionResetError("the client ended its side before its body"))
        self._parsing = None
        transport = self.transport
        if transport is None or transport.get_extra_info("sslcontext") is not None:
            return None  # TLS has no half-close: connection_lost follows
        if self._active is None and not self._queue:
            return None  # nothing to answer: close
        return True  # keep the sending side open for the answers (closed in _done)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._owner.forget(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lost = ConnectionResetError("the client closed the connection")
        for req in (self._active, self._parsing, *self._queue):
            if req is not None:
                req._fail(lost)
        self._queue.clear()
        self.drain_failed(lost)

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._in_head = True
        self._target = b""
        self._headers = RequestHeaders()
        self._fields = 0

    def on_url(self, url: bytes) -> None:
        self._target += url
        self._head_bytes += len(url)
        if len(self._target) > MAX_TARGET_BYTES:
            raise MalformedRequest("request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        """A header field, or a trailer field of a chunked body (counted, then dropped: the
        headers were checked and acted on before it came; RFC 9110 6.5.1)."""
        self._fields += 1
        self._head_bytes += len(name) + len(value) + 4
        if (
            len(value) > self._settings.max_field_bytes
            or len(name) > MAX_TARGET_BYTES
            or self._fields > MAX_FIELDS
            or self._head_bytes > self._settings.max_head_bytes
        ):
            raise MalformedRequest("header too large, or too many")
        if self._in_head:
            self._headers.add(
                name.decode("latin-1").lower(), value.decode("utf-8", "surrogateescape")
            )

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise MalformedRequest(f"HTTP/{version}")
        if parser.should_upgrade():
            raise MalformedRequest("protocol upgrade or CONNECT")
        headers = self._headers
        items = headers._items
        coding = items.get("transfer-encoding")
        if coding is not None and coding.lower() != "chunked":
            raise MalformedRequest("transfer coding other than chunked")
        if coding is not None and version == "1.0":  # RFC 9112 6.1: faulty framing
            raise MalformedRequest("Transfer-Encoding in an HTTP/1.0 request")
        host = items.get("host")
        if host is None:
            if version == "1.1":  # RFC 9112 3.2: 400 without a Host, with two, or a bad one
                raise MalformedRequest("HTTP/1.1 request without Host")
        elif not _HOST.fullmatch(host) or any(k == "host" for k, _ in headers.repeats):
            raise MalformedRequest("Host repeated or not a host")
        declared = items.get("content-length")
        req = Request(
            self,
            parser.get_method().decode("ascii"),
            self._target.decode("ascii"),
            version,
            headers,
            int(declared) if declared is not None else None,
            coding is not None,
            parser.should_keep_alive(),
        )
        if "expect" in items and version == "1.1":
            req.expect_continue = items["expect"].lower() == "100-continue"
        self._in_head = False
        self._head_bytes = self._raw_head = self._framing = 0
        self._heads += 1
        self._deadline = None  # the head came in time
        self._parsing = req
        self._queue.append(req)

    def on_body(self, body: bytes) -> None:
        self._payload += len(body)
        req = self._parsing
        if req is not None and req._push(body):
            self._pause_reading()

    def on_message_complete(self) -> None:
        req = self._parsing
        self._parsing = None
        self._in_head = True
        if req is not None:
            req._finish()
            if req.discarding and self.transport is not None:
                self.transport.close()  # the rest of an answered request's body is in

    # answering

    def _start_next(self) -> None:
        """Answer the next pipelined request, unless the previous answers are still waiting to
        be sent (a client that does not read them): then when they have drained."""
        if self._active is not None or not self._queue or self.transport is None:
            return
        if self._writing_paused:
            self._pause_reading()  # no more requests read meanwhile either
            return
        req = self._queue.popleft()
        self._active = req
        self._task = self.loop.create_task(self._respond(req))
        if self._reading_paused and not self._queue and req._buffered < LOW_WATER:
            self._resume_reading()

    async def _respond(self, req: Request) -> None:
        try:
            answer = await self._handler(req)
            if isinstance(answer, Response):
                self.send_whole(req, answer)
            elif not answer.prepared:
                raise RuntimeError("streamed answer never prepared")
            else:
                await answer.write_eof()
        except Exception as exc:
            if req.head_sent or self.transport is None or self.transport.is_closing():
                self.abort()  # an answer is half out (or nobody to answer): only a cut is left
            else:
                resp = self._on_error(self, 500, exc)
                resp.force_close = True
                self.send_whole(req, resp)
        finally:
            self._task = None
            self._done(req)

    def _done(self, req: Request) -> None:
        self._active = None
        transport = self.transport
        if transport is None:
            return
        if self._eof and not self._queue:  # half-closed: nothing more can come
            transport.close()
            return
        if self._closing or self._broken:
            if req.complete or self._broken:
                transport.close()
            else:
                req._discard()  # read and drop the rest, then close (or at the deadline)
                self._arm()
                self._resume_reading()
            return
        req._discard()  # an unread remainder of a complete body: nothing more to read
        self._arm()
        self._start_next()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._queue and self._active is None:
            self._start_next()

    def _keep(self, req: Request, force_close: bool) -> bool:
        return (
            req.keep_alive
            and req.complete
            and not self._broken
            and not self._eof
            and not force_close
        )

    def _write_head(self, req: Request, head: bytes, keep: bool) -> None:
        req.head_sent = True
        self._closing = not keep
        self.write(head)

    def send_whole(self, req: Request, resp: Response) -> None:
        headers = resp.headers
        body = resp.body
        if resp.status in NO_BODY:
            body = b""  # never a body (nor a length) with these
        if body and "Content-Type" not in headers:
            headers["Content-Type"] = "application/octet-stream"
        keep = self._keep(req, resp.force_close)
        if keep and req.version == "1.0":
            headers["Connection"] = "keep-alive"
        head = response_head(resp.status, headers, len(body), keep)
        if req.method == "HEAD" or not body:
            self._write_head(req, head, keep)
        elif len(body) <= 65536:
            self._write_head(req, head + body, keep)
        else:
            self._write_head(req, head, keep)
            self.write(body)

    def send_head(
        self, req: Request, status: int, headers: dict[str, str], length: int | None
    ) -> None:
        if req.head_sent:
            raise RuntimeError("answer already started")
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        keep = self._keep(req, length == -1)
        self._write_head(req, response_head(status, headers, length, keep), keep)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        transport.write(data)

    async def drain(self) -> None:
        if self.transport is None:
            raise ConnectionResetError("the client closed the connection")
        await self.drained()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close_when_idle(self) -> bool:
        """Close now unless a request is being answered (server shutdown); True if closed."""
        if self._active is not None or self.transport is None:
            return self.transport is None
        self.transport.close()
        return True

    # failures, flow control, deadline

    def _malformed(self, exc: BaseException) -> None:
        self._broken = True
        if self.transport is None:
            return
        self._pause_reading()
        error = exc if isinstance(exc, MalformedRequest) else MalformedRequest(str(exc))
        req = self._parsing
        if req is not None:
            req._fail(error)
        if self._active is not None:
            return  # the request in progress is answered first, then the connection closed
        if req is not None and req.head_sent:  # answered already (its body was being dropped)
            self.transport.close()
            return
        self._queue.clear()
        resp = self._on_error(self, 400, exc)
        self.write(response_head(resp.status, resp.headers, len(resp.body), False) + resp.body)
        self.transport.close()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self._broken:
            self._reading_paused = False
            self.transport.resume_reading()

    def body_drained(self) -> None:
        """The handler read the body below the low-water mark."""
        if self._reading_paused and not self._queue:
            self._resume_reading()

    def _arm(self, *, grace: bool = False) -> None:
        self._graces = self._graces + 1 if grace else 0
        self._deadline = self.loop.time() + self._settings.header_timeout
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        deadline = self._deadline
        transport = self.transport
        if deadline is None or transport is None:
            return
        if self.loop.time() < deadline:  # moved since this timer was set
            self._timer = self.loop.call_at(deadline, self._expire)
        elif self._active is not None:  # never while a request is being handled
            self._arm()
        elif transport.get_write_buffer_size() > 0:
            if self._graces < WRITE_GRACES:
                self._arm(grace=True)  # an answer still draining: a little more
            else:  # a caller that does not read: close() would wait for it forever
                transport.abort()
        else:
            transport.close()


class Connections:
    """A listener's protocol factory; knows its open connections (for shutdown) and keeps
    them within the listener's cap and each address's share of it."""

    def __init__(
        self,
        handler: Handler,
        on_error: ErrorHook,
        settings: ServerSettings,
        on_shed: Callable[[str], None] | None = None,
    ) -> None:
        self._handler = handler
        self._on_error = on_error
        self._settings = settings
        self.max_connections = settings.max_connections or _default_max_connections()
        self.max_per_address = settings.max_connections_per_address or max(
            1, self.max_connections // 2
        )
        self.open: dict[ServerConnection, None] = {}  # in the order they were opened
        self._by_address: dict[str, dict[ServerConnection, None]] = {}
        # called with "listener_full" or "per_address" for each connection closed or refused
        # to keep within the limits (the gateway counts them in its metrics)
        self._on_shed = on_shed

    def __len__(self) -> int:
        return len(self.open)

    def __call__(self) -> ServerConnection:
        if len(self.open) >= self.max_connections:
            self._make_room()
        return ServerConnection(self._handler, self._on_error, self._settings, self)

    def admit(self, conn: ServerConnection) -> bool:
        """Register a new connection; False (the caller drops it) when its address already
        holds its share and none of those connections can be closed to make room."""
        address = conn.remote() or ""
        same = self._by_address.get(address)
        if same is not None and len(same) >= self.max_per_address:
            self._shed("per_address")
            if not self._close_idle(same):
                return False
        self.open[conn] = None
        self._by_address.setdefault(address, {})[conn] = None
        return True

    def forget(self, conn: ServerConnection) -> None:
        if conn not in self.open:
            return  # refused, or closed to make room and forgotten then
        del self.open[conn]
        address = conn.remote() or ""
        same = self._by_address[address]
        del same[conn]
        if not same:
            del self._by_address[address]

    def _close_idle(self, conns: dict[ServerConnection, None]) -> bool:
        """Close the longest-open of ``conns`` not being answered (idle, or still sending its
        head); True if one was closed."""
        for conn in conns:
            if conn.close_when_idle():
                self.forget(conn)
                return True
        return False

    def _make_room(self) -> None:
        """The address holding the most connections gives up its longest-open one not being
        answered; failing that any address's; if every connection is busy, the oldest."""
        self._shed("listener_full")
        if self._by_address:
            heaviest = max(self._by_address.values(), key=len)
            if self._close_idle(heaviest):
                return
        if self._close_idle(self.open):
            return
        oldest = next(iter(self.open))
        oldest.abort()
        self.forget(oldest)

    def _shed(self, reason: str) -> None:
        if self._on_shed is not None:
            self._on_shed(reason)

    async def shutdown(self, timeout: float) -> None:
        """Close idle connections now, the others once answered, at most ``timeout`` later."""
        end = time.monotonic() + timeout
        while True:
            busy = [conn for conn in list(self.open) if not conn.close_when_idle()]
            if not busy or time.monotonic() >= end:
                break
            await asyncio.sleep(0.05)
        for conn in busy:
            conn.abort()
