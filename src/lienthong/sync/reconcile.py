"""Reconciliation (đối soát): prove that the consolidated database equals the source, and
repair it when it does not.

Cursor-based change capture misses what never moves the cursor past the checkpoint: a commit
that lands later than ``cursor_overlap_s`` behind its stamp, a row changed in place without a
new stamp, a row removed at the hub by hand. :func:`reconcile` reads the whole source table
through the pipeline's own connector and mapper — in snapshot mode (keyset chunks in key
order, file drops in file order), with the same mapping and validation as a run — and
compares each chunk with the consolidated current table ``c_<entity>`` and the open quarantine
entries of the source, by key, parsed JSON against parsed JSON. The keys read go to a
temporary SQLite file, so the hub's rows that the source no longer has (*extra*) are found
without holding the table in memory.

With ``repair`` the differences travel as ordinary signed batches through the pipeline's own
transport (:meth:`AgencySync.enqueue_extra`: the table's extract position stays where it is)
and a second pass checks the result. The pipeline's run lock is held throughout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from lienthong.errors import InputError
from lienthong.sync.agency import AgencySync
from lienthong.sync.connectors import open_connectors
from lienthong.sync.connectors.base import Connector
from lienthong.sync.hub.dialect import entity_ident
from lienthong.sync.mapping import Mapped, Mapper, dictionary_validator, paused_gc
from lienthong.sync.outbox import Outbox
from lienthong.sync.pipeline import Pipeline, TableSpec
from lienthong.sync.reconcile_reader import HubReader, SeenKeys, parsed
from lienthong.sync.runtime import check_sources, hub_database, open_agency
from lienthong.sync.status import ReadOnlyState

KINDS = ("missing", "extra", "different", "unquarantined")
_ABSENT = object()


@dataclass
class TableCheck:
    """What one pass found for one table (counts, and up to ``limit`` keys of each kind)."""

    table: str
    entity: str
    limit: int = 10
    source_rows: int = 0
    valid: int = 0
    invalid: int = 0
    deleted: int = 0  # soft-deleted at the source
    consolidated: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    examples: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})

    def found(self, kind: str, key: str) -> None:
        self.counts[kind] += 1
        if len(self.examples[kind]) < self.limit:
            self.examples[kind].append(key)

    @property
    def differences(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table, "entity": self.entity, "source_rows": self.source_rows,
            "valid": self.valid, "invalid": self.invalid, "deleted": self.deleted,
            "consolidated": self.consolidated, **self.counts, "examples": self.examples,
            "matches": not self.differences,
        }  # fmt: skip


class Repair:
    """Sends the differences as batches of the pipeline (upserts, tombstones, quarantine)."""

    def __init__(self, agency: AgencySync) -> None:
        self.agency = agency
        self.sent = {"batches": 0, "upserts": 0, "deletes": 0, "quarantined": 0}
        self.acked = {"read": 0, "applied": 0, "quarantined": 0}
        self.error: str | None = None

    def send(self, spec: TableSpec, mapped: Mapped) -> None:
        if self.error is not None or not mapped.read:
            return  # hub unreachable: what is found is still reported, nothing more queued
        self.agency.enqueue_extra(spec, mapped)
        self.sent["batches"] += 1
        self.sent["upserts"] += len(mapped.upserts)
        self.sent["deletes"] += len(mapped.deletes)
        self.sent["quarantined"] += len(mapped.quarantine)
        if self.agency.outbox.pending_count() >= 4:
            self.drain()

    def drain(self) -> None:
        report = self.agency.run_drain()
        for k in self.acked:
            self.acked[k] += getattr(report, k)
        self.error = self.error or report.error

    def to_dict(self) -> dict[str, Any]:
        return {**self.sent, "acknowledged": self.acked, "error": self.error}


def _same(stored: Any, data: bytes) -> bool:
    """Whether a hub row's data equals a mapped row's JSON, as parsed values (identical
    text, the usual case on SQLite, is equal without parsing)."""
    if isinstance(stored, str) and stored.encode() == data:
        return True
    return bool(parsed(stored) == orjson.loads(data))


def compare_chunk(
    mapped: Mapped, e: str, exists: bool, tbl: str, hub: HubReader, check: TableCheck
) -> Mapped:
    """Compare one mapped source chunk with the hub (``exists``: ``c_<e>`` exists); return
    what a repair sends for it."""
    fix = Mapped()
    check.source_rows += mapped.read
    check.valid += len(mapped.upserts)
    check.invalid += len(mapped.quarantine)
    check.deleted += len(mapped.deletes)
    keys = [u[0] for u in mapped.upserts] + [d[0] for d in mapped.deletes]
    current = hub.current(e, keys) if exists and keys else {}
    for row in mapped.upserts:
        have = current.get(row[0], _ABSENT)
        if have is _ABSENT or not _same(have, row[2]):
            check.found("missing" if have is _ABSENT else "different", row[0])
            fix.upserts.append(row)
    for gone in mapped.deletes:
        if gone[0] in current:
            check.found("extra", gone[0])
            fix.deletes.append(gone)
    if mapped.quarantine:
        entries = hub.open_raw(e, tbl, [q[0] for q in mapped.quarantine])
        for q in mapped.quarantine:
            if orjson.loads(q[2]) not in entries.get(q[0], []):
                check.found("unquarantined", q[0])
                fix.quarantine.append(q)
    return fix


@dataclass
class Pass:
    """One pass over the selected tables of a pipeline."""

    pipeline: Pipeline
    connectors: dict[str, Connector]
    hub: HubReader
    examples: int
    repair: Repair | None = None

    def table(self, spec: TableSpec) -> TableCheck:
        conn = self.connectors[spec.name]
        mapper = Mapper(spec, list(conn.schema()), dictionary_validator(spec.entity))
        e = entity_ident(spec.entity)
        check = TableCheck(spec.name, spec.entity, self.examples)
        exists = self.hub.has_entity(e)
        shared = sum(t.entity == spec.entity for t in self.pipeline.tables) > 1
        scope = spec.name if shared else None
        check.consolidated = self.hub.count(e, scope) if exists else 0  # before any repair
        seen = SeenKeys()
        try:
            for chunk in conn.read(None, spec.batch_size):
                with paused_gc():
                    mapped = mapper.map_chunk(chunk)
                    fix = compare_chunk(mapped, e, exists, spec.name, self.hub, check)
                    seen.add([r[0] for rs in (mapped.upserts, mapped.deletes,
                                             mapped.quarantine) for r in rs])  # fmt: skip
                    del chunk, mapped
                if self.repair is not None:
                    self.repair.send(spec, fix)
            if exists:
                self._extra(spec, e, scope, seen, check)
        finally:
            seen.close()
        return check

    def _extra(
        self, spec: TableSpec, e: str, scope: str | None, seen: SeenKeys, check: TableCheck
    ) -> None:
        """The hub's rows of this table that the source does not have (any more)."""
        for page in self.hub.key_pages(e, scope):
            extra = seen.unseen(page)
            for key in extra:
                check.found("extra", key)
            if self.repair is not None and extra:
                self.repair.send(spec, Mapped(deletes=[(k, k) for k in extra]))


