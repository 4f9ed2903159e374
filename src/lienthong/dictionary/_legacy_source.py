"""Adapter: read the legacy (63-province) units and the 2025 mapping of ``vietnamadminunits``.

We read only its data files (an SQLite table of the 10,040 pre-2025 units with their GSO codes,
and the JSON mapping old → new units); we never import its code, whose address converter
geolocates street addresses over the network. The package is MIT-licensed.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lienthong.errors import BackendError

_COLUMNS = (
    "provinceCode, province, provinceKey, districtCode, district, districtKey, "
    "wardCode, ward, wardKey, provinceKeywords, districtKeywords, wardKeywords"
)


@dataclass(frozen=True, slots=True)
class LegacyRow:
    province_code: str
    province_name: str
    province_key: str
    district_code: str
    district_name: str
    district_key: str
    ward_code: str | None
    ward_name: str | None
    ward_key: str | None
    province_keywords: str | None
    district_keywords: str | None
    ward_keywords: str | None

    def keywords(self, level: str) -> list[str]:
        """The dataset's match keys (compact, incl. former names) of this row's unit."""
        raw = getattr(self, f"{level}_keywords")
        return [str(k) for k in json.loads(raw)] if raw else []


def _data_dir() -> Path:
    spec = importlib.util.find_spec("vietnamadminunits")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            "package vietnamadminunits is not installed (needed for legacy unit conversion)",
            code="missing_dependency",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def legacy_rows() -> list[LegacyRow]:
    """Every pre-2025 commune (and the 5 island districts without communes)."""
    path = _data_dir() / "dataset.db"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM admin_units_legacy").fetchall()
    except sqlite3.Error as exc:
        raise BackendError(f"cannot read legacy units from {path}: {exc}") from exc
    return [LegacyRow(*row) for row in rows]


def legacy_province_rows() -> list[tuple[str, str, str]]:
    """(GSO code, full name, name key) of the 63 pre-2025 provinces."""
    path = _data_dir() / "dataset.db"
    query = "SELECT DISTINCT provinceCode, province, provinceKey FROM admin_units_legacy"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return [(str(a), str(b), str(c)) for a, b, c in conn.execute(query).fetchall()]
    except sqlite3.Error as exc:
        raise BackendError(f"cannot read legacy provinces from {path}: {exc}") from exc


def new_units() -> list[tuple[str, str, str, str]]:
    """(province code, province key, ward name, ward key) of the post-2025 units in that dataset."""
    path = _data_dir() / "dataset.db"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            query = "SELECT provinceCode, provinceKey, ward, wardKey FROM admin_units"
            return [tuple(r) for r in conn.execute(query).fetchall()]
    except sqlite3.Error as exc:
        raise BackendError(f"cannot read units from {path}: {exc}") from exc


def mapping() -> dict[str, Any]:
    """The old → new mapping: provinces, undivided and divided communes (by name keys)."""
    path = _data_dir() / "converter_2025.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read the 2025 unit mapping {path}: {exc}") from exc
