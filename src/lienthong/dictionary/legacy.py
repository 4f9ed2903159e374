"""Legacy (before 1 Jul 2025) units: the 63 provinces, their districts and communes, and conversion.

Personal ID numbers keep the legacy province code of the place where the birth was registered
(Circular 07/2016/TT-BCA, amended by Circular 59/2021/TT-BCA): ``001`` Hà Nội … ``096`` Cà Mau.
These are the General Statistics Office province codes with a leading zero, so the table is
derived from the same legacy dataset as the conversion, not typed by hand.

Conversion old → new follows the mapping published with Resolution 202/2025/QH15 and the
Standing Committee resolutions on communes, as carried by ``vietnamadminunits``; the new codes
are then resolved against ``vietnam-provinces`` by name within the province, because the two
packages disagree on a few dozen new codes and ``vietnam-provinces`` follows the official list.
When an old commune was split between several new ones, the mapping names a default (where most
of it went): ``exact`` is then False and ``candidates`` lists all of them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lienthong.dictionary import _legacy_source as source
from lienthong.dictionary.admin_units import find_commune
from lienthong.dictionary.text import compact_key, exact_keys, nfc

_PROVINCE_PREFIXES = ("Thành phố ", "Tỉnh ")
_DISTRICT_PREFIXES = ("Quận ", "Huyện ", "Thị xã ", "Thành phố ")
_WARD_PREFIXES = ("Phường ", "Xã ", "Thị trấn ")


@dataclass(frozen=True, slots=True)
class LegacyProvince:
    """One of the 63 provinces before 1 Jul 2025, with its personal-ID code."""

    id_code: str
    code: str
    name: str
    full_name: str
    current_province_code: str


@dataclass(frozen=True, slots=True)
class LegacyDistrict:
    """A district (quận / huyện / thị xã / thành phố thuộc tỉnh), abolished on 1 Jul 2025."""

    code: str
    name: str
    province_code: str
    current_province_code: str


@dataclass(frozen=True, slots=True)
class LegacyCommune:
    """A commune before 1 Jul 2025 and the current commune(s) it became."""

    code: str
    name: str
    district_code: str
    province_code: str
    current_commune_code: str | None
    candidate_commune_codes: tuple[str, ...]
    current_province_code: str

    @property
    def exact(self) -> bool:
        """False when the old commune was split and ``current_commune_code`` is the default."""
        return len(self.candidate_commune_codes) <= 1


def short_name(name: str, prefixes: tuple[str, ...]) -> str:
    """``name`` without its unit-type prefix ('Quận Ba Đình' → 'Ba Đình')."""
    for prefix in prefixes:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


@dataclass(frozen=True, slots=True)
class LegacyIndex:
    provinces: dict[str, LegacyProvince]
    districts: dict[str, LegacyDistrict]
    communes: dict[str, LegacyCommune]
    province_by_key: dict[str, str]
    district_by_key: dict[tuple[str, str], str]
    commune_by_key: dict[tuple[str, str], list[str]]
    commune_by_exact: dict[tuple[str, str], list[str]]


def _new_commune_codes() -> dict[tuple[str, str], str]:
    """(new province key, new ward key) → vietnam-provinces commune code."""
    out: dict[tuple[str, str], str] = {}
    for province_code, province_key, ward_name, ward_key in source.new_units():
        found = find_commune(nfc(ward_name), province_code)
        if found is not None:
            out[(province_key, ward_key)] = found.code
    return out


def _old_to_new(mapping: dict, new_codes: dict[tuple[str, str], str]) -> dict[str, list[str]]:
    """'oldprov_olddist_oldward' key → current commune codes, default first."""
    out: dict[str, list[str]] = {}
    for new_pkey, wards in mapping["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for new_wkey, old_keys in wards.items():
            code = new_codes.get((new_pkey, new_wkey))
            for old_key in old_keys:
                if code is not None:
                    out[old_key] = [code]
    for new_pkey, divided in mapping["DICT_PROVINCE_WARD_DIVIDED"].items():
        for old_key, targets in divided.items():
            ordered = sorted(targets, key=lambda t: not t["isDefaultNewWard"])
            codes = [new_codes.get((new_pkey, t["newWardKey"])) for t in ordered]
            out[old_key] = [c for c in codes if c is not None]
    return out


@functools.cache
def _province_maps() -> tuple[dict[str, str], dict[str, str]]:
    """(old province key → new province key, new province key → new province code)."""
    mapping = source.mapping()
    new_province_of = {old: new for new, olds in mapping["DICT_PROVINCE"].items() for old in olds}
    new_codes = {pkey: code for code, pkey, _, _ in source.new_units()}
    return new_province_of, new_codes


@functools.cache
def legacy_provinces() -> dict[str, LegacyProvince]:
    """The 63 legacy provinces by GSO code (cheap: does not build the commune tables)."""
    new_province_of, new_codes = _province_maps()
    out: dict[str, LegacyProvince] = {}
    for code, full_name, key in sorted(source.legacy_province_rows()):
        full = nfc(full_name)
        short = short_name(full, _PROVINCE_PREFIXES)
        out[code] = LegacyProvince("0" + code, code, short, full, new_codes[new_province_of[key]])
    return out


@functools.cache
def legacy_index() -> LegacyIndex:
    """Build every legacy table once (≈ 0.3 s), on first use."""
    old_to_new = _old_to_new(source.mapping(), _new_commune_codes())
    provinces = legacy_provinces()
    idx = LegacyIndex(dict(provinces), {}, {}, {}, {}, {}, {})
    keyed: set[str] = set()
    for row in source.legacy_rows():
        current_province = provinces[row.province_code].current_province_code
        if row.province_code not in keyed:
            keyed.add(row.province_code)
            p = provinces[row.province_code]
            for key in (compact_key(p.full_name), compact_key(p.name), *row.keywords("province")):
                idx.province_by_key.setdefault(key, row.province_code)
        if row.district_code not in idx.districts:
            name = nfc(row.district_name)
            idx.districts[row.district_code] = LegacyDistrict(
                row.district_code, name, row.province_code, current_province
            )
            keys = (compact_key(name), compact_key(short_name(name, _DISTRICT_PREFIXES)))
            for key in (*keys, *row.keywords("district")):
                idx.district_by_key.setdefault((row.province_code, key), row.district_code)
        if row.ward_code is None or row.ward_name is None:
            continue
        targets = old_to_new.get(f"{row.province_key}_{row.district_key}_{row.ward_key}", [])
        name = nfc(row.ward_name)
        commune = LegacyCommune(
            row.ward_code,
            name,
            row.district_code,
            row.province_code,
            targets[0] if targets else None,
            tuple(targets),
            current_province,
        )
        idx.communes[row.ward_code] = commune
        keys = (compact_key(name), compact_key(short_name(name, _WARD_PREFIXES)))
        for key in dict.fromkeys((*keys, *row.keywords("ward"))):
            idx.commune_by_key.setdefault((row.district_code, key), []).append(row.ward_code)
        for key in exact_keys(name):
            idx.commune_by_exact.setdefault((row.district_code, key), []).append(row.ward_code)
    return idx
