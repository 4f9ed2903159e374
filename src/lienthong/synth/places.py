"""Where citizens were registered, come from and live, and how they moved (di biến động cư trú).

Most people live in the old province where their birth was registered; a share moved their
permanent residence one to three times (the population register keeps each move), and some live
away from it on a temporary registration (tạm trú). The place someone lived before their latest
move is kept: agencies that were never told about the move still hold it (a *stale address*).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from lienthong.synth.config import SynthConfig
from lienthong.synth.geography import Geography
from lienthong.synth.names import Vocabulary

PERMANENT_MOVE = "thuong_tru"  # đăng ký thường trú: change of permanent residence
TEMPORARY_STAY = "tam_tru"  # đăng ký tạm trú: temporary residence elsewhere
_BIG_CITIES = ("79", "01", "48", "31", "92")  # HCM, Hà Nội, Đà Nẵng, Hải Phòng, Cần Thơ


@dataclass(frozen=True, slots=True)
class Move:
    """One residence event of the population register."""

    citizen: int
    kind: str
    from_commune: str
    to_commune: str
    detail: str
    date: int  # ordinal


@dataclass(slots=True)
class Places:
    birth_commune: list[str]
    hometown: list[str]
    permanent: list[str]
    permanent_detail: list[str]
    current: list[str]
    current_detail: list[str]
    previous: list[str | None]  # where they lived before the current place, if they moved
    previous_detail: list[str | None]
    moves: list[Move]


def _detail_maker(rng: Random, geo: Geography, vocab: Vocabulary) -> Callable[[str], str]:
    """House number and street in wards, hamlet (thôn/xóm/ấp) in rural communes."""
    r, streets = rng.random, vocab.streets
    is_ward, province, south = geo.commune_is_ward, geo.commune_province, geo.southern

    def detail(code: str) -> str:
        if is_ward[code]:
            street = streets[int(r() * len(streets))]
            if r() < 0.7:
                return f"Số {int(r() * 300) + 1} {street}"
            return f"Số {int(r() * 90) + 1} ngõ {int(r() * 120) + 1} {street}"
        if province[code] in south:
            return f"Ấp {int(r() * 12) + 1}"
        return f"{'Thôn' if r() < 0.6 else 'Xóm'} {int(r() * 15) + 1}"

    return detail


def _move_dates(rng: Random, born: int, as_of: int, count: int) -> list[int]:
    start = max(born + 1, as_of - 20 * 365)
    return sorted(start + int(rng.random() * (as_of - start)) for _ in range(count))


def draw_places(
    cfg: SynthConfig,
    rng: Random,
    geo: Geography,
    vocab: Vocabulary,
    province: list[str],
    birth: list[int],
) -> Places:
    """Residences and moves for citizens born in ``province`` (legacy ID codes) on ``birth``."""
    r, every, pools = rng.random, geo.communes, geo.id_communes
    detail = _detail_maker(rng, geo, vocab)
    cities = [c for c in every if geo.commune_province[c] in _BIG_CITIES]
    as_of = cfg.as_of.toordinal()
    moved, temporary = cfg.coverage.moved, cfg.coverage.temporary
    out = Places([], [], [], [], [], [], [], [], [])
    for i, (p, born) in enumerate(zip(province, birth, strict=True)):
        pool = pools[p]
        out.birth_commune.append(pool[int(r() * len(pool))])
        out.hometown.append(
            pool[int(r() * len(pool))] if r() < 0.8 else every[int(r() * len(every))]
        )
        home = pool[int(r() * len(pool))] if r() < 0.78 else every[int(r() * len(every))]
        home_detail = detail(home)
        prev: str | None = None
        prev_detail: str | None = None
        settled = max(born + 1, as_of - 5 * 365)  # a temporary stay starts after this day
        if r() < moved and as_of - born > 400:
            count = 1 if r() < 0.7 else (2 if r() < 0.73 else 3)
            chain = [every[int(r() * len(every))] for _ in range(count)] + [home]
            details = [detail(c) for c in chain[:-1]] + [home_detail]
            for j, day in enumerate(_move_dates(rng, born, as_of, count)):
                out.moves.append(
                    Move(i, PERMANENT_MOVE, chain[j], chain[j + 1], details[j + 1], day)
                )
            prev, prev_detail = chain[-2], details[-2]
            settled = max(settled, out.moves[-1].date + 1)
        out.permanent.append(home)
        out.permanent_detail.append(home_detail)
        if r() < temporary and as_of - born > 16 * 365 and settled < as_of:
            here = cities[int(r() * len(cities))] if r() < 0.5 else every[int(r() * len(every))]
            if here != home:
                here_detail = detail(here)
                day = settled + int(r() * (as_of - settled))
                out.moves.append(Move(i, TEMPORARY_STAY, home, here, here_detail, day))
                prev, prev_detail = home, home_detail
                home, home_detail = here, here_detail
        out.current.append(home)
        out.current_detail.append(home_detail)
        out.previous.append(prev)
        out.previous_detail.append(prev_detail)
    return out


def as_date(ordinal: int) -> dt.date:
    """The date of a day ordinal (helper for tests and reports)."""
    return dt.date.fromordinal(ordinal)
