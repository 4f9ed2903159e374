"""``lienthong sync status``: where each table of a pipeline stands."""

from __future__ import annotations

import datetime as dt
from typing import Any

from lienthong.errors import LienthongError
from lienthong.sync.connectors import open_connectors
from lienthong.sync.outbox import Outbox
from lienthong.sync.pipeline import Pipeline


def pipeline_status(pipeline: Pipeline, now: dt.datetime | None = None) -> dict[str, Any]:
    """Per table: positions, lag (seconds and rows), applied, quarantined, last error."""
    now = now or dt.datetime.now(dt.UTC)
    outbox = Outbox(pipeline.base_dir / pipeline.state)
    connectors = open_connectors(pipeline)
    tables: dict[str, Any] = {}
    try:
        for spec in pipeline.tables:
            totals = outbox.totals(spec.name)
            oldest = totals.pop("oldest_unacked")
            lag_s = 0.0
            if oldest:
                lag_s = max(0.0, (now - dt.datetime.fromisoformat(oldest)).total_seconds())
            try:
                unread = connectors[spec.name].pending(outbox.extract_position(spec.name))
                error = outbox.last_error(spec.name)
            except LienthongError as exc:
                unread, error = -1, exc.message
            tables[spec.name] = {
                "entity": spec.entity,
                "position": outbox.acked_position(spec.name),
                "extract_position": outbox.extract_position(spec.name),
                "lag_seconds": round(lag_s, 3),
                "lag_rows": (unread + totals["rows_unacked"]) if unread >= 0 else None,
                "applied": totals["applied"],
                "quarantined": totals["quarantined"],
                "read": totals["read"],
                "batches_pending": totals["batches"] - totals["batches_acked"],
                "last_error": error,
            }
    finally:
        for c in connectors.values():
            c.close()
        outbox.close()
    return {"source": pipeline.source_id, "tables": tables}
