"""Run the shared data-dictionary validators over the generated sources.

Each source keeps its own local schema; :data:`MAPPINGS` says, per table, which dictionary
entity its rows describe and how a local row becomes a dictionary record (a column name, or a
function of the row for composed values such as the education system's split names). This is
the same translation a sync connector does, kept here so the demo can report what the
validators find in each source.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lienthong.dictionary.record import record_validator
from lienthong.errors import BackendError
from lienthong.validate.names import join_name

Row = Mapping[str, Any]
FieldSource = str | Callable[[Row], Any]


@dataclass(frozen=True, slots=True)
class TableMapping:
    """How the rows of one source table map onto a dictionary entity."""

    source: str
    table: str
    entity: str
    fields: Mapping[str, FieldSource]


_LEVELS = {"TH": "tieu_hoc", "THCS": "thcs", "THPT": "thpt", "DH": "dai_hoc"}
_STATUS = {"Đang hoạt động": "hoat_dong", "Ngừng hoạt động": "ngung_hoat_dong"}
_TAXPAYER = {"HKD": "ho_kinh_doanh"}


def _by_length(value: Any, *, keep: bool) -> Any:
    """A column of 12-digit personal IDs and old 9-digit CMND numbers: the CMND number alone
    (``keep``) or everything else (as the sync pipelines' keep/drop_if_length transforms)."""
    if not value:
        return None
    return value if (len(value) == 9) == keep else None


MAPPINGS: tuple[TableMapping, ...] = (
    TableMapping("population", "cong_dan", "Citizen", {
        "personal_id": "so_dinh_danh", "full_name": "ho_ten", "date_of_birth": "ngay_sinh",
        "sex": "gioi_tinh", "birth_registration_commune_code": "noi_dang_ky_khai_sinh",
        "hometown_commune_code": "que_quan", "permanent_commune_code": "thuong_tru_ma_xa",
        "current_commune_code": "noi_o_hien_tai_ma_xa", "ethnicity": "dan_toc",
        "religion": "ton_giao", "nationality": "quoc_tich", "phone": "so_dien_thoai",
        "legacy_id_number": "so_cmnd",
    }),
    TableMapping("population", "di_bien_dong_cu_tru", "ResidenceChange", {
        "change_id": lambda r: str(r["ma_bien_dong"]), "personal_id": "so_dinh_danh",
        "change_type": "loai_bien_dong", "effective_date": "ngay_hieu_luc",
        "from_commune_code": "ma_xa_cu", "to_commune_code": "ma_xa_moi",
    }),
    TableMapping("health", "the_bhyt", "HealthInsuranceCard", {
        "card_number": "ma_the", "social_insurance_number": "ma_so_bhxh",
        "personal_id": lambda r: _by_length(r["so_cccd"], keep=False),
        "legacy_id_number": lambda r: _by_length(r["so_cccd"], keep=True),
        "full_name": "ho_ten", "date_of_birth": "ngay_sinh", "sex": "gioi_tinh",
        "valid_from": "gia_tri_tu", "valid_to": "gia_tri_den", "initial_facility_code": "ma_dkbd",
        "address": "dia_chi",
    }),
    TableMapping("education", "hoc_sinh", "EducationRecord", {
        "student_code": "ma_hoc_sinh", "personal_id": "ma_dinh_danh",
        "full_name": lambda r: join_name(r["ho"], r["dem"], r["ten"]) or None,
        "date_of_birth": "ngay_sinh", "sex": "gioi_tinh", "school_code": "ma_truong",
        "level": lambda r: _LEVELS.get(r["cap_hoc"], r["cap_hoc"]),
        "enrolment_year": lambda r: int(r["nam_hoc"][:4]) if r["nam_hoc"] else None,
    }),
    TableMapping("tax", "nguoi_nop_thue", "Taxpayer", {
        "tax_code": "mst", "taxpayer_type": lambda _r: "ca_nhan", "name": "ho_ten",
        "personal_id": lambda r: r["so_giay_to"] if r["loai_giay_to"] == "CCCD" else None,
        "legacy_id_number": lambda r: r["so_giay_to"] if r["loai_giay_to"] == "CMND" else None,
        "registration_date": "ngay_cap_mst", "address": "dia_chi", "phone": "so_dien_thoai",
        "status": lambda r: _STATUS.get(r["trang_thai"], r["trang_thai"]),
    }),
    TableMapping("tax", "doanh_nghiep", "Taxpayer", {
        "tax_code": "mst", "name": "ten_doanh_nghiep",
        "taxpayer_type": lambda r: _TAXPAYER.get(r["loai_hinh"], "doanh_nghiep"),
        "legal_representative_id": "so_giay_to_dai_dien", "registration_date": "ngay_thanh_lap",
        "address": "dia_chi_tru_so",
    }),
)  # fmt: skip


def to_record(mapping: TableMapping, row: Row) -> dict[str, Any]:
    """The dictionary record for one local row."""
    return {
        name: (row[src] if isinstance(src, str) else src(row))
        for name, src in mapping.fields.items()
    }


def _sqlite_rows(path: Path, table: str) -> Iterator[sqlite3.Row]:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        try:
            yield from con.execute(f'SELECT * FROM "{table}"')
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise BackendError(f"cannot read {path}: {exc}") from exc


def check_rows(
    mapping: TableMapping, rows: Iterable[Any], today: dt.date | None = None
) -> dict[str, Any]:
    """Validate rows; count invalid rows and every error/warning reason by code."""
    validate = record_validator(mapping.entity, today)
    total = invalid = 0
    errors: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    for row in rows:
        total += 1
        _, reasons = validate(to_record(mapping, row))
        bad = False
        for reason in reasons:
            if reason.severity == "error":
                errors[reason.code] += 1
                bad = True
            else:
                warnings[reason.code] += 1
        invalid += bad
    return {
        "rows": total,
        "invalid": invalid,
        "reasons": dict(errors.most_common()),
        "warnings": dict(warnings.most_common()),
    }


def check_sqlite_source(path: Path, source: str, today: dt.date | None = None) -> dict[str, Any]:
    """Validate every mapped table of one source's SQLite file.

    Leave ``today`` None for the health source: the dictionary applies it to every date
    field, and a card's ``valid_to`` is rightly in the future."""
    tables = {
        m.table: check_rows(m, _sqlite_rows(path, m.table), today)
        for m in MAPPINGS
        if m.source == source
    }
    reasons: Counter[str] = Counter()
    for result in tables.values():
        reasons.update(result["reasons"])
    return {
        "rows": sum(t["rows"] for t in tables.values()),
        "invalid": sum(t["invalid"] for t in tables.values()),
        "reasons": dict(reasons.most_common()),
        "tables": tables,
    }
