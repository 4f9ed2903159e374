"""Validators and normalisers (kiểm tra và chuẩn hoá) used by every capability.

Each ``check_*`` function returns a :class:`Check` — the normalised value (None when unusable)
and a tuple of :class:`Reason` (stable ``code`` + one-line ``message``). ``ensure(check)``
is the raising variant. Rules and their sources: docs/validators.md.
"""

from __future__ import annotations

from lienthong.validate.personal_id import check_cmnd, check_personal_id, make_personal_id
from lienthong.validate.result import Check, Reason, ensure, fail
from lienthong.validate.sex import check_sex, sex_code

__all__ = [
    "Check",
    "Reason",
    "check_cmnd",
    "check_personal_id",
    "check_sex",
    "ensure",
    "fail",
    "make_personal_id",
    "sex_code",
]
