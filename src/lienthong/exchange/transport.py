"""Gateway-to-gateway HTTP over mutual TLS 1.3, with failover between a node's two addresses.

A connection is only used after the peer's certificate is found in the federation directory
with the expected node identity (the TLS chain itself is checked by OpenSSL against the
federation roots).
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from lienthong.exchange.httpclient import Client, ConnectFailed, Disconnected, Response
from lienthong.exchange.node import Node, log
from lienthong.exchange.protocol import ErrorCode, Refused


@dataclass
class Sessions:
    peers: Client  # mTLS to other gateways
    services: Client  # plain or TLS to the agency's own service endpoints

    async def close(self) -> None:
        await self.peers.close()
        await self.services.close()


def make_sessions(
    client_ctx: ssl.SSLContext, connect_timeout: float, read_timeout: float
) -> Sessions:
    """Gateways never keep cookies nor send User-Agent/Accept headers; bodies pass as they are
    (no decompression)."""
    return Sessions(
        peers=Client(client_ctx, connect_timeout=connect_timeout, read_timeout=read_timeout),
        # https service endpoints: verified against the system roots, host name checked
        services=Client(
            ssl.create_default_context(),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        ),
    )


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    base: str  # path prefix the service's sub-path is appended to


@functools.lru_cache(maxsize=1024)
def endpoint_of(url: str) -> Endpoint:
    """A configured service endpoint URL, split once; one that cannot be called is
    ``LT.UNAVAILABLE``, as any failure to reach the service."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    if parts.scheme not in ("http", "https") or not parts.hostname or not port:
        raise Refused(ErrorCode.UNAVAILABLE, "service endpoint is not a callable URL", url=url)
    return Endpoint(parts.scheme, parts.hostname, port, parts.path)


@functools.lru_cache(maxsize=256)
def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


LINK_COOLDOWN_S = 10.0
_DOWN_UNTIL: dict[str, float] = {}


def _in_preference(addresses: list[str]) -> list[str]:
    """Links that failed recently go last, so a dead first link costs one attempt, not one
    attempt per call, until its cool-down ends."""
    now = time.monotonic()
    return sorted(addresses, key=lambda a: _DOWN_UNTIL.get(a, 0.0) > now)


class Pump:
    """Wraps a streamed body: knows whether it started (then it cannot be replayed on the
    second link)."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self.started = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        async for chunk in self._source:
            yield chunk


async def send_to_node(
    node: Node,
    sessions: Sessions,
    target: str,
    method: str,
    path_qs: str,
    headers: Mapping[str, str],
    body: AsyncIterator[bytes] | bytes | None,
) -> Response:
    """Send to ``target`` trying its addresses in order (failover). The TLS peer must be
    ``target`` (its certificate found in the directory under that node's identity), checked
    before anything is written to the connection."""

    def verify_peer(der: bytes | None) -> None:
        try:
            identity = node.certs.identity_of_der(der) if der else None
        except Refused:
            identity = None
        if identity != target:
            raise Refused(ErrorCode.UNAVAILABLE, "peer is not the expected node", got=identity)

    addresses = _in_preference(node.directory.nodes[target].addresses)
    pump = Pump(body) if body is not None and not isinstance(body, bytes) else None
    payload = pump.__aiter__() if pump is not None else body or b""
    last: Exception | None = None
    for address in addresses:
        host, port = _host_port(address)
        try:
            # the path exactly as signed: never re-normalised (%3b, %2e …)
            return await sessions.peers.request(
                method, "https", host, port, path_qs, headers, payload, verify_peer=verify_peer
            )
        except (ConnectFailed, Disconnected) as exc:
            log.warning("link to %s via %s failed: %s", target, address, exc)
            _DOWN_UNTIL[address] = time.monotonic() + LINK_COOLDOWN_S
            last = exc
            if pump is not None and pump.started:
                break  # a streamed body half-sent cannot be replayed on the second link
    raise Refused(ErrorCode.UNAVAILABLE, f"no link to {target} works", error=str(last))
