"""Sex (giới tính): ISO/IEC 5218 codes, accepting the spellings source systems use."""

from __future__ import annotations

from lienthong.dictionary.text import fold
from lienthong.validate.result import Check, fail

_SEX_CODES = {
    "0": "0", "1": "1", "2": "2", "9": "9",
    "nam": "1", "m": "1", "male": "1", "trai": "1",
    "nu": "2", "f": "2", "female": "2", "gai": "2", "w": "2",
    "khong xac dinh": "0", "chua xac dinh": "0", "unknown": "0", "u": "0",
}  # fmt: skip
_CHECKS = {code: Check(code) for code in ("0", "1", "2", "9")}


def sex_code(value: object) -> str | None:
    """ISO 5218 code ('1' male, '2' female, '0' unknown, '9' n/a) of ``value``, or None."""
    if value is None:
        return None
    text = str(value)
    code = _SEX_CODES.get(text)
    if code is None:
        code = _SEX_CODES.get(fold(text))
    return code


def check_sex(value: object) -> Check[str]:
    """Normalise a sex to its ISO/IEC 5218 code."""
    if value is None or value == "":
        return fail("sex_empty", "sex is empty")
    code = sex_code(value)
    if code is None:
        return fail("sex_unknown", f"unknown sex {value!r}: use 1/Nam/M or 2/Nữ/F")
    return _CHECKS[code]
