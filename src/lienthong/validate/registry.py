"""Validators by name, as the data dictionary refers to them (``validator: personal_id``).

Each entry says which keyword parameters the dictionary may set (``params``), which other
fields of the same record it reads (``context``: the keyword arguments it accepts whose values
come from other fields) and whether its result depends only on the value (``memo``), so the
record validator may cache it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lienthong.validate import (
    address,
    admin_codes,
    codes,
    dates,
    health_insurance,
    names,
    personal_id,
    phone,
    sex,
    tax,
)
from lienthong.validate.result import Check


@dataclass(frozen=True, slots=True)
class ValidatorSpec:
    """A named validator and what the dictionary may pass to it."""

    name: str
    function: Callable[..., Check[Any]]
    params: frozenset[str] = frozenset()
    context: frozenset[str] = frozenset()
    memo: bool = True
    # the same check over whole columns: (values, **context columns) → (normalised values,
    # indexes of the rows with an error reason); used by RecordValidator.columns
    column: Callable[..., tuple[list[Any], list[int]]] | None = None


def _spec(
    name: str,
    fn: Callable[..., Check[Any]],
    *,
    params: tuple[str, ...] = (),
    context: tuple[str, ...] = (),
    memo: bool = True,
    column: Callable[..., tuple[list[Any], list[int]]] | None = None,
) -> tuple[str, ValidatorSpec]:
    return name, ValidatorSpec(name, fn, frozenset(params), frozenset(context), memo, column)


VALIDATORS: dict[str, ValidatorSpec] = dict(
    [
        _spec(
            "personal_id",
            personal_id.check_personal_id,
            context=("sex", "birth_date"),
            memo=False,
            column=personal_id.check_personal_id_column,
        ),
        _spec("cmnd", personal_id.check_cmnd, memo=False),
        _spec("tax_code", tax.check_tax_code, memo=False),
        _spec("health_insurance_card", health_insurance.check_health_insurance_card, memo=False),
        _spec(
            "social_insurance_number", health_insurance.check_social_insurance_number, memo=False
        ),
        _spec("mobile", phone.check_mobile, params=("e164",), memo=False),
        _spec("landline", phone.check_landline, params=("e164",), memo=False),
        _spec("phone", phone.check_phone, params=("e164",), memo=False),
        _spec("date", dates.check_date, params=("min_year", "today")),
        # Expiry and validity ends lie in the future by nature: never bounded by ``today``.
        _spec("expiry_date", dates.check_date, params=("min_year",)),
        _spec("name", names.check_name),
        _spec("sex", sex.check_sex),
        _spec("province_code", admin_codes.check_province_code, params=("legacy",)),
        _spec(
            "commune_code",
            admin_codes.check_commune_code,
            params=("legacy",),
            context=("province_code",),
        ),
        _spec("address", address.check_address),
        _spec("ethnic_group", codes.check_ethnic_group),
        _spec("religion", codes.check_religion),
        _spec("nationality", codes.check_nationality),
        _spec("text", codes.check_text, params=("max_length",)),
        _spec("enum", codes.check_enum, params=("values",)),
        _spec("integer", codes.check_integer, params=("minimum", "maximum")),
    ]
)
