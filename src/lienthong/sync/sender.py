"""Delivery of outbox batches to the hub, in order, in the foreground or a background thread.

The background mode overlaps the hub's work (verification, decryption, database merge — mostly
waiting on I/O, which releases the GIL) with reading and mapping the next chunk. It uses its
own connection to the outbox file, so its acknowledgements commit independently of the reader.

Up to ``window`` batches are on the way at once (the hub verifies and decodes batch N+1
while its database applies batch N, and applies them in sequence order). Acknowledgements are
still verified and recorded strictly in order; when the answer for the oldest batch is not a
valid ack, the later sends are awaited and ignored, and that batch is delivered on its own
with the usual retries (a redelivered batch the hub already applied is acknowledged again as
a duplicate, so nothing is applied twice).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from lienthong.errors import IntegrityError, TransientError, TrustError
from lienthong.sync.envelope import parse_header, verify_ack
from lienthong.sync.outbox import Outbox, Pending
from lienthong.sync.transport import Transport
from lienthong.trust.keys import PublicKey


class Sender:
    """Sends pending batches; the ack's verified counts accumulate into ``report``."""

    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        source_id: str,
        hub_public: PublicKey,
        report: Any,
        now: Callable[[], str],
        window: int = 2,
    ) -> None:
        self.outbox, self.transport = outbox, transport
        self.window = max(1, window)
        self.source_id, self.hub_public = source_id, hub_public
        self.report, self.now = report, now
        self.hub_down = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._finish = False
        self._error: BaseException | None = None

    def drain(self, outbox: Outbox | None = None) -> bool:
        """Send until the outbox is empty (True) or the hub is unreachable (False)."""
        box = outbox or self.outbox
        while True:
            items = box.pending(32)
            if not items:
                self.hub_down = False
                return True
            if not self._deliver_all(items, box):
                self.hub_down = True
                return False

    def _deliver_all(self, items: list[Pending], box: Outbox) -> bool:
        """Deliver ``items`` in order with up to ``window`` of them on the way at once."""
        if self.window == 1 or len(items) == 1:
            return all(self.deliver(item, box) for item in items)
        with ThreadPoolExecutor(self.window, thread_name_prefix="sync-send") as pool:
            flying: dict[int, Future[tuple[bytes, dict[str, Any]]]] = {}
            head = ahead = 0
            while head < len(items):
                while ahead < len(items) and len(flying) < self.window:
                    flying[ahead] = pool.submit(self._send, items[ahead])
                    ahead += 1
                try:
                    ack, fields = flying.pop(head).result()
                except Exception:
                    # not a valid ack for the oldest batch: let the later sends finish (their
                    # answers are ignored), then deliver this batch alone with the retries
                    wait(flying.values())
                    flying.clear()
                    ahead = head + 1
                    if not self.deliver(items[head], box):
                        return False
                else:
                    self._acked(items[head], box, ack, fields)
                head += 1
        return True

    def _send(self, item: Pending) -> tuple[bytes, dict[str, Any]]:
        """Send one batch and verify the hub's ack (no outbox access: any thread)."""
        batch = hashlib.sha256(parse_header(item.envelope)[1]).hexdigest()
        ack = self.transport.send(item.envelope)
        return ack, verify_ack(ack, self.hub_public, self.source_id, item.seq, batch)

    def _acked(self, item: Pending, box: Outbox, ack: bytes, fields: dict[str, Any]) -> None:
        box.mark_acked(item, ack, self.now())
        box.set_field(item.tbl, "last_error", None, self.now())
        self.report.error = None
        self.report.batches += 1
        for k in ("read", "applied", "quarantined"):
            setattr(self.report, k, getattr(self.report, k) + int(fields[k]))

    def deliver(self, item: Pending, box: Outbox, attempts: int = 3) -> bool:
        for attempt in range(attempts):
            try:
                ack, fields = self._send(item)
            except TransientError as exc:
                self.report.error = exc.message
                box.set_field(item.tbl, "last_error", exc.message, self.now())
                return False
            except (TrustError, IntegrityError) as exc:
                # the copy that arrived was damaged (or the ack was): resend the stored one
                box.set_field(item.tbl, "last_error", exc.message, self.now())
                if attempt == attempts - 1 or exc.code in ("sequence_conflict", "sequence_gap"):
                    raise
                time.sleep(0.05 * (attempt + 1))
                continue
            self._acked(item, box, ack, fields)
            return True
        return False

    def start(self) -> None:
        """Deliver in a background thread until :meth:`finish`."""
        self._finish, self._error, self.hub_down = False, None, False
        self._thread = threading.Thread(target=self._loop, name="sync-sender", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        box = Outbox(self.outbox.path)
        try:
            while True:
                if not self.drain(box):
                    return
                if self._finish:
                    return
                self._wake.wait(0.05)
                self._wake.clear()
        except BaseException as exc:  # handed to the reader thread by finish()
            self._error = exc
        finally:
            box.close()

    def finish(self) -> None:
        """Stop after the outbox is drained (or the hub is down); re-raise a failure."""
        if self._thread is None:
            return
        self._finish = True
        self._wake.set()
        self._thread.join()
        self._thread = None
        if self._error is not None:
            raise self._error
