"""Places for synthetic citizens, drawn from the shared category lists (never typed by hand).

Adapter over :mod:`lienthong.dictionary.categories`: current communes (since 1 Jul 2025), the
63 legacy provinces whose codes start personal IDs, and — for the agencies that still write
three-level addresses — which legacy communes each current commune came from.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lienthong.dictionary.categories import communes, legacy_index, provinces


@dataclass(frozen=True, slots=True)
class LegacyPlace:
    """A pre-2025 commune that (wholly or partly) became a current commune."""

    code: str
    province_code: str  # legacy GSO code, e.g. "02" Hà Giang
    district_code: str
    address: str  # "Xã Tân Lập, Huyện Bắc Quang, Tỉnh Hà Giang"


@dataclass(frozen=True, slots=True)
class Geography:
    """Lookup tables the generator reads in its inner loops (plain dicts and tuples)."""

    communes: tuple[str, ...]
    commune_name: dict[str, str]
    commune_short: dict[str, str]
    commune_province: dict[str, str]
    commune_is_ward: dict[str, bool]
    province_name: dict[str, str]
    southern: frozenset[str]
    id_codes: tuple[str, ...]  # legacy personal-ID province codes, '001'…'096'
    id_weights: tuple[float, ...]  # cumulative, by number of legacy communes (a size proxy)
    id_communes: dict[str, tuple[str, ...]]  # ID code → current communes of that old province
    legacy_places: dict[str, tuple[LegacyPlace, ...]]  # current commune → its legacy communes
    legacy_only_codes: dict[str, tuple[str, ...]]  # current commune → legacy codes not reused
    legacy_provinces_of: dict[str, tuple[str, ...]]  # current province → legacy GSO codes
    invalid_communes: tuple[str, ...]  # 5-digit codes that are neither current nor legacy

    def address(self, commune_code: str) -> str:
        """Two-level address tail: 'Phường Ba Đình, Thành phố Hà Nội'."""
        province = self.province_name[self.commune_province[commune_code]]
        return f"{self.commune_name[commune_code]}, {province}"

    def legacy_address(self, commune_code: str, x: float) -> tuple[str, str]:
        """(old three-level address tail, legacy province code) for a current commune; ``x`` in
        [0, 1) picks one predecessor when several old communes were merged into it."""
        places = self.legacy_places.get(commune_code)
        if not places:  # 13 new communes have no recorded predecessor: two-level form
            olds = self.legacy_provinces_of[self.commune_province[commune_code]]
            return self.address(commune_code), olds[int(x * len(olds))]
        place = places[int(x * len(places))]
        return place.address, place.province_code


# Provinces of the South-East and the Mekong delta (codes 75–96) call hamlets "Ấp", not "Thôn".
_SOUTHERN_FROM_CODE = 70


def _province_title(name: str) -> str:
    """'Thành phố Hà Nội' stays; 'Cao Bằng' becomes 'Tỉnh Cao Bằng', as addresses write it."""
    return name if name.startswith("Thành phố ") else f"Tỉnh {name}"


@functools.cache
def geography() -> Geography:
    """Build the tables once (≈ 0.3 s, mostly the legacy index)."""
    current = communes()
    legacy = legacy_index()
    places: dict[str, list[LegacyPlace]] = {}
    id_communes: dict[str, set[str]] = {}
    legacy_count: dict[str, int] = {}
    for old in legacy.communes.values():
        province = legacy.provinces[old.province_code]
        district = legacy.districts[old.district_code]
        place = LegacyPlace(
            old.code,
            old.province_code,
            old.district_code,
            f"{old.name}, {district.name}, {province.full_name}",
        )
        for code in old.candidate_commune_codes:
            places.setdefault(code, []).append(place)
            id_communes.setdefault(province.id_code, set()).add(code)
        legacy_count[province.id_code] = legacy_count.get(province.id_code, 0) + 1
    current_codes = {c.code for c in current}
    id_codes = tuple(sorted(p.id_code for p in legacy.provinces.values()))
    cum, total = [], 0.0
    for code in id_codes:
        total += legacy_count.get(code, 1)
        cum.append(total)
    olds: dict[str, list[str]] = {}
    for old_province in legacy.provinces.values():
        olds.setdefault(old_province.current_province_code, []).append(old_province.code)
    known = current_codes | set(legacy.communes)
    return Geography(
        communes=tuple(c.code for c in current),
        commune_name={c.code: c.name for c in current},
        commune_short={c.code: c.short_name for c in current},
        commune_province={c.code: c.province_code for c in current},
        commune_is_ward={c.code: c.division_type == "phường" for c in current},
        province_name={p.code: _province_title(p.name) for p in provinces()},
        southern=frozenset(p.code for p in provinces() if int(p.code) >= _SOUTHERN_FROM_CODE),
        id_codes=id_codes,
        id_weights=tuple(cum),
        id_communes={k: tuple(sorted(v & current_codes)) for k, v in id_communes.items()},
        legacy_places={k: tuple(v) for k, v in places.items()},
        legacy_only_codes={
            k: tuple(p.code for p in v if p.code not in current_codes) for k, v in places.items()
        },
        legacy_provinces_of={k: tuple(sorted(v)) for k, v in olds.items()},
        invalid_communes=tuple(f"{i:05d}" for i in range(1, 33000) if f"{i:05d}" not in known),
    )
