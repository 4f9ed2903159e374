"""Delivery of outbox batches to the hub, in order, in the foreground or a background thread.

The background mode overlaps the hub's work (verification, decryption, database merge — mostly
waiting on I/O, which releases the GIL) with reading and mapping the next chunk. It uses its
own connection to the outbox file, so its acknowledgements commit independently of the reader.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
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
    ) -> None:
        self.outbox, self.transport = outbox, transport
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
            for item in items:
                if not self.deliver(item, box):
                    self.hub_down = True
                    return False

    def deliver(self, item: Pending, box: Outbox, attempts: int = 3) -> bool:
        batch = hashlib.sha256(parse_header(item.envelope)[1]).hexdigest()
        for attempt in range(attempts):
            try:
                ack = self.transport.send(item.envelope)
                fields = verify_ack(ack, self.hub_public, self.source_id, item.seq, batch)
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
            box.mark_acked(item, ack, self.now())
            box.set_field(item.tbl, "last_error", None, self.now())
            self.report.error = None
            self.report.batches += 1
            for k in ("read", "applied", "quarantined"):
                setattr(self.report, k, getattr(self.report, k) + int(fields[k]))
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
