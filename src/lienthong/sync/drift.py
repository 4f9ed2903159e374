"""Schema drift: compare a source table's columns with those recorded at the first run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lienthong.errors import ConfigError, InputError
from lienthong.sync.connectors.files import EMPTY, FileConnector


@dataclass(frozen=True)
class Drift:
    added: list[str]
    removed: list[str]
    retyped: list[tuple[str, str, str]]  # column, recorded type, current type

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    def describe(self) -> str:
        parts = [f"column {c} added" for c in self.added]
        parts += [f"column {c} removed" for c in self.removed]
        parts += [f"column {c} retyped {a} → {b}" for c, a, b in self.retyped]
        return ", ".join(parts)


# file drops recorded before they had types: every column was "text" (a name file drops no
# longer use, their text kind is "string"), read as not known yet
_UNTYPED_FILE = "text"


def retyped(recorded: str, current: str, by_values: bool = False) -> bool:
    """A SQL column is retyped when its declared type changed. A file column (``by_values``:
    the types of its values, ``number|string`` when mixed) when it holds a value of a type
    it never held before; without values (``empty``) it fits any type."""
    if recorded == current or not by_values:
        return recorded != current
    if EMPTY in (recorded, current):
        return False
    return not set(current.split("|")) <= set(recorded.split("|"))


def compare_schema(
    recorded: dict[str, str], current: dict[str, str], by_values: bool = False
) -> Drift:
    return Drift(
        added=[c for c in current if c not in recorded],
        removed=[c for c in recorded if c not in current],
        retyped=[
            (c, t, current[c])
            for c, t in recorded.items()
            if c in current and retyped(t, current[c], by_values)
        ],
    )


def recorded_schema(recorded: dict[str, str] | None, connector: Any) -> dict[str, str] | None:
    """The recorded schema to compare a connector's current one with: a file drop's columns
    recorded untyped (``text``, before file drops had types) count as not known yet."""
    if recorded is None or not isinstance(connector, FileConnector):
        return recorded
    return {c: EMPTY if t == _UNTYPED_FILE else t for c, t in recorded.items()}


def learned(recorded: dict[str, str], current: dict[str, str]) -> dict[str, str] | None:
    """After a run passed the drift check: the recorded schema with the types of columns it
    did not know yet (``empty``) filled in from ``current``, or None when nothing changed."""
    out = {
        c: current[c] if t == EMPTY and current.get(c, EMPTY) != EMPTY else t
        for c, t in recorded.items()
    }
    return out if out != recorded else None


def accept_schema(pipeline: Any, table: str | None = None) -> list[dict[str, Any]]:
    """Record each table's current source schema as accepted (after the operator updated the
    mapping); the mapping must fit the current columns. Returns what changed per table."""
    from lienthong.sync.agency import utc_now
    from lienthong.sync.connectors import open_connectors
    from lienthong.sync.outbox import Outbox
    from lienthong.sync.runtime import check_sources

    specs = [pipeline.table(table)] if table else list(pipeline.tables)
    state = pipeline.base_dir / pipeline.state
    if not state.is_file():
        raise InputError(f"no pipeline state at {state}: the first run records the schema")
    connectors = open_connectors(pipeline)
    try:
        check_sources(pipeline, {s.name: connectors[s.name] for s in specs}, specs)
        outbox = Outbox(state)
        try:
            out = []
            for spec in specs:
                conn = connectors[spec.name]
                current = conn.schema()
                recorded = recorded_schema(outbox.schema(spec.name), conn) or {}
                drift = compare_schema(recorded, current, isinstance(conn, FileConnector))
                if drift or learned(recorded, current):
                    outbox.set_field(spec.name, "schema", current, utc_now())
                    outbox.set_field(spec.name, "last_error", None, utc_now())
                out.append({"table": spec.name, "accepted": drift.describe() or None})
            return out
        finally:
            outbox.close()
    finally:
        for c in connectors.values():
            c.close()


def verify_no_drift(table: str, drift: Drift, on_added: str) -> None:
    """Raise unless the drift is only added columns and the table allows continuing."""
    if not drift or (on_added == "continue" and not drift.removed and not drift.retyped):
        return
    raise ConfigError(
        f"schema drift in source table {table}: {drift.describe()}; update the pipeline's "
        f"mapping, then run `lienthong sync schema accept PIPELINE --table {table}`"
        + ("" if drift.removed or drift.retyped else ' (or set on_added_columns = "continue")'),
        code="schema_drift",
        table=table,
    )
