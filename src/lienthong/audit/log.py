"""The audit log (nhật ký kiểm toán): durable batched appends, signed checkpoints, proofs.

>>> log = AuditLog.open("node.auditlog", signer=signer, origin="lienthong.gov.vn/audit/BNV")
>>> [i] = log.append([admin_entry(at=now, actor="ops", action="config.change", target="x")])
>>> note = log.checkpoint(now=now)           # signed C2SP checkpoint (stamped in background)
>>> proof = log.prove(i)                      # RFC 6962 inclusion proof, ~log2(n) lookups

Group commit: concurrent callers queue their entries; whichever holds the write lock commits
everything queued in one transaction, so many threads share one fsync. ``append`` returns
only after that commit: an acknowledged entry survives a crash.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lienthong.audit import merkle
from lienthong.audit.checkpoint import Checkpoint, parse_note, sign_line, to_note
from lienthong.audit.entries import Entry, timestamp
from lienthong.audit.stamping import Stamper, Timestamper
from lienthong.audit.store import SCHEMA_VERSION, LeafRow, LogStore
from lienthong.audit.tiles import (
    LEVEL_SHIFT,
    TILE_BYTES,
    append_tiles,
    hashes_from_tiles,
    partial_tiles,
)
from lienthong.errors import InputError, LienthongError, NotFound
from lienthong.trust.keys import Signer, public_key_to_pem


@dataclass(frozen=True)
class InclusionProof:
    """An RFC 6962 inclusion proof (audit path bottom-up)."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    root_hash: bytes
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """The ``lienthong audit prove --json`` shape (lowercase hex)."""
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "root_hash": self.root_hash.hex(),
            "hashes": [h.hex() for h in self.hashes],
        }

    def verify(self) -> None:
        """Raise :class:`~lienthong.audit.merkle.ProofError` unless the proof holds."""
        merkle.verify_inclusion(
            self.leaf_index, self.tree_size, self.leaf_hash, self.hashes, self.root_hash
        )


WAL_CHECKPOINT_INTERVAL_S = 0.5  # background WAL checkpoints (durability "process")
CACHED_LEVELS = 6  # tiles of level ≥ 6: about n/8000 of them, 8 KiB each
MAX_CACHED_TILES = 8192  # 64 MiB at most


class _Pending:
    __slots__ = ("entries", "error", "indexes")

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = entries
        self.indexes: list[int] | None = None
        self.error: BaseException | None = None


def open_store(
    target: str | Path, *, create: bool = True, durability: str = "power", readonly: bool = False
) -> LogStore:
    """SQLite file path (default) or ``postgresql://`` DSN → a store.

    ``durability`` (SQLite only): ``"power"`` — a commit returns after ``fsync``; ``"process"``
    — a commit survives the process being killed, and power loss only after the next
    :meth:`AuditLog.sync` (see :meth:`AuditLog.sync_every`). PostgreSQL keeps its own setting.
    """
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        from lienthong.audit.pgstore import PostgresStore

        return PostgresStore(text, create=create, readonly=readonly)
    from lienthong.audit.sqlstore import SqliteStore

    return SqliteStore(text, create=create, durability=durability, readonly=readonly)


def _bind_key(store: LogStore, name: str, signer: Signer) -> None:
    """Record the checkpoint key; refuse a different key for an existing log."""
    pem = public_key_to_pem(signer.public_key()).decode()
    known = store.get_meta("public_key")
    if known is not None and known != pem and store.checkpoints():
        store.close()
        raise InputError("this log's checkpoints are signed with another key (no key rotation)")
    store.set_meta("key_name", name)
    store.set_meta("public_key", pem)


