"""The true citizens (công dân): who they really are, before any agency writes them down.

Generation is column-oriented: each attribute is drawn for everybody at once with
``Random.choices``/``Random.random`` in list comprehensions, so the per-citizen cost is a few
microseconds. The same seed gives the same citizens on every machine (``random.Random`` is
specified to be reproducible across platforms for a given seed and Python version line).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from random import Random

from lienthong.synth.config import SynthConfig
from lienthong.synth.geography import Geography
from lienthong.synth.names import Vocabulary
from lienthong.synth.places import Places, draw_places
from lienthong.validate import make_personal_id
from lienthong.validate.phone import MOBILE_PREFIXES

# Shares of the ethnic groups (codes of ETHNIC_GROUPS) in the 2019 census, in percent; the
# other 42 groups share the remainder evenly.
_ETHNIC_SHARES = {
    "01": 85.3, "02": 1.9, "03": 1.9, "06": 1.5, "08": 1.5, "05": 1.4, "07": 1.1,
    "09": 0.9, "04": 0.8, "10": 0.5, "12": 0.4, "13": 0.3,
}  # fmt: skip
# Religion shares (codes of RELIGIONS): 2019 census, no religion ≈ 86.3%.
_RELIGION_SHARES = {"00": 86.3, "02": 6.1, "01": 4.8, "03": 1.0, "05": 1.0, "04": 0.6, "99": 0.2}
# Relative weight of each age 0–100: a young population, thinning after 60.
_AGE_WEIGHTS = [1.0] * 60 + [0.75] * 10 + [0.45] * 10 + [0.2] * 10 + [0.04] * 11
MALE, FEMALE = "1", "2"  # ISO/IEC 5218, as in SEXES


@dataclass(slots=True)
class Citizens:
    """Every attribute as one list, index ``i`` being citizen ``i``."""

    personal_id: list[str]
    cmnd: list[str | None]
    family: list[str]
    middle: list[str]
    given: list[str]
    full_name: list[str]
    sex: list[str]
    birth: list[int]  # date ordinals
    birth_province: list[str]  # legacy ID province code: digits 1–3 of the personal ID
    ethnicity: list[str]
    religion: list[str]
    nationality: list[str]
    phone: list[str | None]
    places: Places = field(repr=False)

    def __len__(self) -> int:
        return len(self.personal_id)

    def ages(self, as_of: dt.date) -> list[int]:
        """Whole years of age at ``as_of`` (365.25-day years: exact enough for eligibility)."""
        ref = as_of.toordinal()
        return [int((ref - b) / 365.25) for b in self.birth]


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _draw_births(n: int, rng: Random, as_of: dt.date) -> list[int]:
    ages = rng.choices(range(len(_AGE_WEIGHTS)), cum_weights=_cumulative(_AGE_WEIGHTS), k=n)
    ref, r = as_of.toordinal() - 1, rng.random
    return [ref - int((age + r()) * 365.25) for age in ages]


def _by_sex(sex: list[str], male: list[str], female: list[str]) -> list[str]:
    m, f = iter(male), iter(female)
    return [next(m) if s == MALE else next(f) for s in sex]


def _draw_names(sex: list[str], rng: Random, vocab: Vocabulary) -> tuple[list[str], ...]:
    n, n_male = len(sex), sex.count(MALE)
    family = vocab.family.draw(rng, n)
    middle = _by_sex(
        sex, vocab.middle_male.draw(rng, n_male), vocab.middle_female.draw(rng, n - n_male)
    )
    given = _by_sex(
        sex, vocab.given_male.draw(rng, n_male), vocab.given_female.draw(rng, n - n_male)
    )
    full = [f"{a} {b} {c}" for a, b, c in zip(family, middle, given, strict=True)]
    return family, middle, given, full


def _draw_personal_ids(
    sex: list[str], birth: list[int], province: list[str], rng: Random
) -> list[str]:
    """Unique 12-digit IDs. The 6-digit prefix comes from ``make_personal_id`` (cached per
    province, sex and year); only the random serial is drawn per citizen."""
    prefixes: dict[tuple[str, str, int], str] = {}
    seen: set[str] = set()
    out: list[str] = []
    r = rng.random
    for s, b, p in zip(sex, birth, province, strict=True):
        year = dt.date.fromordinal(b).year
        prefix = prefixes.get((p, s, year))
        if prefix is None:
            prefix = make_personal_id(p, s, dt.date(year, 1, 1), 0)[:6]
            prefixes[(p, s, year)] = prefix
        pid = f"{prefix}{int(r() * 1_000_000):06d}"
        while pid in seen:
            pid = f"{prefix}{int(r() * 1_000_000):06d}"
        seen.add(pid)
        out.append(pid)
    return out


def _draw_cmnd(ages: list[int], rng: Random) -> list[str | None]:
    """Legacy 9-digit identity-card numbers (CMND) for about half of those over 25."""
    seen: set[str] = set()
    out: list[str | None] = []
    r = rng.random
    for age in ages:
        if age < 25 or r() >= 0.55:
            out.append(None)
            continue
        number = f"{int(r() * 999_999_999) + 1:09d}"
        while number in seen:
            number = f"{int(r() * 999_999_999) + 1:09d}"
        seen.add(number)
        out.append(number)
    return out


def _draw_phones(ages: list[int], rng: Random) -> list[str | None]:
    prefixes = sorted(MOBILE_PREFIXES)
    r, k = rng.random, len(prefixes)
    return [
        f"0{prefixes[int(r() * k)]}{int(r() * 10_000_000):07d}" if age >= 15 and r() < 0.9 else None
        for age in ages
    ]


def _draw_codes(shares: dict[str, float], others: list[str], n: int, rng: Random) -> list[str]:
    rest = max(0.0, 100.0 - sum(shares.values()))
    codes = list(shares) + others
    weights = list(shares.values()) + [rest / max(1, len(others))] * len(others)
    return rng.choices(codes, cum_weights=_cumulative(weights), k=n)


def generate_citizens(cfg: SynthConfig, rng: Random, geo: Geography, vocab: Vocabulary) -> Citizens:
    """Draw ``cfg.citizens`` true citizens."""
    from lienthong.dictionary.categories import ETHNIC_GROUPS

    n = cfg.citizens
    sex = [MALE if x < 0.5 else FEMALE for x in (rng.random() for _ in range(n))]
    birth = _draw_births(n, rng, cfg.as_of)
    ages = [int((cfg.as_of.toordinal() - b) / 365.25) for b in birth]
    family, middle, given, full = _draw_names(sex, rng, vocab)
    province = rng.choices(geo.id_codes, cum_weights=geo.id_weights, k=n)
    pids = _draw_personal_ids(sex, birth, province, rng)
    others = [c for c in ETHNIC_GROUPS if c not in _ETHNIC_SHARES]
    return Citizens(
        personal_id=pids,
        cmnd=_draw_cmnd(ages, rng),
        family=family,
        middle=middle,
        given=given,
        full_name=full,
        sex=sex,
        birth=birth,
        birth_province=province,
        ethnicity=_draw_codes(_ETHNIC_SHARES, others, n, rng),
        religion=_draw_codes(_RELIGION_SHARES, [], n, rng),
        nationality=["VN"] * n,
        phone=_draw_phones(ages, rng),
        places=draw_places(cfg, rng, geo, vocab, province, birth),
    )
