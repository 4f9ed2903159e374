"""Security-monitoring export (xuất sự kiện an ninh) for the national monitoring centre.

Selected entries — security events, refused or failed exchanges and personal-data accesses,
configuration changes, certificate and key actions — become events in JSON lines or in
ArcSight CEF (optionally wrapped in an RFC 5424 syslog header). Each event carries the log
origin and entry index, so the monitoring centre can ask the node for an inclusion proof.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson

from lienthong import __version__
from lienthong.audit.entries import (
    KIND_ADMIN,
    KIND_EXCHANGE,
    KIND_PERSONAL_DATA_ACCESS,
    KIND_SECURITY,
    decode_entry,
)
from lienthong.audit.log import AuditLog
from lienthong.errors import InputError, IntegrityError

_ADMIN_SEVERITY = {
    "config.change": 5,
    "cert.issue": 3,
    "cert.revoke": 6,
    "key.create": 4,
    "key.use": 2,
    "key.revoke": 7,
    "access.grant": 4,
    "access.revoke": 4,
}


def security_event(origin: str, index: int, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The monitoring event for one entry, or None if the entry is routine."""
    kind, outcome = entry.get("kind"), entry.get("outcome", "ok")
    if kind == KIND_SECURITY:
        name, severity = str(entry["event"]), int(entry["severity"])
    elif kind in (KIND_EXCHANGE, KIND_PERSONAL_DATA_ACCESS) and outcome != "ok":
        name, severity = f"{kind}.{outcome}", 6 if outcome == "refused" else 4
    elif kind == KIND_ADMIN and entry.get("action") in _ADMIN_SEVERITY:
        name, severity = f"admin.{entry['action']}", _ADMIN_SEVERITY[entry["action"]]
    else:
        return None
    return {
        "origin": origin,
        "index": index,
        "at": entry.get("at"),
        "event": name,
        "severity": severity,
        "entry": entry,
    }


def security_events(log: AuditLog, start: int = 0) -> Iterator[dict[str, Any]]:
    """Every security event of ``log`` from entry ``start`` on (pruned entries skipped)."""
    for rows in log.store.leaves(start, log.size()):
        for idx, kind, data in rows:
            if data is None or kind not in (
                KIND_SECURITY,
                KIND_EXCHANGE,
                KIND_ADMIN,
                KIND_PERSONAL_DATA_ACCESS,
            ):
                continue
            try:
                entry = decode_entry(data)
            except InputError as exc:  # the log wrote it: garbage here is tampering
                raise IntegrityError(
                    f"log {log.origin}: entry {idx} is not a valid entry: {exc}"
                ) from exc
            event = security_event(log.origin, idx, entry)
            if event is not None:
                yield event


def to_jsonl(event: dict[str, Any]) -> str:
    """One JSON line (sorted keys)."""
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|")


def _cef_ext(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")


def _epoch_ms(at: Any) -> int | None:
    """CEF ``rt``: milliseconds since the epoch (the form every CEF consumer parses)."""
    try:
        return int(datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def to_cef(event: dict[str, Any]) -> str:
    """One CEF:0 line; extension keys use CEF names where one fits, ``cs1``… otherwise."""
    entry = event["entry"]
    ext: dict[str, Any] = {
        "rt": _epoch_ms(entry.get("at")),
        "dvchost": event["origin"],
        "cn1": event["index"],
        "cn1Label": "logIndex",
        "outcome": entry.get("outcome"),
        "suser": entry.get("actor") or entry.get("requester") or entry.get("client"),
        "request": entry.get("service") or entry.get("target"),
        "reason": entry.get("reason") or entry.get("purpose"),
        "msg": entry.get("detail"),
    }
    body = " ".join(f"{k}={_cef_ext(v)}" for k, v in ext.items() if v is not None)
    return (
        f"CEF:0|lienthong|audit|{_cef_header(__version__)}|{_cef_header(event['event'])}|"
        f"{_cef_header(event['event'].replace('.', ' '))}|{event['severity']}|{body}"
    )


def to_syslog(line: str, event: dict[str, Any], host: str = "-") -> str:
    """Wrap a CEF line in an RFC 5424 header (facility 13 log audit, severity from event)."""
    sev = 2 if event["severity"] >= 8 else 4 if event["severity"] >= 5 else 6
    return f"<{13 * 8 + sev}>1 {event['at'] or '-'} {host} lienthong - audit - {line}"
