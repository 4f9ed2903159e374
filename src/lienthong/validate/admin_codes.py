"""Administrative-unit codes: current (since 1 Jul 2025) or legacy, converted to current.

Current codes reuse legacy ones (new Bắc Ninh is ``24``, the legacy code of Bắc Giang), so a
code alone is ambiguous: by default a code that is a current code is read as current, anything
else as legacy and converted with a warning. Pass ``legacy=True`` when the source is known to
hold pre-2025 codes, ``legacy=False`` to refuse legacy codes.
"""

from __future__ import annotations

from lienthong.dictionary import admin_units
from lienthong.dictionary.legacy import legacy_index, legacy_provinces
from lienthong.validate.result import Check, Reason, fail


def _digits(value: object, width: int) -> str | None:
    text = str(value).strip()
    if not text.isdigit() or not text.isascii() or len(text) > width:
        return None
    return text.zfill(width)


def check_province_code(value: object, *, legacy: bool | None = None) -> Check[str]:
    """Normalise to a current 2-digit province code. Codes: province_empty, province_format,
    province_unknown, province_legacy_refused; warning province_legacy_converted."""
    if value is None or value == "":
        return fail("province_empty", "province code is empty")
    code = _digits(value, 2)
    if code is None:
        return fail("province_format", f"province code {value!r} is not 1–2 digits")
    if legacy is not True and admin_units.is_province_code(code):
        return Check(code)
    old = legacy_provinces().get(code)
    if old is None:
        return fail("province_unknown", f"{code} is not a province code")
    if legacy is False:
        return fail("province_legacy_refused", f"{code} ({old.name}) is a pre-2025 province code")
    note = Reason(
        "province_legacy_converted",
        f"legacy province {code} {old.name} is now {old.current_province_code}",
        "warning",
    )
    return Check(old.current_province_code, (note,))


def check_commune_code(
    value: object, *, province_code: str | None = None, legacy: bool | None = None
) -> Check[str]:
    """Normalise to a current 5-digit commune code, optionally checking its province.

    Codes: commune_empty, commune_format, commune_unknown, commune_legacy_refused,
    commune_province_mismatch; warnings commune_legacy_converted, commune_legacy_split.
    """
    if value is None or value == "":
        return fail("commune_empty", "commune code is empty")
    code = _digits(value, 5)
    if code is None:
        return fail("commune_format", f"commune code {value!r} is not 1–5 digits")
    reasons: tuple[Reason, ...] = ()
    if legacy is not True and admin_units.is_commune_code(code):
        current = code
    else:
        old = legacy_index().communes.get(code)
        if old is None or old.current_commune_code is None:
            return fail("commune_unknown", f"{code} is not a commune code")
        if legacy is False:
            return fail("commune_legacy_refused", f"{code} ({old.name}) is a pre-2025 commune code")
        current = old.current_commune_code
        reasons = (
            Reason(
                "commune_legacy_converted",
                f"legacy commune {code} {old.name} is now {current}",
                "warning",
            ),
        )
        if not old.exact:
            reasons += (
                Reason(
                    "commune_legacy_split",
                    f"legacy commune {code} was split into "
                    f"{', '.join(old.candidate_commune_codes)}",
                    "warning",
                ),
            )
    if province_code is not None:
        actual = admin_units.commune(current).province_code
        if actual != province_code:
            return fail(
                "commune_province_mismatch",
                f"commune {current} is in province {actual}, not {province_code}",
            )
    return Check(current, reasons)
