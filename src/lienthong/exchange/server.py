"""The gateway process: aiohttp apps on the internal (plain HTTP, the agency's own systems),
peer (mutual TLS 1.3, other gateways) and optional admin listeners.

Errors become one uniform code (``X-LT-Error`` and a JSON body ``{"error": code}``); the detail
goes to the local log. A connection must finish its TLS handshake and deliver its first
request headers within ``header_timeout_s``, and every later request on a keep-alive
connection its headers within as long after the previous answer, or it is closed (slow-loris
defence).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import aiohttp.web_response
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from lienthong.errors import IntegrityError, LienthongError
from lienthong.exchange.config import GatewayConfig, Listen
from lienthong.exchange.envelope import refusal_token
from lienthong.exchange.exchange_log import Exchange, Metrics
from lienthong.exchange.health import health_handler, metrics_handler
from lienthong.exchange.inbound import handle_peer_call
from lienthong.exchange.node import Node, build_node, log, tls_contexts
from lienthong.exchange.outbound import handle_client_call
from lienthong.exchange.protocol import H_ERROR, H_REFUSAL, ErrorCode, Refused, error_body
from lienthong.exchange.transport import Sessions, make_sessions, peer_der
from lienthong.trust.secrets import resolve_secret

Handler = Callable[[Node, Sessions, web.BaseRequest, Exchange], Awaitable[web.StreamResponse]]
Route = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def refusal(code: ErrorCode) -> web.Response:
    return web.Response(
        status=code.http_status,
        body=error_body(code),
        headers={H_ERROR: code.value, "Content-Type": "application/json"},
    )


def code_of(exc: BaseException) -> ErrorCode:
    """The uniform code for an exception (the only thing a peer learns)."""
    if isinstance(exc, Refused):
        return exc.lt_code
    if isinstance(exc, IntegrityError):
        return ErrorCode.BAD_SIGNATURE
    if isinstance(exc, TimeoutError):
        return ErrorCode.TIMEOUT
    if isinstance(exc, aiohttp.ClientError | ConnectionError):
        return ErrorCode.UNAVAILABLE
    if isinstance(exc, LienthongError) and exc.http_status == 400:
        return ErrorCode.BAD_REQUEST
    return ErrorCode.INTERNAL


def verify_fresh_configuration(node: Node, now: float) -> None:
    """Past its expiry the directory is still trusted for ``config_grace_s`` (health warns);
    then the node fails closed rather than act on stale access rights and certificates."""
    expires = node.directory.expires_at
    if expires is not None and now > expires + node.cfg.limits.config_grace_s:
        raise Refused(ErrorCode.UNAVAILABLE, "federation configuration expired", expired_at=expires)


def exchange_route(
    node: Node, sessions: Sessions, metrics: Metrics, role: str, handler: Handler
) -> Route:
    async def route(request: web.BaseRequest) -> web.StreamResponse:
        ex = Exchange(role=role)
        try:
            verify_fresh_configuration(node, time.time())
            node.in_flight += 1  # the message log commits at once when this is the only one
            try:
                async with asyncio.timeout(node.cfg.limits.upstream_timeout_s + 5):
                    resp = await handler(node, sessions, request, ex)
            finally:
                node.in_flight -= 1
        except Exception as exc:
            code = code_of(exc)
            if code is ErrorCode.INTERNAL:
                log.exception("%s internal error on %s", node.name, ex.message_id)
            else:
                log.info(  # %r: peer-chosen text never puts a raw CR/LF into the log
                    "%s refused %r [%s]: %r %r",
                    node.name,
                    ex.message_id,
                    code.value,
                    str(exc),
                    getattr(exc, "details", ""),
                )
            ex.finish(
                node,
                metrics,
                status=code.http_status,
                result="refused",
                code=code.value,
                error=exc,
            )
            if ex.streaming:  # headers are out: the only honest signal left is a cut stream
                if request.transport is not None:
                    request.transport.abort()
                raise ConnectionResetError("stream aborted") from exc
            answer = refusal(code)
            if ex.req_hash:  # peer role, request token read: sign the refusal, bound to it
                answer.headers[H_REFUSAL] = refusal_token(
                    node.name, ex.req_hash, code.value, time.time(), node.receipt_signer
                )
            return answer
        ex.finish(node, metrics, status=resp.status, result="ok", code=None)
        return resp

    return route


_ADMIN_METHODS = ("GET", "HEAD")


def dispatcher(exchange: Route | None, admin: dict[str, Route]) -> Route:
    """One listener's whole routing: ``/r1/…`` to the exchange handler, the admin paths
    (GET/HEAD), everything else ``LT.BAD_REQUEST``. Measured: aiohttp's Application and URL
    dispatcher cost ~5 % of a gateway's CPU per exchange for this two-way choice."""

    async def route(request: web.BaseRequest) -> web.StreamResponse:
        if request.version[0] != 1:  # "HTTP/2.0" in an HTTP/1 request line: not ours to guess
            return refusal(ErrorCode.BAD_REQUEST)
        raw = request.raw_path
        if exchange is not None and raw.startswith("/r1/"):
            return await exchange(request)
        route = admin.get(raw.partition("?")[0])
        if route is not None and request.method in _ADMIN_METHODS:
            return await route(request)
        return refusal(ErrorCode.BAD_REQUEST)

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        deadline = _DEADLINES.get(request.transport)
        if deadline is None:
            return await route(request)
        deadline.busy += 1
        try:
            return await route(request)
        finally:
            deadline.busy -= 1
            deadline.rearm()  # the next request on this keep-alive connection: same deadline

    return handle


