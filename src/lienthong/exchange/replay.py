"""Freshness and replay window with bounded memory.

A message is accepted once: its timestamp must lie within ``window_s`` of ``now`` and its key
(client + message id + nonce) must not have been seen inside the window. When more than
``max_entries`` keys are remembered, the oldest are forgotten and the acceptance floor rises to
their timestamp, so a forgotten key can never be replayed (it is then simply too old).

The remembered keys live in memory only, so the floor starts at ``start`` (the process start
time): after a restart, a request signed before it is refused (``LT.REPLAY``) even inside the
window — the node cannot know whether it saw it — and the caller retries with a fresh
signature. Nothing has to be persisted or fsynced per call.
"""

from __future__ import annotations

import heapq

from lienthong.exchange.protocol import ErrorCode, Refused


class ReplayWindow:
    def __init__(
        self, window_s: float = 300.0, max_entries: int = 1_000_000, start: float | None = None
    ) -> None:
        if window_s <= 0 or max_entries <= 0:
            raise ValueError("window and capacity must be positive")
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: set[str] = set()
        self._heap: list[tuple[float, str]] = []
        self._floor = float("-inf") if start is None else start

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
