"""check_personal_id_column equals check_personal_id row by row (values and error rows)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.dictionary.categories import LEGACY_ID_PROVINCES
from lienthong.validate import check_personal_id, make_personal_id
from lienthong.validate.personal_id import check_personal_id_column

CODES = sorted(LEGACY_ID_PROVINCES)


@st.composite
def person(draw: st.DrawFn, clean: bool) -> tuple[Any, Any, Any]:
    sex = draw(st.sampled_from(["1", "2", "0", "9", "Nam", None]))
    born = draw(st.one_of(st.none(), st.dates(dt.date(1800, 1, 1), dt.date(2400, 12, 31))))
    pid = make_personal_id(
        draw(st.sampled_from(CODES)),
        draw(st.sampled_from(["1", "2"])),
        draw(st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31))),
        draw(st.integers(0, 999_999)),
    )
    digits = st.text("0123456789", min_size=12, max_size=12)
    pid = draw(st.one_of(st.just(pid), digits))
    if not clean:
        pid = draw(st.sampled_from([pid, int(pid), f" {pid}", pid[:11], "", "１" + pid[1:]]))
        born = draw(st.sampled_from([born, "01/02/1990", dt.datetime(1990, 1, 2)]))
    return pid, sex, born


@given(st.booleans().flatmap(lambda clean: st.lists(person(clean), max_size=40)))
@settings(deadline=None, max_examples=300)
def test_column_equals_rows(people: list[tuple[Any, Any, Any]]) -> None:
    values = [p for p, _, _ in people]
    sexes = [s for _, s, _ in people]
    births = [b for _, _, b in people]
    out, errors = check_personal_id_column(values, sex=sexes, birth_date=births)
    want = [check_personal_id(p, sex=s, birth_date=b) for p, s, b in people]
    assert out == [c.value for c in want]
    assert errors == [i for i, c in enumerate(want) if not c.ok]
