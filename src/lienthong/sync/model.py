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
    # the chunk starts the complete current set of the table's rows with a NULL key part
    # (possibly none): the hub closes the table's open keyless entries this set does not hold
    keyless: bool = False

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


def iso_duration(value: dt.timedelta) -> str:
    """ISO 8601 duration of a Python ``timedelta``: ``P1DT2H``, ``PT1.5S``, ``PT0S``; a
    negative one with a leading sign (ISO 8601-2), ``-PT1H``. Days stay days (a timedelta
    holds no months or years)."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "P" + (f"{value.days}D" if value.days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if value.microseconds:
        clock += f"{seconds}.{value.microseconds:06d}".rstrip("0") + "S"
    elif seconds:
        clock += f"{seconds}S"
    if clock or not value.days:
        text += "T" + (clock or "0S")
    return sign + text


class Unreadable:
    """A source value that is not what its column says (text that is no JSON in a MariaDB
    ``JSON`` column, written with ``check_constraint_checks`` off). Mapped, it sends its row to
    the quarantine with :attr:`reason` (mapping raises ``ValueError(reason)``); the
    quarantine's raw values show :attr:`text` (``str()``, which :func:`plain` uses)."""

    __slots__ = ("reason", "text")

    def __init__(self, text: str, reason: str) -> None:
        self.text, self.reason = text, reason

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:  # stable: row hashes (cursor windows) are made of reprs
        return f"Unreadable({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is Unreadable and (other.text, other.reason) == (self.text, self.reason)

    def __hash__(self) -> int:
        return hash((Unreadable, self.text))


def clock_text(value: dt.timedelta) -> str:
    """A MariaDB/MySQL ``TIME`` (which PyMySQL and mysql-replication return as a timedelta)
    as PostgreSQL's ``time`` reads: ``HH:MM:SS`` and ``.ffffff`` when there are microseconds
    — ``02:00:00``, ``02:00:00.500000``; beyond a day or negative as MariaDB writes it:
    ``26:00:00``, ``-01:00:00.500000``."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.days * 86400 + value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    micro = f".{value.microseconds:06d}" if value.microseconds else ""
    return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}{micro}"


def plain(value: Any) -> Any:
    """A JSON-native rendering of a source value (for row bodies and the quarantine).

    JSON values (a jsonb, a JSON Lines object) and arrays stay objects and arrays (their
    Python text was stored before); NaN and ±Infinity, which JSON cannot hold (they were
    written as null), become the texts ``"NaN"``, ``"Infinity"``, ``"-Infinity"``. The
    other Python objects drivers return (the table in docs/sync.md, *Values*):

    * dates, times and timestamps: ISO 8601 (``2024-01-31``, ``02:00:00+07:00``,
      ``2024-01-31T08:30:00+00:00``);
    * a ``timedelta``: an ISO 8601 duration (:func:`iso_duration`; PostgreSQL intervals
      arrive as the server's ISO 8601 text, months kept, and MariaDB ``TIME`` as
      :func:`clock_text` — the connectors see to both);
    * a ``Decimal``: its digits in positional notation with the source's scale (``1.50``,
      ``0.0000000000`` — ``str()`` wrote ``0E-10``), ``NaN`` / ``Infinity`` as texts;
    * bytes: base64; UUIDs and IP addresses, interfaces and networks: their usual text
      (``10.0.0.1/24``), which is PostgreSQL's;
    * a range (psycopg ``Range``): ``{"lower": …, "upper": …, "bounds": "[)"}`` (a missing
      bound ``null``), an empty one ``{"empty": true}``; a multirange a list of them.
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
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "isempty") and hasattr(value, "bounds"):  # psycopg Range (duck-typed:
        if value.isempty:  # this module imports no driver)
            return {"empty": True}
        return {"lower": plain(value.lower), "upper": plain(value.upper), "bounds": value.bounds}
    if isinstance(value, Sequence) and not isinstance(value, str):  # psycopg Multirange
        return [plain(v) for v in value]
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
