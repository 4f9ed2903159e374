"""Education (CSDL ngành giáo dục): pupils and students, as schools entered them.

Conventions of this source (not defects): the name split in three fields (họ, đệm, tên), dates
of birth in whatever format the school's software used (dd/mm/yyyy, yyyy-mm-dd, d/m/yyyy,
dd-mm-yyyy), sex as ``Nam``/``Nữ``, ethnic group by name rather than code, and no personal ID
for a large share of rows (``coverage.education_without_id``).
"""

from __future__ import annotations

from random import Random

from lienthong.dictionary.categories import ETHNIC_GROUPS
from lienthong.synth.model import Column, Source, Table
from lienthong.synth.sources import common
from lienthong.synth.sources.base import BuildContext, make_table, select, unique_serials

NAME = "education"
TITLE = "CSDL ngành giáo dục (education)"
UNIVERSITY_SHARE = 0.3  # of those aged 18–22 who are enrolled somewhere

COLUMNS = (
    Column("ma_hoc_sinh", size=10, nullable=False, doc="student code"),
    Column("ho", size=30, doc="family name (họ)"),
    Column("dem", size=40, doc="middle name (chữ đệm)"),
    Column("ten", size=30, doc="given name (tên)"),
    Column("ngay_sinh", size=10, doc="date of birth, mixed formats"),
    Column("gioi_tinh", size=3, doc="Nam or Nữ"),
    Column("ma_dinh_danh", size=12, doc="personal ID, often not entered"),
    Column("dan_toc", size=30, doc="ethnic group name"),
    Column("ma_xa", size=5, doc="commune code of residence (current)"),
    Column("dia_chi", size=250, doc="address, two-level form"),
    Column("cap_hoc", size=10, doc="TH, THCS, THPT or DH"),
    Column("lop", size=10, doc="class or study year"),
    Column("ma_truong", size=12, doc="school code"),
    Column("ten_truong", size=120, doc="school name"),
    Column("nam_hoc", size=9, doc="school year, e.g. 2025-2026"),
)


def _school(ctx: BuildContext, age: int, commune: str, x: float) -> tuple[str, str, str, str]:
    """(level, class, school code, school name) for a pupil of this age living here."""
    short = ctx.geo.commune_short[commune]
    if age <= 10:
        return "TH", f"{age - 5}{'ABCD'[int(x * 4)]}", f"TH{commune}", f"Trường Tiểu học {short}"
    if age <= 14:
        return "THCS", f"{age - 5}A{int(x * 6) + 1}", f"THCS{commune}", f"Trường THCS {short}"
    if age <= 17:
        return "THPT", f"{age - 5}A{int(x * 9) + 1}", f"THPT{commune}", f"Trường THPT {short}"
    province = ctx.geo.commune_province[commune]
    name = ctx.geo.province_name[province].removeprefix("Tỉnh ").removeprefix("Thành phố ")
    return "DH", f"K{ctx.as_of.year - age + 18}", f"DH{province}", f"Trường Đại học {name}"


def _date_text(ctx: BuildContext, ordinal: int, x: float) -> str:
    d = ctx.dates
    i = ordinal - d.base
    if x < 0.5:
        return d.dmy[i]
    if x < 0.8:
        return d.iso[i]
    if x < 0.9:
        return f"{d.days[i]}/{d.months[i]}/{d.iso[i][:4]}"
    return d.dmy[i].replace("/", "-")


def _rows(ctx: BuildContext, rng: Random, who: list[int]) -> dict[str, list[object]]:
    c, p, geo, r = ctx.citizens, ctx.citizens.places, ctx.geo, rng.random
    ethnic = {code: item.name for code, item in ETHNIC_GROUPS.items()}
    rows: dict[str, list[object]] = {col.name: [] for col in COLUMNS}
    codes = unique_serials(rng, len(who), 8)
    no_id, year = ctx.cfg.coverage.education_without_id, ctx.as_of.year
    for n, i in enumerate(who):
        home = p.current[i]
        level, klass, school, school_name = _school(ctx, ctx.ages[i], home, r())
        values = (
            f"{geo.commune_province[home]}{codes[n]:08d}", c.family[i], c.middle[i], c.given[i],
            _date_text(ctx, c.birth[i], r()), "Nam" if c.sex[i] == "1" else "Nữ",
            None if r() < no_id else c.personal_id[i], ethnic[c.ethnicity[i]], home,
            f"{p.current_detail[i]}, {geo.address(home)}", level, klass, school, school_name,
            f"{year - 1}-{year}",
        )  # fmt: skip
        for col, value in zip(COLUMNS, values, strict=True):
            rows[col.name].append(value)
    return rows


def _inject(ctx: BuildContext, rng: Random, table: Table, who: list[int]) -> None:
    rates, geo, p = ctx.cfg.rates, ctx.geo, ctx.citizens.places
    inj = ctx.injector(NAME, rng)
    used = set(table.data["ma_hoc_sinh"])

    def new_code(i: int) -> dict[str, object]:  # a transfer re-registered at another school
        code = table.data["ma_hoc_sinh"][i]
        while code in used:
            code = f"{code[:2]}{int(rng.random() * 10**8):08d}"
        used.add(code)
        return {"ma_hoc_sinh": code}

    who.extend(who[i] for i in inj.duplicate(table, rates.duplicate, new_code))
    names = ("ho", "dem", "ten", "dia_chi")
    inj.apply_plan(table, rates, [
        ("typo", names, common.typo_in(rng)),
        ("lost_diacritics", names, common.diacritics_lost()),
        ("swapped_day_month", ("ngay_sinh",), common.day_month_swapped()),
        ("invalid_code", ("ma_xa",), common.invalid_commune(rng, geo)),
        ("legacy_code", ("ma_xa",), common.legacy_commune(rng, geo)),
        ("missing", ("ngay_sinh", "gioi_tinh", "ma_xa", "dan_toc"), None),
        ("mistyped_id", ("ma_dinh_danh",), common.id_mistyped(rng)),
    ])  # fmt: skip

    def stale(row: int) -> tuple[str, str] | None:
        k = who[row]
        old = p.previous[k]
        if old is None:
            return None
        return old, f"{p.previous_detail[k]}, {geo.address(old)}"

    inj.apply_together(table, "stale_address", rates.stale_address, ("ma_xa", "dia_chi"), stale)


def build_education(ctx: BuildContext) -> Source:
    """Pupils aged 6–17 (``coverage.education``) and some students aged 18–22."""
    rng = ctx.rng(NAME)
    share = ctx.cfg.coverage.education
    pupils = [i for i, age in enumerate(ctx.ages) if 6 <= age <= 17]
    adults = [i for i, age in enumerate(ctx.ages) if 18 <= age <= 22]
    who = sorted(select(rng, pupils, share) + select(rng, adults, share * UNIVERSITY_SHARE))
    pids = ctx.citizens.personal_id
    table = make_table(
        "hoc_sinh", COLUMNS, "ma_hoc_sinh", _rows(ctx, rng, who), [pids[i] for i in who],
        doc="pupils and students (học sinh, sinh viên)",
    )  # fmt: skip
    _inject(ctx, rng, table, who)
    return Source(NAME, TITLE, [table])
