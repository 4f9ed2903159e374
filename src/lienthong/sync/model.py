"""Core value types of synchronisation (pure: standard library only).

A connector yields :class:`Chunk` objects: a list of column names, the rows read (tuples, in
column order), the keys of rows deleted at the source (tombstones) and the source position
*after* the chunk. Positions are plain JSON-able dicts so they can be stored in the outbox and
sent in batch headers; typed values (dates, decimals, bytes) inside them go through
:func:`encode_value` / :func:`decode_value`.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Position = dict[str, Any]


@dataclass
class Chunk:
    """One page of changes read from a source table."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    position: Position
    deletes: list[tuple[Any, ...]] = field(default_factory=list)
    # source position of row i (e.g. "file.csv:17"); None means "the row's key"
    locate: Callable[[int], str] | None = None
    # changes of a stream chunk replaced by a later change of the same key in the chunk
    superseded: int = 0

    @property
    def read(self) -> int:
        return len(self.rows) + len(self.deletes) + self.superseded


def last_change_per_key(
    changes: Iterable[tuple[bool, tuple[Any, ...], tuple[Any, ...]]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """One change per key of a stream chunk's ``(deleted, key, row or key)`` changes in commit
    order: its last. Returns (rows, tombstones, changes superseded).

    A chunk's rows and tombstones travel as separate lists (and the hub applies them as
    sets), so the order of two changes of one key would be lost: a key deleted and inserted
    again would end deleted, a row made invalid and corrected would stay quarantined. The
    later change carries the key's state after the chunk; the earlier ones count as read
    and applied (superseded), like several updates of one key in a batch at the hub.
    """
    last: dict[tuple[Any, ...], tuple[bool, tuple[Any, ...]]] = {}
    seen = 0
    for deleted, key, values in changes:
        seen += 1
        last.pop(key, None)  # re-inserted: the key moves to its latest place in the order
        last[key] = (deleted, values)
    rows = [values for deleted, values in last.values() if not deleted]
    deletes = [values for deleted, values in last.values() if deleted]
    return rows, deletes, seen - len(last)


def encode_value(value: Any) -> Any:
    """Make a key or cursor value JSON-able, keeping its type for :func:`decode_value`."""
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$dec": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    return value


def decode_value(value: Any) -> Any:
    """Inverse of :func:`encode_value`."""
    if isinstance(value, dict) and len(value) == 1:
        ((tag, raw),) = value.items()
        if tag == "$dt":
            return dt.datetime.fromisoformat(raw)
        if tag == "$d":
            return dt.date.fromisoformat(raw)
        if tag == "$dec":
            return decimal.Decimal(raw)
        if tag == "$b":
            return base64.b64decode(raw)
    return value


def encode_key(values: Sequence[Any]) -> list[Any]:
    return [encode_value(v) for v in values]


def decode_key(values: Sequence[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(decode_value(v) for v in values)


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def plain(value: Any) -> Any:
    """A JSON-native rendering of a source value (for row bodies and the quarantine).

    JSON values (a jsonb, a JSON Lines object) and arrays stay objects and arrays (their
    Python text was stored before); NaN and ±Infinity, which JSON cannot hold (they were
    written as null), become the texts ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
    """
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[str(value)]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return str(value)


def source_key(values: Sequence[Any]) -> str:
    """The stable text form of a source primary key (parts joined by ``|``).

    Empty when any part is missing (NULL or blank): such a row cannot be keyed and goes to
    the quarantine.
    """
    if len(values) == 1:
        v = values[0]
        return "" if v is None else str(plain(v)).strip()
    parts = ["" if v is None else str(plain(v)).strip() for v in values]
    return "" if "" in parts else "|".join(parts)
