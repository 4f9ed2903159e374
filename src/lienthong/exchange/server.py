"""The gateway process: the internal (plain HTTP, the agency's own systems), peer (mutual TLS
1.3, other gateways) and optional admin listeners, served by the gateway's own HTTP/1.1
server (:mod:`lienthong.exchange.httpserver`).

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
import resource
import signal
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from lienthong.errors import IntegrityError, LienthongError
from lienthong.exchange.config import GatewayConfig, Listen
from lienthong.exchange.envelope import refusal_token
from lienthong.exchange.exchange_log import Exchange, Metrics
from lienthong.exchange.health import health_handler, metrics_handler
from lienthong.exchange.httpserver import (
    Answer,
    Connections,
    MalformedRequest,
    Request,
    Response,
    ServerConnection,
    ServerSettings,
)
from lienthong.exchange.inbound import handle_peer_call
from lienthong.exchange.lifecycle import OwnCertificates
from lienthong.exchange.monitor import PRUNE_ROWS
from lienthong.exchange.node import Node, build_node, log, tls_contexts
from lienthong.exchange.outbound import handle_client_call
from lienthong.exchange.protocol import H_ERROR, H_REFUSAL, ErrorCode, Refused, error_body
from lienthong.exchange.transport import Sessions, make_sessions
from lienthong.trust.secrets import resolve_secret

Handler = Callable[[Node, Sessions, Request, Exchange], Awaitable[Answer]]
Route = Callable[[Request], Awaitable[Answer]]


def refusal(code: ErrorCode) -> Response:
    return Response(
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
    if isinstance(exc, ConnectionError):
        return ErrorCode.UNAVAILABLE
    if isinstance(exc, MalformedRequest):  # a request body's framing broken mid-way
        return ErrorCode.BAD_REQUEST
    if isinstance(exc, LienthongError) and exc.http_status == 400:
        return ErrorCode.BAD_REQUEST
    return ErrorCode.INTERNAL


def verify_fresh_configuration(node: Node, now: float) -> None:
    """Past its expiry the directory is still trusted for ``config_grace_s`` (health warns);
    then the node fails closed rather than act on stale access rights and certificates."""
    expires = node.directory.expires_at
    if expires is not None and now > expires + node.cfg.limits.config_grace_s:
        raise Refused(ErrorCode.UNAVAILABLE, "federation configuration expired", expired_at=expires)


class Watchdog:
    """The deadlines of the exchanges in progress, swept twice a second: a handler past its
    deadline is cancelled and answers ``LT.TIMEOUT``, as under ``asyncio.timeout`` — without
    a timer per exchange (measured: 3.6 µs per exchange for ``asyncio.timeout`` on uvloop,
    0.3 µs for this)."""

    def __init__(self) -> None:
        self._due: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()

    def watch(self, task: asyncio.Task[Any], deadline: float) -> None:
        self._due[task] = deadline

    def release(self, task: asyncio.Task[Any]) -> bool:
        """Stop watching ``task``; True if the watchdog cancelled it."""
        self._due.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def sweep(self, now: float) -> None:
        for task, due in list(self._due.items()):
            if now >= due:
                del self._due[task]
                self._expired.add(task)
                task.cancel()


async def _run_within(watchdog: Watchdog, limit: float, call: Awaitable[Answer]) -> Answer:
    """``await call``, cancelled by ``watchdog`` past ``limit`` seconds: ``TimeoutError``."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    watchdog.watch(task, loop.time() + limit)
    try:
        return await call
    except asyncio.CancelledError:
        if watchdog.release(task):
            task.uncancel()
            raise TimeoutError("exchange took longer than its deadline") from None
        raise
    finally:
        watchdog.release(task)


