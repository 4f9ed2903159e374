"""RecordValidator.columns equals the per-record validator (values of good rows, error rows)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.dictionary.record import Constant, expand, record_validator

FIELDS = {
    "personal_id": ["001090000001", "001190000002", "079203000003", "0010900000", None, ""],
    "full_name": ["NGUYỄN VĂN AN", "Lê 3", "", None, "an"],
    "date_of_birth": [dt.date(1990, 1, 2), dt.date(2003, 5, 6), dt.date(1850, 1, 1), None, "x"],
    "sex": ["1", "2", "Nam", "x", None],
    "nationality": ["VN", "Việt Nam", "XX", None],
    "phone": ["0912345678", "12", None],
    "permanent_commune_code": ["00004", "99999", None],
}


@given(
    st.integers(2, 30).flatmap(
        lambda n: st.fixed_dictionaries(
            {k: st.one_of(st.lists(st.sampled_from(v), min_size=n, max_size=n),
                          st.sampled_from(v).map(Constant)) for k, v in FIELDS.items()}
        )
    )
)  # fmt: skip
@settings(deadline=None, max_examples=200)
def test_columns_equal_records(columns: dict[str, Any]) -> None:
    validate = record_validator("Citizen")
    n = next((len(c) for c in columns.values() if isinstance(c, list)), 3)
    out, bad = validate.columns(n, columns)
    full = {k: expand(c, n) for k, c in columns.items()}
    for i in range(n):
        normalised, reasons = validate({k: v[i] for k, v in full.items()})
        assert (i in bad) == any(r.severity == "error" for r in reasons)
        if i not in bad:
            assert {k: expand(c, n)[i] for k, c in out.items()} == normalised
