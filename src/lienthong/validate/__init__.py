"""Validators and normalisers (kiểm tra và chuẩn hoá) used by every capability.

Each ``check_*`` function returns a :class:`Check` — the normalised value (None when unusable)
and a tuple of :class:`Reason` (stable ``code`` + one-line ``message`` + severity). ``ensure``
is the raising variant (ValidationError carrying every reason). Rules and their sources:
docs/validators.md. ``registry.VALIDATORS`` maps the names the data dictionary uses.
"""

from __future__ import annotations

from lienthong.validate.address import Address, check_address
from lienthong.validate.admin_codes import check_commune_code, check_province_code
from lienthong.validate.codes import (
    check_enum,
    check_ethnic_group,
    check_integer,
    check_nationality,
    check_religion,
    check_text,
)
from lienthong.validate.dates import check_date, parse_date
from lienthong.validate.health_insurance import (
    check_health_insurance_card,
    check_social_insurance_number,
)
from lienthong.validate.names import check_name, join_name, name_key, split_name
from lienthong.validate.personal_id import check_cmnd, check_personal_id, make_personal_id
from lienthong.validate.phone import check_landline, check_mobile, check_phone
from lienthong.validate.result import Check, Reason, ensure, fail
from lienthong.validate.sex import check_sex, sex_code
from lienthong.validate.tax import check_tax_code, make_tax_code, tax_check_digit

__all__ = [
    "Address",
    "Check",
    "Reason",
    "check_address",
    "check_cmnd",
    "check_commune_code",
    "check_date",
    "check_enum",
    "check_ethnic_group",
    "check_health_insurance_card",
    "check_integer",
    "check_landline",
    "check_mobile",
    "check_name",
    "check_nationality",
    "check_personal_id",
    "check_phone",
    "check_province_code",
    "check_religion",
    "check_sex",
    "check_social_insurance_number",
    "check_tax_code",
    "check_text",
    "ensure",
    "fail",
    "join_name",
    "make_personal_id",
    "make_tax_code",
    "name_key",
    "parse_date",
    "sex_code",
    "split_name",
    "tax_check_digit",
]
