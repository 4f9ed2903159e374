"""Small shared code lists (danh mục dùng chung): ethnic groups, religions, sexes, nationalities.

- Ethnic groups (dân tộc): the 54 groups with codes 01–54 of Decision 121-TCTK/PPCĐ (2 Mar 1979)
  of the General Statistics Office, still used by the census and the population database.
- Religions (tôn giáo): the religions recognised by the Government Committee for Religious
  Affairs; the two-digit codes are lienthong's own (no national code list is published), ``00``
  means none (không).
- Sexes (giới tính): ISO/IEC 5218 codes (0 unknown, 1 male, 2 female, 9 not applicable).
- Nationalities (quốc tịch): ISO 3166-1 from the ``pycountry`` package (alpha-2, alpha-3,
  numeric, English name, Vietnamese name from the iso-codes translations).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from lienthong.dictionary.text import compact_key
from lienthong.errors import NotFound


@dataclass(frozen=True, slots=True)
class CodeItem:
    """One entry of a code list."""

    code: str
    name: str
    name_en: str = ""


def _items(*rows: tuple[str, str, str]) -> dict[str, CodeItem]:
    return {code: CodeItem(code, name, en) for code, name, en in rows}


_ETHNIC_NAMES = (
    "Kinh", "Tày", "Thái", "Hoa", "Khơ-me", "Mường", "Nùng", "Mông", "Dao", "Gia-rai",
    "Ngái", "Ê-đê", "Ba-na", "Xơ-đăng", "Sán Chay", "Cơ-ho", "Chăm", "Sán Dìu", "Hrê", "Mnông",
    "Ra-glai", "Xtiêng", "Bru-Vân Kiều", "Thổ", "Giáy", "Cơ-tu", "Gié-Triêng", "Mạ", "Khơ-mú",
    "Co", "Tà-ôi", "Chơ-ro", "Kháng", "Xinh-mun", "Hà Nhì", "Chu-ru", "Lào", "La Chí", "La Ha",
    "Phù Lá", "La Hủ", "Lự", "Lô Lô", "Chứt", "Mảng", "Pà Thẻn", "Cơ Lao", "Cống", "Bố Y",
    "Si La", "Pu Péo", "Brâu", "Ơ Đu", "Rơ-măm",
)  # fmt: skip

ETHNIC_GROUPS: Mapping[str, CodeItem] = {
    f"{i:02d}": CodeItem(f"{i:02d}", name) for i, name in enumerate(_ETHNIC_NAMES, start=1)
}

RELIGIONS: Mapping[str, CodeItem] = _items(
    ("00", "Không", "None"),
    ("01", "Phật giáo", "Buddhism"),
    ("02", "Công giáo", "Catholicism"),
    ("03", "Tin lành", "Protestantism"),
    ("04", "Cao Đài", "Caodaism"),
    ("05", "Phật giáo Hòa Hảo", "Hoa Hao Buddhism"),
    ("06", "Hồi giáo", "Islam"),
    ("07", "Tôn giáo Baha'i", "Baha'i Faith"),
    ("08", "Tịnh độ Cư sĩ Phật hội Việt Nam", "Pure Land Buddhist Home Practice"),
    ("09", "Cơ đốc Phục lâm", "Seventh-day Adventist Church"),
    ("10", "Phật giáo Tứ Ân Hiếu Nghĩa", "Tu An Hieu Nghia Buddhism"),
    ("11", "Minh Sư đạo", "Minh Su Dao"),
    ("12", "Minh Lý đạo – Tam Tông Miếu", "Minh Ly Dao"),
    ("13", "Bà-la-môn giáo", "Brahmanism"),
    ("14", "Giáo hội Các Thánh hữu Ngày sau của Chúa Giê-su Ky-tô", "Latter-day Saints"),
    ("15", "Phật giáo Hiếu Nghĩa Tà Lơn", "Hieu Nghia Ta Lon Buddhism"),
    ("16", "Bửu Sơn Kỳ Hương", "Buu Son Ky Huong"),
    ("99", "Tôn giáo khác", "Other"),
)

SEXES: Mapping[str, CodeItem] = _items(
    ("0", "Chưa xác định", "Not known"),
    ("1", "Nam", "Male"),
    ("2", "Nữ", "Female"),
    ("9", "Không áp dụng", "Not applicable"),
)


@dataclass(frozen=True, slots=True)
class Country:
    """An ISO 3166-1 country, used for nationality (quốc tịch)."""

    alpha_2: str
    alpha_3: str
    numeric: str
    name: str
    name_vi: str


@functools.cache
def _countries() -> dict[str, Country]:
    import gettext

    import pycountry

    vi = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["vi"], fallback=True)
    out: dict[str, Country] = {}
    for c in pycountry.countries:
        out[c.alpha_2] = Country(c.alpha_2, c.alpha_3, c.numeric, c.name, vi.gettext(c.name))
    return out


class _Nationalities(Mapping[str, Country]):
    """ISO 3166-1 alpha-2 → Country, loaded from pycountry on first use."""

    def __getitem__(self, key: str) -> Country:
        return _countries()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(_countries())

    def __len__(self) -> int:
        return len(_countries())


NATIONALITIES: Mapping[str, Country] = _Nationalities()


@functools.cache
def _country_aliases() -> dict[str, str]:
    out: dict[str, str] = {}
    for c in _countries().values():
        for alias in (c.alpha_2, c.alpha_3, c.numeric, c.name, c.name_vi):
            out[compact_key(alias)] = c.alpha_2
    out[compact_key("Việt Nam")] = "VN"
    out[compact_key("Vietnam")] = "VN"
    return out


def country(value: str) -> Country:
    """The country for an alpha-2, alpha-3, numeric code or English/Vietnamese name."""
    code = _country_aliases().get(compact_key(value))
    if code is None:
        raise NotFound(f"no ISO 3166-1 country {value!r}", code="country_not_found")
    return _countries()[code]


def ethnic_group(value: str) -> CodeItem:
    """The ethnic group for a code (``"1"``/``"01"``) or name (any case or diacritics)."""
    return _lookup(ETHNIC_GROUPS, value, 2, "ethnic group")


def religion(value: str) -> CodeItem:
    """The religion for a code or name."""
    return _lookup(RELIGIONS, value, 2, "religion")


def _lookup(items: Mapping[str, CodeItem], value: str, width: int, what: str) -> CodeItem:
    text = str(value).strip()
    if text.isdigit() and text.zfill(width) in items:
        return items[text.zfill(width)]
    key = compact_key(text)
    for item in items.values():
        if key in (compact_key(item.name), compact_key(item.name_en)):
            return item
    raise NotFound(f"no {what} {value!r}", code=f"{what.replace(' ', '_')}_not_found")
