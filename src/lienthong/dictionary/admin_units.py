"""Current administrative units (đơn vị hành chính) after 1 Jul 2025: 34 provinces, 3,321 communes.

The list comes from the ``vietnam-provinces`` package (official codes of the General Statistics
Office, Resolution 202/2025/QH15); nothing here is typed by hand. Codes are zero-padded strings
as printed in official tables: provinces two digits (``"01"``), communes five (``"00070"``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lienthong.dictionary.text import compact_key, exact_keys, name_keys, nfc
from lienthong.errors import NotFound

_CITY_PREFIX = "Thành phố "
_COMMUNE_TYPES = ("Phường ", "Xã ", "Đặc khu ")


@dataclass(frozen=True, slots=True)
class Province:
    """A current province or centrally governed city (tỉnh / thành phố trực thuộc trung ương)."""

    code: str
    name: str
    short_name: str
    division_type: str
    phone_area_code: int


@dataclass(frozen=True, slots=True)
class Commune:
    """A current commune, ward or special zone (xã / phường / đặc khu)."""

    code: str
    name: str
    short_name: str
    division_type: str
    province_code: str


@dataclass(frozen=True, slots=True)
class _Index:
    provinces: dict[str, Province]
    communes: dict[str, Commune]
    by_province: dict[str, list[Commune]]
    province_by_key: dict[str, str]
    commune_by_key: dict[tuple[str, str], list[str]]
    commune_by_exact: dict[tuple[str, str], str]


def _short(name: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


@functools.cache
def _index() -> _Index:
    from vietnam_provinces import Province as VpProvince
    from vietnam_provinces import Ward as VpWard

    provinces: dict[str, Province] = {}
    province_by_key: dict[str, str] = {}
    for p in VpProvince.iter_all():
        code = f"{int(p.code):02d}"
        name = nfc(p.name)
        short = _short(name, (_CITY_PREFIX,))
        provinces[code] = Province(code, name, short, p.division_type.value, p.phone_code)
        for key in (compact_key(name), compact_key(short), compact_key("Tỉnh " + short)):
            province_by_key[key] = code
    communes: dict[str, Commune] = {}
    by_province: dict[str, list[Commune]] = {code: [] for code in provinces}
    commune_by_key: dict[tuple[str, str], list[str]] = {}
    commune_by_exact: dict[tuple[str, str], str] = {}
    for w in VpWard.iter_all():
        code = f"{int(w.code):05d}"
        name = nfc(w.name)
        commune = Commune(
            code,
            name,
            _short(name, _COMMUNE_TYPES),
            w.division_type.value,
            f"{int(w.province_code):02d}",
        )
        communes[code] = commune
        by_province[commune.province_code].append(commune)
        commune_by_key.setdefault((commune.province_code, compact_key(name)), []).append(code)
        commune_by_exact[(commune.province_code, exact_keys(name)[0])] = code
    for items in by_province.values():
        items.sort(key=lambda c: c.code)
    return _Index(
        dict(sorted(provinces.items())),
        communes,
        by_province,
        province_by_key,
        commune_by_key,
        commune_by_exact,
    )


def provinces() -> list[Province]:
    """The 34 current provinces, by code."""
    return list(_index().provinces.values())


def communes(province_code: str | None = None) -> list[Commune]:
    """All 3,321 current communes, or those of one province, by code."""
    index = _index()
    if province_code is None:
        return sorted(index.communes.values(), key=lambda c: c.code)
    return list(index.by_province[province(province_code).code])


def _pad(code: str | int, width: int) -> str:
    text = str(code).strip()
    return text.zfill(width) if text.isdigit() else text


def province(code: str | int) -> Province:
    """The current province with this code (``"1"``, ``"01"`` and ``1`` all work)."""
    found = _index().provinces.get(_pad(code, 2))
    if found is None:
        raise NotFound(f"no current province with code {code!r}", code="province_not_found")
    return found


def commune(code: str | int) -> Commune:
    """The current commune with this code (zero padding optional)."""
    found = _index().communes.get(_pad(code, 5))
    if found is None:
        raise NotFound(f"no current commune with code {code!r}", code="commune_not_found")
    return found


def is_province_code(code: str) -> bool:
    """True when ``code`` (exactly as given) is a current province code."""
    return code in _index().provinces


def is_commune_code(code: str) -> bool:
    """True when ``code`` (exactly as given) is a current commune code."""
    return code in _index().communes


_PROVINCE_ALIASES = {"hcm": "79", "tphcm": "79", "saigon": "79", "hn": "01", "tphn": "01"}


def find_province(name: str) -> Province | None:
    """The current province named ``name`` (any case or diacritics, with or without its type
    word or an abbreviation such as 'TP.', and a few common aliases: HCM, TP.HCM, HN)."""
    index = _index()
    for key in name_keys(name):
        code = index.province_by_key.get(key) or _PROVINCE_ALIASES.get(key)
        if code is not None:
            return index.provinces[code]
    return None


def match_communes(name: str, province_code: str) -> list[Commune]:
    """Current communes of a province that ``name`` may mean ('Phường Tân Sơn', 'P. Tân Sơn'
    or 'Tân Sơn'; without a type word, a ward (phường) is preferred to a commune (xã)).

    Diacritics decide first ('Văn Lăng' ≠ 'Văn Lang'); a name written without them may match
    several communes, and then all are returned.
    """
    index = _index()
    for key in exact_keys(name):
        for prefix in ("", "phường", "xã", "đặckhu"):
            code = index.commune_by_exact.get((province_code, prefix + key))
            if code is not None:
                return [index.communes[code]]
    for key in name_keys(name):
        for prefix in ("", "phuong", "xa", "dackhu"):
            codes = index.commune_by_key.get((province_code, prefix + key))
            if codes:
                return [index.communes[c] for c in codes]
    return []


def find_commune(name: str, province_code: str) -> Commune | None:
    """The one current commune ``name`` means in a province, or None (unknown or ambiguous)."""
    found = match_communes(name, province_code)
    return found[0] if len(found) == 1 else None
