"""The connector interface every source adapter implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from lienthong.sync.model import Chunk, Position


class Connector(Protocol):
    """Reads one source table in resumable chunks.

    ``read(position, size)`` yields chunks strictly after ``position`` (``None`` = from the
    start); each chunk's ``position`` is where a later call resumes. A connector is pure
    reading: it never stores state itself, the outbox does.
    """

    name: str

    def schema(self) -> dict[str, str]:
        """Column name → normalised type name, as the source reports it now."""
        ...

    def read(self, position: Position | None, size: int) -> Iterator[Chunk]:
        """Yield chunks after ``position`` until the source has nothing more right now."""
        ...

    def pending(self, position: Position | None) -> int:
        """How many rows are still to read after ``position`` (the lag in rows)."""
        ...

    def close(self) -> None: ...


SEEN_MAX = 256  # key ranges a log-based snapshot keeps in its position; past it, pairs merge


def merge_ranges(seen: list[list[Any]]) -> list[list[Any]]:
    """Halve a log-based snapshot's key ranges ``[upper key, snapshot]``: each pair becomes
    one range with the pair's upper key and the *older* snapshot (the first). An older
    snapshot saw less, so fewer replayed changes are skipped in the second range of a pair —
    at worst a replay, never a change lost."""
    merged = [[seen[i + 1][0], seen[i][1]] for i in range(0, len(seen) - 1, 2)]
    return merged + ([seen[-1]] if len(seen) % 2 else [])


def note_range(seen: list[list[Any]], upper: list[Any], snapshot: Any) -> list[list[Any]]:
    """Record that the keys up to ``upper`` (encoded) were read under ``snapshot``: the
    last range grows while the snapshot stays the same; past :data:`SEEN_MAX` ranges, pairs
    merge (:func:`merge_ranges`)."""
    if seen and seen[-1][1] == snapshot:
        seen[-1][0] = upper
    else:
        seen.append([upper, snapshot])
    return merge_ranges(seen) if len(seen) > SEEN_MAX else seen


def seen_field(seen: list[list[Any]] | None) -> dict[str, Any]:
    """The ``seen`` entry of a position (a copy), or nothing."""
    return {"seen": [list(s) for s in seen]} if seen else {}
