"""Health insurance (BHXH / thẻ BHYT): the social-insurance agency's card register.

Conventions of this source (not defects): names in UPPER CASE without diacritics, dates as
``dd/mm/yyyy`` text, sex as ``NAM``/``NU``, old three-level addresses (xã, huyện, tỉnh as
before 1 Jul 2025) and the legacy GSO province code of the issuing office, 15-character card
numbers (Decision 1351/QĐ-BHXH). Older records hold the 9-digit CMND instead of the personal
ID, and some hold no ID number at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from random import Random

from lienthong.dictionary.text import strip_diacritics
from lienthong.synth.model import Column, Source, Table
from lienthong.synth.sources import common
from lienthong.synth.sources.base import BuildContext, make_table, select, unique_serials

NAME = "health"
TITLE = "CSDL quốc gia về bảo hiểm — thẻ BHYT (health insurance)"
WITHOUT_ID = 0.06  # records never updated with any ID number
CMND_INSTEAD = 0.3  # of those holding a CMND, the share whose record still carries it

COLUMNS = (
    Column("ma_the", size=15, nullable=False, doc="card number: group, level, province, BHXH no."),
    Column("ma_so_bhxh", size=10, nullable=False, doc="10-digit social-insurance number"),
    Column("ho_ten", size=100, doc="full name, UPPER CASE without diacritics"),
    Column("ngay_sinh", size=10, doc="date of birth, dd/mm/yyyy"),
    Column("gioi_tinh", size=3, doc="NAM or NU"),
    Column("so_cccd", size=12, doc="personal ID (12 digits) or old CMND (9 digits)"),
    Column("dia_chi", size=250, doc="address, old three-level form"),
    Column("ma_tinh", size=2, doc="legacy (pre-2025) province code of the issuing office"),
    Column("ma_dkbd", size=5, doc="registered primary-care facility (nơi đăng ký KCB ban đầu)"),
    Column("gia_tri_tu", size=10, doc="valid from, dd/mm/yyyy"),
    Column("gia_tri_den", size=10, doc="valid to, dd/mm/yyyy"),
)


# Beneficiary group + benefit level by age band (Decision 1351/QĐ-BHXH codes): for each band
# its upper age bound (exclusive) and (cumulative share, code) pairs.
_GROUPS_BY_AGE = (
    (6, ((1.0, "TE1"),)),  # children under 6
    (18, ((1.0, "HS4"),)),  # pupils
    (23, ((0.5, "SV4"), (1.0, "GD4"))),  # students or household members
    (60, ((0.45, "DN4"), (0.55, "HC4"), (0.6, "CN1"), (1.0, "GD4"))),  # workers, civil servants
    (999, ((0.4, "HT2"), (1.0, "GD4"))),  # retirees
)
GROUPS = tuple(sorted({code for _, band in _GROUPS_BY_AGE for _, code in band}))


def _group(age: int, r: float) -> str:
    for upper, band in _GROUPS_BY_AGE:
        if age < upper:
            return next(code for edge, code in band if r < edge)
    return "GD4"


def _rows(
    ctx: BuildContext, rng: Random, who: list[int], serials: Iterator[int]
) -> dict[str, list[object]]:
    c, p, geo, r = ctx.citizens, ctx.citizens.places, ctx.geo, rng.random
    upper: dict[str, str] = {}  # name part → UPPER CASE without diacritics (few distinct parts)

    def up(part: str) -> str:
        hit = upper.get(part)
        if hit is None:
            hit = upper[part] = strip_diacritics(part).upper()
        return hit

    rows: dict[str, list[object]] = {col.name: [] for col in COLUMNS}
    start, ages = ctx.as_of.toordinal() - 365, ctx.ages
    valid_from: list[int] = []
    for i in who:
        tail, province = geo.legacy_address(p.current[i], r())
        bhxh = f"{province}{next(serials):08d}"
        cmnd = c.cmnd[i]
        person_id = None if r() < WITHOUT_ID else c.personal_id[i]
        if person_id and cmnd and r() < CMND_INSTEAD:
            person_id = cmnd
        valid_from.append(start + int(r() * 365))
        rows["ma_the"].append(f"{_group(ages[i], r())}{province}{bhxh}")
        rows["ma_so_bhxh"].append(bhxh)
        rows["ho_ten"].append(f"{up(c.family[i])} {up(c.middle[i])} {up(c.given[i])}")
        rows["gioi_tinh"].append("NAM" if c.sex[i] == "1" else "NU")
        rows["so_cccd"].append(person_id)
        rows["dia_chi"].append(f"{p.current_detail[i]}, {tail}")
        rows["ma_tinh"].append(province)
        rows["ma_dkbd"].append(f"{province}{int(r() * 200) + 1:03d}")
    rows["ngay_sinh"] = list(ctx.dates.dmy_of([c.birth[i] for i in who]))
    rows["gia_tri_tu"] = list(ctx.dates.dmy_of(valid_from))
    rows["gia_tri_den"] = list(ctx.dates.dmy_of([day + 364 for day in valid_from]))
    return rows


def _inject(
    ctx: BuildContext, rng: Random, table: Table, who: list[int], serials: Iterator[int]
) -> None:
    rates, geo, p = ctx.cfg.rates, ctx.geo, ctx.citizens.places
    inj = ctx.injector(NAME, rng)

    def new_card(i: int) -> dict[str, object]:
        province = table.data["ma_tinh"][i]
        bhxh = f"{province}{next(serials):08d}"
        return {"ma_the": f"{table.data['ma_the'][i][:3]}{province}{bhxh}", "ma_so_bhxh": bhxh}

    dup = inj.duplicate(table, rates.duplicate, new_card)
    who.extend(who[i] for i in dup)

    def old_address(k: int) -> str:
        return f"{p.previous_detail[k]}, {geo.legacy_address(p.previous[k] or '', rng.random())[0]}"

    legacy_codes = sorted({code for olds in geo.legacy_provinces_of.values() for code in olds})
    inj.apply_plan(table, rates, [
        ("typo", ("ho_ten", "dia_chi"), common.typo_in(rng)),
        ("lost_diacritics", ("dia_chi",), common.diacritics_lost()),
        ("swapped_day_month", ("ngay_sinh",), common.day_month_swapped()),
        ("invalid_code", ("ma_tinh",), common.invalid_code(rng, legacy_codes, 2)),
        ("missing", ("so_cccd", "gioi_tinh", "dia_chi"), None),
        ("stale_address", ("dia_chi",), common.stale(who, p.previous, old_address)),
        ("mistyped_id", ("so_cccd",), common.id_mistyped(rng)),
    ])  # fmt: skip


def build_health(ctx: BuildContext) -> Source:
    """The card register: about ``coverage.health`` of all citizens, any age."""
    rng = ctx.rng(NAME)
    who = select(rng, list(range(len(ctx.citizens))), ctx.cfg.coverage.health)
    serials = iter(unique_serials(rng, 2 * len(who) + 10, 8))
    rows = _rows(ctx, rng, who, serials)
    pids = ctx.citizens.personal_id
    table = make_table("the_bhyt", COLUMNS, "ma_the", rows, [pids[i] for i in who],
                       doc="health-insurance cards (thẻ BHYT)")  # fmt: skip
    _inject(ctx, rng, table, who, serials)
    return Source(NAME, TITLE, [table])
