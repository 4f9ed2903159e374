"""Per-exchange bookkeeping: the message-log record and the operational-monitoring record.

The message log (nhật ký thông điệp) keeps what proves the exchange — identifiers, the signed
tokens (in the evidence store; their hashes in the Merkle leaf), the request hash, body hashes
and hop receipts — and is written before the response is released. Bodies themselves are never
logged. Refusals become ``security`` entries (code and non-identifying detail), relays log each
call they carry, and providers log accesses to citizens' personal data (keyed hash of the ID).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from lienthong.audit.entries import Entry, personal_data_access_entry, security_event_entry
from lienthong.classification import Level
from lienthong.errors import LienthongError
from lienthong.exchange.monitor import MonitorRecord
from lienthong.exchange.node import Node
from lienthong.exchange.protocol import H_ERROR, H_RESPONSE, H_RESPONSE_PQ, ErrorCode
from lienthong.identifiers import ServiceId
from lienthong.validate.personal_id import check_personal_id

log = logging.getLogger("lienthong.exchange")


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
        self.shed = Counter(
            "lienthong_connections_shed",
            "Connections closed or refused to keep a listener within its connection limits",
            ["listener", "reason"],
            registry=self.registry,
        )
        self.connections = Gauge(
            "lienthong_connections_open",
            "Open connections per listener",
            ["listener"],
            registry=self.registry,
        )
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[str, Any] = {}

    def shedder(self, listener: str) -> Callable[[str], None]:
        """The ``on_shed`` hook of a listener: counts each connection shed, by reason."""
        return lambda reason: self.shed.labels(listener, reason).inc()

    def watch_connections(self, listener: str, factory: Sized) -> None:
        """Report ``len(factory)`` (its open connections) at each scrape."""
        self.connections.labels(listener).set_function(lambda: len(factory))

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


def _request_fields(
    node: Node, role: str, claims: dict[str, Any], req_hash: str, tokens: list[str] | None
) -> dict[str, Any]:
    """The message-log fields every role records about the request it handled."""
    return {
        "ts": time.time(),
        "node": node.name,
        "role": role,
        **{k: claims.get(k) for k in ("id", "client", "service", "user")},
        # free text copied into the Merkle leaf: a personal ID in it is redacted there (the
        # signed token, in the evidence store, keeps the text as signed)
        "purpose": _redact(str(claims.get("purpose"))),
        "legal": _redact(str(claims.get("legal"))),
        "level": claims.get("level"),
        "request_hash": req_hash,
        "request_body": claims.get("body"),
        "request_tokens": tokens,
    }


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
    tls_peer: str = ""  # peer role: the node on the other end of the mutual TLS
    req_hash: str = ""  # peer role: hash of the X-LT-Request received (signed refusals name it)
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
        """Write the message-log record; called before the response leaves this node.

        At the provider (role ``peer``), an answer to a PERSONAL-or-above service whose call
        names a data subject (``audit.subject_from``) also writes a ``personal_data.access``
        entry per person it names, in the same commit."""
        role = "provider" if self.role == "peer" else self.role
        also = personal_access(node, claims, rclaims) if role == "provider" else []
        await node.message_log.append(
            {
                **_request_fields(node, role, claims, req_hash, request_tokens),
                "response_status": rclaims.get("status"),
                "response_body": rclaims.get("body"),
                "response_tokens": tokens,
                "hops": hops or [],
            },
            also=also,
            alone=node.in_flight == 1,
        )

    async def log_relay(
        self,
        node: Node,
        claims: dict[str, Any],
        req_hash: str,
        request_tokens: list[str],
        hops: list[str],
        status: int,
        headers: Mapping[str, str],
    ) -> None:
        """A relay's entry for one call it carried (its own hop receipt last in ``hops``),
        written before the answer goes back; the response token is passed on unverified
        (the client gateway checks it) and logged by its hash."""
        code = headers.get(H_ERROR)
        await node.message_log.append(
            {
                **_request_fields(node, "relay", claims, req_hash, request_tokens),
                "outcome": "refused" if code else "ok",
                # unsigned text of the next hop: an LT.* code or "other" (as the client logs it)
                "reason": (code if code in _CODES else "other") if code else None,
                "response_status": status,
                "response_tokens": [headers.get(H_RESPONSE, ""), headers.get(H_RESPONSE_PQ, "")],
                "hops": hops,
            },
            alone=node.in_flight == 1,
        )

    def refused(self, node: Node, metrics: Metrics, code: ErrorCode, error: BaseException) -> None:
        """:meth:`finish` for a refusal with ``code``."""
        self.finish(
            node, metrics, status=code.http_status, result="refused", code=code.value, error=error
        )

    def finish(
        self,
        node: Node,
        metrics: Metrics,
        *,
        status: int,
        result: str,
        code: str | None,
        error: BaseException | None = None,
    ) -> None:
        elapsed = time.perf_counter() - self.started
        metrics.count(self.role, result, code or "", elapsed)
        if result == "refused" and code:
            try:
                node.message_log.note(self.security_entry(node, code, error))
            except Exception:  # the refusal itself must still go out; health shows the error
                log.exception("%s: cannot log refusal %s", node.name, self.message_id)
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
                reason=_reason(error) if result == "refused" else None,
            )
        )

    def security_entry(self, node: Node, code: str, error: BaseException | None) -> Entry:
        """The ``security`` entry of a refusal: the code and the non-identifying detail."""
        event, severity = _EVENTS.get(code, ("exchange.refused", 5))
        detail: dict[str, Any] = {"code": code, "role": self.role}
        for name in ("message_id", "client", "service", "method", "level"):
            value = getattr(self, name)
            if value:
                detail[name] = _scrub(str(value))
        if self.tls_peer:
            detail["tls_peer"] = _scrub(self.tls_peer)
        if error is not None:
            detail["reason"] = _reason(error)
        if isinstance(error, LienthongError):
            for key, value in error.details.items():
                if key in _SAFE_DETAILS and value is not None:
                    detail[key] = _safe_value(value)
        return security_event_entry(
            at=datetime.now(UTC), event=event, severity=severity, source=node.name, detail=detail
        )


def _reason(error: BaseException | None) -> str | None:
    """A refusal's reason as the node may keep it (monitoring record, security entry): our own
    message with personal IDs scrubbed, or the exception's type."""
    if error is None:
        return None
    return _scrub(error.message) if isinstance(error, LienthongError) else type(error).__name__


