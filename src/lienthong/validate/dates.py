"""Dates as real source systems write them (ngày tháng).

Accepted: ISO ``yyyy-mm-dd``, ``yyyy/mm/dd``, ``dd/mm/yyyy``, ``dd-mm-yyyy``, ``dd.mm.yyyy``
with one- or two-digit day and month, each optionally followed by a time (ignored),
``yyyymmdd``, Python dates, and spreadsheet serial numbers (with a warning).
Vietnamese order is day first: ``03/04/2001`` is 3 April 2001, reported as ``date_ambiguous``
(warning) because month-first would also be a date. Impossible dates (31/02) are rejected; so
are month-first dates (``12/25/2001``) and partial dates (``00/00/1985``, ``1985``), each with
its own code.
"""

from __future__ import annotations

import datetime as dt
import re

from lienthong.validate.result import Check, Reason, fail

_TIME = r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?"
_DMY = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})" + _TIME)
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})" + _TIME)
_YMD = re.compile(r"(\d{4})[/.](\d{1,2})[/.](\d{1,2})" + _TIME)
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_YEAR = re.compile(r"\d{4}|(?:0?0[/.\-]){1,2}\d{4}|\d{1,2}[/.\-]\d{4}")
_EXCEL_EPOCH = dt.date(1899, 12, 30)


def _make(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _bounds(date: dt.date, min_year: int, today: dt.date | None) -> Check[dt.date]:
    if date.year < min_year:
        return fail("date_too_old", f"{date.isoformat()} is before {min_year}")
    if today is not None and date > today:
        return fail("date_in_future", f"{date.isoformat()} is after today ({today.isoformat()})")
    return Check(date)


def _from_dmy(day: int, month: int, year: int, text: str) -> Check[dt.date]:
    date = _make(year, month, day)
    if date is None:
        if day == 0 or month == 0:
            return fail("date_partial", f"{text!r} gives only part of the date")
        swapped = _make(year, day, month)
        if swapped is not None:
            return fail(
                "date_month_first",
                f"{text!r} is not day/month/year; month-first it would be {swapped.isoformat()}",
            )
        return fail("date_impossible", f"{text!r} is not a calendar date")
    if day != month and day <= 12 and month <= 12:
        note = Reason(
            "date_ambiguous",
            f"{text!r} read day-first as {date.isoformat()} (month-first would also be a date)",
            "warning",
        )
        return Check(date, (note,))
    return Check(date)


def parse_date(value: object) -> Check[dt.date]:
    """Parse a date without range checks (see check_date)."""
    if value is None or value == "":
        return fail("date_empty", "date is empty")
    if isinstance(value, dt.datetime):
        return Check(value.date())
    if isinstance(value, dt.date):
        return Check(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 100_000:
        serial = _EXCEL_EPOCH + dt.timedelta(days=int(value))
        note = Reason("date_spreadsheet_serial", f"{value} read as a spreadsheet serial", "warning")
        return Check(serial, (note,))
    text = str(value).strip()
    m = _ISO.fullmatch(text) or _COMPACT.fullmatch(text) or _YMD.fullmatch(text)
    if m:
        date = _make(int(m[1]), int(m[2]), int(m[3]))
        if date is None:
            return fail("date_impossible", f"{text!r} is not a calendar date")
        return Check(date)
    m = _DMY.fullmatch(text)
    if m:
        return _from_dmy(int(m[1]), int(m[2]), int(m[3]), text)
    if _YEAR.fullmatch(text):
        return fail("date_partial", f"{text!r} gives only part of the date")
    return fail("date_format", f"{text!r} is not a date (use yyyy-mm-dd or dd/mm/yyyy)")


def check_date(
    value: object, *, today: dt.date | None = None, min_year: int = 1900
) -> Check[dt.date]:
    """Parse and range-check a date: not before ``min_year``, not after ``today`` if given.

    Codes: date_empty, date_format, date_impossible, date_partial, date_month_first,
    date_too_old, date_in_future; warnings date_ambiguous, date_spreadsheet_serial.
    """
    parsed = parse_date(value)
    if parsed.value is None:
        return parsed
    bounded = _bounds(parsed.value, min_year, today)
    if bounded.value is None or not parsed.reasons:
        return bounded
    return Check(parsed.value, parsed.reasons)
