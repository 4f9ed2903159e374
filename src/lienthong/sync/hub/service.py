"""The hub's receiving side: verify a batch, apply it exactly once, sign the acknowledgement."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

from lienthong.errors import IntegrityError, TrustError
from lienthong.sync.cipher import RecipientKeys
from lienthong.sync.envelope import build_ack, open_batch
from lienthong.sync.hub.store import HubStore
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

    def receive(self, envelope: bytes) -> bytes:
        try:
            batch = open_batch(envelope, self.sources, self.recipient)
        except (TrustError, IntegrityError) as exc:
            log.warning("rejected sync batch: %s %s", exc.code, exc.message)
            raise
        with self._lock:
            done = self.store.apply(batch, self.now())
        if self.audit is not None and done.status == "applied":
            h = batch.header
            self.audit(
                {"kind": "sync.batch", "entity": h["entity"], "table": h["table"]}
                | done.ack_fields()
            )
        return build_ack(self.signer, done.ack_fields())
