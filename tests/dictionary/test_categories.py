"""Category lists: counts, lookups, legacy codes and conversion."""

from __future__ import annotations

import pytest

from lienthong.dictionary import categories as cat
from lienthong.errors import NotFound


def test_current_units_counts() -> None:
    assert len(cat.provinces()) == 34
    assert len(cat.communes()) == 3321
    assert sum(len(cat.communes(p.code)) for p in cat.provinces()) == 3321


def test_codes_are_zero_padded_and_names_nfc() -> None:
    import unicodedata

    hanoi = cat.province("1")
    assert hanoi.code == "01" and hanoi.name == "Thành phố Hà Nội"
    for c in cat.communes("01"):
        assert len(c.code) == 5 and c.province_code == "01"
        assert unicodedata.is_normalized("NFC", c.name)


def test_not_found() -> None:
    with pytest.raises(NotFound):
        cat.province("03")
    with pytest.raises(NotFound):
        cat.commune("99999")


def test_legacy_id_provinces() -> None:
    table = cat.LEGACY_ID_PROVINCES
    assert len(table) == 63
    assert table["001"].name == "Hà Nội"
    assert table["002"].name == "Hà Giang" and table["002"].current_province_code == "08"
    assert table["096"].name == "Cà Mau" and table["096"].current_province_code == "96"
    assert table["077"].current_province_code == "79"  # Bà Rịa – Vũng Tàu → TP HCM
    assert "003" not in table
    current = {p.code for p in cat.provinces()}
    assert {p.current_province_code for p in table.values()} == current


def test_every_legacy_commune_maps_to_a_current_one() -> None:
    index = cat.legacy_index()
    assert len(index.communes) > 10_000
    for old in index.communes.values():
        assert old.current_commune_code is not None
        new = cat.commune(old.current_commune_code)
        assert new.province_code == old.current_province_code


def test_convert_legacy_address_by_names() -> None:
    conv = cat.convert_legacy_address(
        province="Hồ Chí Minh", district="Quận 9", commune="Long Bình"
    )
    assert conv.province_code == "79"
    assert conv.commune_code is not None
    assert cat.commune(conv.commune_code).name == "Phường Long Bình"


def test_convert_legacy_by_code() -> None:
    assert cat.legacy_commune_to_current("00004").name == "Phường Ba Đình"
    conv = cat.convert_legacy_address(province="001", commune="00004")
    assert conv.commune_code == "00004" and conv.exact


def test_code_lists() -> None:
    assert len(cat.ETHNIC_GROUPS) == 54
    assert cat.ETHNIC_GROUPS["01"].name == "Kinh" and cat.ETHNIC_GROUPS["54"].name == "Rơ-măm"
    assert cat.ethnic_group("khome").code == "05"
    assert cat.country("VNM").alpha_2 == "VN"
    assert cat.country("Việt Nam").alpha_3 == "VNM"
    assert len(cat.NATIONALITIES) >= 249
    assert set(cat.SEXES) == {"0", "1", "2", "9"}


def test_code_validators_only_produce_listed_codes() -> None:
    from lienthong.validate.codes import _ETHNIC, _RELIGION
    from lienthong.validate.sex import _SEX_CODES

    assert set(_ETHNIC.values()) <= set(cat.ETHNIC_GROUPS)
    assert set(_RELIGION.values()) <= set(cat.RELIGIONS)
    assert set(_SEX_CODES.values()) <= set(cat.SEXES)


def test_legacy_id_codes_are_the_legacy_gso_codes() -> None:
    for id_code, p in cat.LEGACY_ID_PROVINCES.items():
        assert id_code == "0" + p.code and cat.legacy_province(id_code) == p
        assert cat.legacy_province(p.full_name) == p
