"""Addresses (địa chỉ): parse old three-level and new two-level forms into current unit codes.

Old form (before 1 Jul 2025): ``[street,] xã/phường X, huyện/quận/thị xã Y, tỉnh/thành phố Z``.
New form: ``[street,] xã/phường/đặc khu X, tỉnh/thành phố Z``. Type words may be abbreviated
(P., X., Q., H., TX., TP.) or missing; case and diacritics are ignored. Old addresses are
converted to the current commune (``address_legacy_converted`` warning). A commune that cannot be
identified leaves ``commune_code`` None with an ``address_commune_unknown`` warning, so the
province is still usable.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from lienthong.dictionary import admin_units
from lienthong.dictionary.conversion import convert_legacy_address, legacy_province
from lienthong.dictionary.text import fold, nfc
from lienthong.errors import InputError, NotFound
from lienthong.validate.result import Check, Reason, fail

_DISTRICT_WORD = re.compile(r"^(quan|huyen|thi xa|thanh pho|q|h|tx|tp)(\.\s*|\s+)\S")
_COUNTRY = {"viet nam", "vietnam", "vn"}


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed address in current units; ``street`` is the part before the commune."""

    street: str | None
    commune_code: str | None
    province_code: str
    legacy: bool

    def format(self) -> str:
        """The address written with current unit names."""
        parts = [self.street] if self.street else []
        if self.commune_code:
            parts.append(admin_units.commune(self.commune_code).name)
        parts.append(admin_units.province(self.province_code).name)
        return ", ".join(parts)


def _parts(value: str) -> list[str]:
    parts = [" ".join(p.split()) for p in nfc(value).split(",")]
    parts = [p for p in parts if p]
    if parts and fold(parts[-1]) in _COUNTRY:
        parts.pop()
    return parts


# A resolved unit tail: (commune code, province code, legacy?, reasons), or an error Check.
_Units = tuple[str | None, str, bool, tuple[Reason, ...]]


@functools.lru_cache(maxsize=65_536)
def _is_three_level(district: str, province: str) -> bool:
    """Old form when a district word precedes the province, or the province no longer exists."""
    if _DISTRICT_WORD.match(fold(district)):
        return True
    return admin_units.find_province(province) is None


@functools.lru_cache(maxsize=65_536)
def _three_level(commune: str, district: str, province: str) -> _Units | Check[Address]:
    try:
        conv = convert_legacy_address(province=province, district=district, commune=commune)
    except (NotFound, InputError) as exc:
        return fail("address_unit_unknown", f"old-form address: {exc}")
    reasons = [Reason("address_legacy_converted", "old three-level address converted", "warning")]
    if conv.commune_code is None:
        reasons.append(
            Reason("address_commune_unknown", f"commune {commune!r} not identified", "warning")
        )
    elif not conv.exact:
        reasons.append(
            Reason(
                "address_legacy_split",
                f"old commune was split into {', '.join(conv.candidates)}; took the default",
                "warning",
            )
        )
    return (conv.commune_code, conv.province_code, True, tuple(reasons))


@functools.lru_cache(maxsize=65_536)
def _two_level(commune: str | None, province_name: str) -> _Units | Check[Address]:
    province = admin_units.find_province(province_name)
    if province is None:
        try:
            legacy_province(province_name)
        except NotFound:
            return fail("address_province_unknown", f"{province_name!r} is not a province")
        return _legacy_two_level(commune, province_name)
    if commune is None:
        note = Reason("address_commune_missing", "address names only a province", "warning")
        return (None, province.code, False, (note,))
    found = admin_units.match_communes(commune, province.code)
    if len(found) > 1:
        note = Reason(
            "address_commune_ambiguous",
            f"{commune!r} may be {', '.join(c.name for c in found)} (diacritics missing?)",
            "warning",
        )
        return (None, province.code, False, (note,))
    if not found:
        return _legacy_two_level(commune, province_name, fallback=province.code)
    return (found[0].code, province.code, False, ())


def _legacy_two_level(
    commune: str | None, province_name: str, fallback: str | None = None
) -> _Units:
    """'commune, old province' without a district (common in old records)."""
    try:
        conv = convert_legacy_address(province=province_name, commune=commune)
    except (NotFound, InputError):
        conv = None
    if conv is not None and conv.commune_code is not None:
        note = Reason("address_legacy_converted", "old commune name converted", "warning")
        return (conv.commune_code, conv.province_code, True, (note,))
    unknown = Reason("address_commune_unknown", f"commune {commune!r} not identified", "warning")
    if fallback is not None:
        return (None, fallback, False, (unknown,))
    if conv is not None:
        return (None, conv.province_code, True, (unknown,))
    return (None, legacy_province(province_name).current_province_code, True, (unknown,))


def check_address(value: object) -> Check[Address]:
    """Parse an address. Codes: address_empty, address_province_unknown, address_unit_unknown;
    warnings address_legacy_converted, address_legacy_split, address_commune_unknown,
    address_commune_ambiguous, address_commune_missing.

    The unit part (commune, district, province) is resolved through caches, because source
    tables repeat the same few thousand unit spellings with different streets.
    """
    if value is None or not str(value).strip():
        return fail("address_empty", "address is empty")
    parts = _parts(str(value))
    if not parts:
        return fail("address_empty", "address is empty")
    if len(parts) >= 3 and _is_three_level(parts[-2], parts[-1]):
        units, street = _three_level(parts[-3], parts[-2], parts[-1]), parts[:-3]
    else:
        commune = parts[-2] if len(parts) >= 2 else None
        units, street = _two_level(commune, parts[-1]), parts[:-2]
    if isinstance(units, Check):
        return units
    commune_code, province_code, legacy, reasons = units
    address = Address(", ".join(street) or None, commune_code, province_code, legacy)
    return Check(address, reasons)
