"""Personal ID (12 digits) and CMND (9 digits)."""

from __future__ import annotations

import datetime as dt

import pytest

from lienthong.errors import InputError, ValidationError
from lienthong.validate import check_cmnd, check_personal_id, ensure, make_personal_id


def test_make_and_check() -> None:
    pid = make_personal_id("001", "Nữ", dt.date(2001, 5, 3), 42)
    assert pid == "001301000042"
    assert check_personal_id(pid, sex="2", birth_date=dt.date(2001, 5, 3)).ok


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "id_empty"),
        ("00120100004a", "id_not_digits"),
        ("00120100004", "id_length"),
        ("003201000042", "id_province_unknown"),
        ("001401000042", "id_century_future"),
    ],
)
def test_rejections(value: str, code: str) -> None:
    check = check_personal_id(value)
    assert not check.ok and check.value is None
    assert code in check.codes


def test_consistency_with_sex_and_birth_date() -> None:
    check = check_personal_id("001301000042", sex="Nam", birth_date="1999-05-03")
    assert check.codes == ["id_sex_mismatch", "id_century_mismatch", "id_birth_year_mismatch"]
    with pytest.raises(ValidationError) as info:
        ensure(check, "personal_id")
    assert "digit 4" in str(info.value)


def test_number_input_restores_leading_zeros() -> None:
    check = check_personal_id(1301000042)
    assert check.ok and check.value == "001301000042"
    assert check.codes == ["id_leading_zeros_restored"]


def test_make_rejects_bad_arguments() -> None:
    with pytest.raises(InputError):
        make_personal_id("003", "1", dt.date(2000, 1, 1), 1)
    with pytest.raises(InputError):
        make_personal_id("001", "0", dt.date(2000, 1, 1), 1)
    with pytest.raises(InputError):
        make_personal_id("001", "1", dt.date(2000, 1, 1), 1_000_000)


def test_cmnd() -> None:
    assert check_cmnd("012345678").value == "012345678"
    assert check_cmnd(12345678).value == "012345678"
    assert check_cmnd("12345").codes == ["cmnd_length"]
    assert check_cmnd("000000000").codes == ["cmnd_all_zero"]
    assert check_cmnd("001301000042").ok
