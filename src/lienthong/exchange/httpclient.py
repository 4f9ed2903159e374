"""A lean HTTP/1.1 client for the gateway's hot path: keep-alive pools of asyncio protocols,
responses parsed by llhttp (``httptools``), bodies bounded or streamed with back-pressure.

Measured against aiohttp's ``ClientSession`` it does far less per request (no request,
connector, timer-context and stream-reader objects, no URL object): see docs/exchange.md. It
does only what the gateway needs: ``GET/POST/PUT/PATCH/DELETE`` with ``bytes`` or a streamed
(chunked) body, TLS with the caller's context, a connect timeout (TCP and TLS handshake) and a
read timeout (between two reads while an answer is awaited or streamed), and connection errors
as :class:`ClientError` subclasses that the callers map to the uniform LT codes.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, cast

import httptools

MAX_HEAD_BYTES = 64 * 1024  # a response's status line and headers, together
MAX_FIELD_BYTES = 8190  # one header value (aiohttp's default limit)
_HIGH_WATER = 1 << 20  # unread response body held before reading from the socket pauses
_LOW_WATER = 1 << 18


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


class _Connection(asyncio.Protocol):
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
        self._drain_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._reading_paused = False
        self._begin()
        self._expecting = False

    def _begin(self) -> None:
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
            ssl_obj = self.transport.get_extra_info("ssl_object")
            self._peer_der = ssl_obj.getpeercert(binary_form=True) if ssl_obj else None
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
        if self._expecting and self.error is None:
            if self._until_eof and not self._in_head:
                self.complete = True  # a body delimited by the end of the connection
                self._expecting = False
            else:
                self.error = Disconnected("server closed the connection before answering")
        self._wake()
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_exception(Disconnected("server closed the connection"))
        self._on_lost()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

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
        over = self._buffered > _HIGH_WATER and not self._bounded
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
        if self._writing_paused:
            self._drain_waiter = self._loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

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

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(ClientTimeout("no data from the server within the read timeout"))

    async def _progress(self) -> None:
        """Until the parser moves on (or fails), at most the read timeout."""
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(self._read_timeout, self._time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
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
        if self._reading_paused and self._buffered < _LOW_WATER and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunk


async def _send_stream(conn: _Connection, source: AsyncIterator[bytes]) -> None:
    """Write ``source`` with chunked transfer coding; a failure of the source (a refusal by
    ``limited``/``paced`` …) stops the exchange with that very exception."""
    try:
        async for chunk in source:
            if chunk:
                conn.send(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                await conn.drain()
        conn.send(b"0\r\n\r\n")
    except Exception as exc:
        conn.fail(exc)


class Response:
    """The status and headers of an answer; its body read whole or streamed. Call
    :meth:`release` (keeps a fully read keep-alive connection) or :meth:`close` once done."""

    __slots__ = ("_client", "_conn", "_key", "_writer", "content_length", "headers", "status")

    def __init__(
        self,
        client: Client,
        key: tuple[str, str, int],
        conn: _Connection,
        writer: asyncio.Task[None] | None,
    ) -> None:
        self._client = client
        self._key = key
        self._conn: _Connection | None = conn
        self._writer = writer
        self.status = conn.status
        self.headers = conn.headers
        self.content_length = conn.content_length

    def peer_der(self) -> bytes | None:
        return self._conn.peer_der() if self._conn is not None else None

    async def read(self) -> bytes:
        """The whole body (callers use it when the declared length is within their limit)."""
        if self._conn is None:
            raise Disconnected("response already released")
        return await self._conn.read_all()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it comes, with back-pressure on the connection."""
        conn = self._conn
        if conn is None:
            raise Disconnected("response already released")
        while chunk := await conn.next_chunk():
            yield chunk

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()  # answered before the request body was sent: not reusable
            conn.close()
        elif conn.complete and conn.keep_alive and not conn.closed and conn.error is None:
            self._client._put(self._key, conn)
        else:
            conn.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._writer is not None:
                self._writer.cancel()
            conn.close()


Body = bytes | AsyncIterator[bytes]
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


def _head(method: str, target: str, host: str, headers: Mapping[str, str], body: Body) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
    if not isinstance(body, bytes):
        lines.append("Transfer-Encoding: chunked\r\n")
    elif body or method not in _NO_BODY_METHODS:
        lines.append(f"Content-Length: {len(body)}\r\n")
    text = "".join(lines)
    breaks = len(lines) + 1  # the first item holds two line ends
    if text.count("\r") != breaks or text.count("\n") != breaks or "\x00" in text:
        raise ValueError("CR, LF or NUL in the request line or a header")
    return (text + "\r\n").encode()


class Client:
    """Keep-alive connection pools keyed by (scheme, host, port); ``https`` uses ``ssl_ctx``."""

    def __init__(
        self,
        ssl_ctx: ssl.SSLContext | None,
        *,
        connect_timeout: float,
        read_timeout: float,
        limit: int = 512,
        keepalive_s: float = 30.0,
    ) -> None:
        self._ssl = ssl_ctx
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keepalive_s = keepalive_s
        self._slots = asyncio.Semaphore(limit)  # open connections
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}

    async def request(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int,
        target: str,
        headers: Mapping[str, str],
        body: Body,
        *,
        verify_peer: Callable[[bytes | None], None] | None = None,
    ) -> Response:
        """Send one request; return once the answer's headers are in.

        ``target`` goes on the request line exactly as given (as signed). ``verify_peer``
        sees the TLS peer's certificate before anything is written to the connection."""
        default_port = 443 if scheme == "https" else 80
        head = _head(
            method, target, host if port == default_port else f"{host}:{port}", headers, body
        )
        key = (scheme, host, port)
        conn = await self._acquire(key)
        if verify_peer is not None:
            try:
                verify_peer(conn.peer_der())
            except BaseException:
                conn.close()
                raise
        conn._begin()
        writer: asyncio.Task[None] | None = None
        if isinstance(body, bytes):
            conn.send(head + body)
        else:
            conn.send(head)
            writer = asyncio.create_task(_send_stream(conn, body))
        try:
            await conn.read_head()
        except BaseException:
            if writer is not None:
                writer.cancel()
            conn.close()
            raise
        return Response(self, key, conn, writer)

    async def _acquire(self, key: tuple[str, str, int]) -> _Connection:
        idle = self._idle.get(key)
        if idle:
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                if not conn.closed and now - conn.idle_since < self._keepalive_s:
                    return conn
                conn.close()
        return await self._connect(key)

    def _put(self, key: tuple[str, str, int], conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(key, []).append(conn)

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        ctx = self._ssl if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._slots.locked():
                    self._close_idle()
                await self._slots.acquire()
                try:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self._read_timeout, self._slots.release),
                        host,
                        port,
                        ssl=ctx,
                        server_hostname=host if ctx is not None else None,
                    )
                except BaseException:
                    self._slots.release()
                    raise
        except TimeoutError as exc:
            if exc.errno is not None:  # the kernel's ETIMEDOUT: this link is down
                raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
            raise ClientTimeout(f"no connection to {host}:{port} in time") from exc
        except OSError as exc:  # refused, unreachable, TLS handshake or certificate failure
            raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
        return conn

    def _close_idle(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
            idle.clear()

    async def close(self) -> None:
        self._close_idle()