_CODES = frozenset(code.value for code in ErrorCode)
# refusal code -> (security event, CEF severity 0-10)
_EVENTS = {
    "LT.BAD_SIGNATURE": ("verification.failed", 7),
    "LT.ACCESS_DENIED": ("access.denied", 6),
    "LT.CLEARANCE": ("clearance.violation", 7),
    "LT.ROUTE": ("route.violation", 6),
    "LT.REPLAY": ("replay.detected", 6),
    "LT.BAD_REQUEST": ("request.malformed", 3),
    "LT.TOO_LARGE": ("request.too_large", 3),
    "LT.UNAVAILABLE": ("exchange.unavailable", 2),
    "LT.TIMEOUT": ("exchange.timeout", 2),
    "LT.INTERNAL": ("exchange.internal_error", 4),
}
# detail keys of Refused that name no person (identifiers of systems, counts, codes)
_SAFE_DETAILS = frozenset(
    {"service", "client", "claim", "route", "peer", "node", "level", "hops", "limit", "size"}
    | {"kid", "skew", "got", "expired_at", "peer_status", "remote", "serial", "error", "header"}
)
# runs of 9+ digits (CMND 9, CCCD/personal ID 12, phone numbers) are never logged in clear,
# except inside a hex string of 32+ characters (a fingerprint or hash: "460ecdd…" stays whole)
_DIGITS = re.compile(r"\d{9,}")
_WORD = re.compile(r"[0-9A-Za-z]{9,}")
_HASH = re.compile(r"[0-9a-fA-F]{32,}")


def _redact_word(match: re.Match[str]) -> str:
    word = match.group()
    return word if _HASH.fullmatch(word) else _DIGITS.sub("[redacted]", word)


def _redact(text: str) -> str:
    return _WORD.sub(_redact_word, text)


def _scrub(text: str) -> str:
    return _redact(text)[:300]


def _safe_value(value: Any) -> Any:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, list | tuple):
        return [_safe_value(v) for v in value][:16]
    return _scrub(str(value))


