"""Field conversions named in pipelines (pure except for the dictionary look-ups they call).

A transform takes ``(value, spec)`` and returns the converted value or raises ``ValueError``
whose text is the quarantine reason (``code: message``). Built-ins cover types, dates and
names; every ``check_<name>`` validator of :mod:`lienthong.validate` is available as
transform ``<name>`` (e.g. ``personal_id``), and legacy → current administrative codes come
from :mod:`lienthong.dictionary.conversion`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import unicodedata
from collections.abc import Callable
from typing import Any

from lienthong.errors import LienthongError

Transform = Callable[[Any, Any], Any]

DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y%m%d", "%Y/%m/%d")


def _text(value: Any, _spec: Any) -> str:
    return unicodedata.normalize("NFC", str(value)).strip()


def _int(value: Any, _spec: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"not_integer: {value!r} is not an integer")
    try:
        return int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError(f"not_integer: {value!r} is not an integer") from None


def _float(value: Any, _spec: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not_number: {value!r} is not a number") from None


def _date(value: Any, spec: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    formats = [spec.format] if spec is not None and spec.format else DATE_FORMATS
    for fmt in formats:
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise ValueError(f"bad_date: {text!r} is not a date ({' or '.join(formats)})")


def _name(value: Any, _spec: Any) -> str:
    # Vietnamese names: NFC, one space between words, each word capitalised (source systems
    # often hold "NGUYỄN VĂN AN"); diacritics are kept as given, never invented.
    words = unicodedata.normalize("NFC", str(value)).split()
    if not words:
        raise ValueError("empty_name: name is empty")
    return " ".join(w[:1].upper() + w[1:].lower() for w in words)


def _bool(value: Any, _spec: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y", "có", "x"):
        return True
    if text in ("0", "false", "f", "no", "n", "không", ""):
        return False
    raise ValueError(f"not_boolean: {value!r} is not a boolean")


def _digits(value: Any, _spec: Any) -> str:
    return "".join(ch for ch in str(value) if ch.isdigit())


def _legacy_province(value: Any, _spec: Any) -> str:
    from lienthong.dictionary.conversion import legacy_province

    try:
        return legacy_province(str(value)).current_province_code
    except LienthongError as exc:
        raise ValueError(f"{exc.code}: {exc.message}") from exc


def _legacy_commune(value: Any, _spec: Any) -> str:
    from lienthong.dictionary.conversion import legacy_commune_to_current

    try:
        return legacy_commune_to_current(str(value)).code
    except LienthongError as exc:
        raise ValueError(f"{exc.code}: {exc.message}") from exc


def _length(spec: Any) -> int:
    return int(str(spec.format))  # checked when the pipeline is loaded (LENGTH_TRANSFORMS)


def _keep_if_length(value: Any, spec: Any) -> str | None:
    """The value only when it has exactly ``format`` characters (e.g. a 9-digit CMND kept in
    a column that mostly holds 12-digit personal IDs), else nothing."""
    text = str(value).strip()
    return text if len(text) == _length(spec) else None


def _drop_if_length(value: Any, spec: Any) -> str | None:
    """The converse of ``keep_if_length``: nothing when the value has exactly ``format``
    characters, else the value (validated as usual by the target field)."""
    text = str(value).strip()
    return None if len(text) == _length(spec) else text


# transforms whose ``format`` must be a positive whole number (a length)
LENGTH_TRANSFORMS = frozenset({"keep_if_length", "drop_if_length"})

TRANSFORMS: dict[str, Transform] = {
    "str": _text,
    "int": _int,
    "float": _float,
    "date": _date,
    "name": _name,
    "upper": lambda v, _s: str(v).strip().upper(),
    "lower": lambda v, _s: str(v).strip().lower(),
    "digits": _digits,
    "bool": _bool,
    "legacy_province": _legacy_province,
    "legacy_commune": _legacy_commune,
    "keep_if_length": _keep_if_length,
    "drop_if_length": _drop_if_length,
}


def _validator(name: str) -> Transform | None:
    """Wrap ``lienthong.validate.check_<name>`` (Check: value + reasons) as a transform."""
    try:
        module = importlib.import_module("lienthong.validate")
    except ImportError:
        return None
    check = getattr(module, f"check_{name}", None)
    if check is None:
        return None

    def run(value: Any, _spec: Any) -> Any:
        result = check(value)
        errors = [r for r in result.reasons if r.severity == "error"]
        if errors or result.value is None:
            text = "; ".join(f"{r.code}: {r.message}" for r in errors)
            raise ValueError(text or f"invalid_{name}: {value!r} has no usable value")
        return result.value

    return run


def transform(name: str) -> Transform | None:
    """The transform called ``name``: a built-in or a :mod:`lienthong.validate` check."""
    return TRANSFORMS.get(name) or _validator(name)
