"""Vocabulary of the generator: Vietnamese name parts, streets, business words (package data).

Family names carry their real national shares (Nguyễn ≈ 38%, Trần 11%, Lê 9.5%, Phạm 7%…),
middle names depend on sex (Văn for men, Thị for women are the most frequent), given names are
a few hundred per sex with Zipf-like weights. Everything is NFC. Loaded once.
"""

from __future__ import annotations

import functools
import itertools
import json
import unicodedata
from dataclasses import dataclass
from importlib import resources
from random import Random


@dataclass(frozen=True, slots=True)
class Weighted:
    """Values with cumulative weights, ready for ``Random.choices(..., cum_weights=...)``."""

    values: tuple[str, ...]
    cum_weights: tuple[float, ...]

    def draw(self, rng: Random, k: int) -> list[str]:
        """``k`` independent draws."""
        return rng.choices(self.values, cum_weights=self.cum_weights, k=k)


def weighted(pairs: list[tuple[str, float]] | list[list[object]]) -> Weighted:
    """Build a :class:`Weighted` from ``[(value, weight), ...]``."""
    values = tuple(str(v) for v, _ in pairs)
    cum = tuple(itertools.accumulate(float(str(w)) for _, w in pairs))
    return Weighted(values, cum)


@dataclass(frozen=True, slots=True)
class Vocabulary:
    family: Weighted
    middle_male: Weighted
    middle_female: Weighted
    given_male: Weighted
    given_female: Weighted
    streets: tuple[str, ...]
    business_words: tuple[str, ...]
    business_fields: tuple[str, ...]
    activities: tuple[str, ...]


def _nfc_all(values: list[str]) -> tuple[str, ...]:
    out = tuple(unicodedata.normalize("NFC", v) for v in values)
    if out != tuple(values):
        raise ValueError("names.json must be stored in Unicode NFC")
    return out


@functools.cache
def vocabulary() -> Vocabulary:
    """The packaged vocabulary (``lienthong/synth/data/names.json``)."""
    raw = json.loads(
        resources.files("lienthong.synth").joinpath("data/names.json").read_text("utf-8")
    )
    for part in (raw["family"], *raw["middle"].values(), *raw["given"].values()):
        _nfc_all([str(v) for v, _ in part])
    return Vocabulary(
        family=weighted(raw["family"]),
        middle_male=weighted(raw["middle"]["male"]),
        middle_female=weighted(raw["middle"]["female"]),
        given_male=weighted(raw["given"]["male"]),
        given_female=weighted(raw["given"]["female"]),
        streets=_nfc_all(raw["streets"]),
        business_words=_nfc_all(raw["business_words"]),
        business_fields=_nfc_all(raw["business_fields"]),
        activities=_nfc_all(raw["activities"]),
    )
