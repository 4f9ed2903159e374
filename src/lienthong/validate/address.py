"""Addresses (địa chỉ): parse old three-level and new two-level forms into current unit codes.

Old form (before 1 Jul 2025): ``[street,] xã/phường X, huyện/quận/thị xã Y, tỉnh/thành phố Z``.
New form: ``[street,] xã/phường/đặc khu X, tỉnh/thành phố Z``. Type words may be abbreviated
(P., X., Q., H., TX., TP.) or missing; case and diacritics are ignored. Old addresses are
converted to the current commune (``address_legacy_converted`` warning). A commune that cannot be
identified leaves ``commune_code`` None with an ``address_commune_unknown`` warning, so the
province is still usable.
"""

from __future__ import annotations

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


def _legacy(parts: list[str]) -> Check[Address]:
    street = ", ".join(parts[:-3]) or None
    try:
        conv = convert_legacy_address(province=parts[-1], district=parts[-2], commune=parts[-3])
    except (NotFound, InputError) as exc:
        return fail("address_unit_unknown", f"old-form address: {exc}")
    reasons = [Reason("address_legacy_converted", "old three-level address converted", "warning")]
    if conv.commune_code is None:
        reasons.append(
            Reason("address_commune_unknown", f"commune {parts[-3]!r} not identified", "warning")
        )
    elif not conv.exact:
        reasons.append(
            Reason(
                "address_legacy_split",
                f"old commune was split into {', '.join(conv.candidates)}; took the default",
                "warning",
            )
        )
    return Check(Address(street, conv.commune_code, conv.province_code, True), tuple(reasons))


def _looks_legacy(parts: list[str]) -> bool:
    if len(parts) < 3:
        return False
    if _DISTRICT_WORD.match(fold(parts[-2])):
        return True
    return admin_units.find_province(parts[-1]) is None


def check_address(value: object) -> Check[Address]:
    """Parse an address. Codes: address_empty, address_province_unknown, address_unit_unknown;
    warnings address_legacy_converted, address_legacy_split, address_commune_unknown,
    address_commune_ambiguous, address_commune_missing."""
    if value is None or not str(value).strip():
        return fail("address_empty", "address is empty")
    parts = _parts(str(value))
    if not parts:
        return fail("address_empty", "address is empty")
    if _looks_legacy(parts):
        return _legacy(parts)
    province = admin_units.find_province(parts[-1])
    if province is None:
        try:
            legacy_province(parts[-1])
        except NotFound:
            return fail("address_province_unknown", f"{parts[-1]!r} is not a province")
        return _legacy_two_level(parts)
    if len(parts) == 1:
        note = Reason("address_commune_missing", "address names only a province", "warning")
        return Check(Address(None, None, province.code, False), (note,))
    street = ", ".join(parts[:-2]) or None
    found = admin_units.match_communes(parts[-2], province.code)
    if len(found) > 1:
        note = Reason(
            "address_commune_ambiguous",
            f"{parts[-2]!r} may be {', '.join(c.name for c in found)} (diacritics missing?)",
            "warning",
        )
        return Check(Address(street, None, province.code, False), (note,))
    if not found:
        return _legacy_two_level(parts, fallback=Address(street, None, province.code, False))
    return Check(Address(street, found[0].code, province.code, False))


def _legacy_two_level(parts: list[str], fallback: Address | None = None) -> Check[Address]:
    """'commune, old province' without a district (common in old records)."""
    commune = parts[-2] if len(parts) >= 2 else None
    try:
        conv = convert_legacy_address(province=parts[-1], commune=commune)
    except (NotFound, InputError):
        conv = None
    if conv is not None and conv.commune_code is not None:
        street = ", ".join(parts[:-2]) or None
        note = Reason("address_legacy_converted", "old commune name converted", "warning")
        return Check(Address(street, conv.commune_code, conv.province_code, True), (note,))
    unknown = Reason("address_commune_unknown", f"commune {commune!r} not identified", "warning")
    if fallback is not None:
        return Check(fallback, (unknown,))
    if conv is not None:
        province_code = conv.province_code
    else:
        province_code = legacy_province(parts[-1]).current_province_code
    street = ", ".join(parts[:-2]) or None
    return Check(Address(street, None, province_code, True), (unknown,))
