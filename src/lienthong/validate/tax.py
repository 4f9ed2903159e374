"""Tax identification numbers (mã số thuế, MST).

- 10 digits: N1–N9 the number, N10 a check digit (Decision 75/1998/QĐ-TCT, kept by Circular
  105/2020/TT-BTC): N10 = 10 − (31·N1 + 29·N2 + 23·N3 + 19·N4 + 17·N5 + 13·N6 + 7·N7 + 5·N8 +
  3·N9) mod 11. A remainder of 0 would need the digit 10: no such number is issued.
- 13 digits: the 10-digit number of the parent unit, then a 3-digit branch suffix 001–999 for a
  dependent unit (chi nhánh, văn phòng đại diện); written ``0101234567-001``.
- 12 digits: since 1 Jul 2025 an individual's or household's tax code is their personal ID
  number (Circular 86/2024/TT-BTC Art. 35); such values are checked as personal IDs.
"""

from __future__ import annotations

from lienthong.validate.personal_id import check_personal_id
from lienthong.validate.result import Check, fail

_WEIGHTS = (31, 29, 23, 19, 17, 13, 7, 5, 3)
_STRIP = str.maketrans("", "", " .\t")


def tax_check_digit(first_nine: str) -> int | None:
    """The check digit for the first nine digits, or None when no valid digit exists."""
    total = sum(w * (ord(c) - 48) for w, c in zip(_WEIGHTS, first_nine, strict=True))
    digit = 10 - total % 11
    return None if digit == 10 else digit


def check_tax_code(value: object) -> Check[str]:
    """Check and normalise a tax code to ``NNNNNNNNNN`` or ``NNNNNNNNNN-BBB``.

    Reason codes: tax_empty, tax_not_digits, tax_length, tax_check_digit, tax_no_check_digit,
    tax_branch_zero, plus the id_* codes for 12-digit personal tax codes.
    """
    if value is None or value == "":
        return fail("tax_empty", "tax code is empty")
    text = str(value).strip().translate(_STRIP)
    if isinstance(value, int) and len(text) == 9:
        text = "0" + text  # spreadsheets drop the leading zero of Hà Nội (01…) codes
    main, dash, branch = text.partition("-")
    digits = main + branch
    if not digits.isdigit() or not digits.isascii() or (dash and not branch):
        return fail(
            "tax_not_digits", f"tax code {text!r} must be digits, with one '-' before a branch"
        )
    if len(digits) == 12 and not dash:
        return check_personal_id(digits)
    if len(main) != 10 or len(digits) not in (10, 13):
        return fail("tax_length", f"tax code has {len(digits)} digits, not 10 or 13")
    expected = tax_check_digit(main[:9])
    if expected is None:
        return fail("tax_no_check_digit", f"tax code {main}: no check digit exists for {main[:9]}")
    if expected != ord(main[9]) - 48:
        return fail(
            "tax_check_digit", f"tax code {main}: check digit is {main[9]}, expected {expected}"
        )
    if len(digits) == 13:
        suffix = digits[10:]
        if suffix == "000":
            return fail("tax_branch_zero", "branch suffix must be 001–999, not 000")
        return Check(f"{main}-{suffix}")
    return Check(main)


def make_tax_code(first_nine: str, branch: int | None = None) -> str | None:
    """A valid tax code from nine digits (None if those digits admit no check digit)."""
    digit = tax_check_digit(first_nine)
    if digit is None:
        return None
    code = f"{first_nine}{digit}"
    return code if branch is None else f"{code}-{branch:03d}"