def exchange_route(
    node: Node,
    sessions: Sessions,
    metrics: Metrics,
    role: str,
    handler: Handler,
    watchdog: Watchdog,
) -> Route:
    async def route(request: Request) -> Answer:
        ex = Exchange(role=role)
        try:
            verify_fresh_configuration(node, time.time())
            node.in_flight += 1  # the message log commits at once when this is the only one
            try:
                resp = await _run_within(
                    watchdog,
                    node.cfg.limits.upstream_timeout_s + 5,
                    handler(node, sessions, request, ex),
                )
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
            ex.refused(node, metrics, code, exc)
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
    (GET/HEAD), everything else ``LT.BAD_REQUEST``."""

    async def route(request: Request) -> Answer:
        raw = request.raw_path
        if exchange is not None and raw.startswith("/r1/"):
            return await exchange(request)
        route = admin.get(raw.partition("?")[0])
        if route is not None and request.method in _ADMIN_METHODS:
            return await route(request)
        return refusal(ErrorCode.BAD_REQUEST)

    return route


ErrorHook = Callable[[ServerConnection, int, BaseException], Response]


def _error_hook(node: Node, metrics: Metrics, role: str) -> ErrorHook:
    """The server's own errors (HTTP parse errors: CL+TE, obs-fold, bad bytes, oversized
    headers …; a handler's unexpected failure) answer like every refusal — ``X-LT-Error``,
    nothing of the request echoed — and are recorded (monitor, security event)."""

    def hook(conn: ServerConnection, status: int, exc: BaseException) -> Response:
        code = ErrorCode.BAD_REQUEST if status < 500 else ErrorCode.INTERNAL
        if code is ErrorCode.INTERNAL:
            log.error("%s internal error", node.name, exc_info=exc)
        else:
            log.info("HTTP error %d from %s: %r", status, conn.remote(), exc)
        try:
            ex = Exchange(role=role)
            reason = Refused(code, "malformed HTTP request", error=type(exc).__name__)
            with contextlib.suppress(Exception):
                der = conn.peer_der()
                reason.details["peer"] = node.certs.identity_of_der(der) if der else None
            ex.refused(node, metrics, code, reason)
        except Exception:  # the refusal must still go out
            log.exception("cannot record an HTTP error")
        return refusal(code)

    return hook


def build_servers(
    node: Node, sessions: Sessions, metrics: Metrics, watchdog: Watchdog
) -> dict[str, Connections]:
    """The protocol factories of each configured listener."""
    lim = node.cfg.limits
    settings = ServerSettings(
        header_timeout=lim.header_timeout_s,
        max_field_bytes=lim.max_header_bytes,
        max_head_bytes=max(64 << 10, 4 * lim.max_header_bytes),
        max_connections=lim.max_connections,
        max_connections_per_address=lim.max_connections_per_address,
    )
    admin_routes: dict[str, Route] = {
        "/health": health_handler(node),
        "/metrics": metrics_handler(metrics),
    }
    peer = exchange_route(node, sessions, metrics, "peer", handle_peer_call, watchdog)
    servers = {
        "peer": Connections(
            dispatcher(peer, {}),
            _error_hook(node, metrics, "peer"),
            settings,
            metrics.shedder("peer"),
        )
    }
    if node.cfg.internal is not None:
        client = exchange_route(node, sessions, metrics, "client", handle_client_call, watchdog)
        servers["internal"] = Connections(
            dispatcher(client, admin_routes),
            _error_hook(node, metrics, "client"),
            settings,
            metrics.shedder("internal"),
        )
    if node.cfg.admin is not None:
        servers["admin"] = Connections(
            dispatcher(None, admin_routes),
            _error_hook(node, metrics, "admin"),
            settings,
            metrics.shedder("admin"),
        )
    for listener, factory in servers.items():
        metrics.watch_connections(listener, factory)
    return servers


async def _listen(
    factory: Connections, listen: Listen, ssl_ctx: Any, timeout: float
) -> asyncio.Server:
    return await asyncio.get_running_loop().create_server(
        factory,
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


def raise_open_files_limit() -> int:
    """Lift the soft limit on open files to the hard one (as Go's runtime and most servers do):
    every connection is a descriptor, and the listeners' default caps are half of it — a
    distribution's soft 1,024 would leave 256 connections to a parent platform that relays a
    whole ministry's calls. Returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):  # not allowed here: keep what we have
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


async def serve(
    cfg: GatewayConfig, *, ready: Callable[[dict[str, int]], None] | None = None
) -> None:
    """Run the gateway until SIGTERM/SIGINT; call ``ready`` with the bound ports."""
    raise_open_files_limit()
    node = build_node(cfg)
    server_ctx, client_ctx = tls_contexts(cfg, resolve_secret(cfg.passphrase))
    node.own = OwnCertificates.of(cfg, (server_ctx, client_ctx))  # expiry, renewal
    lim = cfg.limits
    sessions = make_sessions(client_ctx, lim.connect_timeout_s, lim.upstream_timeout_s)
    metrics = Metrics()
    node.own.register_metrics(metrics.registry)
    watchdog = Watchdog()
    factories = build_servers(node, sessions, metrics, watchdog)
    servers: list[asyncio.Server] = []
    ports: dict[str, int] = {}
    listens = {"peer": cfg.peer, "internal": cfg.internal, "admin": cfg.admin}
    for name, factory in factories.items():
        listen = listens[name]
        assert listen is not None
        srv = await _listen(
            factory, listen, server_ctx if name == "peer" else None, lim.header_timeout_s
        )
        servers.append(srv)
        ports[name] = bound_port(srv)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    flusher = asyncio.create_task(_flush_loop(node, stop, watchdog))
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
    await asyncio.gather(*(factory.shutdown(3.0) for factory in factories.values()))
    await sessions.close()
    flusher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flusher
    node.close()  # monitor, and the message log: final signed checkpoint, WAL folded in


async def _flush_loop(node: Node, stop: asyncio.Event, watchdog: Watchdog) -> None:
    """Flush monitoring records and sweep the exchanges' deadlines twice a second; re-read the
    federation view every reload_s."""
    last_reload = time.time()
    next_prune = 0.0  # monitoring records past limits.monitor_keep_days: at start, then hourly
    next_flush_warning = 0.0
    keep_s = node.cfg.limits.monitor_keep_days * 86400
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        await asyncio.sleep(0.5)
        watchdog.sweep(loop.time())
        now = time.time()
        try:
            node.monitor.flush()
        except sqlite3.Error as exc:  # kept pending (bounded); /health's storage check fails
            if now >= next_flush_warning:
                log.warning("%s: cannot write monitoring records: %s", node.name, exc)
                next_flush_warning = now + 60
        if keep_s > 0 and now >= next_prune:  # a bounded batch per tick while any is left
            try:
                if node.monitor.prune(now - keep_s) < PRUNE_ROWS:
                    next_prune = now + 3600
            except sqlite3.Error as exc:  # the records stay; tried again in an hour
                log.warning("%s: cannot delete old monitoring records: %s", node.name, exc)
                next_prune = now + 3600
        if now - last_reload >= node.cfg.limits.reload_s:
            last_reload = now
            try:
                await _reload(node, loop, now)
            except Exception:  # the last resort: see _reload
                log.exception("%s: federation view or certificate reload failed", node.name)


async def _reload(node: Node, loop: asyncio.AbstractEventLoop, now: float) -> None:
    """Re-read the federation view, then take renewed certificates of the node: checked off
    the loop, swapped in on it. Both keep what is in use on every error they expect and
    report it; whatever else one raises is caught by the caller as a last resort (logged
    with its traceback) — this runs in the one task that also flushes the monitoring
    records and sweeps the exchanges' deadlines, which must never stop."""
    await loop.run_in_executor(None, node.reload, now)
    own = node.own
    if own is not None and await loop.run_in_executor(None, own.prepare, node, now):
        own.apply(node)
