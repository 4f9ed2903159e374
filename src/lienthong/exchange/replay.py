"""Freshness and replay window with bounded memory.

A message is accepted once: its timestamp must lie within ``window_s`` of ``now`` and its key
(client + message id + nonce) must not have been seen inside the window. When more than
``max_entries`` keys are remembered, the oldest are forgotten and the acceptance floor rises to
their timestamp, so a forgotten key can never be replayed (it is then simply too old).

The remembered keys live in memory only, so the floor starts at ``start`` (the process start
time): after a restart, a request signed before it is refused (``LT.REPLAY``) even inside the
window — the node cannot know whether it saw it — and the caller retries with a fresh
signature. Nothing has to be persisted or fsynced per call.

Except for one kind of request: a timestamp *ahead* of this node's clock (a signer whose clock
runs fast, inside the window) may lie after the next start, where the floor does not stop it
(a relay that kept it could replay it once the provider restarted). With a ``journal`` file,
the key and timestamp of a request more than ``AHEAD_S`` ahead are appended and ``fsync``ed
before it is accepted, and loaded again at the next start. Requests at most ``AHEAD_S`` ahead
(clock jitter between synchronised nodes) cost no write: a gateway process takes several times
that to start (≈ 0.45 s for the imports alone), so their timestamps lie before its floor.
"""

from __future__ import annotations

import heapq
import os
from pathlib import Path

from lienthong.exchange.protocol import ErrorCode, Refused

AHEAD_S = 0.1  # timestamps further ahead of this node's clock are journaled before acceptance


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
        self._seen: set[str] = set()
        self._heap: list[tuple[float, str]] = []
        self._floor = float("-inf") if start is None else start
        self._journal = journal
        self._ahead: list[tuple[float, str]] = []  # journaled entries (timestamp, key)
        self._journal_lines = 0
        self._compact_at = 1024
        if journal is not None:
            self._load_journal(journal, self._floor)

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_record(self, key: str, ts: float, now: float) -> None:
        """Raise ``Refused(LT.REPLAY)`` if stale, future or already seen; else remember it."""
        self._expire(now)
        if abs(now - ts) > self.window_s:
            raise Refused(ErrorCode.REPLAY, "timestamp outside the freshness window", skew=now - ts)
        if ts < self._floor:
            raise Refused(
                ErrorCode.REPLAY, "timestamp older than the forgotten horizon or the process start"
            )
        if key in self._seen:
            raise Refused(ErrorCode.REPLAY, "message already seen", key=key)
        if ts > now + AHEAD_S and self._journal is not None:
            self._write_ahead(key, ts, now)  # before it is accepted: a crash cannot lose it
        self._remember(key, ts)

    def _remember(self, key: str, ts: float) -> None:
        self._seen.add(key)
        heapq.heappush(self._heap, (ts, key))
        while len(self._heap) > self.max_entries:
            old_ts, old_key = heapq.heappop(self._heap)
            self._seen.discard(old_key)
            self._floor = max(self._floor, old_ts)

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._heap and self._heap[0][0] < horizon:
            _, key = heapq.heappop(self._heap)
            self._seen.discard(key)

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
        assert self._journal is not None
        self._ahead.append((ts, key))
        if self._journal_lines >= self._compact_at:  # amortised: entries behind now are dead
            self._ahead = [(t, k) for t, k in self._ahead if t >= now]
            self._rewrite()
            self._compact_at = 2 * len(self._ahead) + 1024
            return
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        with self._journal.open("a", encoding="utf-8") as fh:
            fh.write(f"\n{ts!r}\t{key}\n")  # the leading newline ends a torn line before it
            fh.flush()
            os.fsync(fh.fileno())
        self._journal_lines += 1

    def _rewrite(self) -> None:
        """Replace the journal by the entries still ahead (atomic: temporary file, rename)."""
        assert self._journal is not None
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._journal.with_name(self._journal.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.writelines(f"{ts!r}\t{key}\n" for ts, key in self._ahead)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._journal)
        self._journal_lines = len(self._ahead)
