"""Unit tests for every validator: accepted forms, normal forms and reason codes."""

from __future__ import annotations

import datetime as dt

import pytest

from lienthong.validate.address import check_address
from lienthong.validate.admin_codes import check_commune_code, check_province_code
from lienthong.validate.codes import (
    check_enum,
    check_ethnic_group,
    check_integer,
    check_nationality,
    check_religion,
    check_text,
)
from lienthong.validate.dates import check_date
from lienthong.validate.health_insurance import (
    check_health_insurance_card,
    check_social_insurance_number,
)
from lienthong.validate.names import check_name, join_name, name_key, split_name
from lienthong.validate.phone import check_landline, check_mobile, check_phone
from lienthong.validate.sex import check_sex
from lienthong.validate.tax import check_tax_code, tax_check_digit


@pytest.mark.parametrize(
    ("value", "expected", "codes"),
    [
        ("0100109106", "0100109106", []),  # published 10-digit tax codes of large enterprises
        ("0300588569", "0300588569", []),
        (" 0100109106-001 ", "0100109106-001", []),
        (100109106, "0100109106", []),  # a spreadsheet dropped the leading zero
        ("0300588568", None, ["tax_check_digit"]),
        ("0100109106-000", None, ["tax_branch_zero"]),
        ("01001091", None, ["tax_length"]),
        ("01001091O6", None, ["tax_not_digits"]),
        ("0100109106-", None, ["tax_not_digits"]),
        ("", None, ["tax_empty"]),
        ("001301000042", "001301000042", []),  # personal ID as individual tax code
    ],
)
def test_tax_code(value: object, expected: str | None, codes: list[str]) -> None:
    check = check_tax_code(value)
    assert check.value == expected and check.codes == codes


def test_tax_check_digit_none_when_remainder_zero() -> None:
    # 31*1 + 29*1 + ... chosen so the weighted sum is a multiple of 11
    assert tax_check_digit("000000000") is None


@pytest.mark.parametrize(
    ("value", "expected", "codes"),
    [
        ("DN4797912345678", "DN4797912345678", []),
        ("hs 4 01 0123456789", "HS4010123456789", []),
        ("0123456789", "0123456789", []),
        ("XX4010123456789", "XX4010123456789", ["bhyt_group_unknown"]),
        ("DN6010123456789", None, ["bhyt_benefit_level"]),
        ("DN4030123456789", None, ["bhyt_province_unknown"]),
        ("D14010123456789", None, ["bhyt_group_format"]),
        ("DN40101234567X9", None, ["bhyt_number_format"]),
        ("DN401", None, ["bhyt_length"]),
    ],
)
def test_health_insurance_card(value: str, expected: str | None, codes: list[str]) -> None:
    check = check_health_insurance_card(value)
    assert check.value == expected and check.codes == codes


def test_social_insurance_number() -> None:
    assert check_social_insurance_number(123456789).value == "0123456789"
    assert check_social_insurance_number("01234").codes == ["bhxh_format"]


@pytest.mark.parametrize(
    ("value", "expected", "codes"),
    [
        ("0912 345 678", "0912345678", []),
        ("+84 912 345 678", "0912345678", []),
        ("(+84) 86-123-4567", "0861234567", []),
        ("0084912345678", "0912345678", []),
        (912345678, "0912345678", []),
        ("01662345678", "0362345678", ["phone_old_prefix_converted"]),
        ("0952345678", None, ["phone_prefix_unknown"]),
        ("091234567", None, ["phone_length"]),
        ("0243826123a", None, ["phone_format"]),
        ("02438261234", None, ["phone_not_mobile"]),
    ],
)
def test_mobile(value: object, expected: str | None, codes: list[str]) -> None:
    check = check_mobile(value)
    assert check.value == expected and check.codes == codes


def test_landline_and_any_phone() -> None:
    assert check_landline("024 3826 1234").value == "02438261234"
    assert check_landline("+84 24 3826 1234", e164=True).value == "+842438261234"
    assert check_landline("0912345678").codes == ["phone_not_landline"]
    assert check_landline("0243826123").codes == ["phone_length"]
    assert check_phone("0243 826 1234").value == "02438261234"
    assert check_phone("0912345678", e164=True).value == "+84912345678"


