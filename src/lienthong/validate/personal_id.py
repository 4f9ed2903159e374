"""Personal identification numbers: the 12-digit số định danh cá nhân and the 9-digit CMND.

12-digit rule (Decree 137/2015/NĐ-CP Art. 7, Circular 07/2016/TT-BCA amended by Circular
59/2021/TT-BCA): digits 1–3 the code of the province where the birth was registered (the
legacy 63-province codes, 001 Hà Nội … 096 Cà Mau, unchanged by the 2025 merger); digit 4
century and sex (1900s male 0 / female 1, 2000s 2/3, 2100s 4/5, 2200s 6/7, 2300s 8/9); digits
5–6 the last two digits of the birth year; digits 7–12 a random serial. There is no check digit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from lienthong.dictionary.categories import legacy_id_provinces
from lienthong.errors import InputError
from lienthong.validate.dates import parse_date
from lienthong.validate.result import Check, Reason, fail
from lienthong.validate.sex import sex_code

_SEPARATORS = str.maketrans("", "", " .-\t")


def _century_sex(year: int, sex: str) -> str:
    """Digit 4 for a birth year and an ISO 5218 sex ('1' male / '2' female)."""
    century = year // 100 - 19
    return str(2 * century + (1 if sex == "2" else 0))


def _as_date(value: object) -> dt.date | None:
    """A date of birth in any accepted form; an unreadable one is not cross-checked."""
    if value is None or isinstance(value, dt.date):
        return value
    return parse_date(value).value


def _clean(value: object) -> tuple[str, Reason | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        if len(text) < 12:
            return text.zfill(12), Reason(
                "id_leading_zeros_restored",
                "personal ID was stored as a number; leading zeros restored",
                "warning",
            )
        return text, None
    text = str(value).strip()
    if not text.isdigit():
        text = text.translate(_SEPARATORS)
    return text, None


def check_personal_id(
    value: object, *, sex: object = None, birth_date: object = None
) -> Check[str]:
    """Check a 12-digit personal ID, and its consistency with sex and date of birth if given.

    Reason codes: id_empty, id_not_digits, id_length, id_province_unknown, id_century_future,
    id_sex_mismatch, id_century_mismatch, id_birth_year_mismatch.
    """
    if value is None or value == "":
        return fail("id_empty", "personal ID is empty")
    text, note = _clean(value)
    if not text.isdigit() or not text.isascii():
        return fail("id_not_digits", f"personal ID {text!r} has characters other than digits")
    if len(text) != 12:
        return fail("id_length", f"personal ID has {len(text)} digits, not 12")
    reasons: list[Reason] = [note] if note else []
    if text[:3] not in legacy_id_provinces():
        reasons.append(
            Reason("id_province_unknown", f"digits 1–3 {text[:3]} are not a province code")
        )
    digit = ord(text[3]) - 48
    if digit >= 4:
        reasons.append(Reason("id_century_future", f"digit 4 = {digit} means a birth after 2099"))
    if sex is not None:
        code = sex_code(sex)
        if code in ("1", "2") and (digit % 2) != (code == "2"):
            expected = "odd (female)" if code == "2" else "even (male)"
            reasons.append(
                Reason(
                    "id_sex_mismatch", f"digit 4 = {digit} but sex is {sex!r}: expected {expected}"
                )
            )
    born = _as_date(birth_date)
    if born is not None:
        century = 19 + digit // 2
        if born.year // 100 != century:
            reasons.append(
                Reason(
                    "id_century_mismatch",
                    f"digit 4 = {digit} means born in the {century}00s, not {born.year}",
                )
            )
        if text[4:6] != f"{born.year % 100:02d}":
            reasons.append(
                Reason(
                    "id_birth_year_mismatch",
                    f"digits 5–6 {text[4:6]} do not match the birth year {born.year}",
                )
            )
    if not reasons:
        return Check(text)
    ok = all(r.severity != "error" for r in reasons)
    return Check(text if ok else None, tuple(reasons))


def make_personal_id(province_id_code: str, sex: object, birth_date: dt.date, serial: int) -> str:
    """Build a valid 12-digit personal ID (used by the synthetic-data generator).

    ``province_id_code`` is a legacy ID code ('001'…'096'), ``sex`` any accepted spelling of
    male/female, ``serial`` 0–999999 (digits 7–12).
    """
    if province_id_code not in legacy_id_provinces():
        raise InputError(f"{province_id_code!r} is not a personal-ID province code (001…096)")
    code = sex_code(sex)
    if code not in ("1", "2"):
        raise InputError(f"sex {sex!r} must be male or female to build a personal ID")
    if not 1900 <= birth_date.year <= 2099:
        raise InputError(f"birth year {birth_date.year} is outside 1900–2099")
    if not 0 <= serial <= 999_999:
        raise InputError(f"serial {serial} is outside 0–999999")
    return (
        f"{province_id_code}{_century_sex(birth_date.year, code)}"
        f"{birth_date.year % 100:02d}{serial:06d}"
    )


def check_cmnd(value: object) -> Check[str]:
    """Check a legacy 9-digit identity-card number (chứng minh nhân dân).

    The 9-digit CMND has no check digit and no published structure beyond its issuing-area
    prefix, so only the shape is checked. A 12-digit value is routed to check_personal_id.
    Reason codes: cmnd_empty, cmnd_not_digits, cmnd_length, cmnd_all_zero.
    """
    if value is None or value == "":
        return fail("cmnd_empty", "identity-card number is empty")
    text = str(value).strip().translate(_SEPARATORS)
    if isinstance(value, int) and len(text) < 9:
        text = text.zfill(9)
    if not text.isdigit() or not text.isascii():
        return fail("cmnd_not_digits", f"identity-card number {text!r} has non-digits")
    if len(text) == 12:
        return check_personal_id(text)
    if len(text) != 9:
        return fail("cmnd_length", f"identity-card number has {len(text)} digits, not 9 or 12")
    if text == "000000000":
        return fail("cmnd_all_zero", "identity-card number is all zeros")
    return Check(text)


def check_personal_id_column(
    values: Sequence[object], *, sex: Sequence[object], birth_date: Sequence[object]
) -> tuple[list[str | None], list[int]]:
    """:func:`check_personal_id` over aligned columns: (normalised values, rows with errors).

    For a clean 12-digit ASCII string the reasons depend only on its first six digits, the sex
    and the birth *year*, so one check per distinct (digits 1–6, sex, year) stands for every
    row sharing them (the row keeps its own digits when there is no error). Columns that are
    not all such strings, with dates and plain sexes, are checked row by row. Equal to calling
    :func:`check_personal_id` on each row (property tests in tests/validate).
    """
    if not (
        values
        and set(map(type, values)) == {str}
        and set(map(type, sex)) <= {str, type(None)}
        and set(map(type, birth_date)) <= {dt.date, type(None)}
    ):
        return _column_row_by_row(values, sex, birth_date)
    # the element types were checked just above
    texts = cast(Sequence[str], values)
    dates = cast(Sequence[dt.date | None], birth_date)
    if set(map(len, texts)) != {12} or not _digits("".join(texts)):
        return _column_row_by_row(values, sex, birth_date)
    years = [None if b is None else b.year for b in dates]
    keys = list(zip([v[:6] for v in texts], sex, years, strict=True))
    memo: dict[Any, Check[str]] = {}
    wrong: set[Any] = set()
    for key in set(keys):
        born = None if key[2] is None else dt.date(key[2], 1, 1)
        check = memo[key] = check_personal_id(key[0] + "000000", sex=key[1], birth_date=born)
        if not check.ok:
            wrong.add(key)
    if not wrong:
        return list(texts), []
    errors = [i for i, k in enumerate(keys) if k in wrong]
    out: list[str | None] = list(texts)
    for i in errors:
        out[i] = None
    return out, errors


def _digits(text: str) -> bool:
    return text.isdigit() and text.isascii()


def _column_row_by_row(
    values: Sequence[object], sex: Sequence[object], birth_date: Sequence[object]
) -> tuple[list[str | None], list[int]]:
    out: list[str | None] = []
    errors: list[int] = []
    for i, (v, s, b) in enumerate(zip(values, sex, birth_date, strict=True)):
        check = check_personal_id(v, sex=s, birth_date=b)
        out.append(check.value)
        if not check.ok:
            errors.append(i)
    return out, errors
