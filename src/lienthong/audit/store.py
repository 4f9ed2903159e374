"""The storage interface of the audit log and the SQL shared by its backends.

Tables (the same in SQLite and PostgreSQL; only types and parameter style differ, held as
data in :class:`Dialect`):

- ``leaves(idx, kind, data)`` — one row per entry; ``data`` is NULL once archived+pruned.
- ``tiles(id, hashes)`` — every tree hash (leaf hashes and complete subtrees), 256 per row,
  ``id = level << 48 | tile`` (see :mod:`lienthong.audit.tiles`), written at append time so a
  proof is ~log₂ n point lookups.
- ``persons(person, idx)`` — keyed person hash → entry index (citizen access history).
- ``checkpoints(size, note)`` — signed notes; ``cosignatures(size, name, line)`` from witnesses;
  ``stamps(size, token, stamped_at)`` RFC 3161 tokens over each note; ``archives(seq, …)``;
  ``meta(key, value)`` — schema version, origin, public key.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

SCHEMA_VERSION = 1

LeafRow = tuple[int, str, bytes | None]  # idx, kind, data (None once pruned)
TileRow = tuple[int, bytes]  # tile key, concatenated hashes


@dataclass(frozen=True)
class Dialect:
    """What differs between SQL backends, as data."""

    name: str
    param: str  # "?" or "%s"
    blob: str
    key_int: str  # a 64-bit integer primary key (SQLite: INTEGER, the rowid alias — no index)
    text: str = "TEXT"
    without_rowid: str = ""  # SQLite: clustered tables for composite keys

    def sql(self, template: str) -> str:
        """Replace ``?`` placeholders with the backend's parameter marker."""
        return template.replace("?", self.param)

    def schema(self) -> list[str]:
        b, t, k = self.blob, self.text, self.key_int
        return [
            f"CREATE TABLE IF NOT EXISTS meta (key {t} PRIMARY KEY, value {t} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS leaves (idx {k} PRIMARY KEY, kind {t} NOT NULL, data {b})",
            f"CREATE TABLE IF NOT EXISTS tiles (id {k} PRIMARY KEY, hashes {b} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS persons (person {b} NOT NULL, idx BIGINT NOT NULL,"
            f" PRIMARY KEY (person, idx)){self.without_rowid}",
            f"CREATE TABLE IF NOT EXISTS checkpoints (size BIGINT PRIMARY KEY, note {t} NOT NULL,"
            f" created {t} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS cosignatures (size BIGINT NOT NULL, name {t} NOT NULL,"
            f" line {t} NOT NULL, PRIMARY KEY (size, name))",
            f"CREATE TABLE IF NOT EXISTS stamps (size BIGINT PRIMARY KEY, token {b} NOT NULL,"
            f" stamped_at {t} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS archives (seq BIGINT PRIMARY KEY, first BIGINT NOT NULL,"
            f" last BIGINT NOT NULL, path {t} NOT NULL, sha256 {t} NOT NULL)",
        ]


class StoreWriter(Protocol):
    """An exclusive write transaction (other writers wait); committed durably on exit."""

    size: int

    def get_tiles(self, keys: list[int]) -> dict[int, bytes]: ...

    def insert(
        self,
        leaves: Sequence[LeafRow],
        tiles: Sequence[TileRow],
        persons: Sequence[tuple[bytes, int]],
    ) -> None:
        """Insert leaves and person-index rows; insert or replace tiles."""
        ...


class LogStore(Protocol):
    """Persistence of one log; both backends pass the same contract tests."""

    location: str

    def writer(self) -> AbstractContextManager[StoreWriter]: ...

    def size(self) -> int: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def get_tiles(self, keys: list[int]) -> dict[int, bytes]: ...

    def tiles_in(self, first_key: int, end_key: int) -> list[TileRow]: ...

    def leaves(self, start: int, end: int, chunk: int = 65536) -> Iterator[list[LeafRow]]: ...

    def person_indexes(self, person: bytes) -> list[int]: ...

    def min_index(self) -> int | None: ...

    def last_tile(self, level: int) -> tuple[int, int] | None: ...

    def person_rows(self, start: int) -> list[tuple[bytes, int]]: ...

    def missing_tables(self) -> list[str]: ...

    def add_checkpoint(self, size: int, note: str, created: str) -> None: ...

    def checkpoints(self) -> list[tuple[int, str]]: ...

    def add_cosignature(self, size: int, name: str, line: str) -> None: ...

    def cosignatures(self, size: int) -> list[tuple[str, str]]: ...

    def add_stamp(self, size: int, token: bytes, stamped_at: str) -> None: ...

    def stamps(self) -> dict[int, tuple[bytes, str]]: ...

    def add_archive(self, seq: int, first: int, last: int, path: str, sha256: str) -> None: ...

    def archives(self) -> list[tuple[int, int, int, str, str]]: ...

    def prune(self, first: int, last: int) -> int: ...

    def close(self) -> None: ...
