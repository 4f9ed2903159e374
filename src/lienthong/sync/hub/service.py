"""The hub's receiving side: verify a batch, apply it exactly once, sign the acknowledgement."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from lienthong.errors import IntegrityError, TrustError
from lienthong.sync.cipher import RecipientKeys
from lienthong.sync.envelope import build_ack, open_batch, parse_header
from lienthong.sync.hub.store import HubStore
from lienthong.sync.mapping import paused_gc
from lienthong.trust.keys import PublicKey, Signer

log = logging.getLogger("lienthong.sync.hub")
AuditHook = Callable[[dict[str, Any]], None]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class Hub:
    """National hub endpoint: ``receive(envelope) -> signed ack bytes``.

    Verification failures raise :class:`TrustError` / :class:`IntegrityError` (the transport
    maps them to one uniform rejection; the detail stays in the hub's log). ``audit`` (e.g. a
    bound ``AuditLog.append``) is called once per applied batch with its summary.
    """

    def __init__(
        self,
        store: HubStore,
        signer: Signer,
        sources: dict[str, PublicKey],
        recipient: RecipientKeys | None = None,
        *,
        now: Callable[[], str] = utc_now,
        audit: AuditHook | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.sources = sources
        self.recipient = recipient
        self.now = now
        self.audit = audit
        self._lock = threading.Lock()  # one writer: batches of a source apply in order
        # concurrent deliveries (a sender with several batches on the way): each batch is
        # verified and decoded at once, then waits for its predecessor to be applied
        self._turn = threading.Condition()
        self._applied: dict[tuple[str, str], int] = {}  # (source, epoch) → last batch applied
        self._busy: dict[str, int] = {}  # source → requests being received now

    def receive(self, envelope: bytes) -> bytes:
        claimed = _claimed_source(envelope)
        with self._turn:
            self._busy[claimed] = self._busy.get(claimed, 0) + 1
        try:
            try:
                with paused_gc():
                    batch = open_batch(envelope, self.sources, self.recipient)
            except (TrustError, IntegrityError) as exc:
                log.warning("rejected sync batch: %s %s", exc.code, exc.message)
                raise
            with paused_gc():  # while the batch before it is being applied
                prepared = self.store.prepare(batch)
            self._wait_turn(batch.source, str(batch.header.get("epoch") or ""), batch.seq)
            with self._lock, paused_gc():
                done = self.store.apply(batch, self.now(), prepared)
            with self._turn:
                turn = (batch.source, str(batch.header.get("epoch") or ""))
                self._applied[turn] = max(self._applied.get(turn, 0), batch.seq)
        finally:
            with self._turn:
                self._busy[claimed] -= 1
                self._turn.notify_all()
        if self.audit is not None and done.status == "applied":
            h = batch.header
            self.audit(
                {"kind": "sync.batch", "entity": h["entity"], "table": h["table"]}
                | done.ack_fields()
            )
        return build_ack(self.signer, done.ack_fields())

    def _wait_turn(self, source: str, epoch: str, seq: int) -> None:
        """Wait until batch ``seq - 1`` of ``source`` is applied, while another delivery of the
        source is under way here (at most ``PREDECESSOR_WAIT`` s), or for ``GRACE`` s for a
        predecessor still on the network; then the store decides (in order, duplicate, gap)."""
        turn = (source, epoch)
        with self._turn:
            if turn not in self._applied:
                try:
                    with self._lock:
                        self._applied[turn] = self.store.last_seq(source, epoch)
                except Exception:  # the store decides (and reports) when applying
                    return
            start = time.monotonic()
            while self._applied[turn] + 1 < seq:
                limit = PREDECESSOR_WAIT if self._busy.get(source, 0) > 1 else GRACE
                left = start + limit - time.monotonic()
                if left <= 0:
                    return
                self._turn.wait(left)


PREDECESSOR_WAIT = 60.0
GRACE = 0.5


def _claimed_source(envelope: bytes) -> str:
    """The source an envelope claims (unverified: only to order concurrent deliveries)."""
    try:
        return str(parse_header(envelope)[0].get("source"))
    except IntegrityError:
        return ""
