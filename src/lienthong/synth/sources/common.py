"""Mutations shared by several sources, as closures over the run's tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from random import Random

from lienthong.synth.defects import Mutation, lose_diacritics, mistype_digit, swap_day_month, typo
from lienthong.synth.geography import Geography


def typo_in(rng: Random) -> Mutation:
    return lambda _i, value: typo(rng, value)


def diacritics_lost() -> Mutation:
    return lambda _i, value: lose_diacritics(value)


def day_month_swapped() -> Mutation:
    return lambda _i, value: swap_day_month(value)


def id_mistyped(rng: Random) -> Mutation:
    return lambda _i, value: mistype_digit(rng, value)


def invalid_commune(rng: Random, geo: Geography) -> Mutation:
    """A 5-digit code that is neither a current nor a legacy commune."""
    pool = geo.invalid_communes
    return lambda _i, _value: pool[int(rng.random() * len(pool))]


def invalid_code(rng: Random, valid: Sequence[str], width: int) -> Mutation:
    """A ``width``-digit code outside ``valid``."""
    pool = [f"{i:0{width}d}" for i in range(10**width) if f"{i:0{width}d}" not in set(valid)]
    return lambda _i, _value: pool[int(rng.random() * len(pool))]


def legacy_commune(rng: Random, geo: Geography) -> Mutation:
    """The pre-2025 code of an old commune merged into this one (only codes that are not
    also current codes, so the defect is detectable)."""

    def mutate(_i: int, value: str) -> str | None:
        olds = geo.legacy_only_codes.get(value)
        return olds[int(rng.random() * len(olds))] if olds else None

    return mutate


def stale(who: list[int], previous: Sequence[object], render: Callable[[int], str]) -> Mutation:
    """The citizen's address before their latest move (None if they never moved)."""
    return lambda i, _value: None if previous[who[i]] is None else render(who[i])