@pytest.mark.parametrize(
    ("value", "expected", "codes"),
    [
        ("2001-04-13", dt.date(2001, 4, 13), []),
        ("13/04/2001", dt.date(2001, 4, 13), []),
        ("13-04-2001", dt.date(2001, 4, 13), []),
        ("13.4.2001", dt.date(2001, 4, 13), []),
        ("20010413", dt.date(2001, 4, 13), []),
        ("2001-04-13T08:30:00", dt.date(2001, 4, 13), []),
        ("2001-04-13 08:30:00+07:00", dt.date(2001, 4, 13), []),
        ("2001/4/13", dt.date(2001, 4, 13), []),
        ("13/04/2001 00:00:00", dt.date(2001, 4, 13), []),
        ("2001-04-13 lunch", None, ["date_format"]),
        (dt.datetime(2001, 4, 13, 8, 30), dt.date(2001, 4, 13), []),
        ("03/04/2001", dt.date(2001, 4, 3), ["date_ambiguous"]),
        (36526, dt.date(2000, 1, 1), ["date_spreadsheet_serial"]),
        ("31/02/2001", None, ["date_impossible"]),
        ("2001-02-29", None, ["date_impossible"]),
        ("12/25/2001", None, ["date_month_first"]),
        ("00/00/1985", None, ["date_partial"]),
        ("1985", None, ["date_partial"]),
        ("04/1985", None, ["date_partial"]),
        ("yesterday", None, ["date_format"]),
        ("", None, ["date_empty"]),
        ("1899-12-31", None, ["date_too_old"]),
    ],
)
def test_dates(value: object, expected: dt.date | None, codes: list[str]) -> None:
    check = check_date(value)
    assert check.value == expected and check.codes == codes


def test_date_in_future_needs_today() -> None:
    assert check_date("2030-01-01").ok
    assert check_date("2030-01-01", today=dt.date(2026, 1, 1)).codes == ["date_in_future"]


@pytest.mark.parametrize(
    ("value", "expected", "codes"),
    [
        ("NGUYỄN  văn AN", "Nguyễn Văn An", []),
        ("Nguye\u0302\u0303n Thi\u0323 Ha\u0300", "Nguyễn Thị Hà", []),  # NFD input
        ("h'hen niê", "H'Hen Niê", []),
        ("NGUYEN VAN AN", "Nguyen Van An", ["name_no_diacritics"]),
        ("Ánh", "Ánh", ["name_single_word"]),
        ("Nguyễn Văn 2", None, ["name_invalid_chars"]),
        ("   ", None, ["name_empty"]),
    ],
)
def test_names(value: str, expected: str | None, codes: list[str]) -> None:
    check = check_name(value)
    assert check.value == expected and check.codes == codes


def test_name_helpers() -> None:
    assert name_key("Đặng Thị Ánh") == "dang thi anh"
    assert name_key("ĐẶNG THỊ ÁNH") == name_key("dang thi anh")
    assert split_name("Nguyễn Văn Thành Công") == ("Nguyễn", "Văn Thành", "Công")
    assert join_name("Nguyễn", None, " An ") == "Nguyễn An"


def test_sex() -> None:
    assert [check_sex(v).value for v in ("Nam", "nữ", "NU", "F", 1, "2", "M")] == [
        "1", "2", "2", "2", "1", "2", "1",
    ]  # fmt: skip
    assert check_sex("x").codes == ["sex_unknown"]


def test_province_codes() -> None:
    assert check_province_code("1").value == "01"
    converted = check_province_code("27")  # legacy Bắc Ninh → current Bắc Ninh 24
    assert converted.value == "24" and converted.codes == ["province_legacy_converted"]
    assert check_province_code("24", legacy=True).codes == ["province_legacy_converted"]
    assert check_province_code("27", legacy=False).codes == ["province_legacy_refused"]
    assert check_province_code("03").codes == ["province_unknown"]
    assert check_province_code("a").codes == ["province_format"]


