"""The quarantine (rows refused on the way in): list, show, correct and re-submit.

Quarantined rows live in the consolidated database's ``sync_quarantine`` with the raw source
values, every reason and their source position. A re-submission applies the operator's
corrections to the raw values, maps and validates the row again like any other, and sends it
in a new signed batch that also marks the entry resolved — in the hub's same transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from lienthong.errors import BackendError, InputError, NotFound, ValidationError
from lienthong.sync.hub.dialect import SQLITE, HubDialect, connect_hub
from lienthong.sync.mapping import EXTRA_CELLS, NUL_REASON, Mapper, dictionary_validator
from lienthong.sync.model import Chunk
from lienthong.sync.pipeline import Pipeline
from lienthong.sync.runtime import hub_database, open_agency

_COLS = "id, source, tbl, entity, source_key, position, raw, reasons, received_at, resolved_seq"


def _row(r: Any) -> dict[str, Any]:
    keys = _COLS.split(", ")
    doc = dict(zip(keys, r, strict=True))
    doc["table"] = doc.pop("tbl")
    for k in ("raw", "reasons"):
        if isinstance(doc[k], str):
            doc[k] = orjson.loads(doc[k])
    doc["received_at"] = str(doc["received_at"])
    return doc


def open_read_only(hub_url: str) -> tuple[Any, HubDialect]:
    """The consolidated database opened for reading only: a SQLite file is neither created
    nor switched to WAL; a database without the quarantine table is refused (exit 2)."""
    if hub_url.startswith(("postgresql://", "postgres://")):
        conn, d = connect_hub(hub_url)
        where = "the PostgreSQL database"  # its URL may hold a password (env:/file: reference)
    else:
        path = hub_url.removeprefix("sqlite:///")
        if not Path(path).is_file():
            raise InputError(f"no consolidated database at {path}")
        try:
            conn, d = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30), SQLITE
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open consolidated database {path}: {exc}") from exc
        where = path
    try:
        conn.execute("SELECT id FROM sync_quarantine WHERE 1 = 0").fetchall()
    except Exception as exc:  # sqlite3 / psycopg: no such table (or not a database at all)
        conn.close()
        raise InputError(
            f"{where} is not a consolidated database (it has no sync_quarantine table)"
        ) from exc
    return conn, d


def list_quarantine(hub_url: str, limit: int = 50) -> list[dict[str, Any]]:
    """Open (unresolved) quarantine entries, oldest first."""
    conn, d = open_read_only(hub_url)
    try:
        rows = conn.execute(
            d.sql(f"SELECT {_COLS} FROM sync_quarantine WHERE resolved_seq IS NULL "
                  "ORDER BY id LIMIT ?"), (limit,),
        ).fetchall()  # fmt: skip
    finally:
        conn.close()
    return [_row(r) for r in rows]


def get_quarantine(hub_url: str, entry: int) -> dict[str, Any]:
    """One entry; ``closed`` says how a closed one was closed (``resubmitted``,
    ``superseded`` by a newer version of its key, ``deleted`` with its key), else None."""
    conn, d = open_read_only(hub_url)
    try:
        row = conn.execute(
            d.sql(f"SELECT {_COLS} FROM sync_quarantine WHERE id = ?"), (entry,)
        ).fetchone()
        closed = None
        if row is not None and row[-1] is not None:
            closed = "resubmitted"
            try:
                why = conn.execute(
                    d.sql("SELECT reason FROM sync_quarantine_closed WHERE id = ?"), (entry,)
                ).fetchone()
            except Exception:  # a hub database from before superseding (no such table)
                why = None
            if why is not None:
                closed = str(why[0])
    finally:
        conn.close()
    if row is None:
        raise NotFound(f"no quarantine entry {entry}")
    return _row(row) | {"closed": closed}


def _check_nul_corrected(
    spec: Any, doc: dict[str, Any], raw: dict[str, Any], corrections: dict[str, Any]
) -> None:
    """A column that held a NUL character is shown as U+FFFD in the entry's raw values:
    re-sending it uncorrected would store that replacement as the source's value."""
    sources = {f.target: f.sources for f in spec.fields}
    sources["key"] = tuple(spec.key)
    held = [str(r).split(":", 1)[0] for r in doc["reasons"] if NUL_REASON in str(r)]
    columns = [c for t in held for c in (sources.get(t) or (t,)) if c in raw]
    missing = [c for c in dict.fromkeys(columns) if c not in corrections]
    if missing:
        raise InputError(
            f"quarantine entry {doc['id']}: {', '.join(missing)} held a NUL character (shown "
            "as U+FFFD); give the corrected value with --set COLUMN=VALUE"
        )


def resubmit(
    pipeline: Pipeline, entry: int, corrections: dict[str, Any], hub: str | None = None
) -> dict[str, Any]:
    """Correct and re-send quarantine ``entry``; raise ValidationError if still invalid.

    The entry is read from the consolidated database: the pipeline's own (``[hub] database``)
    or ``hub`` (a SQLite path or PostgreSQL URL reachable from here, e.g. the ``--db`` of a
    separate ``sync hub serve``). The corrected row always travels like every batch: signed
    by this agency, through the pipeline's own transport (embedded hub, HTTP or gateways).
    """
    if hub is None and "database" not in pipeline.hub:
        raise InputError(
            f"pipeline {pipeline.source_id} sends to a separate hub process: give the "
            "consolidated database it serves (--hub DB, as its hub serve --db) to read the entry"
        )
    doc = get_quarantine(hub or hub_database(pipeline), entry)
    if doc["source"] != pipeline.source_id:
        raise InputError(f"quarantine entry {entry} belongs to source {doc['source']}")
    if doc["closed"] in ("superseded", "deleted"):
        what = "a newer version of" if doc["closed"] == "superseded" else "the deletion of"
        raise InputError(
            f"quarantine entry {entry} is superseded: batch {doc['resolved_seq']} applied {what}"
            f" source key {doc['source_key']} after it; re-submitting would overwrite that —"
            " correct the row at the source instead"
        )
    if doc["resolved_seq"] is not None:
        raise InputError(
            f"quarantine entry {entry} was already resolved by batch {doc['resolved_seq']}"
        )
    spec = pipeline.table(doc["table"])
    raw = dict(doc["raw"])
    raw.pop(EXTRA_CELLS, None)  # a shifted file row: the corrections put the values right
    unknown = [c for c in corrections if c not in raw]
    if unknown:
        raise InputError(f"--set: the source row has no column(s) {unknown}")
    _check_nul_corrected(spec, doc, raw, corrections)
    raw.update(corrections)
    columns = list(raw)
    mapper = Mapper(spec, columns, dictionary_validator(spec.entity))
    chunk = Chunk(columns, [tuple(raw.values())], {}, locate=lambda _i: str(doc["position"]))
    mapped = mapper.map_chunk(chunk)
    if mapped.quarantine:
        reasons = mapped.quarantine[0][3]
        raise ValidationError(
            f"entry {entry} is still invalid: {'; '.join(reasons)}", reasons=reasons
        )
    mapped.resolves.append(entry)
    agency = open_agency(pipeline)
    try:
        seq = agency.enqueue_extra(spec, mapped)
        report = agency.run_drain()
    finally:
        agency.close(hub=True)  # the in-process hub's database too (it was left open)
    return {"entry": entry, "batch": seq, "applied": report.applied, "error": report.error}
