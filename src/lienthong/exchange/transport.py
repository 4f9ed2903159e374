"""Gateway-to-gateway HTTP over mutual TLS 1.3, with failover between a node's two addresses.

A connection is only used after the peer's certificate is found in the federation directory
with the expected node identity (the TLS chain itself is checked by OpenSSL against the
federation roots).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from lienthong.exchange.node import Node, log
from lienthong.exchange.protocol import ErrorCode, Refused


@dataclass
class Sessions:
    peers: aiohttp.ClientSession  # mTLS to other gateways
    services: aiohttp.ClientSession  # plain or TLS to the agency's own service endpoints

    async def close(self) -> None:
        await self.peers.close()
        await self.services.close()


def make_sessions(
    client_ctx: ssl.SSLContext, connect_timeout: float, read_timeout: float
) -> Sessions:
    timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout)

    def connector(ssl_ctx: ssl.SSLContext | bool) -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector(limit=512, ssl=ssl_ctx, keepalive_timeout=30)

    def session(ssl_ctx: ssl.SSLContext | bool) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector(ssl_ctx),
            timeout=timeout,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # gateways never keep cookies
            read_bufsize=1 << 18,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )

    return Sessions(peers=session(client_ctx), services=session(True))


LINK_COOLDOWN_S = 10.0
_DOWN_UNTIL: dict[str, float] = {}


def _in_preference(addresses: list[str]) -> list[str]:
    """Links that failed recently go last, so a dead first link costs one attempt, not one
    attempt per call, until its cool-down ends."""
    now = time.monotonic()
    return sorted(addresses, key=lambda a: _DOWN_UNTIL.get(a, 0.0) > now)


class Pump:
    """Wraps a streamed body: knows whether it started (then it cannot be replayed on the
    second link) and keeps the refusal raised while producing it, which aiohttp would
    otherwise turn into a connection error."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self.started = False
        self.error: Refused | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        try:
            async for chunk in self._source:
                yield chunk
        except Refused as exc:
            self.error = exc
            raise


def peer_der(transport: object) -> bytes | None:
    """The DER certificate of the TLS peer on ``transport`` (None when not TLS)."""
    get = getattr(transport, "get_extra_info", None)
    ssl_obj = get("ssl_object") if get else None
    if ssl_obj is None:
        return None
    der: bytes | None = ssl_obj.getpeercert(binary_form=True)
    return der


async def send_to_node(
    node: Node,
    sessions: Sessions,
    target: str,
    method: str,
    path_qs: str,
    headers: Mapping[str, str],
    body: AsyncIterator[bytes] | bytes | None,
) -> aiohttp.ClientResponse:
    """Send to ``target`` trying its addresses in order (failover); check its identity."""
    addresses = _in_preference(node.directory.nodes[target].addresses)
    pump = Pump(body) if body is not None and not isinstance(body, bytes) else None
    last: Exception | None = None
    for address in addresses:
        try:
            resp = await sessions.peers.request(
                method,
                # exactly as signed: yarl must not re-normalise %3b, %2e … (encoded=True)
                URL(f"https://{address}{path_qs}", encoded=True),
                headers=headers,
                data=pump.__aiter__() if pump is not None else body,
            )
        except aiohttp.ClientError as exc:
            if pump is not None and pump.error is not None:
                raise pump.error from exc
            connect_failed = isinstance(exc, aiohttp.ClientConnectorError)
            if not connect_failed and not isinstance(exc, aiohttp.ServerDisconnectedError):
                raise
            log.warning("link to %s via %s failed: %s", target, address, exc)
            _DOWN_UNTIL[address] = time.monotonic() + LINK_COOLDOWN_S
            last = exc
            if pump is not None and pump.started:
                break  # a streamed body half-sent cannot be replayed on the second link
            continue
        if resp.connection is None:
            return resp  # body-less answer already released its connection: nothing to check
        der = peer_der(resp.connection.transport)
        try:
            identity = node.certs.identity_of_der(der) if der else None
        except Refused:
            identity = None
        if identity != target:
            resp.close()
            raise Refused(ErrorCode.UNAVAILABLE, "peer is not the expected node", got=identity)
        return resp
    raise Refused(ErrorCode.UNAVAILABLE, f"no link to {target} works", error=str(last))
