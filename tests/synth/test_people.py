"""The true citizens look like Vietnam's population and obey the shared rules."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import Counter
from random import Random

import pytest

from lienthong.synth.config import SynthConfig
from lienthong.synth.geography import geography
from lienthong.synth.names import vocabulary
from lienthong.synth.people import Citizens, generate_citizens
from lienthong.synth.places import TEMPORARY_STAY
from lienthong.validate import check_commune_code, check_mobile, check_personal_id
from lienthong.validate.dates import check_date


@pytest.fixture(scope="module")
def citizens() -> Citizens:
    return generate_citizens(
        SynthConfig(citizens=20_000, seed=5), Random(5), geography(), vocabulary()
    )


def test_family_names_follow_national_shares(citizens: Citizens) -> None:
    share = Counter(citizens.family)
    n = len(citizens)
    assert abs(share["Nguyễn"] / n - 0.38) < 0.02
    assert abs(share["Trần"] / n - 0.11) < 0.01
    assert abs(share["Lê"] / n - 0.095) < 0.01
    assert len(set(citizens.given)) > 250


def test_middle_names_depend_on_sex(citizens: Citizens) -> None:
    thi = Counter(s for s, m in zip(citizens.sex, citizens.middle, strict=True) if m == "Thị")
    van = Counter(s for s, m in zip(citizens.sex, citizens.middle, strict=True) if m == "Văn")
    assert set(thi) == {"2"} and set(van) == {"1"}


def test_names_are_nfc(citizens: Citizens) -> None:
    assert all(unicodedata.is_normalized("NFC", name) for name in citizens.full_name)


def test_ids_phones_dates_and_places_are_valid(citizens: Citizens) -> None:
    assert len(set(citizens.personal_id)) == len(citizens)
    cmnd = [c for c in citizens.cmnd if c]
    assert len(set(cmnd)) == len(cmnd) > 1000
    p = citizens.places
    for i in range(0, len(citizens), 7):
        born = dt.date.fromordinal(citizens.birth[i])
        check = check_personal_id(citizens.personal_id[i], sex=citizens.sex[i], birth_date=born)
        assert check.ok, check
        assert citizens.personal_id[i][:3] == citizens.birth_province[i]
        if citizens.phone[i]:
            assert check_mobile(citizens.phone[i]).ok
        for code in (p.birth_commune[i], p.hometown[i], p.permanent[i], p.current[i]):
            assert check_commune_code(code, legacy=False).ok


def test_moves_end_at_the_current_residence(citizens: Citizens) -> None:
    p = citizens.places
    last: dict[int, tuple[int, str]] = {}
    for move in p.moves:
        assert move.from_commune != move.to_commune or move.kind != TEMPORARY_STAY
        assert move.date > citizens.birth[move.citizen]
        previous = last.get(move.citizen)
        assert previous is None or previous[0] <= move.date
        last[move.citizen] = (move.date, move.to_commune)
    for i, (_, commune) in last.items():
        assert commune == p.current[i]
    movers = len(last) / len(citizens)
    assert 0.3 < movers < 0.45
    assert sum(1 for x in p.previous if x) == len(last)


def test_ages_span_a_realistic_pyramid(citizens: Citizens) -> None:
    ages = citizens.ages(dt.date(2026, 1, 1))
    assert min(ages) == 0 and 95 <= max(ages) <= 101
    children = sum(1 for a in ages if a < 18) / len(ages)
    assert 0.2 < children < 0.3
    dob = dt.date.fromordinal(citizens.birth[0]).isoformat()
    assert check_date(dob, today=dt.date(2026, 1, 1)).ok
