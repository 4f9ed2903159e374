"""Settings of one generator run, validated once at the edge (bad values → InputError, exit 2).

Defect rates are probabilities per row and per defect type: ``typo=0.02`` means about 2% of the
rows of every source where typos make sense get one typo in one of their name/address fields.
Coverage shares say which fraction of the eligible citizens each agency knows about.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, replace

from lienthong.errors import InputError

MAX_CITIZENS = 5_000_000  # about 1.8 GB of memory per million citizens


@dataclass(frozen=True, slots=True)
class DefectRates:
    """Rate of each defect type (0–1), per row of the sources it applies to."""

    typo: float = 0.02
    lost_diacritics: float = 0.02
    swapped_day_month: float = 0.01
    invalid_code: float = 0.005
    legacy_code: float = 0.02
    missing: float = 0.02
    duplicate: float = 0.01
    stale_address: float = 0.03
    mistyped_id: float = 0.01

    @classmethod
    def uniform(cls, rate: float) -> DefectRates:
        """Every defect type at the same rate."""
        return cls(**{name: rate for name in DEFECT_TYPES})

    def with_overrides(self, overrides: dict[str, float]) -> DefectRates:
        """A copy with some rates replaced (unknown names → InputError)."""
        for name in overrides:
            if name not in DEFECT_TYPES:
                raise InputError(f"unknown defect type {name!r}; known: {', '.join(DEFECT_TYPES)}")
        return replace(self, **overrides)

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in DEFECT_TYPES}


DEFECT_TYPES: tuple[str, ...] = tuple(f.name for f in fields(DefectRates))


@dataclass(frozen=True, slots=True)
class Coverage:
    """Which share of the eligible citizens each agency holds (overlapping subsets)."""

    health: float = 0.90  # insured (có thẻ BHYT), any age
    education: float = 0.92  # enrolled, of those aged 6–22
    education_without_id: float = 0.45  # student rows where the school never entered the ID
    tax: float = 0.45  # individual taxpayers, of those aged 18–70
    business: float = 0.04  # business representatives, of those aged 22–70
    moved: float = 0.30  # citizens with at least one change of permanent residence
    temporary: float = 0.12  # citizens living away from their permanent residence


@dataclass(frozen=True, slots=True)
class SynthConfig:
    """One run: how many citizens, the seed, the reference date and the defect profile."""

    citizens: int
    seed: int = 1
    as_of: dt.date = dt.date(2026, 1, 1)
    rates: DefectRates = field(default_factory=DefectRates)
    coverage: Coverage = field(default_factory=Coverage)

    def __post_init__(self) -> None:
        verify_config(self)


def verify_config(cfg: SynthConfig) -> None:
    """Raise InputError on the first setting that cannot work."""
    if isinstance(cfg.citizens, bool) or not isinstance(cfg.citizens, int):
        raise InputError(f"--citizens must be a whole number, not {cfg.citizens!r}")
    if not 1 <= cfg.citizens <= MAX_CITIZENS:
        raise InputError(f"--citizens must be between 1 and {MAX_CITIZENS:,}, not {cfg.citizens}")
    if not 0 <= cfg.seed < 2**63:
        raise InputError(f"--seed must be between 0 and 2^63-1, not {cfg.seed}")
    if not 2000 <= cfg.as_of.year <= 2099:
        raise InputError(f"--as-of must be a date in 2000–2099, not {cfg.as_of}")
    for name, rate in cfg.rates.as_dict().items():
        if not 0.0 <= rate <= 0.5:
            raise InputError(f"defect rate {name}={rate} must be between 0 and 0.5")
    for f in fields(cfg.coverage):
        share = getattr(cfg.coverage, f.name)
        if not 0.0 <= share <= 1.0:
            raise InputError(f"coverage {f.name}={share} must be between 0 and 1")


def parse_rate_overrides(items: list[str]) -> dict[str, float]:
    """Parse ``["typo=0.05", "missing=0"]`` into a dict (bad syntax → InputError)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--defect {item!r}: expected TYPE=RATE, e.g. typo=0.05")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"--defect {item!r}: {value!r} is not a number") from None
    return out
