"""The message log (nhật ký thông điệp): every exchange recorded before its response leaves.

Default: the node's audit log (:class:`lienthong.audit.log.AuditLog`, an RFC 6962 Merkle log
with group commit — an acknowledged entry survives a crash). Appends run in a small thread
pool so concurrent exchanges share one commit and the event loop never waits on ``fsync``.
The JSON-lines variant is for diagnosis only (no integrity, flushed but not synced).
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lienthong.audit.entries import exchange_entry
from lienthong.audit.log import AuditLog


class MessageLog(Protocol):
    async def append(self, record: dict[str, Any]) -> None:
        """Return once ``record`` is durably logged (raise if it could not be)."""
        ...

    def close(self) -> None: ...


class JsonlMessageLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    async def append(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def to_entry(record: dict[str, Any]) -> Any:
    """The audit entry of one message-log record (floats are not allowed there)."""
    extra = {k: v for k, v in record.items() if k not in _MAIN and v is not None}
    tokens = record.get("response_tokens") or [""]
    return exchange_entry(
        at=datetime.fromtimestamp(record["ts"], UTC),
        message_id=str(record["id"]),
        client=str(record["client"]),
        service=str(record["service"]),
        outcome="ok",
        status=record.get("response_status"),
        request_hash=record.get("request_hash"),
        response_hash=_sha(tokens[0]),
        user_id=record.get("user"),
        classification=str(record.get("level")),
        **extra,
    )


_MAIN = {"ts", "id", "client", "service", "response_status", "request_hash", "user", "level"}


def _sha(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


class AuditMessageLog:
    """Group commit on the event-loop side: exchanges queue their entry and await a future;
    one writer thread appends everything queued as one batch (one transaction, one fsync)
    while the next batch accumulates. Measured: a thread per append cost ~0.6 ms of CPU per
    exchange in thread hand-offs; batching removes most of it."""

    def __init__(
        self,
        path: Path,
        origin: str,
        *,
        durability: str = "power",
        sync_interval_s: float = 0.01,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.log = AuditLog.open(path, origin=origin, durability=durability)
        # "process": a commit is a few hundred microseconds of SQLite work with no fsync —
        # cheaper done on the event loop, once per loop iteration for everything queued,
        # than handed to a thread (measured: the hand-off cost ~45 µs CPU per exchange).
        self._inline = durability == "process"
        if self._inline:
            self.log.sync_every(sync_interval_s)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="message-log")
        self._queue: list[tuple[Any, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._flush_scheduled = False

    async def append(self, record: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append((to_entry(record), future))
        if self._inline:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush_inline)
        elif self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        await future

    def _flush_inline(self) -> None:
        """Commit everything queued during this loop iteration as one batch."""
        self._flush_scheduled = False
        batch, self._queue = self._queue, []
        try:
            self.log.append([e for e, _ in batch])
        except Exception as exc:  # every waiter learns the batch failed
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await loop.run_in_executor(self._pool, self.log.append, [e for e, _ in batch])
            except Exception as exc:  # every waiter learns the batch failed
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.log.close()