def snapshot_pipeline(pipeline: Pipeline, specs: list[TableSpec]) -> Pipeline:
    """The same source tables read whole, in key order: no cursor, slot or binlog."""
    tables = tuple(replace(t, cursor=None, cursor_overlap_s=0.0, logical_slot=None,
                           binlog_server_id=None) for t in specs)  # fmt: skip
    return replace(pipeline, tables=tables)


def _hub_url(pipeline: Pipeline, hub: str | None) -> str:
    if hub is not None:
        return hub
    if "database" not in pipeline.hub:
        raise InputError(
            f"pipeline {pipeline.source_id} sends to its hub over HTTP or the gateways: "
            "reconcile needs read access to the consolidated database — give it with --hub DB "
            "(as the hub's serve --db: a SQLite path, or env:NAME / file:PATH naming a "
            "PostgreSQL URL)"
        )
    return hub_database(pipeline)


def _lock(pipeline: Pipeline, repair: bool) -> tuple[AgencySync | None, Outbox | None]:
    """Take the pipeline's run lock: the agency itself for a repair; else the existing state
    (a pipeline never run has none, and reconciling it creates none)."""
    if repair:
        agency = open_agency(pipeline)
        return agency, agency.outbox
    path = pipeline.base_dir / pipeline.state
    if not path.is_file():
        return None, None
    state = ReadOnlyState(path)
    try:
        state.lock()
    except BaseException:
        state.close()
        raise
    return None, state


