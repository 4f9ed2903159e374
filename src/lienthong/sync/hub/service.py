"""The hub's receiving side: verify a batch, apply it exactly once, sign the acknowledgement."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from lienthong.errors import BackendError, IntegrityError, TrustError
from lienthong.sync.cipher import RecipientKeys
from lienthong.sync.envelope import Batch, build_ack, open_batch, parse_header
from lienthong.sync.hub.store import HubStore, Prepared, Speculation
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
        # (source, epoch) → {number: keys} of the batches received and decoded, not yet
        # applied: a batch whose predecessors are all here, on other keys, may be COPYed
        # ahead of its turn (PostgreSQL, HubStore.speculate)
        self._pending: dict[tuple[str, str], dict[int, frozenset[str]]] = {}
        self._busy: dict[str, int] = {}  # source → requests being received now
        # (source, epoch, number) → the delivery of that batch under way here (PostgreSQL): a
        # second delivery (a retry) waits for it, since applying the batch the usual way
        # while the first one's COPY ahead is parked would wait for that COPY's key locks
        # while holding the writer the first one needs (until the lock timeout)
        self._delivering: set[tuple[str, str, int]] = set()
        self._repeats_waiting = 0  # second deliveries waiting for the first (for tests)
        self.counts: Counter[str] = Counter()  # since start, by outcome (see health())

    def receive(self, envelope: bytes) -> bytes:
        claimed = _claimed_source(envelope)
        pending: dict[int, frozenset[str]] | None = None
        mine = frozenset[str]()
        delivery: tuple[str, str, int] | None = None  # set when this one delivers the batch
        with self._turn:
            self._busy[claimed] = self._busy.get(claimed, 0) + 1
        try:
            try:
                with paused_gc():
                    batch = open_batch(envelope, self.sources, self.recipient)
            except (TrustError, IntegrityError) as exc:
                log.warning("rejected sync batch: %s %s", exc.code, exc.message)
                self._count("refused")
                raise
            with paused_gc():  # while the batch before it is being applied
                prepared = self.store.prepare(batch)
            turn = (batch.source, str(batch.header.get("epoch") or ""))
            if self.store.can_speculate:
                with self._turn:
                    if self._first_delivery((*turn, batch.seq)):
                        delivery = (*turn, batch.seq)
                    pending = self._pending.setdefault(turn, {})
                    # a second delivery of the same batch replaces the first one's entry
                    pending[batch.seq] = mine = _keys(batch, prepared)
                    self._turn.notify_all()
            # a delivery that gave up waiting for another of the same batch does not COPY
            spec = self._speculate(batch, prepared, turn, mine) if delivery is not None else None
            try:
                self._wait_turn(batch.source, turn[1], batch.seq)
            except BaseException:
                if spec is not None:
                    self.store.discard(spec)
                raise
            try:
                with self._lock, paused_gc():
                    now = spec.now if spec is not None else self.now()
                    done = self.store.apply(batch, now, prepared, spec)
            except IntegrityError as exc:  # a gap, a superseded agency state …: 409 / 400
                self._count("out_of_sequence" if exc.code.startswith("sequence") else "refused")
                raise
            except BackendError:  # the database failed: 503, the agency re-sends
                self._count("unavailable")
                raise
            with self._turn:
                self._applied[turn] = max(self._applied.get(turn, 0), batch.seq)
        finally:
            with self._turn:
                if pending is not None and pending.get(batch.seq) is mine:
                    del pending[batch.seq]
                if delivery is not None:
                    self._delivering.discard(delivery)
                self._busy[claimed] -= 1
                self._turn.notify_all()
        self._count(done.status)
        if self.audit is not None and done.status == "applied":
            h = batch.header
            self.audit(
                {"kind": "sync.batch", "entity": h["entity"], "table": h["table"]}
                | done.ack_fields()
            )
        return build_ack(self.signer, done.ack_fields())

    def _count(self, what: str) -> None:
        with self._turn:  # Counter += is not atomic across the server's threads
            self.counts[what] += 1

    def health(self) -> dict[str, Any]:
        """Counts since start (for ``GET /sync/v1/health``): batches applied, acknowledged
        again as duplicates, refused on verification (400/403), answered out of sequence
        (409: a gap, a reused sequence number, a superseded agency state), not applied
        because the database failed (``unavailable``, 503: the agency re-sends), and applied
        after a COPY ahead of their turn (PostgreSQL)."""
        return {"status": "ok", "batches": {
            "applied": self.counts["applied"], "duplicate": self.counts["duplicate"],
            "refused": self.counts["refused"],
            "out_of_sequence": self.counts["out_of_sequence"],
            "unavailable": self.counts["unavailable"], "copied_ahead": self.store.speculated,
        }}  # fmt: skip

    def _speculate(
        self, batch: Batch, prepared: Prepared | None, turn: tuple[str, str],
        mine: frozenset[str],
    ) -> Speculation | None:  # fmt: skip
        """COPY the batch's rows ahead of its turn (the PostgreSQL backends of two batches
        then work at once) when every batch before it that is not applied yet is here, decoded,
        and none of them writes one of its keys — so no batch that applies before it can wait
        for its row locks — then wait until those predecessors are applied. A predecessor that
        fails discards the speculation: its locks must not outlive the batch's place."""
        if prepared is None or batch.seq <= 1:
            return None
        seq = batch.seq
        until = time.monotonic() + GRACE
        with self._turn:
            pending = self._pending.get(turn, {})
            while True:
                applied = self._applied.get(turn)
                if applied is None or applied >= seq - 1:
                    return None  # unknown order (first batch seen), or its turn is now anyway
                ahead = [pending.get(s) for s in range(applied + 1, seq)]
                left = until - time.monotonic()
                # a predecessor still being decoded here (sent at the same time) comes soon
                if None not in ahead or self._busy.get(batch.source, 0) < 2 or left <= 0:
                    break
                self._turn.wait(left)
        if any(keys is None or not keys.isdisjoint(mine) for keys in ahead):
            return None
        with paused_gc():
            spec = self.store.speculate(batch, prepared, self.now())
        if spec is None:
            return None
        with self._turn:
            while (applied := self._applied.get(turn, 0)) < seq - 1:
                if any(s not in pending for s in range(applied + 1, seq)):
                    break  # a predecessor failed: this batch's turn is not coming now
                self._turn.wait(1.0)
            ok = applied >= seq - 1
        if not ok:
            self.store.discard(spec)
            return None
        return spec

    def _first_delivery(self, delivery: tuple[str, str, int]) -> bool:
        """Register this delivery of a batch (under ``self._turn``), after waiting for an
        earlier delivery of the same batch still under way here (at most
        ``PREDECESSOR_WAIT`` s); False when the other one is still going."""
        if delivery in self._delivering:
            self._repeats_waiting += 1
            try:
                until = time.monotonic() + PREDECESSOR_WAIT
                while delivery in self._delivering and (left := until - time.monotonic()) > 0:
                    self._turn.wait(left)
            finally:
                self._repeats_waiting -= 1
            if delivery in self._delivering:
                return False
        self._delivering.add(delivery)
        return True

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


def _keys(batch: Batch, prepared: Prepared | None) -> frozenset[str]:
    """The source keys whose current rows ``batch`` writes."""
    ups = prepared.upserts if prepared is not None else batch.upserts
    return frozenset(map(itemgetter(0), ups)).union(map(itemgetter(0), batch.deletes))


def _claimed_source(envelope: bytes) -> str:
    """The source an envelope claims (unverified: only to order concurrent deliveries)."""
    try:
        return str(parse_header(envelope)[0].get("source"))
    except IntegrityError:
        return ""
