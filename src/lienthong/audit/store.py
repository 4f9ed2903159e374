"""The storage interface of the audit log and the SQL shared by its backends.

Tables (the same in SQLite and PostgreSQL; only types and parameter style differ, held as
data in :class:`Dialect`):

- ``leaves(idx, hash, kind, data)`` — one row per entry; ``data`` is NULL once archived+pruned.
- ``nodes(id, hash)`` — every complete subtree of two or more leaves, ``id = level << 48 | index``
  (level ≥ 1), written at append time so a proof is ~log₂ n point lookups.
- ``persons(person, idx)`` — keyed person hash → entry index (citizen access history).
- ``checkpoints(size, note)`` — signed notes; ``cosignatures(size, name, line)`` from witnesses;
  ``stamps(size, token, stamped_at)`` RFC 3161 tokens over each note; ``archives(seq, …)``;
  ``meta(key, value)`` — schema version, origin, public key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from lienthong.audit.merkle import NodeId

SCHEMA_VERSION = 1
LEVEL_SHIFT = 48

LeafRow = tuple[int, bytes, str, bytes | None]  # idx, hash, kind, data


def node_key(level: int, index: int) -> int:
    """Primary key of a stored complete subtree."""
    return (level << LEVEL_SHIFT) | index


@dataclass(frozen=True)
class Dialect:
    """What differs between SQL backends, as data."""

    name: str
    param: str  # "?" or "%s"
    blob: str
    text: str = "TEXT"

    def sql(self, template: str) -> str:
        """Replace ``?`` placeholders with the backend's parameter marker."""
        return template.replace("?", self.param)

    def schema(self) -> list[str]:
        b, t = self.blob, self.text
        return [
            f"CREATE TABLE IF NOT EXISTS meta (key {t} PRIMARY KEY, value {t} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS leaves (idx BIGINT PRIMARY KEY, hash {b} NOT NULL,"
            f" kind {t} NOT NULL, data {b})",
            f"CREATE TABLE IF NOT EXISTS nodes (id BIGINT PRIMARY KEY, hash {b} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS persons (person {b} NOT NULL, idx BIGINT NOT NULL,"
            " PRIMARY KEY (person, idx))",
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

    def get_hashes(self, ids: list[NodeId]) -> dict[NodeId, bytes]: ...

    def insert(
        self,
        leaves: list[LeafRow],
        nodes: list[tuple[int, bytes]],
        persons: list[tuple[bytes, int]],
    ) -> None: ...


class LogStore(Protocol):
    """Persistence of one log; both backends pass the same contract tests."""

    location: str

    def writer(self) -> AbstractContextManager[StoreWriter]: ...

    def size(self) -> int: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def get_hashes(self, ids: list[NodeId]) -> dict[NodeId, bytes]: ...

    def leaves(self, start: int, end: int, chunk: int = 65536) -> Iterator[list[LeafRow]]: ...

    def nodes_in(self, level: int, first: int, last: int) -> list[tuple[int, bytes]]: ...

    def count_nodes(self) -> int: ...

    def person_indexes(self, person: bytes) -> list[int]: ...

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
