"""Defect mutations (pure functions) and the injector's bookkeeping."""

from __future__ import annotations

import datetime as dt
from random import Random

from hypothesis import given
from hypothesis import strategies as st

from lienthong.synth.defects import (
    DefectInjector,
    lose_diacritics,
    mistype_digit,
    swap_day_month,
    typo,
)
from lienthong.synth.model import Column, Defect, Table
from lienthong.validate.dates import parse_date

NAMES = st.sampled_from(["Nguyễn Văn An", "Trần Thị Bích Ngọc", "LE VAN TAM", "Đỗ Hữu Đức"])
dates = st.dates(min_value=dt.date(1920, 1, 1), max_value=dt.date(2030, 12, 31))


@given(NAMES, st.integers(0, 2**32))
def test_typo_is_one_slip_keeping_single_spaces(name: str, seed: int) -> None:
    out = typo(Random(seed), name)
    if out is None:
        return
    assert out != name
    assert abs(len(out) - len(name)) <= 1
    assert out.split() == out.split(" ")
    assert len(out.split()) == len(name.split())


@given(dates, st.sampled_from(["iso", "dmy", "dmy-", "short"]))
def test_swapped_day_month_reads_as_the_other_date(day: dt.date, form: str) -> None:
    text = {
        "iso": day.isoformat(),
        "dmy": f"{day.day:02d}/{day.month:02d}/{day.year}",
        "dmy-": f"{day.day:02d}-{day.month:02d}-{day.year}",
        "short": f"{day.day}/{day.month}/{day.year}",
    }[form]
    out = swap_day_month(text)
    if day.day > 12 or day.day == day.month:
        assert out is None
        return
    assert out is not None
    parsed = parse_date(out).value
    assert parsed == dt.date(day.year, day.day, day.month)
    assert swap_day_month(out) == text


@given(st.from_regex(r"[0-9]{9}|[0-9]{12}", fullmatch=True), st.integers(0, 2**32))
def test_mistyped_digit_changes_one_place_or_swaps_two(number: str, seed: int) -> None:
    out = mistype_digit(Random(seed), number)
    assert out is not None and out != number and out.isdigit()
    diff = [i for i, (a, b) in enumerate(zip(out, number, strict=True)) if a != b]
    assert len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1)


def test_lost_diacritics() -> None:
    assert lose_diacritics("Đặng Thị Ánh, Xã Tân Lập") == "Dang Thi Anh, Xa Tan Lap"
    assert lose_diacritics("LE VAN TAM") is None


def _table(n: int) -> Table:
    cols = (Column("k", nullable=False), Column("name"), Column("born"))
    data = {
        "k": [f"K{i}" for i in range(n)],
        "name": ["Nguyễn Văn An"] * n,
        "born": ["03/04/2001"] * n,
    }
    return Table("t", cols, "k", data, [f"C{i}" for i in range(n)])


def test_injector_labels_what_it_writes_once_per_field() -> None:
    log: list[Defect] = []
    table = _table(1000)
    inj = DefectInjector("src", Random(1), log)
    dup = inj.duplicate(table, 0.05, lambda i: {"k": f"D{i}"})
    assert len(dup) == 50 and len(table) == 1050 and table.citizens[-1] == table.citizens[dup[-1]]
    typos = inj.apply(table, "typo", 0.2, ("name",), lambda _i, v: typo(Random(_i), v))
    blanks = inj.apply(table, "missing", 0.2, ("name", "born"), None)
    assert 150 < typos <= 210 and blanks > 150
    assert len(log) == 50 + typos + blanks
    touched = [(d.key, d.field) for d in log if d.defect != "duplicate"]
    assert len(touched) == len(set(touched))
    row = {k: i for i, k in enumerate(table.data["k"])}
    for d in log[50:]:
        value = table.data[d.field][row[d.key]]
        assert (value or "") == d.injected


def test_zero_rate_changes_nothing() -> None:
    log: list[Defect] = []
    table = _table(100)
    inj = DefectInjector("src", Random(1), log)
    assert inj.apply(table, "missing", 0.0, ("name",), None) == 0
    assert inj.duplicate(table, 0.0, lambda i: {"k": f"D{i}"}) == []
    assert log == [] and len(table) == 100


def test_health_card_groups_are_known_beneficiary_groups() -> None:
    from lienthong.synth.sources.health import GROUPS
    from lienthong.validate.health_insurance import BENEFICIARY_GROUPS

    assert {g[:2] for g in GROUPS} <= BENEFICIARY_GROUPS
    assert all(g[2] in "12345" for g in GROUPS)
