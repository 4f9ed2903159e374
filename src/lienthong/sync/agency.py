"""The agency side of a pipeline: read → map and validate → outbox → hub → checkpoint.

One :class:`AgencySync` per pipeline. ``run()`` makes one pass over every table (resuming each
from its last enqueued position) and drains the outbox; ``follow()`` repeats that until
stopped. A table that fails (its source unreachable, schema drift, a damaged file drop) does
not stop the others: its error is kept in the run's report (``failures``) and in the state
(``sync status``), and ``follow()`` retries it with a growing pause (1 s doubling up to
60 s) while the other tables keep flowing. The checkpoint that counts for the national side
(``acked_position``) only moves after the hub's signed acknowledgement of the batch has been
verified.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lienthong.errors import LienthongError
from lienthong.sync.cipher import RecipientPublic
from lienthong.sync.connectors.base import Connector
from lienthong.sync.connectors.files import FileConnector
from lienthong.sync.connectors.sql import SqlTableConnector
from lienthong.sync.drift import compare_schema, learned, recorded_schema, verify_no_drift
from lienthong.sync.envelope import build_batch
from lienthong.sync.mapping import (
    Mapped,
    Mapper,
    RecordValidator,
    dictionary_validator,
    paused_gc,
)
from lienthong.sync.model import Chunk, Position
from lienthong.sync.outbox import Outbox
from lienthong.sync.pipeline import Pipeline, TableSpec
from lienthong.sync.sender import Sender
from lienthong.sync.transport import DirectTransport, Transport
from lienthong.trust.keys import PublicKey, Signer


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass(frozen=True)
class AgencyKeys:
    signer: Signer  # signs batches
    hub_public: PublicKey  # verifies the hub's acknowledgements
    recipient: RecipientPublic | None = None  # encrypts PERSONAL-and-above batches


@dataclass
class RunReport:
    """Counts of one run, from the hub's acknowledgements (read = applied + quarantined)."""

    read: int = 0
    applied: int = 0
    quarantined: int = 0
    batches: int = 0
    extracted: int = 0
    pending_batches: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    # tables that failed in this run (the others went on), each with its error
    failures: dict[str, LienthongError] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "failures"}
        out["tables_failed"] = {
            name: {"error": exc.code, "message": exc.message} for name, exc in self.failures.items()
        }
        return out

    @property
    def exit_code(self) -> int:
        """0, or the highest exit code of the failed tables (2: bad input, 1: a failure)."""
        return max((exc.exit_code for exc in self.failures.values()), default=0)

    def raise_failure(self) -> None:
        """Raise the first failed table's error (for callers that stop on any failure)."""
        for exc in self.failures.values():
            raise exc


Progress = Callable[[str, RunReport], None]


