"""Per-exchange bookkeeping: the message-log record and the operational-monitoring record.

The message log (nhật ký thông điệp) keeps what proves the exchange — identifiers, both signed
tokens, the request hash, body hashes and hop receipts — and is written before the response
is released. Bodies themselves are never logged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from lienthong.exchange.monitor import MonitorRecord
from lienthong.exchange.node import Node
from lienthong.identifiers import ServiceId


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.exchanges = Counter(
            "lienthong_exchanges",
            "Exchanges handled",
            ["role", "result", "code"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "lienthong_exchange_seconds",
            "Time to handle one exchange",
            ["role"],
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30),
        )
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[str, Any] = {}

    def count(self, role: str, result: str, code: str, elapsed: float) -> None:
        """Count and time one exchange (labelled children looked up once per label set)."""
        key = (role, result, code)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.exchanges.labels(role, result, code)
        timer = self._timed.get(role)
        if timer is None:
            timer = self._timed[role] = self.seconds.labels(role)
        counter.inc()
        timer.observe(elapsed)


@dataclass
class Exchange:
    role: str
    started: float = field(default_factory=time.perf_counter)
    message_id: str = ""
    client: str = ""
    service: str = ""
    service_id: ServiceId | None = None
    method: str = ""
    level: str = ""
    request_bytes: int = 0
    response_bytes: int = 0
    upstream_ms: float = 0.0
    hops: int = 0
    hop_ms: str | None = None
    streaming: bool = False  # response headers already sent: errors can only cut the stream

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def begin(self, message_id: str, client: str, service: ServiceId, method: str) -> None:
        self.message_id, self.client, self.method = message_id, client, method
        self.service_id, self.service = service, str(service)

    async def log_message(
        self,
        node: Node,
        claims: dict[str, Any],
        rclaims: dict[str, Any],
        tokens: list[str],
        req_hash: str,
        hops: list[str] | None = None,
        request_tokens: list[str] | None = None,
    ) -> None:
        """Write the message-log record; called before the response leaves this node."""
        await node.message_log.append(
            {
                "ts": time.time(),
                "node": node.name,
                "role": self.role,
                "id": claims.get("id"),
                "client": claims.get("client"),
                "service": claims.get("service"),
                "purpose": claims.get("purpose"),
                "legal": claims.get("legal"),
                "user": claims.get("user"),
                "level": claims.get("level"),
                "request_hash": req_hash,
                "request_body": claims.get("body"),
                "request_tokens": request_tokens,
                "response_status": rclaims.get("status"),
                "response_body": rclaims.get("body"),
                "response_tokens": tokens,
                "hops": hops or [],
            }
        )

    def finish(
        self, node: Node, metrics: Metrics, *, status: int, result: str, code: str | None
    ) -> None:
        elapsed = time.perf_counter() - self.started
        metrics.count(self.role, result, code or "", elapsed)
        node.monitor.add(
            MonitorRecord(
                ts=time.time(),
                node=node.name,
                role=self.role,
                message_id=self.message_id,
                client=self.client,
                service=self.service,
                method=self.method,
                level=self.level,
                status=status,
                result=result,
                error_code=code,
                request_bytes=self.request_bytes,
                response_bytes=self.response_bytes,
                total_ms=round(elapsed * 1000, 3),
                upstream_ms=round(self.upstream_ms, 3),
                hops=self.hops,
                hop_ms=self.hop_ms,
            )
        )