ErrorHook = Callable[[web.BaseRequest, ErrorCode, BaseException | None], None]
SERVER_NAME = "lienthong"  # the Server header: no framework or Python version for a prober


class _UniformErrors(RequestHandler):
    """aiohttp's protocol, but its own errors (HTTP parse errors: CL+TE, obs-fold, bad bytes,
    oversized headers …) answer like every refusal — ``LT.BAD_REQUEST`` with ``X-LT-Error``,
    nothing of the request echoed — and are recorded (monitor, security event)."""

    on_error: ErrorHook | None = None

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer is half out: only a cut is left
            raise ConnectionError("response already started")
        code = (
            ErrorCode.TOO_LARGE
            if status == 413
            else ErrorCode.BAD_REQUEST
            if status < 500
            else ErrorCode.INTERNAL
        )
        log.info("HTTP error %d from %s: %r", status, request.remote, exc)
        if self.on_error is not None:
            try:
                self.on_error(request, code, exc)
            except Exception:  # the refusal must still go out
                log.exception("cannot record an HTTP error")
        resp = refusal(code)
        resp.force_close()
        return resp


class _Server(web.Server):
    def __init__(self, handler: Route, on_error: ErrorHook, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._on_error = on_error

    def __call__(self) -> RequestHandler:
        proto = _UniformErrors(self, loop=self._loop, **self._kwargs)
        proto.on_error = self._on_error
        return proto


def _error_hook(node: Node, metrics: Metrics, role: str) -> ErrorHook:
    def hook(request: web.BaseRequest, code: ErrorCode, exc: BaseException | None) -> None:
        ex = Exchange(role=role)
        reason = Refused(code, "malformed HTTP request", error=type(exc).__name__)
        with contextlib.suppress(Exception):
            reason.details["peer"] = _tls_peer(node, request)
        ex.finish(
            node, metrics, status=code.http_status, result="refused", code=code.value, error=reason
        )

    return hook


def _tls_peer(node: Node, request: web.BaseRequest) -> str | None:
    der = peer_der(request.transport)
    return node.certs.identity_of_der(der) if der is not None else None


def build_servers(node: Node, sessions: Sessions, metrics: Metrics) -> dict[str, web.Server]:
    """The aiohttp low-level servers (protocol factories) of each configured listener."""
    handler_args: dict[str, Any] = {
        "max_field_size": node.cfg.limits.max_header_bytes,
        "keepalive_timeout": 30.0,
        "read_bufsize": 1 << 18,  # fewer, larger reads for streamed bodies
        "access_log": None,
    }
    admin_routes: dict[str, Route] = {
        "/health": health_handler(node),
        "/metrics": metrics_handler(metrics),
    }
    aiohttp.web_response.SERVER_SOFTWARE = SERVER_NAME  # read at each response's prepare
    peer = exchange_route(node, sessions, metrics, "peer", handle_peer_call)
    servers: dict[str, web.Server] = {
        "peer": _Server(dispatcher(peer, {}), _error_hook(node, metrics, "peer"), **handler_args)
    }
    if node.cfg.internal is not None:
        client = exchange_route(node, sessions, metrics, "client", handle_client_call)
        servers["internal"] = _Server(
            dispatcher(client, admin_routes), _error_hook(node, metrics, "client"), **handler_args
        )
    if node.cfg.admin is not None:
        servers["admin"] = _Server(
            dispatcher(None, admin_routes), _error_hook(node, metrics, "admin"), **handler_args
        )
    return servers


_WRITE_GRACES = 4  # a caller that does not read its answer is cut after 5 header deadlines
_DEADLINES: dict[Any, HeaderDeadline] = {}  # transport -> its deadline (open connections)


class HeaderDeadline(asyncio.Protocol):
    """Wraps a protocol; closes the connection unless each request's headers end in time.

    Armed when the connection opens and re-armed by the dispatcher when a request has been
    handled (keep-alive: the next request gets the same deadline). It never cuts a connection
    while a request is being handled or a response is still being written; those have their
    own deadlines (idle and upstream timeouts)."""

    def __init__(self, inner: Any, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout
        self._handle: asyncio.TimerHandle | None = None
        self._tail = b""
        self._transport: asyncio.BaseTransport | None = None
        self.busy = 0
        self._graces = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        _DEADLINES[transport] = self
        self.rearm()
        self._inner.connection_made(transport)

    def rearm(self, *, grace: bool = False) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._graces = self._graces + 1 if grace else 0
        if self._handle is not None:
            self._handle.cancel()
        self._tail = b""
        self._handle = asyncio.get_running_loop().call_later(self._timeout, self._expire)

    def _expire(self) -> None:
        self._handle = None
        transport = self._transport
        if transport is None:
            return
        writing = isinstance(transport, asyncio.WriteTransport) and (
            transport.get_write_buffer_size() > 0
        )
        if self.busy:
            self.rearm()
        elif writing and self._graces < _WRITE_GRACES:  # an answer still draining: a little more
            self.rearm(grace=True)
        else:
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self._handle is not None:
            window = self._tail + data[:8192]
            if b"\r\n\r\n" in window:
                self._handle.cancel()
                self._handle = None
            self._tail = window[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        _DEADLINES.pop(self._transport, None)
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


async def _listen(
    runner: web.ServerRunner, listen: Listen, ssl_ctx: Any, timeout: float
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    server = runner.server
    assert server is not None
    return await loop.create_server(
        lambda: HeaderDeadline(server(), timeout),
        listen.host,
        listen.port,
        ssl=ssl_ctx,
        ssl_handshake_timeout=timeout if ssl_ctx is not None else None,
        reuse_address=True,
        backlog=1024,
    )


def bound_port(server: asyncio.Server) -> int:
    sock: socket.socket = server.sockets[0]
    port: int = sock.getsockname()[1]
    return port


async def serve(
    cfg: GatewayConfig, *, ready: Callable[[dict[str, int]], None] | None = None
) -> None:
    """Run the gateway until SIGTERM/SIGINT; call ``ready`` with the bound ports."""
    node = build_node(cfg)
    server_ctx, client_ctx = tls_contexts(cfg, resolve_secret(cfg.passphrase))
    lim = cfg.limits
    sessions = make_sessions(client_ctx, lim.connect_timeout_s, lim.upstream_timeout_s)
    metrics = Metrics()
    runners: list[web.ServerRunner] = []
    servers: list[asyncio.Server] = []
    ports: dict[str, int] = {}
    listens = {"peer": cfg.peer, "internal": cfg.internal, "admin": cfg.admin}
    for name, web_server in build_servers(node, sessions, metrics).items():
        runner = web.ServerRunner(web_server)
        await runner.setup()
        runners.append(runner)
        listen = listens[name]
        assert listen is not None
        srv = await _listen(
            runner, listen, server_ctx if name == "peer" else None, lim.header_timeout_s
        )
        servers.append(srv)
        ports[name] = bound_port(srv)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    flusher = asyncio.create_task(_flush_loop(node, stop))
    # Keys, certificates, directory and imported modules live as long as the process: move
    # them out of the collector's generations so full collections only walk per-call garbage
    # (measured: the collector took 1.5-2.5 % of a gateway's CPU under load).
    gc.collect()
    gc.freeze()
    if ready is not None:
        ready(ports)
    await stop.wait()
    for srv in servers:
        srv.close()
    for runner in runners:
        await runner.cleanup()
    await sessions.close()
    flusher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flusher
    node.close()  # monitor, and the message log: final signed checkpoint, WAL folded in


async def _flush_loop(node: Node, stop: asyncio.Event) -> None:
    """Flush monitoring records twice a second; re-read the federation view every reload_s."""
    last_reload = time.time()
    while not stop.is_set():
        await asyncio.sleep(0.5)
        node.monitor.flush()
        now = time.time()
        if now - last_reload >= node.cfg.limits.reload_s:
            last_reload = now
            await asyncio.get_running_loop().run_in_executor(None, node.reload, now)
