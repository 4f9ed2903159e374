"""``lienthong sync status``: where each table of a pipeline stands.

Read-only: a pipeline that was never run has no state file, and asking for its status does
not create one (nor its directory); an existing state is opened read-only, without the run
lock.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

from lienthong.errors import BackendError, LienthongError
from lienthong.sync.connectors import open_connectors
from lienthong.sync.outbox import Outbox
from lienthong.sync.pipeline import Pipeline, TableSpec


class ReadOnlyState(Outbox):
    """An existing pipeline state opened read-only (the Outbox queries, no schema set-up)."""

    def __init__(self, path: Path) -> None:
        self.path, self.epoch, self._lock_fd = path, None, None
        try:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            self.db.execute("SELECT 1 FROM tables LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise BackendError(f"sync state {path}: {exc}") from exc


def never_run(spec: TableSpec) -> dict[str, Any]:
    """A table nothing was read from yet: no position, nothing applied, lag unknown."""
    return {
        "entity": spec.entity, "never_run": True, "position": None, "extract_position": None,
        "lag_seconds": None, "lag_rows": None, "applied": 0, "quarantined": 0, "read": 0,
        "batches_pending": 0, "last_error": None,
    }  # fmt: skip


def pipeline_status(pipeline: Pipeline, now: dt.datetime | None = None) -> dict[str, Any]:
    """Per table: positions, lag (seconds and rows), applied, quarantined, last error."""
    now = now or dt.datetime.now(dt.UTC)
    path = pipeline.base_dir / pipeline.state
    if not path.is_file():
        return {
            "source": pipeline.source_id,
            "tables": {s.name: never_run(s) for s in pipeline.tables},
        }
    state = ReadOnlyState(path)
    connectors = open_connectors(pipeline)
    tables: dict[str, Any] = {}
    try:
        known = set(state.tables())
        for spec in pipeline.tables:
            if spec.name not in known:
                tables[spec.name] = never_run(spec)
                continue
            tables[spec.name] = _table_status(state, connectors[spec.name], spec, now)
    finally:
        for c in connectors.values():
            c.close()
        state.close()
    return {"source": pipeline.source_id, "tables": tables}


def _table_status(
    state: Outbox, connector: Any, spec: TableSpec, now: dt.datetime
) -> dict[str, Any]:
    totals = state.totals(spec.name)
    oldest = totals.pop("oldest_unacked")
    lag_s = 0.0
    if oldest:
        lag_s = max(0.0, (now - dt.datetime.fromisoformat(oldest)).total_seconds())
    try:
        unread = connector.pending(state.extract_position(spec.name))
        error = state.last_error(spec.name)
    except LienthongError as exc:
        unread, error = -1, exc.message
    return {
        "entity": spec.entity,
        "never_run": False,
        "position": state.acked_position(spec.name),
        "extract_position": state.extract_position(spec.name),
        "lag_seconds": round(lag_s, 3),
        "lag_rows": (unread + totals["rows_unacked"]) if unread >= 0 else None,
        "applied": totals["applied"],
        "quarantined": totals["quarantined"],
        "read": totals["read"],
        "batches_pending": totals["batches"] - totals["batches_acked"],
        "last_error": error,
    }
