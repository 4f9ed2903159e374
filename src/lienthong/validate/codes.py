"""Validators for code-list fields (ethnic group, religion, nationality) and plain values."""

from __future__ import annotations

from collections.abc import Mapping

from lienthong.dictionary.codelists import ETHNIC_GROUPS, RELIGIONS, country
from lienthong.dictionary.text import compact_key, nfc
from lienthong.errors import NotFound
from lienthong.validate.result import Check, fail


def _code_index(items: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for code, item in items.items():
        out[code] = code
        out[code.lstrip("0") or "0"] = code
        for name in (getattr(item, "name", ""), getattr(item, "name_en", "")):
            if name:
                out.setdefault(compact_key(name), code)
    return out


_ETHNIC = _code_index(ETHNIC_GROUPS)
_ETHNIC.update({"hmong": "08", "meo": "08", "khmer": "05", "viet": "01", "ede": "12"})
_RELIGION = _code_index(RELIGIONS)
_RELIGION.update({"khong": "00", "none": "00", "thienchuagiao": "02", "daophat": "01"})


def _lookup(table: dict[str, str], value: object, what: str, code: str) -> Check[str]:
    if value is None or value == "":
        return fail(f"{code}_empty", f"{what} is empty")
    text = str(value).strip()
    found = table.get(text) or table.get(compact_key(text))
    if found is None:
        return fail(f"{code}_unknown", f"{text!r} is not a known {what}")
    return Check(found)


def check_ethnic_group(value: object) -> Check[str]:
    """Two-digit ethnic-group code (01–54) from a code or name ('Kinh', 'Khơ-me', 'H'Mông')."""
    return _lookup(_ETHNIC, value, "ethnic group", "ethnic")


def check_religion(value: object) -> Check[str]:
    """Two-digit religion code from a code or name; '00' means none."""
    return _lookup(_RELIGION, value, "religion", "religion")


def check_nationality(value: object) -> Check[str]:
    """ISO 3166-1 alpha-2 code from alpha-2/alpha-3/numeric code or English/Vietnamese name."""
    if value is None or value == "":
        return fail("nationality_empty", "nationality is empty")
    try:
        return Check(country(str(value)).alpha_2)
    except NotFound:
        return fail("nationality_unknown", f"{value!r} is not an ISO 3166-1 country")


def check_text(value: object, *, max_length: int | None = None) -> Check[str]:
    """Free text: NFC, trimmed, inner whitespace collapsed. Codes: text_empty, text_too_long."""
    text = " ".join(nfc(str(value)).split()) if value is not None else ""
    if not text:
        return fail("text_empty", "text is empty")
    if max_length is not None and len(text) > max_length:
        return fail("text_too_long", f"text has {len(text)} characters, more than {max_length}")
    return Check(text)


def check_enum(value: object, *, values: tuple[str, ...] = ()) -> Check[str]:
    """One of a fixed set of codes (compared after trimming). Codes: enum_empty, enum_unknown."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return fail("enum_empty", "value is empty")
    if text not in values:
        return fail("enum_unknown", f"{text!r} is not one of {', '.join(values)}")
    return Check(text)


def check_integer(
    value: object, *, minimum: int | None = None, maximum: int | None = None
) -> Check[int]:
    """An integer within optional bounds. Codes: int_format, int_range."""
    try:
        number = int(str(value).strip())
    except ValueError:
        return fail("int_format", f"{value!r} is not an integer")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        return fail("int_range", f"{number} is outside {minimum}–{maximum}")
    return Check(number)
