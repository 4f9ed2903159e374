"""Audit entries (bản ghi nhật ký) and their canonical encoding.

An entry is a flat JSON object; its canonical bytes — the Merkle leaf data — are UTF-8 JSON
with keys sorted, no insignificant whitespace, strings NFC-normalised, and only ``str``,
``int``, ``bool``, ``null``, lists and objects (no floats: their text form is ambiguous across
languages). Every entry carries ``v`` (format version, 1), ``kind`` and ``at`` (UTC, RFC 3339
with milliseconds and ``Z``).

Personal IDs never enter the log: :func:`personal_data_access_entry` stores
``"person": "hmac-sha256:<hex>"`` computed with the federation's person key (see
:mod:`lienthong.audit.personkey`), so the log leaks nobody's identity, while the holder of the
key can still find every access to one citizen.
"""

from __future__ import annotations

import hmac
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

import orjson

from lienthong.errors import InputError

FORMAT_VERSION = 1

KIND_EXCHANGE = "exchange"
KIND_SYNC_BATCH = "sync.batch"
KIND_ADMIN = "admin"
KIND_PERSONAL_DATA_ACCESS = "personal_data.access"
KIND_SECURITY = "security"

ADMIN_ACTIONS = frozenset(
    {
        "config.change",
        "cert.issue",
        "cert.revoke",
        "key.create",
        "key.use",
        "key.revoke",
        "access.grant",
        "access.revoke",
        "log.archive",
        "log.prune",
        "service.register",
    }
)
OUTCOMES = frozenset({"ok", "refused", "error"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry: ``data`` is the canonical encoding; ``person`` the keyed hash, if any."""

    kind: str
    data: bytes
    person: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        """The decoded JSON object."""
        return decode_entry(self.data)


def timestamp(at: datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-23T12:00:00.000Z``."""
    if at.tzinfo is None:
        raise InputError("audit entry time must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _clean(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list | tuple):
        return [_clean(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(v, f"{where}.{k}") for k, v in value.items()}
    raise InputError(f"audit field {where} has unsupported type {type(value).__name__}")


def encode_fields(fields: dict[str, Any]) -> bytes:
    """Canonical bytes of an entry object (sorted keys, compact, NFC, no floats)."""
    clean: dict[str, Any] = {}
    for key, value in fields.items():  # fast path for the flat str/int fields most entries have
        kind = type(value)
        if kind is str:
            clean[key] = value if value.isascii() else unicodedata.normalize("NFC", value)
        elif kind is int or kind is bool:
            clean[key] = value
        else:
            clean[key] = _clean(value, f"entry.{key}")
    return orjson.dumps(clean, option=orjson.OPT_SORT_KEYS)


def decode_entry(data: bytes) -> dict[str, Any]:
    """Parse canonical entry bytes (raises :class:`InputError` on garbage)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"audit entry is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or "kind" not in obj:
        raise InputError("audit entry is not an object with a 'kind'")
    return obj


def make_entry(
    kind: str, at: datetime, fields: dict[str, Any], person: bytes | None = None
) -> Entry:
    """Build an entry of any kind; ``fields`` may not override ``v``, ``kind`` or ``at``."""
    clash = {"v", "kind", "at"} & fields.keys()
    if clash:
        raise InputError(f"audit fields may not be named {sorted(clash)}")
    body = {k: v for k, v in fields.items() if v is not None}
    body.update(v=FORMAT_VERSION, kind=kind, at=timestamp(at))
    return Entry(kind, encode_fields(body), person)


def _require(**values: Any) -> None:
    for name, value in values.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InputError(f"audit entry needs a non-empty {name}")


def _outcome(outcome: str) -> str:
    if outcome not in OUTCOMES:
        raise InputError(f"audit outcome {outcome!r} is not one of {sorted(OUTCOMES)}")
    return outcome


def exchange_entry(
    *,
    at: datetime,
    message_id: str,
    client: str,
    service: str,
    outcome: str = "ok",
    status: int | None = None,
    request_hash: str | None = None,
    response_hash: str | None = None,
    user_id: str | None = None,
    classification: str | None = None,
    reason: str | None = None,
    **extra: Any,
) -> Entry:
    """One service call through a gateway (trao đổi), successful or refused."""
    _require(message_id=message_id, client=client, service=service)
    return make_entry(
        KIND_EXCHANGE,
        at,
        {
            "message_id": message_id,
            "client": client,
            "service": service,
            "outcome": _outcome(outcome),
            "status": status,
            "request_hash": request_hash,
            "response_hash": response_hash,
            "user_id": user_id,
            "classification": classification,
            "reason": reason,
            **extra,
        },
    )


def sync_batch_entry(
    *,
    at: datetime,
    pipeline: str,
    source: str,
    target: str,
    batch_id: str,
    rows: int,
    checksum: str,
    cursor_from: str | None = None,
    cursor_to: str | None = None,
    outcome: str = "ok",
    **extra: Any,
) -> Entry:
    """One synchronisation batch (lô đồng bộ) committed into a target database."""
    _require(pipeline=pipeline, source=source, target=target, batch_id=batch_id, checksum=checksum)
    if rows < 0:
        raise InputError("sync batch row count cannot be negative")
    return make_entry(
        KIND_SYNC_BATCH,
        at,
        {
            "pipeline": pipeline,
            "source": source,
            "target": target,
            "batch_id": batch_id,
            "rows": rows,
            "checksum": checksum,
            "cursor_from": cursor_from,
            "cursor_to": cursor_to,
            "outcome": _outcome(outcome),
            **extra,
        },
    )


def admin_entry(
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    **extra: Any,
) -> Entry:
    """An administrative action (thao tác quản trị): config change, certificate, key use…"""
    _require(actor=actor, action=action, target=target)
    if action not in ADMIN_ACTIONS:
        raise InputError(f"admin action {action!r} is not one of {sorted(ADMIN_ACTIONS)}")
    return make_entry(
        KIND_ADMIN,
        at,
        {"actor": actor, "action": action, "target": target, "detail": detail, **extra},
    )


def security_event_entry(
    *,
    at: datetime,
    event: str,
    severity: int,
    source: str,
    detail: dict[str, Any] | None = None,
    **extra: Any,
) -> Entry:
    """A security event for the monitoring centre (e.g. ``verification.failed``)."""
    _require(event=event, source=source)
    if not 0 <= severity <= 10:
        raise InputError("security event severity must be 0..10 (CEF scale)")
    return make_entry(
        KIND_SECURITY,
        at,
        {"event": event, "severity": severity, "source": source, "detail": detail, **extra},
    )


def person_hash(person_id: str, key: bytes) -> bytes:
    """HMAC-SHA-256 of the NFC, trimmed personal ID under the federation person key."""
    if len(key) < 16:
        raise InputError("person key must be at least 16 bytes")
    norm = unicodedata.normalize("NFC", person_id.strip())
    if not norm:
        raise InputError("personal ID is empty")
    return hmac.new(key, norm.encode(), sha256).digest()


def person_ref(digest: bytes) -> str:
    """How a keyed person hash appears inside an entry."""
    return "hmac-sha256:" + digest.hex()


def personal_data_access_entry(
    person_id: str,
    requester: str,
    service: str,
    purpose: str,
    legal_basis: str,
    *,
    at: datetime,
    key: bytes,
    fields: list[str] | tuple[str, ...] = (),
    outcome: str = "ok",
    message_id: str | None = None,
    **extra: Any,
) -> Entry:
    """An access to a citizen's personal data (truy cập dữ liệu cá nhân).

    ``person_id`` is hashed with ``key`` here and never stored; ``fields`` lists the data items
    read (data minimisation made visible).
    """
    _require(requester=requester, service=service, purpose=purpose, legal_basis=legal_basis)
    digest = person_hash(person_id, key)
    return make_entry(
        KIND_PERSONAL_DATA_ACCESS,
        at,
        {
            "person": person_ref(digest),
            "requester": requester,
            "service": service,
            "purpose": purpose,
            "legal_basis": legal_basis,
            "fields": list(fields),
            "outcome": _outcome(outcome),
            "message_id": message_id,
            **extra,
        },
        person=digest,
    )


def entry_hash_hex(data: bytes) -> str:
    """SHA-256 of canonical entry bytes (for references from other systems)."""
    return sha256(data).hexdigest()
