"""The agency's durable state (SQLite): outbox of signed batches, checkpoints, schemas, runs.

A chunk read from the source becomes a batch that is written to the outbox *together with*
the table's extract position in one transaction, so after a crash the next read starts right
after the last enqueued chunk. The acknowledged position advances only when the hub's signed
ack for that batch has been verified; unacknowledged batches are re-sent byte for byte.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from lienthong.errors import BackendError, InputError

SCHEMA_VERSION = 1
_DDL = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, envelope BLOB, position TEXT NOT NULL,
  read INTEGER NOT NULL, applied INTEGER NOT NULL, quarantined INTEGER NOT NULL,
  created_at TEXT NOT NULL, acked_at TEXT, ack BLOB);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE acked_at IS NULL;
CREATE TABLE IF NOT EXISTS tables (
  tbl TEXT PRIMARY KEY, extract_position TEXT, acked_position TEXT, acked_seq INTEGER,
  schema TEXT, last_error TEXT, updated_at TEXT);
"""


@dataclass(frozen=True)
class Pending:
    seq: int
    tbl: str
    envelope: bytes
    position: dict[str, Any]


class Outbox:
    """One agency pipeline's state file (single writer)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            # `state = "state/bhxh.db"`: the directory is made on the first run (after the
            # run's checks, like the file)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"sync state {path}: cannot create its directory: {exc}") from exc
        try:
            # one writer; follow mode may run it from a worker thread
            self.db = sqlite3.connect(
                str(path), isolation_level=None, timeout=30, check_same_thread=False
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_DDL)
            self.db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            # a state that has never enqueued a batch starts a new epoch: its batches carry
            # the epoch id and its first one asks the hub to re-base the source's sequence
            self.db.execute(
                "INSERT OR IGNORE INTO meta SELECT 'epoch', ? WHERE NOT EXISTS "
                "(SELECT 1 FROM outbox)",
                (uuid.uuid4().hex,),
            )
            row = self.db.execute("SELECT v FROM meta WHERE k = 'epoch'").fetchone()
            self.epoch: str | None = None if row is None else str(row[0])
        except sqlite3.Error as exc:
            raise BackendError(f"sync state {path}: {exc}") from exc
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Hold an exclusive lock on the state for this process's run (``<state>.lock``,
        ``flock``; released on :meth:`close` or when the process dies, even by SIGKILL).

        A second ``sync run`` of the same pipeline is refused instead of double-reading.
        """
        if self._lock_fd is not None:
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InputError(
                f"pipeline state {self.path} is in use by another sync run (pid {holder})",
                code="state_locked",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        self.db.close()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _table_field(self, tbl: str, column: str) -> Any:
        row = self.db.execute(f"SELECT {column} FROM tables WHERE tbl = ?", (tbl,)).fetchone()
        return None if row is None or row[0] is None else orjson.loads(row[0])

    def extract_position(self, tbl: str) -> dict[str, Any] | None:
        return self._table_field(tbl, "extract_position")

    def acked_position(self, tbl: str) -> dict[str, Any] | None:
        return self._table_field(tbl, "acked_position")

    def schema(self, tbl: str) -> dict[str, str] | None:
        return self._table_field(tbl, "schema")

    def set_field(self, tbl: str, column: str, value: Any, now: str) -> None:
        text = None if value is None else orjson.dumps(value).decode()
        self.db.execute(
            f"""INSERT INTO tables (tbl, {column}, updated_at) VALUES (?, ?, ?)
                ON CONFLICT (tbl) DO UPDATE SET {column} = excluded.{column},
                updated_at = excluded.updated_at""",
            (tbl, text, now),
        )

    def enqueue(
        self,
        tbl: str,
        position: dict[str, Any],
        counts: tuple[int, int, int],
        build: Callable[[int], bytes],
        now: str,
    ) -> int:
        """Assign the next sequence number, build the envelope, store it and the position."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            (last,) = self.db.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()
            seq = int(last) + 1
            envelope = build(seq)
            self.db.execute(
                "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (seq, tbl, envelope, orjson.dumps(position).decode(), *counts, now),
            )
            self.set_field(tbl, "extract_position", position, now)
            self.db.execute("COMMIT")
            return seq
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def pending(self, limit: int = 100) -> list[Pending]:
        rows = self.db.execute(
            "SELECT seq, tbl, envelope, position FROM outbox WHERE acked_at IS NULL "
            "ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [Pending(s, t, bytes(e), orjson.loads(p)) for s, t, e, p in rows]

    def pending_count(self) -> int:
        return int(
            self.db.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0]
        )

    def mark_acked(self, item: Pending, ack: bytes, now: str) -> None:
        """Record the verified ack and advance the table's acknowledged checkpoint."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            # the envelope is no longer needed once the hub has it; the ack is the receipt
            self.db.execute(
                "UPDATE outbox SET acked_at = ?, ack = ?, envelope = NULL WHERE seq = ?",
                (now, ack, item.seq),
            )
            self.set_field(item.tbl, "acked_position", item.position, now)
            self.db.execute("UPDATE tables SET acked_seq = ? WHERE tbl = ?", (item.seq, item.tbl))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def totals(self, tbl: str | None = None) -> dict[str, Any]:
        where, params = ("WHERE tbl = ?", (tbl,)) if tbl else ("", ())
        row = self.db.execute(
            "SELECT coalesce(sum(read),0),"
            " coalesce(sum(CASE WHEN acked_at IS NOT NULL THEN applied END),0),"
            " coalesce(sum(CASE WHEN acked_at IS NOT NULL THEN quarantined END),0),"
            " coalesce(sum(acked_at IS NOT NULL),0), count(*),"
            " coalesce(sum(CASE WHEN acked_at IS NULL THEN read END),0),"
            f" min(CASE WHEN acked_at IS NULL THEN created_at END) FROM outbox {where}",
            params,
        ).fetchone()
        keys = ("read", "applied", "quarantined", "batches_acked", "batches", "rows_unacked")
        out: dict[str, Any] = dict(zip(keys, map(int, row[:6]), strict=True))
        out["oldest_unacked"] = row[6]
        return out

    def tables(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT tbl FROM tables ORDER BY tbl")]

    def last_error(self, tbl: str) -> str | None:
        return self._table_field(tbl, "last_error")
