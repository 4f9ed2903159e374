"""The connector interface every source adapter implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

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
