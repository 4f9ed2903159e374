"""Injected, labelled defects (lỗi dữ liệu): what real source systems get wrong.

Each defect type has a rate per row. For a table of ``n`` rows, ``round(rate × n)`` rows are
sampled (without replacement), and each gets the defect in one of the fields where that defect
makes sense for its source. A field of a row receives at most one defect, so the label's
``original`` (the value the source would hold without the defect, in its own conventions) and
``injected`` (what it holds) always describe what is written. Mutations are pure functions of
the value and the random generator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any

from lienthong.dictionary.text import strip_diacritics
from lienthong.synth.config import DefectRates
from lienthong.synth.model import Defect, Table

# Value mutation: (row index, current value) -> new value, or None when it does not apply.
Mutation = Callable[[int, str], str | None]

_VOWELS = "aăâeêioôơuưy"
_CONSONANTS = "bcdđghklmnpqrstvx"


def typo(rng: Random, value: str) -> str | None:
    """One keyboard slip in a word: a letter replaced, dropped, doubled or swapped."""
    letters = [i for i, ch in enumerate(value) if ch.isalpha()]
    if len(letters) < 2:
        return None
    i = letters[int(rng.random() * len(letters))]
    ch, kind = value[i], int(rng.random() * 4)
    if kind == 0:
        pool = _VOWELS if strip_diacritics(ch).lower() in "aeiouy" else _CONSONANTS
        new = pool[int(rng.random() * len(pool))]
        new = new.upper() if ch.isupper() else new
        out = value[:i] + new + value[i + 1 :] if new != ch.lower() else None
    elif kind == 1:
        out = value[:i] + value[i + 1 :]
    elif kind == 2:
        out = value[:i] + ch + value[i:]
    else:
        j = i + 1 if i + 1 < len(value) and value[i + 1].isalpha() else i - 1
        a, b = min(i, j), max(i, j)
        out = value[:a] + value[b] + value[a] + value[b + 1 :]
    return out if out and out != value and out.split() == out.split(" ") else None


def lose_diacritics(value: str) -> str | None:
    """The value as typed on a keyboard without a Vietnamese input method."""
    out = strip_diacritics(value)
    return out if out != value else None


def swap_day_month(value: str) -> str | None:
    """Day and month exchanged (only when both are ≤ 12 and differ, so it stays a date)."""
    if len(value) == 10 and value[4] == "-":  # yyyy-mm-dd
        y, m, d = value[:4], value[5:7], value[8:]
        return f"{y}-{d}-{m}" if d != m and int(d) <= 12 else None
    for sep in "/-.":
        parts = value.split(sep)
        if len(parts) == 3 and len(parts[2]) == 4:
            d, m, y = parts
            if d != m and int(d) <= 12 and int(m) <= 12 and int(d) != int(m):
                return sep.join((m, d, y))
            return None
    return None


def mistype_digit(rng: Random, value: str) -> str | None:
    """One digit replaced by another, or two adjacent digits transposed."""
    if not value.isdigit() or len(value) < 2:
        return None
    i = int(rng.random() * len(value))
    if rng.random() < 0.25 and i + 1 < len(value) and value[i] != value[i + 1]:
        return value[:i] + value[i + 1] + value[i] + value[i + 2 :]
    new = str((int(value[i]) + 1 + int(rng.random() * 9)) % 10)
    return value[:i] + new + value[i + 1 :]


@dataclass(slots=True)
class DefectInjector:
    """Applies defects to the tables of one source and records every label."""

    source: str
    rng: Random
    log: list[Defect]
    touched: set[tuple[str, int, str]] = field(default_factory=set)

    def _rows(self, table: Table, rate: float) -> list[int]:
        n = len(table)
        k = min(n, int(rate * n + self.rng.random()))
        return sorted(self.rng.sample(range(n), k)) if k else []

    def apply(
        self,
        table: Table,
        defect: str,
        rate: float,
        fields: Sequence[str],
        mutate: Mutation | None,
    ) -> int:
        """Inject ``defect`` into about ``rate × len(table)`` rows; ``mutate=None`` blanks the
        field (a *missing* value). Returns how many values were changed."""
        keys, r, changed = table.data[table.key], self.rng.random, 0
        for i in self._rows(table, rate):
            name = fields[int(r() * len(fields))]
            column = table.data[name]
            original = column[i]
            if original is None or original == "" or (table.name, i, name) in self.touched:
                continue
            new = None if mutate is None else mutate(i, str(original))
            if mutate is not None and (new is None or new == original):
                continue
            column[i] = new
            self.touched.add((table.name, i, name))
            self.log.append(
                Defect(self.source, table.name, str(keys[i]), name, defect,
                       str(original), "" if new is None else new)
            )  # fmt: skip
            changed += 1
        return changed

    def apply_plan(
        self,
        table: Table,
        rates: DefectRates,
        plan: Sequence[tuple[str, Sequence[str], Mutation | None]],
    ) -> None:
        """Apply each ``(defect type, fields, mutation)`` of a source's plan at its rate."""
        for defect, fields, mutate in plan:
            self.apply(table, defect, getattr(rates, defect), fields, mutate)

    def apply_together(
        self, table: Table, defect: str, rate: float, fields: Sequence[str],
        mutate: Callable[[int], Sequence[str] | None],
    ) -> int:  # fmt: skip
        """Like :meth:`apply` for a defect that changes several fields at once (a stale
        address changes the commune code and the address text): one label per field."""
        keys, changed = table.data[table.key], 0
        for i in self._rows(table, rate):
            if any((table.name, i, name) in self.touched for name in fields):
                continue
            new = mutate(i)
            if new is None:
                continue
            for name, value in zip(fields, new, strict=True):
                column = table.data[name]
                if column[i] == value:
                    continue
                self.touched.add((table.name, i, name))
                self.log.append(
                    Defect(self.source, table.name, str(keys[i]), name, defect,
                           "" if column[i] is None else str(column[i]), value)
                )  # fmt: skip
                column[i] = value
            changed += 1
        return changed

    def duplicate(
        self, table: Table, rate: float, overrides: Callable[[int], dict[str, Any]]
    ) -> list[int]:
        """Append a second row for ``rate × n`` sampled rows (a citizen registered twice):
        a copy of row ``i`` with ``overrides(i)`` applied, which must give a new key. Call it
        before the field defects so both copies start clean. Returns the copied row indices."""
        rows = self._rows(table, rate)
        keys = table.data[table.key]
        for i in rows:
            new = overrides(i)
            for col in table.columns:
                values = table.data[col.name]
                values.append(new.get(col.name, values[i]))
            table.citizens.append(table.citizens[i])
            self.log.append(
                Defect(self.source, table.name, str(new[table.key]), "*", "duplicate",
                       str(keys[i]), str(new[table.key]))
            )  # fmt: skip
        return rows
