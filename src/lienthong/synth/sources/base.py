"""What every source builder receives, and small helpers they share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any

from lienthong.synth.config import SynthConfig
from lienthong.synth.dates import DateTexts
from lienthong.synth.defects import DefectInjector
from lienthong.synth.geography import Geography
from lienthong.synth.model import Column, Defect, Table
from lienthong.synth.names import Vocabulary
from lienthong.synth.people import Citizens


@dataclass(slots=True)
class BuildContext:
    """The true citizens and the lookup tables, shared read-only by the source builders."""

    cfg: SynthConfig
    citizens: Citizens
    geo: Geography
    vocab: Vocabulary
    dates: DateTexts
    defects: list[Defect] = field(default_factory=list)
    _ages: list[int] | None = None

    @property
    def ages(self) -> list[int]:
        if self._ages is None:
            self._ages = self.citizens.ages(self.cfg.as_of)
        return self._ages

    def rng(self, name: str) -> Random:
        """An independent random stream per source, so adding one source never changes
        another's output (string seeds are hashed with SHA-512: stable across runs)."""
        return Random(f"lienthong-synth/{self.cfg.seed}/{name}")

    def injector(self, source: str, rng: Random) -> DefectInjector:
        return DefectInjector(source, rng, self.defects)

    @property
    def as_of(self) -> dt.date:
        return self.cfg.as_of


def select(rng: Random, eligible: list[int], share: float) -> list[int]:
    """The citizens (indices, in order) an agency knows about: each eligible one with
    probability ``share``."""
    r = rng.random
    return [i for i in eligible if r() < share]


def make_table(
    name: str, columns: tuple[Column, ...], key: str, rows: Mapping[str, list[Any]],
    citizens: list[str], doc: str = "",
) -> Table:  # fmt: skip
    """A table from its columns, checking every column has one value per row."""
    for col in columns:
        if len(rows[col.name]) != len(citizens):
            raise ValueError(
                f"{name}.{col.name}: {len(rows[col.name])} values, {len(citizens)} rows"
            )
    return Table(name, columns, key, {c.name: rows[c.name] for c in columns}, citizens, doc)


def unique_serials(rng: Random, count: int, digits: int) -> list[int]:
    """``count`` distinct random numbers below ``10**digits``."""
    return rng.sample(range(10**digits), count)