class AgencySync:
    def __init__(
        self,
        pipeline: Pipeline,
        connectors: dict[str, Connector],
        outbox: Outbox,
        transport: Transport,
        keys: AgencyKeys,
        *,
        now: Callable[[], str] = utc_now,
        validator: Callable[[str], RecordValidator | None] = dictionary_validator,
        progress: Progress | None = None,
        max_pending: int = 4,
        max_outbox: int = 256,
    ) -> None:
        self.pipeline = pipeline
        self.connectors = connectors
        self.outbox = outbox
        self.transport = transport
        self.keys = keys
        self.now = now
        self.validator = validator
        self.progress = progress
        self.max_pending = max_pending  # batches in flight before the reader waits
        self.max_outbox = max_outbox  # batches kept while the hub is unreachable
        # failed tables: consecutive failures, the last error, when to try again (monotonic)
        self._failed: dict[str, tuple[int, LienthongError, float]] = {}
        self._pause_failed = False
        self.report = RunReport()
        try:
            outbox.lock()  # one run per pipeline state at a time (else exit 2)
        except BaseException:
            self.close()
            raise

    def close(self, hub: bool = False) -> None:
        """Close the source connections and the state file; with ``hub`` also the database
        of an in-process hub that was opened for this agency alone (``open_agency``)."""
        for conn in self.connectors.values():
            conn.close()
        self.outbox.close()
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()
        if hub and isinstance(self.transport, DirectTransport):
            self.transport.hub.store.close()

    def _sender(self) -> Sender:
        return Sender(self.outbox, self.transport, self.pipeline.source_id,
                      self.keys.hub_public, self.report, self.now)  # fmt: skip

    def run(self, *, pause_failed: bool = False) -> RunReport:
        """One pass over every table, then drain; transient hub errors end up in ``error``,
        a table's own failure in ``failures`` (the other tables go on).

        Batches are sent by a background sender while the next chunks are read and mapped.
        ``pause_failed`` (the passes of ``--follow``): a table that failed is tried again
        only after its pause.
        """
        self.report = RunReport()
        self._pause_failed = pause_failed
        sender = self._sender()
        sender.drain()  # leftovers of an earlier run go first
        sender.start()
        try:
            for spec in self.pipeline.tables:
                self._extract_isolated(spec, sender)
        finally:
            sender.finish()
        if not sender.hub_down:
            sender.drain()
        self.report.pending_batches = self.outbox.pending_count()
        return self.report

    def _extract_isolated(self, spec: TableSpec, sender: Sender) -> None:
        """One table's pass; its failure is recorded and the other tables go on. A table that
        failed before waits for its pause (1, 2, 4 … 60 s after consecutive failures)."""
        failed = self._failed.get(spec.name)
        if failed is not None and self._pause_failed and time.monotonic() < failed[2]:
            self.report.failures[spec.name] = failed[1]  # still failing: not tried yet
            return
        try:
            self._extract(spec, sender)
        except LienthongError as exc:
            count = failed[0] + 1 if failed is not None else 1
            pause = min(60.0, 2.0 ** (count - 1))
            self._failed[spec.name] = (count, exc, time.monotonic() + pause)
            self.report.failures[spec.name] = exc
            self.outbox.set_field(spec.name, "last_error", exc.message, self.now())
        else:
            # the table's error is over; so is one left by an earlier run when no batch
            # waits for the hub (a delivery error is cleared by its batch's acknowledgement)
            stale = not self.outbox.pending_count() and self.outbox.last_error(spec.name)
            if self._failed.pop(spec.name, None) is not None or stale:
                self.outbox.set_field(spec.name, "last_error", None, self.now())

    def follow(self, stop: threading.Event, interval: float = 0.2) -> RunReport:
        """Repeat :meth:`run` until ``stop`` is set; accumulate the counts."""
        total = RunReport()
        while not stop.is_set():
            r = self.run(pause_failed=True)
            for k in ("read", "applied", "quarantined", "batches", "extracted"):
                setattr(total, k, getattr(total, k) + getattr(r, k))
            total.pending_batches, total.error = r.pending_batches, r.error
            total.failures = r.failures
            stop.wait(interval if not r.error else min(5.0, interval * 10))
        return total

    def _mapper(self, spec: TableSpec, conn: Connector) -> Mapper:
        current = conn.schema()
        recorded = recorded_schema(self.outbox.schema(spec.name), conn)
        if recorded is None:
            self.outbox.set_field(spec.name, "schema", current, self.now())
        else:
            drift = compare_schema(recorded, current, isinstance(conn, FileConnector))
            try:
                verify_no_drift(spec.name, drift, spec.on_added_columns)
            except Exception as exc:
                self.outbox.set_field(spec.name, "last_error", str(exc), self.now())
                raise
            if drift:
                self.report.warnings.append(f"{spec.name}: {drift.describe()}")
            known = learned(recorded, current)  # a file column's first values: its type
            if known is not None:
                self.outbox.set_field(spec.name, "schema", known, self.now())
        unreadable = getattr(conn, "null_cursor_rows", lambda: 0)()
        if unreadable:
            zero = (
                " or no date (zero, infinity)" if getattr(conn, "zero_date_cursor", bool)() else ""
            )
            self.report.warnings.append(
                f"{spec.name}: {unreadable} rows have a NULL {spec.cursor}{zero} and cannot be "
                "synchronised in cursor mode"
            )
        return Mapper(spec, list(current), self.validator(spec.entity))

    def _extract(self, spec: TableSpec, sender: Sender) -> None:
        conn = self.connectors[spec.name]
        mapper = self._mapper(spec, conn)
        position = self.outbox.extract_position(spec.name)
        if isinstance(conn, SqlTableConnector) and conn.cursor is None and position:
            # snapshot mode after its snapshot: only keys beyond the last one are read — say
            # so on every run instead of reporting "read 0" over a stale consolidated copy
            self.report.warnings.append(
                f"{spec.name}: no cursor, logical_slot or binlog_server_id — after its "
                "snapshot a run reads only rows keyed after the last one read; updated, "
                "deleted and lower-keyed rows reach the consolidated database only through "
                "`lienthong sync reconcile PIPELINE --repair`"
            )
        chunks = iter(conn.read(position, spec.batch_size))
        while True:
            with paused_gc():  # read, map, build and store one chunk without the collector
                chunk = next(chunks, None)
                if chunk is None:
                    return
                if not chunk.read and not chunk.keyless:  # a position change only
                    self.outbox.set_field(spec.name, "extract_position", chunk.position, self.now())
                    continue
                self._enqueue_chunk(spec, mapper, chunk)
                del chunk  # its rows are garbage before the collector resumes
            sender.notify()
            if self.progress is not None:
                self.progress(spec.name, self.report)
            while self.outbox.pending_count() >= self.max_pending:
                if not sender.running():
                    # hub down: keep reading into the durable outbox up to its capacity
                    if self.outbox.pending_count() >= self.max_outbox:
                        return
                    break
                time.sleep(0.01)  # back-pressure: let the sender catch up

    def _enqueue_chunk(self, spec: TableSpec, mapper: Mapper, chunk: Chunk) -> None:
        mapped = mapper.map_chunk(chunk)
        counts = (mapped.read, mapped.applied, len(mapped.quarantine))
        self.outbox.enqueue(
            spec.name, chunk.position, counts,
            lambda seq: self._build(spec, seq, chunk.position, mapped, chunk.keyless), self.now(),
        )  # fmt: skip
        self.report.extracted += mapped.read

    def enqueue_extra(self, spec: TableSpec, mapped: Mapped) -> int:
        """Enqueue rows that do not come from reading the source (quarantine re-submission).

        The table's extract position is left where it is.
        """
        position = self.outbox.extract_position(spec.name) or {}
        counts = (mapped.read, mapped.applied, len(mapped.quarantine))
        return self.outbox.enqueue(
            spec.name, position, counts, lambda seq: self._build(spec, seq, position, mapped),
            self.now(),
        )  # fmt: skip

    def run_drain(self) -> RunReport:
        """Only send what the outbox holds (no reading)."""
        self.report = RunReport()
        self._sender().drain()
        self.report.pending_batches = self.outbox.pending_count()
        return self.report

    def _build(
        self, spec: TableSpec, seq: int, position: Position, mapped: Mapped, keyless: bool = False
    ) -> bytes:
        extra = self._epoch_fields(seq)
        if keyless:  # the batch starts the set of rows with a NULL key part (in these
            extra = {
                **(extra or {}),
                "keyless": list(spec.key),
            }  # columns): it replaces their entries
        return build_batch(
            source=self.pipeline.source_id, seq=seq, table=spec.name, entity=spec.entity,
            level=spec.classification, position=position, mapped=mapped,
            created_at=self.now(), signer=self.keys.signer, recipient=self.keys.recipient,
            extra=extra,
        )  # fmt: skip

    def _epoch_fields(self, seq: int) -> dict[str, Any] | None:
        """A state created since epochs exist tags its batches with its epoch; its batch 1
        re-bases the source at the hub (a lost state re-snapshots instead of conflicting)."""
        epoch = self.outbox.epoch
        if epoch is None:
            return None  # a state from before epochs: the hub's legacy sequence space
        return {"epoch": epoch, "rebase": True} if seq == 1 else {"epoch": epoch}
