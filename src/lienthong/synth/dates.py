"""Date texts by day ordinal, precomputed once per run: formatting a million dates through
``datetime`` would cost more than generating the citizens."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DateTexts:
    """ISO and day-first renderings of every day from ``first`` to ``last``."""

    base: int
    iso: tuple[str, ...]
    dmy: tuple[str, ...]  # dd/mm/yyyy
    days: tuple[int, ...]  # day of month
    months: tuple[int, ...]

    @classmethod
    def between(cls, first: dt.date, last: dt.date) -> DateTexts:
        base = first.toordinal()
        dates = [dt.date.fromordinal(o) for o in range(base, last.toordinal() + 1)]
        return cls(
            base,
            tuple(d.isoformat() for d in dates),
            tuple(f"{d.day:02d}/{d.month:02d}/{d.year}" for d in dates),
            tuple(d.day for d in dates),
            tuple(d.month for d in dates),
        )

    def iso_of(self, ordinals: list[int]) -> list[str]:
        base, iso = self.base, self.iso
        return [iso[o - base] for o in ordinals]

    def dmy_of(self, ordinals: list[int]) -> list[str]:
        base, dmy = self.base, self.dmy
        return [dmy[o - base] for o in ordinals]
