"""Hypothesis properties: valid values round-trip; each broken rule gives the right reason."""

from __future__ import annotations

import datetime as dt

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lienthong.dictionary.categories import LEGACY_ID_PROVINCES
from lienthong.validate import check_personal_id, make_personal_id
from lienthong.validate.dates import check_date
from lienthong.validate.names import check_name, name_key
from lienthong.validate.phone import MOBILE_PREFIXES, check_mobile
from lienthong.validate.tax import check_tax_code, make_tax_code

ID_CODES = sorted(LEGACY_ID_PROVINCES)
UNUSED_CODES = sorted({f"{i:03d}" for i in range(1000)} - set(ID_CODES))

people = st.tuples(
    st.sampled_from(ID_CODES),
    st.sampled_from(["1", "2"]),
    st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31)),
    st.integers(0, 999_999),
)


@given(people)
@settings(deadline=None)
def test_personal_id_round_trip(person: tuple[str, str, dt.date, int]) -> None:
    code, sex, born, serial = person
    pid = make_personal_id(code, sex, born, serial)
    check = check_personal_id(pid, sex=sex, birth_date=born)
    assert check.ok and check.value == pid and check.reasons == ()


@given(people, st.sampled_from(UNUSED_CODES))
@settings(deadline=None)
def test_bad_province_digits(person: tuple[str, str, dt.date, int], bad: str) -> None:
    pid = make_personal_id(*person)
    assert check_personal_id(bad + pid[3:]).codes == ["id_province_unknown"]


@given(people)
@settings(deadline=None)
def test_flipped_sex_digit(person: tuple[str, str, dt.date, int]) -> None:
    code, sex, born, serial = person
    pid = make_personal_id(code, sex, born, serial)
    flipped = pid[:3] + str(int(pid[3]) ^ 1) + pid[4:]
    assert check_personal_id(flipped, sex=sex, birth_date=born).codes == ["id_sex_mismatch"]


@given(people, st.integers(1, 2))
@settings(deadline=None)
def test_other_century(person: tuple[str, str, dt.date, int], shift: int) -> None:
    code, sex, born, serial = person
    pid = make_personal_id(code, sex, born, serial)
    digit = (int(pid[3]) + 2 * shift) % 4  # another of the 1900s/2000s digits, same parity
    assume(digit != int(pid[3]))
    changed = pid[:3] + str(digit) + pid[4:]
    assert check_personal_id(changed, sex=sex, birth_date=born).codes == ["id_century_mismatch"]


@given(people, st.integers(4, 9))
@settings(deadline=None)
def test_future_century_digit(person: tuple[str, str, dt.date, int], digit: int) -> None:
    pid = make_personal_id(*person)
    assert check_personal_id(pid[:3] + str(digit) + pid[4:]).codes == ["id_century_future"]


@given(people, st.integers(1, 99))
@settings(deadline=None)
def test_other_birth_year_digits(person: tuple[str, str, dt.date, int], delta: int) -> None:
    code, sex, born, serial = person
    pid = make_personal_id(code, sex, born, serial)
    yy = f"{(int(pid[4:6]) + delta) % 100:02d}"
    changed = pid[:4] + yy + pid[6:]
    assert check_personal_id(changed, sex=sex, birth_date=born).codes == ["id_birth_year_mismatch"]


@given(people, st.integers(0, 11), st.sampled_from(["insert", "delete", "letter"]))
@settings(deadline=None)
def test_shape_mutations(person: tuple[str, str, dt.date, int], pos: int, how: str) -> None:
    pid = make_personal_id(*person)
    if how == "insert":
        assert check_personal_id(pid[:pos] + "7" + pid[pos:]).codes == ["id_length"]
    elif how == "delete":
        assert check_personal_id(pid[:pos] + pid[pos + 1 :]).codes == ["id_length"]
    else:
        assert check_personal_id(pid[:pos] + "A" + pid[pos + 1 :]).codes == ["id_not_digits"]


nine_digits = st.text("0123456789", min_size=9, max_size=9)


@given(nine_digits, st.one_of(st.none(), st.integers(1, 999)))
@settings(deadline=None)
def test_tax_code_round_trip(first: str, branch: int | None) -> None:
    code = make_tax_code(first, branch)
    assume(code is not None)
    assert code is not None
    check = check_tax_code(code)
    assert check.ok and check.value == code


@given(nine_digits, st.integers(0, 9), st.integers(1, 9))
@settings(deadline=None)
def test_tax_code_single_digit_change_rejected(first: str, pos: int, delta: int) -> None:
    code = make_tax_code(first)
    assume(code is not None)
    assert code is not None
    mutated = code[:pos] + str((int(code[pos]) + delta) % 10) + code[pos + 1 :]
    assert check_tax_code(mutated).codes[0] in ("tax_check_digit", "tax_no_check_digit")


@given(st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31)))
@settings(deadline=None)
def test_dates_round_trip_in_every_format(day: dt.date) -> None:
    for text in (
        day.isoformat(),
        day.strftime("%d/%m/%Y"),
        day.strftime("%d-%m-%Y"),
        f"{day.day}/{day.month}/{day.year}",
        day.strftime("%Y%m%d"),
    ):
        check = check_date(text)
        assert check.ok and check.value == day, text
        assert all(r.code == "date_ambiguous" for r in check.reasons)


@given(st.sampled_from(sorted(MOBILE_PREFIXES)), st.text("0123456789", min_size=7, max_size=7))
@settings(deadline=None)
def test_mobile_forms_agree(prefix: str, rest: str) -> None:
    local = f"0{prefix}{rest}"
    forms = [
        local,
        f"+84{prefix}{rest}",
        f"84{prefix}{rest}",
        f"+84 {prefix} {rest[:3]} {rest[3:]}",
    ]
    assert {check_mobile(f).value for f in forms} == {local}
    assert check_mobile(local, e164=True).value == f"+84{prefix}{rest}"


vietnamese_words = st.lists(
    st.sampled_from(["nguyễn", "TRẦN", "Lê", "thị", "văn", "Đức", "ánh", "HỒNG", "ngọc", "Ê-ban"]),
    min_size=2,
    max_size=5,
)


@given(vietnamese_words, st.sampled_from([" ", "  ", "\t"]))
@settings(deadline=None, max_examples=50)
def test_name_normalisation_idempotent(words: list[str], sep: str) -> None:
    first = check_name(sep.join(words))
    assert first.ok and first.value is not None
    assert check_name(first.value).value == first.value
    assert name_key(first.value) == name_key(first.value.upper())
    assert name_key(first.value).isascii()
