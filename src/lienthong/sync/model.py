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
from collections.abc import Callable, Sequence
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

    @property
    def read(self) -> int:
        return len(self.rows) + len(self.deletes)


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


def plain(value: Any) -> Any:
    """A JSON-native rendering of a source value (for row bodies and the quarantine)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
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
