"""One HTTP/1.1 client connection as an asyncio protocol: the answer parsed by llhttp
(``httptools``), its headers bounded, its body buffered with back-pressure on the socket; and
the client's errors. Used by :mod:`lienthong.exchange.httpclient`, which pools these.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import httptools

MAX_HEAD_BYTES = 64 * 1024  # a response's status line and headers, together
MAX_FIELD_BYTES = 8190  # one header value (aiohttp's default limit)
HIGH_WATER = 1 << 20  # unread body held before reading from the socket pauses
LOW_WATER = 1 << 18  # ... and resumes


class ClientError(ConnectionError):
    """A request failed at the connection level (the callers' ``LT.UNAVAILABLE``)."""


class ConnectFailed(ClientError):
    """No connection could be opened (refused, unreachable, TLS handshake failed)."""


class Disconnected(ClientError):
    """The server closed the connection before its answer was complete."""


class BadResponse(ClientError):
    """The answer is not well-formed HTTP/1.1 or exceeds the header limits."""


class ClientTimeout(ClientError, TimeoutError):
    """No data within the read timeout, or no connection within the connect timeout."""


def encode_head(lines: list[str], breaks: int) -> bytes:
    """``lines`` (holding ``breaks`` CRLF line ends between them) and the empty line that ends
    a head, encoded; a CR, LF or NUL inside a line (header injection) is refused."""
    text = "".join(lines)
    if text.count("\r") != breaks or text.count("\n") != breaks or "\x00" in text:
        raise ValueError("CR, LF or NUL in the start line or a header")
    return (text + "\r\n").encode()


def tls_peer_der(transport: asyncio.BaseTransport) -> bytes | None:
    """The DER certificate the TLS peer on ``transport`` presented (None without TLS)."""
    ssl_obj = transport.get_extra_info("ssl_object")
    return ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None


class Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively (names kept in lower case); of a
    repeated header the first value counts, as with aiohttp's ``CIMultiDict.get``."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[str, str] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class FlowControl(asyncio.Protocol):
    """The transport's write flow control, shared by the client's and the server's
    connections: :meth:`drained` waits while the transport's write buffer is above its mark."""

    _writing_paused = False
    _drain_waiter: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    def drain_failed(self, exc: BaseException) -> None:
        """The connection is gone: a writer waiting to drain gets ``exc``."""
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_exception(exc)

    async def drained(self) -> None:
        if self._writing_paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None


class Connection(FlowControl):
    """One keep-alive connection: sends a request, parses its answer, buffers its body."""

    def __init__(self, read_timeout: float, on_lost: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._read_timeout = read_timeout
        self._on_lost = on_lost
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._peer_der: bytes | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0  # of the read in progress
        self._timer: asyncio.TimerHandle | None = None
        self._reading_paused = False
        self.begin()
        self._expecting = False

    def begin(self) -> None:
        self._expecting = True
        self._in_head = True
        self._interim = False
        self._head_bytes = 0
        self._field_bytes = 0
        self.headers = Headers()
        self.status = 0
        self.content_length: int | None = None
        self._until_eof = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._bounded = False  # read whole (declared length): never pause reading
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None

    def peer_der(self) -> bytes | None:
        """The DER certificate the TLS peer presented (None without TLS)."""
        if self._peer_der is None and self.transport is not None:
            self._peer_der = tls_peer_der(self.transport)
        return self._peer_der

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not an asyncio.Transport subclass, but has its methods
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._expecting:
            self.fail(BadResponse("data from the server without a request"))
            return
        try:
            self._parser.feed_data(data)
        except Exception as exc:  # llhttp's error, or one raised by a callback below
            self.fail(exc if isinstance(exc, ClientError) else BadResponse(f"bad answer: {exc}"))
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self.fail(BadResponse("answer headers too large"))

    def eof_received(self) -> bool | None:
        return None  # close: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._expecting and self.error is None:
            if self._until_eof and not self._in_head:
                self.complete = True  # a body delimited by the end of the connection
                self._expecting = False
            else:
                self.error = Disconnected("server closed the connection before answering")
        self._wake()
        self.drain_failed(Disconnected("server closed the connection"))
        self._on_lost()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._field_bytes += len(name) + len(value)
        if len(value) > MAX_FIELD_BYTES or self._field_bytes > MAX_HEAD_BYTES:
            raise BadResponse("answer header too large")
        key = name.decode("latin-1").lower()
        items = self.headers._items
        if key not in items:
            items[key] = value.decode("utf-8", "surrogateescape")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue …): the final one follows
            self._interim = True
            self.headers = Headers()
            self._field_bytes = 0
            return
        self.status = status
        self._in_head = False
        items = self.headers._items
        declared = items.get("content-length")
        self.content_length = int(declared) if declared is not None else None
        self._until_eof = declared is None and "transfer-encoding" not in items
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        over = self._buffered > HIGH_WATER and not self._bounded
        if over and not self._reading_paused and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._expecting = False
        self._wake()

    # the request side

    def send(self, data: bytes) -> None:
        if self.transport is None:
            raise Disconnected("connection closed")
        self.transport.write(data)

    async def drain(self) -> None:
        if self.error is not None:
            raise self.error
        if self.transport is None:
            raise Disconnected("connection closed")
        await self.drained()

    def fail(self, exc: BaseException) -> None:
        """Stop this exchange with ``exc`` (raised to whoever waits) and drop the connection."""
        if self.error is None:
            self.error = exc
        self._expecting = False
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def close(self) -> None:
        self._expecting = False
        if self.transport is not None:
            self.transport.close()

    # the answer side

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _time_out(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nothing waits: the timer lapses until the next wait
        if self._loop.time() < self._deadline:  # moved by a later wait
            self._timer = self._loop.call_at(self._deadline, self._time_out)
        else:
            waiter.set_exception(ClientTimeout("no data from the server within the read timeout"))

    async def _progress(self) -> None:
        """Until the parser moves on (or fails), at most the read timeout. One timer per
        connection, moved lazily: not a timer per wait."""
        waiter = self._loop.create_future()
        self._waiter = waiter
        self._deadline = self._loop.time() + self._read_timeout
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._time_out)
        try:
            await waiter
        finally:
            self._waiter = None

    async def read_head(self) -> None:
        while self._in_head:
            if self.error is not None:
                raise self.error
            await self._progress()
        if self.error is not None:
            raise self.error

    async def read_all(self) -> bytes:
        self._bounded = True
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        while not self.complete:
            if self.error is not None:
                raise self.error
            await self._progress()
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return data

    async def next_chunk(self) -> bytes:
        while not self._chunks:
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            await self._progress()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._reading_paused and self._buffered < LOW_WATER and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunk
