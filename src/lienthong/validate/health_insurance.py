"""Health-insurance card numbers (mã thẻ BHYT) and social-insurance numbers (mã số BHXH).

Card layout of Decision 1351/QĐ-BHXH (16 Nov 2015), used on cards issued 2016–2020: 15
characters = 2-letter beneficiary group (mã đối tượng, e.g. DN employees of enterprises, HS
pupils, SV students, TE children under 6, GD households) + 1 benefit-level digit 1–5 (mức
hưởng) + 2-digit province code of the issuing office (the legacy GSO province codes) + the
10-digit social-insurance number. Cards issued from 1 Apr 2021 (Decision 1666/QĐ-BHXH) print
only the 10-digit social-insurance number, which is also accepted. Neither has a check digit.
"""

from __future__ import annotations

from lienthong.dictionary.legacy import legacy_provinces
from lienthong.validate.result import Check, Reason, fail

# Beneficiary groups of Decision 1351/QĐ-BHXH, Appendix 1 (an unknown group is a warning:
# the list has been amended since).
BENEFICIARY_GROUPS = frozenset((
    "DN", "HX", "CH", "NN", "TK", "HC", "XK", "CA", "HT", "TB", "MS", "XB", "XN", "TC",
    "TQ", "TA", "TY", "HG", "LS", "CC", "CK", "CB", "KC", "HD", "TE", "BT", "HN", "DT",
    "DK", "XD", "TS", "TV", "TD", "TU", "GD", "ND", "TH", "NO", "CN", "HS", "SV", "GB",
    "CY", "XV", "QN", "PV", "CS", "NK",
))  # fmt: skip
_STRIP = str.maketrans("", "", " -.\t")


def check_social_insurance_number(value: object) -> Check[str]:
    """Check a 10-digit social-insurance number (mã số BHXH). Codes: bhxh_empty, bhxh_format."""
    if value is None or value == "":
        return fail("bhxh_empty", "social-insurance number is empty")
    text = str(value).strip().translate(_STRIP)
    if isinstance(value, int) and len(text) < 10:
        text = text.zfill(10)
    if len(text) != 10 or not text.isdigit() or not text.isascii():
        return fail("bhxh_format", f"social-insurance number {text!r} is not 10 digits")
    return Check(text)


def check_health_insurance_card(value: object) -> Check[str]:
    """Check a BHYT card number: 15-character layout or the 10-digit number alone.

    Reason codes: bhyt_empty, bhyt_length, bhyt_group_format, bhyt_group_unknown (warning),
    bhyt_benefit_level, bhyt_province_unknown, bhyt_number_format.
    """
    if value is None or value == "":
        return fail("bhyt_empty", "health-insurance card number is empty")
    text = str(value).strip().translate(_STRIP).upper()
    if len(text) == 10 and text.isdigit():
        return Check(text)
    if len(text) != 15:
        return fail("bhyt_length", f"card number has {len(text)} characters, not 15 (or 10)")
    group, level, province, number = text[:2], text[2], text[3:5], text[5:]
    if not (group.isalpha() and group.isascii()):
        return fail("bhyt_group_format", f"characters 1–2 {group!r} must be two letters")
    if level not in "12345":
        return fail("bhyt_benefit_level", f"character 3 {level!r} must be a benefit level 1–5")
    if province not in legacy_provinces():
        return fail("bhyt_province_unknown", f"characters 4–5 {province!r} are not a province code")
    if not (number.isdigit() and number.isascii()):
        return fail("bhyt_number_format", f"characters 6–15 {number!r} must be 10 digits")
    if group not in BENEFICIARY_GROUPS:
        reason = Reason(
            "bhyt_group_unknown", f"beneficiary group {group} is not in the list", "warning"
        )
        return Check(text, (reason,))
    return Check(text)