def data_subjects(rule: str, claims: dict[str, Any]) -> list[str]:
    """The personal IDs a call names under ``rule`` (none when it names nobody): ``path``, the
    first sub-path segment without its ``;parameters`` (a servlet container reads
    ``/001203004567;v=1`` as ``001203004567``); ``query:NAME``, every distinct value of that
    query parameter (given twice, which one a service reads — the first, the last — is its
    framework's choice: each is logged, so no read escapes the person's history)."""
    if rule == "path":
        segments = [s for s in str(claims.get("path") or "").split("/") if s]
        subject = unquote(segments[0]).partition(";")[0] if segments else ""
        return [subject] if subject else []
    if rule.startswith("query:"):
        values = parse_qs(str(claims.get("query") or "")).get(rule[6:], [])
        return list(dict.fromkeys(v for v in values if v.strip()))
    return []


def personal_access(node: Node, claims: dict[str, Any], rclaims: dict[str, Any]) -> list[Entry]:
    """The ``personal_data.access`` entries of a provider's answer, one per person the call
    names (none: level below PERSONAL, no subject rule for the service, no subject in the
    call, or no person key)."""
    level = claims.get("level")
    if not isinstance(level, int) or level < Level.PERSONAL:
        return []
    rule = node.cfg.audit.subject_from.get(str(claims.get("service")))
    key = getattr(node.message_log, "person_key", None)
    if rule is None or key is None:
        return []
    status = rclaims.get("status")
    out = []
    for subject in data_subjects(rule, claims):
        check = check_personal_id(subject)
        if check.value is None:  # not a personal ID: no citizen's history could hold it
            out.append(_unrecognised_subject(node, claims, rule, check.reasons[0].code))
            continue
        out.append(
            personal_data_access_entry(
                check.value,
                str(claims.get("client")),
                str(claims.get("service")),
                _redact(str(claims.get("purpose"))),
                _redact(str(claims.get("legal"))),
                at=datetime.now(UTC),
                key=key,
                outcome="ok" if isinstance(status, int) and status < 400 else "error",
                message_id=str(claims.get("id")),
                status=status if isinstance(status, int) else None,
                classification=Level(level).name,
            )
        )
    return out


def _unrecognised_subject(node: Node, claims: dict[str, Any], rule: str, reason: str) -> Entry:
    """A ``personal_data.subject_unrecognised`` security event in place of an access entry:
    the ``audit.subject_from`` rule of the service found something that is not a personal ID
    (a route segment, another kind of number, a name), so no citizen's access history would
    show the read — a configuration to fix. The value itself is not logged (it may be
    personal data): the reason code says what is wrong with it."""
    return security_event_entry(
        at=datetime.now(UTC),
        event="personal_data.subject_unrecognised",
        severity=5,
        source=node.name,
        detail={
            "service": _scrub(str(claims.get("service"))),
            "client": _scrub(str(claims.get("client"))),
            "message_id": _scrub(str(claims.get("id"))),
            "rule": rule,
            "reason": reason,
        },
    )


def message_log_health(node: Node) -> dict[str, Any]:
    """``checks.message_log`` of ``/health``: signing and refusal logging working (else not
    ok), and a warning naming the PERSONAL-or-above services provided here whose calls are
    not attributed to a data subject (no ``audit.subject_from`` rule: no personal-data
    access entries for them)."""
    mlog = node.message_log
    audit = getattr(mlog, "log", None)
    report: dict[str, Any] = {"ok": True, "kind": "audit" if audit is not None else "jsonl"}
    if audit is not None:
        report["signed"] = audit.signer is not None
        for name, value in (
            ("checkpoint_error", audit.checkpoint_error),
            ("note_error", getattr(mlog, "note_error", None)),
        ):
            if value is not None:
                report.update({"ok": False, name: value})
    unattributed = sorted(
        str(service)
        for service in node.services
        if node.directory.services.get(service, Level.PUBLIC) >= Level.PERSONAL
        and str(service) not in node.cfg.audit.subject_from
    )
    if unattributed:
        report["warning"] = (
            "personal-data services without audit.subject_from: their calls are logged "
            "without a data subject"
        )
        report["unattributed_services"] = unattributed
    return report