class AuditLog:
    """One node's append-only Merkle log over a :class:`LogStore`."""

    def __init__(
        self,
        store: LogStore,
        *,
        origin: str,
        signer: Signer | None = None,
        key_name: str | None = None,
        timestamper: Timestamper | None = None,
    ) -> None:
        self.store, self.origin, self.signer = store, origin, signer
        self.key_name = key_name or origin
        self._write_lock = threading.Lock()
        self._stop_checkpoints = threading.Event()
        self._roots: dict[int, bytes] = {}  # a root never changes once its size exists
        self._tile_cache: dict[int, bytes] = {}
        self._checkpointer: threading.Thread | None = None
        self.checkpoint_error: str | None = None
        self._syncer: threading.Thread | None = None
        self._stop_sync = threading.Event()
        self._appended = 0  # commits so far (the syncer syncs only when it moved)
        self.sync_error: str | None = None
        # called by sync() before the store is synced (e.g. a side store written with the log)
        self.sync_hooks: list[Callable[[], None]] = []
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self.stamper = Stamper(store, timestamper) if timestamper is not None else None
        if self.stamper is not None:
            self.stamper.start()

    @classmethod
    def open(
        cls,
        target: str | Path,
        *,
        signer: Signer | None = None,
        origin: str | None = None,
        key_name: str | None = None,
        timestamper: Timestamper | None = None,
        create: bool = True,
        durability: str = "power",
        readonly: bool = False,
    ) -> AuditLog:
        """Open or create the log at ``target`` (SQLite path or PostgreSQL DSN).

        ``origin`` (C2SP log name, e.g. ``lienthong.gov.vn/audit/<member>``) is fixed at
        creation; ``signer`` is needed only to make checkpoints. ``create=False`` refuses,
        without writing anything, a target that is not already an audit log. ``readonly=True``
        (verify, prove, history…) opens it without writing anything at all.
        """
        if readonly and signer is not None:
            raise InputError("a log opened read-only cannot sign checkpoints")
        store = open_store(target, create=create, durability=durability, readonly=readonly)
        stored = store.get_meta("origin")
        if stored is None and readonly:
            store.close()
            raise InputError(f"{target} is not an audit log (no origin recorded)")
        if stored is None:
            if not origin:
                store.close()
                raise InputError(f"{target} is not an audit log yet: give an origin to create it")
            if any(c.isspace() for c in origin):
                store.close()
                raise InputError("log origin must not contain spaces")
            store.set_meta("origin", origin)
            store.set_meta("schema_version", str(SCHEMA_VERSION))
        elif store.get_meta("schema_version") != str(SCHEMA_VERSION):
            found = store.get_meta("schema_version")
            store.close()  # no migration exists yet: version 1 is the first layout
            raise InputError(
                f"{target} has audit schema version {found}, this program "
                f"reads version {SCHEMA_VERSION}"
            )
        elif origin and origin != stored:
            store.close()
            raise InputError(f"{target} is the log of {stored!r}, not {origin!r}")
        name = key_name or store.get_meta("key_name") or stored or origin
        if signer is not None:
            _bind_key(store, str(name), signer)
        return cls(
            store,
            origin=stored or str(origin),
            signer=signer,
            key_name=name,
            timestamper=timestamper,
        )

    # -- appends ----------------------------------------------------------------------------
    def append(self, entries: Sequence[Entry]) -> list[int]:
        """Append ``entries`` in order; return their indexes once durably committed."""
        if not entries:
            return []
        mine = _Pending(entries)
        with self._queue_lock:
            self._queue.append(mine)
        with self._write_lock:
            if mine.indexes is None and mine.error is None:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        if mine.error is not None:
            raise mine.error
        assert mine.indexes is not None
        return mine.indexes

    def append_one(self, entry: Entry) -> int:
        """Append one entry (shares a commit with concurrent callers)."""
        return self.append([entry])[0]

    def _commit(self, batch: list[_Pending]) -> None:
        entries = [e for p in batch for e in p.entries]
        data = [e.data for e in entries]
        hashes = merkle.leaf_hashes(data)
        try:
            with self.store.writer() as w:
                start = w.size
                tiles = append_tiles(start, hashes, w.get_tiles(partial_tiles(start, len(hashes))))
                leaves: list[LeafRow] = list(
                    zip(
                        range(start, start + len(data)),
                        [e.kind for e in entries],
                        data,
                        strict=True,
                    )
                )
                persons = [
                    (e.person, start + i) for i, e in enumerate(entries) if e.person is not None
                ]
                w.insert(leaves, tiles, persons)
        except BaseException as exc:
            for p in batch:
                p.error = exc
            raise
        pos = start
        for p in batch:
            p.indexes = list(range(pos, pos + len(p.entries)))
            pos += len(p.entries)
        self._appended += 1

    def sync(self) -> None:
        """Make every committed entry durable against power loss (for stores opened with
        ``durability="process"``; nothing to do otherwise)."""
        for hook in self.sync_hooks:
            hook()
        sync = getattr(self.store, "sync", None)
        if sync is not None:
            sync()

    def sync_every(self, interval_s: float) -> None:
        """In a daemon thread, :meth:`sync` every ``interval_s`` seconds whenever entries were
        committed since the last sync: with ``durability="process"`` this bounds what a power
        loss can take to the last ``interval_s`` of entries. A SQLite store's WAL checkpoints
        run in that thread too, every ``WAL_CHECKPOINT_INTERVAL_S`` when the log grew, instead
        of in the committing thread."""
        if interval_s <= 0:
            raise InputError("sync interval must be positive")
        self._stop_sync.clear()
        # SQLite stores: WAL checkpoints move to this thread too (see offload_checkpoints)
        checkpoint_wal = getattr(self.store, "checkpoint_wal", None)
        offload = getattr(self.store, "offload_checkpoints", None)
        if checkpoint_wal is not None and offload is not None:
            offload()

        def loop() -> None:
            synced = self._appended
            checkpointed_at = time.monotonic()
            while not self._stop_sync.wait(interval_s):
                now = self._appended
                if now == synced:
                    continue
                try:
                    self.sync()
                    synced = now
                    self.sync_error = None
                    if checkpoint_wal is not None and (
                        time.monotonic() - checkpointed_at >= WAL_CHECKPOINT_INTERVAL_S
                    ):
                        checkpoint_wal()
                        checkpointed_at = time.monotonic()
                except LienthongError as exc:  # reported (health), retried at the next tick
                    self.sync_error = exc.message
            try:
                self.sync()  # closing: everything committed is made durable
            except LienthongError as exc:
                self.sync_error = exc.message

        self._syncer = threading.Thread(target=loop, name="audit-syncer", daemon=True)
        self._syncer.start()

    # -- reads and proofs -------------------------------------------------------------------
    def hashes(self, ids: list[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        """Stored tree hashes ``(level, index) → hash`` (one batched storage read)."""
        return hashes_from_tiles(ids, self._tiles)

    def _tiles(self, keys: list[int]) -> dict[int, bytes]:
        """Tiles by key; complete upper-level tiles (immutable) are kept in memory, so a proof
        reads only the few low-level tiles of its leaf from storage."""
        cache = self._tile_cache
        out = {k: cache[k] for k in keys if k in cache}
        missing = [k for k in keys if k not in out]
        if missing:
            fetched = self.store.get_tiles(missing)
            for key, blob in fetched.items():
                if len(blob) == TILE_BYTES and key >> LEVEL_SHIFT >= CACHED_LEVELS:
                    if len(cache) >= MAX_CACHED_TILES:
                        cache.clear()
                    cache[key] = blob
            out.update(fetched)
        return out

    def size(self) -> int:
        """Number of entries committed."""
        return self.store.size()

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` entries (default: all)."""
        size = self._size_at_most(size)
        root = self._roots.get(size)
        if root is None:
            root = merkle.root_from_subtrees(size, self.hashes)
            if len(self._roots) > 256:  # the sizes asked for are few: checkpoints, latest
                self._roots.clear()
            self._roots[size] = root
        return root

    def _size_at_most(self, size: int | None) -> int:
        current = self.size()
        if size is None:
            return current
        if not 0 <= size <= current:
            raise NotFound(f"log has {current} entries, not {size}")
        return size

    def entry(self, index: int) -> bytes:
        """Canonical bytes of entry ``index`` (NotFound if absent or archived)."""
        for rows in self.store.leaves(index, index + 1):
            for _i, _k, data in rows:
                if data is None:
                    raise NotFound(f"entry {index} was archived and pruned from the live log")
                return data
        raise NotFound(f"log has no entry {index}")

    def prove(self, index: int, size: int | None = None) -> InclusionProof:
        """Inclusion proof of entry ``index`` in the tree of ``size`` (default: current)."""
        size = self._size_at_most(size)
        if not 0 <= index < size:
            raise NotFound(f"entry {index} is not in a tree of size {size}")
        ranges = merkle.inclusion_ranges(index, size)
        hashes = merkle.resolve_ranges([(index, index + 1), *ranges], self.hashes)
        return InclusionProof(index, size, hashes[0], self.root(size), tuple(hashes[1:]))

    def consistency(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof between the trees of ``old_size`` and ``new_size``."""
        new_size = self._size_at_most(new_size)
        if not 0 <= old_size <= new_size:
            raise InputError(f"no consistency proof from size {old_size} to size {new_size}")
        return merkle.resolve_ranges(merkle.consistency_ranges(old_size, new_size), self.hashes)

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint(self, *, now: datetime | None = None, size: int | None = None) -> str:
        """Sign and store a checkpoint of the current tree; return the signed note."""
        if self.signer is None:
            raise InputError("this log was opened without a signer: cannot make checkpoints")
        size = self.size() if size is None else size
        cp = Checkpoint(self.origin, size, self.root(size))
        note = to_note(cp, [sign_line(cp, self.key_name, self.signer)])
        self.store.add_checkpoint(size, note, timestamp(now or datetime.now(UTC)))
        if self.stamper is not None:
            self.stamper.notify()
        return self.checkpoint_note(size)

    def checkpoint_note(self, size: int) -> str:
        """The stored signed note of size ``size`` with witness co-signatures appended."""
        for s, note in self.store.checkpoints():
            if s == size:
                return note + "".join(line for _n, line in self.store.cosignatures(size))
        raise NotFound(f"no checkpoint of size {size}")

    def latest_checkpoint(self) -> tuple[Checkpoint, str] | None:
        """The largest stored checkpoint and its full note, or None."""
        cps = self.store.checkpoints()
        if not cps:
            return None
        size, _note = cps[-1]
        full = self.checkpoint_note(size)
        return parse_note(full)[0], full

    def checkpoint_every(self, interval_s: float) -> None:
        """Sign a checkpoint every ``interval_s`` seconds whenever the log has grown (in a
        daemon thread; X-Road stamps its message log in 60 s batches likewise)."""
        if self.signer is None:
            raise InputError("automatic checkpoints need a signer")
        if interval_s <= 0:
            raise InputError("checkpoint interval must be positive")
        self._stop_checkpoints.clear()

        def loop() -> None:
            while not self._stop_checkpoints.wait(interval_s):
                try:
                    cps = self.store.checkpoints()
                    if self.size() > (cps[-1][0] if cps else 0):
                        self.checkpoint()
                except LienthongError as exc:  # reported, retried at the next tick
                    self.checkpoint_error = exc.message

        self._checkpointer = threading.Thread(target=loop, name="audit-checkpointer", daemon=True)
        self._checkpointer.start()

    def stop_checkpoints(self) -> None:
        """Stop the :meth:`checkpoint_every` thread (e.g. before a final checkpoint)."""
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)

    def close(self) -> None:
        """Stop background threads and close the store."""
        self.stop_checkpoints()
        self._stop_sync.set()
        if self._syncer is not None:
            self._syncer.join(timeout=10)
        if self.stamper is not None:
            self.stamper.stop()
        self.store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