def test_commune_codes() -> None:
    assert check_commune_code("70").value == "00070"
    legacy = check_commune_code("00001")  # Phường Phúc Xá, Ba Đình (abolished)
    assert legacy.ok and legacy.codes == ["commune_legacy_converted"]
    assert check_commune_code("00004", province_code="79").codes == ["commune_province_mismatch"]
    assert check_commune_code("99999").codes == ["commune_unknown"]
    assert check_commune_code("00001", legacy=False).codes == ["commune_legacy_refused"]


def test_addresses() -> None:
    new = check_address("Số 12 Lý Thái Tổ, Phường Hoàn Kiếm, Thành phố Hà Nội")
    assert new.ok and new.value is not None and not new.value.legacy
    assert (new.value.commune_code, new.value.province_code) == ("00070", "01")
    assert new.value.street == "Số 12 Lý Thái Tổ"
    abbreviated = check_address("70 nguyễn sỹ sách, p. tan son, tp.hcm, Việt Nam")
    assert abbreviated.value is not None and abbreviated.value.commune_code == "27007"
    old = check_address("đường 15, P. Long Bình, Quận 9, TP. Hồ Chí Minh")
    assert old.value is not None and old.value.legacy and old.value.province_code == "79"
    assert old.codes == ["address_legacy_converted"]
    assert old.value.format() == "đường 15, Phường Long Bình, Thành phố Hồ Chí Minh"
    split = check_address("thôn 3, xã Phú Cát, huyện Quốc Oai, Hà Nội")
    assert "address_legacy_split" in split.codes
    old_province = check_address("Phường Trần Phú, Tỉnh Hà Giang")
    assert old_province.value is not None and old_province.value.province_code == "08"
    assert check_address("abc, xyz").codes == ["address_province_unknown"]
    assert check_address("Hà Nội").codes == ["address_commune_missing"]
    assert check_address("").codes == ["address_empty"]


def test_code_lists_and_plain_values() -> None:
    assert check_ethnic_group("Kinh").value == "01"
    assert check_ethnic_group("8").value == "08"
    assert check_ethnic_group("H'Mông").value == "08"
    assert check_ethnic_group("Klingon").codes == ["ethnic_unknown"]
    assert check_religion("Phật giáo").value == "01"
    assert check_religion("không").value == "00"
    assert check_nationality("Việt Nam").value == "VN"
    assert check_nationality("USA").value == "US"
    assert check_nationality("Atlantis").codes == ["nationality_unknown"]
    assert check_text("  a  b ").value == "a b"
    assert check_text("abc", max_length=2).codes == ["text_too_long"]
    assert check_enum("x", values=("a",)).codes == ["enum_unknown"]
    assert check_integer("12", minimum=1, maximum=10).codes == ["int_range"]
    assert check_integer("x").codes == ["int_format"]


def test_every_current_commune_address_resolves() -> None:
    from lienthong.dictionary import categories as cat

    for c in cat.communes():
        province = cat.province(c.province_code)
        check = check_address(f"Số 1, {c.name}, {province.name}")
        assert check.value is not None and check.value.commune_code == c.code, c


def test_every_legacy_commune_address_converts() -> None:
    from lienthong.dictionary.legacy import legacy_index

    idx = legacy_index()
    for old in idx.communes.values():
        district = idx.districts[old.district_code]
        province = idx.provinces[old.province_code]
        check = check_address(f"Thôn 1, {old.name}, {district.name}, {province.full_name}")
        assert check.value is not None, old
        assert check.value.commune_code == old.current_commune_code, old


def test_diacritics_tell_communes_apart() -> None:
    a = check_address("Xã Văn Lăng, Thái Nguyên").value
    b = check_address("Xã Văn Lang, Thái Nguyên").value
    assert a is not None and b is not None and a.commune_code != b.commune_code
    ambiguous = check_address("Xa Van Lang, Thai Nguyen")
    assert ambiguous.codes == ["address_commune_ambiguous"]