def reconcile(
    pipeline: Pipeline,
    *,
    table: str | None = None,
    examples: int = 10,
    repair: bool = False,
    hub: str | None = None,
) -> dict[str, Any]:
    """Compare every table of ``pipeline`` (or ``table``) with the consolidated database
    (the pipeline's ``[hub] database``, or ``hub``); with ``repair`` send the differences
    and check again. ``matches`` is true when (after the repair) nothing differs."""
    if examples < 0:
        raise InputError(f"--examples {examples}: a number of keys >= 0")
    specs = [pipeline.table(table)] if table is not None else list(pipeline.tables)
    reader = HubReader(_hub_url(pipeline, hub), pipeline.source_id)
    snap = snapshot_pipeline(pipeline, specs)
    connectors = open_connectors(snap)
    agency = state = None
    try:
        check_sources(snap, connectors)
        agency, state = _lock(pipeline, repair)
        return _run(pipeline, specs, Pass(pipeline, connectors, reader, examples), agency, state)
    finally:
        for c in connectors.values():
            c.close()
        if agency is not None:
            agency.close(hub=True)
        elif state is not None:
            state.close()
        reader.close()


def _run(
    pipeline: Pipeline, specs: list[TableSpec], scan: Pass, agency: AgencySync | None,
    state: Outbox | None,
) -> dict[str, Any]:  # fmt: skip
    pending = state.pending_count() if state is not None else 0
    repair = Repair(agency) if agency is not None else None
    if repair is not None and pending:
        repair.drain()  # an earlier run's batches first, as a run does
    scan.repair = repair
    started = time.perf_counter()
    checks = [scan.table(spec) for spec in specs]
    elapsed = time.perf_counter() - started
    rows = sum(c.source_rows for c in checks)
    doc: dict[str, Any] = {
        "source": pipeline.source_id, "tables": [c.to_dict() for c in checks],
        "pending_batches": pending, "elapsed_s": round(elapsed, 3),
        "rows_per_s": round(rows / elapsed) if elapsed > 0 else None,
        "repair": None, "after": None,
        "matches": not any(c.differences for c in checks),
    }  # fmt: skip
    if repair is None:
        return doc
    repair.drain()
    doc["repair"] = repair.to_dict()
    if repair.error is None and repair.sent["batches"]:
        scan.repair = None
        after = [scan.table(spec) for spec in specs]
        doc["after"] = [c.to_dict() for c in after]
        doc["matches"] = not any(c.differences for c in after)
    return doc


def describe(doc: dict[str, Any]) -> list[str]:
    """The report as lines for people."""
    lines: list[str] = []
    if doc["pending_batches"]:
        lines.append(f"warning: {doc['pending_batches']} batches of an earlier run wait in the "
                     "outbox; the hub lacks their rows until `sync run` sends them")  # fmt: skip
    lines += _tables(doc["tables"])
    rep = doc["repair"]
    if rep is not None:
        ack = rep["acknowledged"]
        lines.append(
            f"repair: {rep['batches']} batches ({rep['upserts']} upserts, {rep['deletes']} "
            f"tombstones, {rep['quarantined']} quarantined); acknowledged read {ack['read']} = "
            f"applied {ack['applied']} + quarantined {ack['quarantined']}"
            + (f"; hub unreachable: {rep['error']}" if rep["error"] else "")
        )
    if doc["after"] is not None:
        lines += ["after the repair:", *_tables(doc["after"])]
    lines.append("matches" if doc["matches"] else "differences found")
    return lines


def _tables(tables: list[dict[str, Any]]) -> list[str]:
    lines = []
    names = {"missing": "missing", "extra": "extra", "different": "different",
             "unquarantined": "invalid without an open quarantine entry"}  # fmt: skip
    for t in tables:
        lines.append(
            f"{t['table']} → {t['entity']}: source {t['source_rows']} rows ({t['valid']} valid,"
            f" {t['invalid']} invalid, {t['deleted']} deleted); consolidated {t['consolidated']}"
        )
        for kind in KINDS:
            shown = t["examples"][kind]
            if t[kind]:
                more = ["…"] if t[kind] > len(shown) else []
                keys = f": {', '.join([*shown, *more])}" if shown else ""
                lines.append(f"  {names[kind]} {t[kind]}{keys}")
    return lines
