"""Asynchronous RFC 3161 time-stamping (đóng dấu thời gian) of checkpoints.

Unlike X-Road's message log — which stops exchanges after a time-stamping outage — stamps
are taken by a background thread: appends and checkpoints never wait for the TSA. An outage
only leaves checkpoints *pending*; :meth:`Stamper.status` reports how many and the last error,
and the thread retries with capped back-off.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from lienthong.audit.store import LogStore


@runtime_checkable
class Timestamper(Protocol):
    """A time-stamping authority client (the trust capability provides the RFC 3161 one)."""

    def timestamp(self, digest: bytes) -> bytes:
        """Return a DER time-stamp token over the SHA-256 ``digest``."""
        ...


def stamp_digest(note: str) -> bytes:
    """What is time-stamped: SHA-256 of the complete signed checkpoint note (UTF-8)."""
    return hashlib.sha256(note.encode()).digest()


@dataclass(frozen=True)
class StampStatus:
    stamped: int
    pending: int
    last_error: str | None
    last_error_at: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "stamped": self.stamped,
            "pending": self.pending,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


class Stamper:
    """Stamps every checkpoint of ``store`` that has no token yet, off the append path."""

    def __init__(
        self,
        store: LogStore,
        tsa: Timestamper,
        *,
        retry_s: float = 5.0,
        max_retry_s: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.tsa, self.clock = store, tsa, clock
        self.retry_s, self.max_retry_s = retry_s, max_retry_s
        self._wake = threading.Event()
        self._pass_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.last_error_at: str | None = None

    def stamp_pending(self) -> int:
        """Stamp what is pending now (synchronously); return how many got a token.

        A TSA failure is recorded in :attr:`last_error` and stops this pass, never raises.
        """
        with self._pass_lock:  # the background thread and a caller may both ask
            return self._stamp_pass()

    def _stamp_pass(self) -> int:
        done = 0
        have = self.store.stamps()
        for size, note in self.store.checkpoints():
            if size in have:
                continue
            try:
                token = self.tsa.timestamp(stamp_digest(note))
            except Exception as exc:  # any TSA failure (network, HTTP, bad response) is an outage
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.last_error_at = self.clock().isoformat()
                return done
            self.store.add_stamp(size, token, self.clock().isoformat())
            done += 1
        self.last_error = None
        return done

    def status(self) -> StampStatus:
        """How many checkpoints are stamped and pending, and the last TSA error."""
        have = self.store.stamps()
        total = len(self.store.checkpoints())
        return StampStatus(len(have), total - len(have), self.last_error, self.last_error_at)

    def start(self) -> None:
        """Run in a daemon thread, woken by :meth:`notify`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="audit-stamper", daemon=True)
            self._thread.start()

    def notify(self) -> None:
        """A new checkpoint exists: stamp it soon."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        delay = self.retry_s
        while not self._stop.is_set():
            self._wake.wait(timeout=delay)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.stamp_pending()
            except Exception as exc:  # a store error must not kill the thread: report, retry
                self.last_error = f"{type(exc).__name__}: {exc}"
            delay = min(delay * 2, self.max_retry_s) if self.last_error else self.retry_s
