"""Vietnamese telephone numbers (số điện thoại).

Mobile: 10 digits ``0`` + a 2-digit network prefix + 7 digits since the 2018 renumbering
(Decision 798/QĐ-BTTTT, Circular 22/2014/TT-BTTTT as amended): 032–039, 070, 076–079,
081–089, 090–094, 096–099, 052, 055, 056, 058, 059. Old 11-digit numbers (01xx…) are converted
with the Ministry's table and a warning. Landline (cố định): 11 digits ``02`` + area code +
subscriber since the 2017 area-code change (Circular 15/2017/TT-BTTTT).
Accepted input forms: ``0xxxxxxxxx``, ``84xxxxxxxxx``, ``+84 xxx xxx xxx``, ``(+84) …``,
with spaces, dots, dashes or brackets. Output: ``0xxxxxxxxx`` or, with ``e164=True``, ``+84…``.
"""

from __future__ import annotations

from lienthong.validate.result import Check, Reason, fail

MOBILE_PREFIXES = frozenset((
    "32", "33", "34", "35", "36", "37", "38", "39", "52", "55", "56", "58", "59", "70",
    "76", "77", "78", "79", "81", "82", "83", "84", "85", "86", "87", "88", "89", "90",
    "91", "92", "93", "94", "96", "97", "98", "99",
))  # fmt: skip
# Decision 798/QĐ-BTTTT (2018): old 11-digit prefix → new 10-digit prefix.
OLD_MOBILE_PREFIXES = {
    "120": "70", "121": "79", "122": "77", "126": "76", "128": "78",
    "123": "83", "124": "84", "125": "85", "127": "81", "129": "82",
    "162": "32", "163": "33", "164": "34", "165": "35", "166": "36", "167": "37", "168": "38",
    "169": "39", "186": "56", "188": "58", "199": "59",
}  # fmt: skip
_STRIP = str.maketrans("", "", " .-()\t/")


def _national(value: object) -> str | None:
    """Digits after the trunk '0' (national significant number), or None if not digits."""
    text = str(value).strip().translate(_STRIP)
    if text.startswith("+84"):
        text = text[3:]
    elif text.startswith("0084"):
        text = text[4:]
    elif text.startswith("84") and len(text) in (11, 12):
        text = text[2:]
    elif text.startswith("0"):
        text = text[1:]
    elif isinstance(value, int) and len(text) in (9, 10):
        pass  # a spreadsheet dropped the leading 0
    else:
        return None if not text.isdigit() else text
    return text if text.isdigit() and text.isascii() else None


def _format(nsn: str, e164: bool) -> str:
    return f"+84{nsn}" if e164 else f"0{nsn}"


def _fast_mobile(value: object) -> str | None:
    """The national number of an already normal '0xxxxxxxxx' mobile (the common case)."""
    if (
        isinstance(value, str)
        and len(value) == 10
        and value[0] == "0"
        and value[1:3] in MOBILE_PREFIXES
        and value.isdigit()
        and value.isascii()
    ):
        return value[1:]
    return None


def check_mobile(value: object, *, e164: bool = False) -> Check[str]:
    """Check and normalise a mobile number. Codes: phone_empty, phone_format, phone_length,
    phone_not_mobile, phone_prefix_unknown, phone_old_prefix_converted (warning)."""
    fast = _fast_mobile(value)
    if fast is not None:
        return Check(_format(fast, e164))
    if value is None or value == "":
        return fail("phone_empty", "phone number is empty")
    nsn = _national(value)
    if nsn is None:
        return fail("phone_format", f"phone number {value!r} has characters other than digits")
    if len(nsn) == 10 and nsn[:3] in OLD_MOBILE_PREFIXES:
        new = OLD_MOBILE_PREFIXES[nsn[:3]] + nsn[3:]
        note = Reason(
            "phone_old_prefix_converted",
            f"old 11-digit number 0{nsn} converted to 0{new} (2018 renumbering)",
            "warning",
        )
        return Check(_format(new, e164), (note,))
    if nsn.startswith("2"):
        return fail("phone_not_mobile", f"0{nsn} is a landline number, not a mobile")
    if len(nsn) != 9:
        return fail("phone_length", f"mobile number has {len(nsn) + 1} digits, not 10")
    if nsn[:2] not in MOBILE_PREFIXES:
        return fail("phone_prefix_unknown", f"0{nsn[:2]} is not a Vietnamese mobile prefix")
    return Check(_format(nsn, e164))


def check_landline(value: object, *, e164: bool = False) -> Check[str]:
    """Check a fixed-line number (02 + area code + subscriber, 11 digits).
    Codes: phone_empty, phone_format, phone_not_landline, phone_length."""
    if value is None or value == "":
        return fail("phone_empty", "phone number is empty")
    nsn = _national(value)
    if nsn is None:
        return fail("phone_format", f"phone number {value!r} has characters other than digits")
    if not nsn.startswith("2"):
        return fail("phone_not_landline", f"0{nsn} does not start with 02: not a landline")
    if len(nsn) != 10:
        return fail("phone_length", f"landline number has {len(nsn) + 1} digits, not 11")
    return Check(_format(nsn, e164))


def check_phone(value: object, *, e164: bool = False) -> Check[str]:
    """A mobile or a landline number, whichever it is."""
    fast = _fast_mobile(value)
    if fast is not None:
        return Check(_format(fast, e164))
    nsn = _national(value) if value not in (None, "") else None
    if nsn is not None and nsn.startswith("2"):
        return check_landline(value, e164=e164)
    return check_mobile(value, e164=e164)
