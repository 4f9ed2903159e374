"""Shared category lists (danh mục dùng chung), one import for every capability.

Current units (34 provinces, 3,321 communes) come from ``vietnam-provinces``; legacy units and
the old → new conversion from the data of ``vietnamadminunits``; nationalities from
``pycountry``. See docs/dictionary.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from lienthong.dictionary.admin_units import (
    Commune,
    Province,
    commune,
    communes,
    find_commune,
    find_province,
    is_commune_code,
    is_province_code,
    province,
    provinces,
)
from lienthong.dictionary.codelists import (
    ETHNIC_GROUPS,
    NATIONALITIES,
    RELIGIONS,
    SEXES,
    CodeItem,
    Country,
    country,
    ethnic_group,
    religion,
)
from lienthong.dictionary.conversion import (
    Conversion,
    convert_legacy_address,
    legacy_commune,
    legacy_commune_to_current,
    legacy_province,
)
from lienthong.dictionary.legacy import (
    LegacyCommune,
    LegacyDistrict,
    LegacyProvince,
    legacy_index,
    legacy_provinces,
)


class _LegacyIdProvinces(Mapping[str, LegacyProvince]):
    """Personal-ID province code (``"001"`` … ``"096"``) → LegacyProvince, built on first use."""

    def _table(self) -> dict[str, LegacyProvince]:
        return legacy_id_provinces()

    def __getitem__(self, key: str) -> LegacyProvince:
        return self._table()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._table()

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


_ID_TABLE: dict[str, LegacyProvince] = {}


def legacy_id_provinces() -> dict[str, LegacyProvince]:
    """The 63 personal-ID province codes as a plain dict (fast membership tests)."""
    if not _ID_TABLE:
        _ID_TABLE.update({p.id_code: p for p in legacy_provinces().values()})
    return _ID_TABLE


LEGACY_ID_PROVINCES: Mapping[str, LegacyProvince] = _LegacyIdProvinces()

__all__ = [
    "ETHNIC_GROUPS",
    "LEGACY_ID_PROVINCES",
    "NATIONALITIES",
    "RELIGIONS",
    "SEXES",
    "CodeItem",
    "Commune",
    "Conversion",
    "Country",
    "LegacyCommune",
    "LegacyDistrict",
    "LegacyProvince",
    "Province",
    "commune",
    "communes",
    "convert_legacy_address",
    "country",
    "ethnic_group",
    "find_commune",
    "find_province",
    "is_commune_code",
    "is_province_code",
    "legacy_commune",
    "legacy_commune_to_current",
    "legacy_id_provinces",
    "legacy_index",
    "legacy_province",
    "legacy_provinces",
    "province",
    "provinces",
    "religion",
]
