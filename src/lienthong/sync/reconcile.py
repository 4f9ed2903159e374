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

import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from lienthong.errors import BackendError, InputError
from lienthong.sync.agency import AgencySync
from lienthong.sync.connectors import open_connectors
from lienthong.sync.connectors.base import Connector
from lienthong.sync.hub.dialect import entity_ident
from lienthong.sync.mapping import Mapped, Mapper, dictionary_validator, paused_gc
from lienthong.sync.outbox import Outbox
from lienthong.sync.pipeline import Pipeline, TableSpec
from lienthong.sync.quarantine import _read_only
from lienthong.sync.runtime import check_sources, hub_database, open_agency
from lienthong.sync.status import _ReadOnlyState

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


def _stream_sqlite(conn: Any, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Any]]:
    cur = conn.execute(sql, tuple(params))  # SQLite steps through the result as it is fetched
    while rows := cur.fetchmany(size):
        yield rows


def _stream_postgres(conn: Any, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Any]]:
    with conn.transaction(), conn.cursor(name="lt_reconcile") as cur:  # server-side cursor
        cur.execute(sql, tuple(params))
        while rows := cur.fetchmany(size):
            yield rows


@dataclass(frozen=True)
class Lookups:
    """How one backend is asked for many keys at once (the keys travel as one parameter,
    first in each statement) and streams a long result. The PostgreSQL forms drive the
    primary-key index from the key list even when the planner has no statistics yet (an
    ``IN`` list or ``= ANY`` then filtered every row of the source: 2,600 rows/s)."""

    current: str  # {e}: the entity's table stem; parameters: keys, source
    open_raw: str  # parameters: keys, source, entity, table
    pack: Callable[[list[str]], Any]  # the keys parameter
    stream: Callable[[Any, str, Sequence[Any], int], Iterator[list[Any]]]


SQLITE_LOOKUPS = Lookups(
    "SELECT source_key, data FROM c_{e} WHERE source_key IN (SELECT value FROM json_each(?))"
    " AND source = ?",
    "SELECT source_key, raw FROM sync_quarantine WHERE source_key IN"
    " (SELECT value FROM json_each(?)) AND source = ? AND entity = ? AND tbl = ?"
    " AND resolved_seq IS NULL",
    lambda keys: orjson.dumps(keys).decode(),
    _stream_sqlite,
)
POSTGRES_LOOKUPS = Lookups(
    "SELECT c.source_key, c.data::text FROM unnest(?::text[]) AS k(key) JOIN c_{e} c"
    " ON c.source_key = k.key AND c.source = ?",
    "SELECT q.source_key, q.raw::text FROM unnest(?::text[]) AS k(key) JOIN sync_quarantine q"
    " ON q.source_key = k.key AND q.source = ? AND q.entity = ? AND q.tbl = ?"
    " AND q.resolved_seq IS NULL",
    list,
    _stream_postgres,
)


class HubReader:
    """Read-only queries on the consolidated database, for one source."""

    def __init__(self, url: str, source: str) -> None:
        try:  # refuses a missing or foreign database (exit 2)
            self.conn, self.d = _read_only(url)
        except BackendError as exc:  # a server that cannot be reached: unreadable, one line
            raise InputError(" ".join(exc.message.split())) from exc
        self.source = source
        self.q = SQLITE_LOOKUPS
        if self.d.name == "postgres":  # one short read-only transaction per statement
            self.q = POSTGRES_LOOKUPS
            self.conn.rollback()
            self.conn.autocommit = True
            self.conn.execute("SET default_transaction_read_only = on")

    def close(self) -> None:
        self.conn.close()

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return list(self.conn.execute(self.d.sql(sql), tuple(params)).fetchall())
        except Exception as exc:  # sqlite3 / psycopg errors
            raise BackendError(f"consolidated database: {exc}") from exc

    def has_entity(self, e: str) -> bool:
        try:
            self.conn.execute(f"SELECT 1 FROM c_{e} WHERE 1 = 0").fetchall()
        except Exception:  # never synchronised: no table (autocommit: nothing left aborted)
            return False
        return True

    def current(self, e: str, keys: list[str]) -> dict[str, Any]:
        """The ``data`` (JSON text) of the current rows among ``keys``."""
        rows = self._rows(self.q.current.format(e=e), (self.q.pack(keys), self.source))
        return {str(k): data for k, data in rows}

    def open_raw(self, e: str, tbl: str, keys: list[str]) -> dict[str, list[Any]]:
        """The parsed raw values of the open quarantine entries of ``keys``, per key."""
        out: dict[str, list[Any]] = {}
        for k, raw in self._rows(self.q.open_raw, (self.q.pack(keys), self.source, e, tbl)):
            out.setdefault(str(k), []).append(_parsed(raw))
        return out

    @staticmethod
    def _scope(tbl: str | None) -> str:
        """With ``tbl``, only the rows last written by that table's batches (several tables
        of the pipeline share the entity)."""
        return "" if tbl is None else (" JOIN sync_batches b ON b.source = c.source"
                                       " AND b.seq = c.batch_seq AND b.tbl = ?")  # fmt: skip

    def count(self, e: str, tbl: str | None) -> int:
        sql = f"SELECT count(*) FROM c_{e} c{self._scope(tbl)} WHERE c.source = ?"
        return int(self._rows(sql, [*([tbl] if tbl else []), self.source])[0][0])

    def key_pages(self, e: str, tbl: str | None, size: int = 5000) -> Iterator[list[str]]:
        """The source's current keys in ``c_<e>``, streamed in pages (one snapshot)."""
        sql = self.d.sql(f"SELECT c.source_key FROM c_{e} c{self._scope(tbl)} WHERE c.source = ?")
        try:
            for rows in self.q.stream(self.conn, sql, [*([tbl] if tbl else []), self.source],
                                      size):  # fmt: skip
                yield [str(r[0]) for r in rows]
        except Exception as exc:  # sqlite3 / psycopg errors
            raise BackendError(f"consolidated database: {exc}") from exc


class SeenKeys:
    """The keys one pass read from a source table, in a temporary SQLite file."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="lt-reconcile-")
        self.db = sqlite3.connect(Path(self._dir.name) / "keys.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE k (key TEXT PRIMARY KEY) WITHOUT ROWID")

    def add(self, keys: list[str]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR IGNORE INTO k VALUES (?)", [(k,) for k in keys])
        self.db.execute("COMMIT")

    def unseen(self, keys: list[str]) -> list[str]:
        """The keys of ``keys`` (in their order) that the pass did not read."""
        rows = self.db.execute(
            "SELECT j.value FROM json_each(?) j WHERE NOT EXISTS "
            "(SELECT 1 FROM k WHERE k.key = j.value) ORDER BY j.key",
            (orjson.dumps(keys).decode(),),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()


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


def _parsed(value: Any) -> Any:
    """A JSON column as Python values (SQLite gives text, PostgreSQL jsonb parsed values)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _same(stored: Any, data: bytes) -> bool:
    """Whether a hub row's data equals a mapped row's JSON, as parsed values (identical
    text, the usual case on SQLite, is equal without parsing)."""
    if isinstance(stored, str) and stored.encode() == data:
        return True
    return bool(_parsed(stored) == orjson.loads(data))


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
    state = _ReadOnlyState(path)
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
