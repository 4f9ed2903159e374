"""Convert legacy (pre-1 Jul 2025) province/district/commune codes or names to current units.

Source systems still hold three-level addresses (xã/phường, huyện/quận, tỉnh/thành phố) and
their GSO codes; the population database and every new record use the two-level units. The
rules (which old commune became which new one) come from ``legacy.legacy_index``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lienthong.dictionary.admin_units import Commune, commune
from lienthong.dictionary.legacy import (
    LegacyCommune,
    LegacyProvince,
    legacy_index,
)
from lienthong.dictionary.text import exact_keys, name_keys
from lienthong.errors import InputError, NotFound

_ALIASES = {"hcm": "79", "tphcm": "79", "sg": "79", "saigon": "79", "hn": "01", "hue": "46"}


@dataclass(frozen=True, slots=True)
class Conversion:
    """Where a legacy address lies today.

    ``commune_code`` is None when the commune was not given or not found; ``exact`` is False
    when the commune is unknown or was split (then ``candidates`` lists every current commune
    it became, the default first).
    """

    province_code: str
    commune_code: str | None
    exact: bool
    candidates: tuple[str, ...]
    legacy_province_code: str
    legacy_district_code: str | None
    legacy_commune_code: str | None


def legacy_province(value: str) -> LegacyProvince:
    """A legacy province by GSO code (``"01"``), ID code (``"001"``) or name."""
    idx = legacy_index()
    text = value.strip()
    if text.isdigit():
        code = text[1:] if len(text) == 3 and text.startswith("0") else text.zfill(2)
        if code in idx.provinces:
            return idx.provinces[code]
    else:
        for key in name_keys(text):
            found = idx.province_by_key.get(key) or _legacy_alias(key)
            if found:
                return idx.provinces[found]
    raise NotFound(f"no legacy province {value!r}", code="legacy_province_not_found")


def _legacy_alias(key: str) -> str | None:
    return _ALIASES.get(key)


def legacy_commune(code: str) -> LegacyCommune:
    """A legacy commune by its 5-digit GSO code."""
    found = legacy_index().communes.get(code.strip().zfill(5))
    if found is None:
        raise NotFound(f"no legacy commune with code {code!r}", code="legacy_commune_not_found")
    return found


def legacy_commune_to_current(code: str) -> Commune:
    """The current commune a legacy commune became (the default one when it was split)."""
    old = legacy_commune(code)
    if old.current_commune_code is None:
        raise NotFound(f"legacy commune {old.code} {old.name} has no current commune")
    return commune(old.current_commune_code)


Table = dict[tuple[str, str], list[str]]


@functools.cache
def _communes_by_province() -> tuple[Table, Table]:
    """(folded, exact) name keys → legacy commune codes, per legacy province."""
    folded: Table = {}
    exact: Table = {}
    for c in legacy_index().communes.values():
        for key in name_keys(c.name):
            folded.setdefault((c.province_code, key), []).append(c.code)
        for key in exact_keys(c.name):
            exact.setdefault((c.province_code, key), []).append(c.code)
    return folded, exact


def _match(name: str, scope: str, exact: Table, folded: Table) -> tuple[str, ...]:
    """Codes whose name matches, diacritics first ('Sa Pa' ≠ 'Sa Pả'), then folded."""
    for keys, table in ((exact_keys(name), exact), (name_keys(name), folded)):
        for key in keys:
            codes = table.get((scope, key))
            if codes:
                return tuple(dict.fromkeys(codes))
    return ()


def _district(province_code: str, value: str) -> str:
    idx = legacy_index()
    text = value.strip()
    if text.isdigit() and text.zfill(3) in idx.districts:
        code = text.zfill(3)
        if idx.districts[code].province_code != province_code:
            raise InputError(f"legacy district {code} is not in legacy province {province_code}")
        return code
    for key in name_keys(text):
        found = idx.district_by_key.get((province_code, key))
        if found:
            return found
    raise NotFound(
        f"no legacy district {value!r} in {idx.provinces[province_code].full_name}",
        code="legacy_district_not_found",
    )


def _commune_codes(province_code: str, district_code: str | None, value: str) -> tuple[str, ...]:
    idx = legacy_index()
    text = value.strip()
    if text.isdigit():
        found = legacy_commune(text)
        if found.province_code != province_code:
            raise InputError(
                f"legacy commune {found.code} is not in legacy province {province_code}"
            )
        return (found.code,)
    if district_code is not None:
        return _match(text, district_code, idx.commune_by_exact, idx.commune_by_key)
    folded, exact = _communes_by_province()
    return _match(text, province_code, exact, folded)


def convert_legacy_address(
    *, province: str, district: str | None = None, commune: str | None = None
) -> Conversion:
    """Convert a legacy province/district/commune (codes or names) to current unit codes.

    Raises NotFound when the province or the district cannot be identified; an unidentified or
    ambiguous commune yields a province-level Conversion with ``exact=False``.
    """
    old_province = legacy_province(province)
    pcode = old_province.code
    dcode = _district(pcode, district) if district else None
    codes = _commune_codes(pcode, dcode, commune) if commune else ()
    if len(codes) != 1:
        return Conversion(old_province.current_province_code, None, False, (), pcode, dcode, None)
    old = legacy_index().communes[codes[0]]
    return Conversion(
        old.current_province_code,
        old.current_commune_code,
        old.exact,
        old.candidate_commune_codes,
        pcode,
        old.district_code,
        old.code,
    )
