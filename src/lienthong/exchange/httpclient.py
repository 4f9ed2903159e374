"""A lean HTTP/1.1 client for the gateway's hot path: keep-alive pools of asyncio protocols
(:mod:`lienthong.exchange.httpconn`), answers parsed by llhttp (``httptools``), bodies bounded
or streamed with back-pressure.

Measured against aiohttp's ``ClientSession`` it does far less per request (no request,
connector, timer-context and stream-reader objects, no URL object): see docs/exchange.md. It
does only what the gateway needs: ``GET/POST/PUT/PATCH/DELETE`` with ``bytes`` or a streamed
(chunked) body, TLS with the caller's context, a connect timeout (TCP and TLS handshake) and a
read timeout (between two reads while an answer is awaited or streamed), and connection errors
as :class:`ClientError` subclasses that the callers map to the uniform LT codes.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping

from lienthong.exchange.httpconn import (
    BadResponse,
    ClientError,
    ClientTimeout,
    ConnectFailed,
    Connection,
    Disconnected,
    Headers,
    encode_head,
)

__all__ = [
    "BadResponse",
    "Client",
    "ClientError",
    "ClientTimeout",
    "ConnectFailed",
    "Disconnected",
    "Headers",
    "Response",
]


async def _send_stream(conn: Connection, source: AsyncIterator[bytes]) -> None:
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
        conn: Connection,
        writer: asyncio.Task[None] | None,
    ) -> None:
        self._client = client
        self._key = key
        self._conn: Connection | None = conn
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


def host_header(scheme: str, host: str, port: int) -> str:
    """The ``Host`` value: an IPv6 literal bracketed (RFC 3986), the port unless default."""
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"


def _head(method: str, target: str, host: str, headers: Mapping[str, str], body: Body) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
    if not isinstance(body, bytes):
        lines.append("Transfer-Encoding: chunked\r\n")
    elif body or method not in _NO_BODY_METHODS:
        lines.append(f"Content-Length: {len(body)}\r\n")
    return encode_head(lines, len(lines) + 1)  # the first item holds two line ends


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
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}

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
        head = _head(method, target, host_header(scheme, host, port), headers, body)
        key = (scheme, host, port)
        conn = await self._acquire(key)
        if verify_peer is not None:
            try:
                verify_peer(conn.peer_der())
            except BaseException:
                conn.close()
                raise
        conn.begin()
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

    async def _acquire(self, key: tuple[str, str, int]) -> Connection:
        idle = self._idle.get(key)
        if idle:
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                if not conn.closed and now - conn.idle_since < self._keepalive_s:
                    return conn
                conn.close()
        return await self._connect(key)

    def _put(self, key: tuple[str, str, int], conn: Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(key, []).append(conn)

    async def _connect(self, key: tuple[str, str, int]) -> Connection:
        scheme, host, port = key
        ctx = self._ssl if scheme == "https" else None
        loop = asyncio.get_running_loop()
        dialing = False  # past the pool's slot: a timeout now is the link not answering
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._slots.locked():
                    self._close_idle()
                await self._slots.acquire()
                dialing = True
                try:
                    _, conn = await loop.create_connection(
                        lambda: Connection(self._read_timeout, self._slots.release),
                        host,
                        port,
                        ssl=ctx,
                        server_hostname=host if ctx is not None else None,
                    )
                except BaseException:
                    self._slots.release()
                    raise
        except TimeoutError as exc:
            if exc.errno is not None or dialing:
                # the kernel's ETIMEDOUT, or no answer to the connection (TCP or TLS) within
                # the connect timeout: this link is down (nothing was sent: the caller may
                # use the second link); waiting for a free slot of our own pool is not
                raise ConnectFailed(f"cannot connect to {host}:{port}: no answer in time") from exc
            raise ClientTimeout(f"no free connection to {host}:{port} in time") from exc
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
