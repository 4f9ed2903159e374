"""Freshness and replay window with bounded memory.

A message is accepted once: its timestamp must lie within ``window_s`` of ``now`` and its key
(client + message id + nonce) must not have been seen inside the window. When more than
``max_entries`` keys are remembered, the oldest are forgotten and the acceptance floor rises to
their timestamp, so a forgotten key can never be replayed (it is then simply too old).

The remembered keys live in memory only, so the floor starts at ``start`` (the process start
time): after a restart, a request signed before it is refused (``LT.REPLAY``) even inside the
window. The node cannot know whether it saw — and served — it, so the refusal carries
``maybe_served`` (as does the same request delivered twice) and the gateway sends it
unsigned: the caller learns ``LT.UNAVAILABLE`` (outcome unknown), never a signed "not
served". Nothing has to be persisted or fsynced per call.

Except for one kind of request: a timestamp *ahead* of this node's clock (a signer whose clock
runs fast, inside the window) may lie after the next start, where the floor does not stop it
(a relay that kept it could replay it once the provider restarted). With a ``journal`` file,
the key and timestamp of a request more than ``AHEAD_S`` ahead are appended and ``fsync``ed
before it is accepted, and loaded again at the next start. Requests at most ``AHEAD_S`` ahead
(clock jitter between synchronised nodes) cost no write: a gateway process takes several times
that to start (≈ 0.45 s for the imports alone), so their timestamps lie before its floor.

The gateway calls :meth:`ReplayWindow.admit`: the key is remembered at once (a second copy is
refused from then on) and the journal record queued; the records queued meanwhile are written
and ``fsync``ed together by one commit in a worker thread, off the event loop (group commit),
and each such request awaits the future :meth:`admit` returned — it is accepted only once its
own record is durable, while the other calls of the gateway go on. A failed write refuses the
requests of that commit (``LT.UNAVAILABLE``). :meth:`check_and_record` writes inline (tools,
tests, the client gateway's caller-chosen ids, which are never ahead).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
from collections.abc import Awaitable
from pathlib import Path

from lienthong.exchange.protocol import ErrorCode, Refused

AHEAD_S = 0.1  # timestamps further ahead of this node's clock are journaled before acceptance

log = logging.getLogger(__name__)


class ReplayWindow:
    def __init__(
        self,
        window_s: float = 300.0,
        max_entries: int = 1_000_000,
        start: float | None = None,
        journal: Path | None = None,
    ) -> None:
        if window_s <= 0 or max_entries <= 0:
            raise ValueError("window and capacity must be positive")
        self.window_s = window_s
        self.max_entries = max_entries
        # key -> its signed timestamp (the heap's own float: no extra object per key)
        self._seen: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._floor = float("-inf") if start is None else start
        self._journal = journal
        self._ahead: list[tuple[float, str]] = []  # journaled entries (timestamp, key)
        self._journal_lines = 0
        self._compact_at = 1024
        self._queued: list[tuple[str, asyncio.Future[None]]] = []  # (record, its durability)
        self._committer: asyncio.Task[None] | None = None
        self._last_now = float("-inf")
        if journal is not None:
            self._load_journal(journal, self._floor)

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_record(self, key: str, ts: float, now: float) -> None:
        """Raise ``Refused(LT.REPLAY)`` if stale, future or already seen; else remember it
        (a journal record due is written and fsynced here, before returning)."""
        if self._check(key, ts, now):
            self._write_ahead(key, ts, now)  # before it is accepted: a crash cannot lose it
        self._remember(key, ts)

    def admit(self, key: str, ts: float, now: float) -> Awaitable[None] | None:
        """As :meth:`check_and_record`, on the running event loop: the key is remembered at
        once; when a journal record is due, return what to await before accepting the request
        (its record durable, group-committed off the loop), else None."""
        if not self._check(key, ts, now):
            self._remember(key, ts)
            return None
        loop = asyncio.get_running_loop()
        durable: asyncio.Future[None] = loop.create_future()
        durable.add_done_callback(_consume)  # a request refused meanwhile never awaits it
        self._ahead.append((ts, key))
        self._last_now = max(self._last_now, now)
        self._queued.append((f"\n{ts!r}\t{key}\n", durable))
        self._remember(key, ts)
        if self._committer is None:
            self._committer = loop.create_task(self._commit_queued())
        return durable

    def _check(self, key: str, ts: float, now: float) -> bool:
        """Raise ``Refused(LT.REPLAY)`` as above; return whether a journal record is due."""
        self._expire(now)
        if abs(now - ts) > self.window_s:
            raise Refused(ErrorCode.REPLAY, "timestamp outside the freshness window", skew=now - ts)
        if ts < self._floor:
            # ``maybe_served``: this node cannot know whether it served the request (before
            # its restart, or among the forgotten keys) — no signed refusal may say it did not
            raise Refused(
                ErrorCode.REPLAY,
                "timestamp older than the forgotten horizon or the process start",
                maybe_served=True,
            )
        seen_ts = self._seen.get(key)
        if seen_ts is not None:
            # the same timestamp: (for an honest signer) the very request seen before,
            # delivered twice — that copy may have been served (see inbound)
            raise Refused(
                ErrorCode.REPLAY, "message already seen", key=key, maybe_served=seen_ts == ts
            )
        return ts > now + AHEAD_S and self._journal is not None

    async def _commit_queued(self) -> None:
        """Write the queued records, one append and one fsync per round in a worker thread,
        until none is left; resolve each record's future once it is durable."""
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                compact = self._journal_lines >= self._compact_at
                if compact:  # amortised: entries behind now are dead (queued ones are ahead)
                    self._ahead = [(t, k) for t, k in self._ahead if t >= self._last_now]
                    lines = [f"{t!r}\t{k}\n" for t, k in self._ahead]
                else:
                    lines = [line for line, _ in batch]
                try:
                    await asyncio.to_thread(self._write_lines, lines, compact)
                except OSError as exc:
                    log.error("replay journal %s: %s", self._journal, exc)
                    for _, durable in batch:
                        if not durable.done():
                            durable.set_exception(
                                Refused(ErrorCode.UNAVAILABLE, "replay journal not writable")
                            )
                    continue
                if compact:
                    self._journal_lines = len(lines)
                    self._compact_at = 2 * len(lines) + 1024
                else:
                    self._journal_lines += len(lines)
                for _, durable in batch:
                    if not durable.done():
                        durable.set_result(None)
        finally:
            self._committer = None

    def _write_lines(self, lines: list[str], replace: bool) -> None:
        """Append ``lines`` to the journal, or replace it by them (atomic: temporary file,
        rename); durable before returning — the file fsynced, and its directory too when the
        name is new (a rename, or the journal's first record). Runs in a worker thread."""
        assert self._journal is not None
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        new_name = replace or not self._journal.exists()
        target = self._journal.with_name(self._journal.name + ".tmp") if replace else self._journal
        with target.open("w" if replace else "a", encoding="utf-8") as fh:
            fh.writelines(lines)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(target, self._journal)
        if new_name:
            fd = os.open(self._journal.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _remember(self, key: str, ts: float) -> None:
        self._seen[key] = ts
        heapq.heappush(self._heap, (ts, key))
        while len(self._heap) > self.max_entries:
            old_ts, old_key = heapq.heappop(self._heap)
            self._seen.pop(old_key, None)
            self._floor = max(self._floor, old_ts)

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._heap and self._heap[0][0] < horizon:
            _, key = heapq.heappop(self._heap)
            self._seen.pop(key, None)

    def _load_journal(self, path: Path, floor: float) -> None:
        """Remember the journaled keys a restart would otherwise forget (timestamps at or
        after the floor: the others the floor refuses anyway). Read only: ``gateway check``
        loads the journal of a running gateway too; the gateway compacts it as it grows."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            ts_text, sep, key = line.partition("\t")
            try:
                ts = float(ts_text)
            except ValueError:
                continue  # a torn line (crash while appending): that request was not accepted
            if sep and ts >= floor and key not in self._seen:
                self._remember(key, ts)
                self._ahead.append((ts, key))
        self._journal_lines = len(lines)
        self._compact_at = max(1024, 2 * len(lines))

    def _write_ahead(self, key: str, ts: float, now: float) -> None:
        """Journal one record inline (fsynced before returning)."""
        self._ahead.append((ts, key))
        if self._journal_lines >= self._compact_at:  # amortised: entries behind now are dead
            self._ahead = [(t, k) for t, k in self._ahead if t >= now]
            self._write_lines([f"{t!r}\t{k}\n" for t, k in self._ahead], replace=True)
            self._journal_lines = len(self._ahead)
            self._compact_at = 2 * len(self._ahead) + 1024
            return
        # the leading newline ends a line torn by a crash before it
        self._write_lines([f"\n{ts!r}\t{key}\n"], replace=False)
        self._journal_lines += 1


def _consume(future: asyncio.Future[None]) -> None:
    """Mark a failed durability future's exception as retrieved (its request may have been
    refused by a later check and never await it)."""
    if not future.cancelled():
        future.exception()
