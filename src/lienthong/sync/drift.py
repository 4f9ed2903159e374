"""Schema drift: compare a source table's columns with those recorded at the first run."""

from __future__ import annotations

from dataclasses import dataclass

from lienthong.errors import ConfigError


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


def compare_schema(recorded: dict[str, str], current: dict[str, str]) -> Drift:
    return Drift(
        added=[c for c in current if c not in recorded],
        removed=[c for c in recorded if c not in current],
        retyped=[
            (c, t, current[c]) for c, t in recorded.items() if c in current and current[c] != t
        ],
    )


def verify_no_drift(table: str, drift: Drift, on_added: str) -> None:
    """Raise unless the drift is only added columns and the table allows continuing."""
    if not drift or (on_added == "continue" and not drift.removed and not drift.retyped):
        return
    raise ConfigError(
        f"schema drift in source table {table}: {drift.describe()}; update the pipeline "
        'mapping and run `lienthong sync schema accept` (or set on_added_columns = "continue")',
        code="schema_drift",
        table=table,
    )
