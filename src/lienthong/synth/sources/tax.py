"""Tax (CSDL về thuế): individual taxpayers and businesses, exported as CSV and Excel.

Conventions of this source (not defects): 10-digit tax codes (mã số thuế) with their check
digit, 13-digit ``NNNNNNNNNN-BBB`` codes for branches, dates as ``dd/mm/yyyy``, the identity
document as number plus type (CCCD 12 digits or the older CMND 9 digits), two-level addresses
with the current commune code. Businesses name their legal representative (người đại diện),
which links them to a citizen.
"""

from __future__ import annotations

from collections.abc import Callable
from random import Random

from lienthong.synth.model import Column, Export, Source, Table
from lienthong.synth.sources import common
from lienthong.synth.sources.base import BuildContext, make_table, select
from lienthong.validate.tax import make_tax_code

NAME = "tax"
TITLE = "CSDL quốc gia về thuế (tax)"
BRANCH_SHARE = 0.12  # companies with one dependent unit (chi nhánh)
# Individuals got tax codes from 1998 on (most after the 2007 Personal Income Tax Law).
FIRST_PERSONAL_CODES = 729_755  # date(1999, 1, 1).toordinal()

PERSON_COLUMNS = (
    Column("mst", size=14, nullable=False, doc="tax code (mã số thuế), 10 digits"),
    Column("ho_ten", size=100, doc="full name"),
    Column("ngay_sinh", size=10, doc="date of birth, dd/mm/yyyy"),
    Column("loai_giay_to", size=4, doc="CCCD or CMND"),
    Column("so_giay_to", size=12, doc="identity document number"),
    Column("dia_chi", size=250, doc="address, two-level form"),
    Column("ma_xa", size=5, doc="commune code (current)"),
    Column("so_dien_thoai", size=10, doc="phone"),
    Column("co_quan_thue", size=60, doc="managing tax office"),
    Column("ngay_cap_mst", size=10, doc="date the tax code was issued, dd/mm/yyyy"),
    Column("trang_thai", size=20, doc="status"),
)
BUSINESS_COLUMNS = (
    Column("mst", size=14, nullable=False, doc="tax code, NNNNNNNNNN or NNNNNNNNNN-BBB"),
    Column("ten_doanh_nghiep", size=200, doc="business name"),
    Column("loai_hinh", size=4, doc="TNHH, CP, DNTN or HKD (household business)"),
    Column("nguoi_dai_dien", size=100, doc="legal representative's full name"),
    Column("so_giay_to_dai_dien", size=12, doc="representative's personal ID"),
    Column("dia_chi_tru_so", size=250, doc="head office address"),
    Column("ma_xa", size=5, doc="head office commune code"),
    Column("ngay_thanh_lap", size=10, doc="founding date, dd/mm/yyyy"),
    Column("nganh_nghe_chinh", size=120, doc="main activity"),
    Column("von_dieu_le", "int", doc="charter capital, VND"),
)
_KINDS = (("HKD", 0.55), ("TNHH", 0.85), ("CP", 0.95), ("DNTN", 1.0))


def _tax_codes(
    rng: Random, prefix: Callable[[int], str], who: list[int], seen: set[str]
) -> list[str]:
    """Valid 10-digit tax codes not in ``seen`` (then added to it), the first two digits
    from the citizen's province."""
    out: list[str] = []
    for i in who:
        code = None
        while code is None or code in seen:
            code = make_tax_code(f"{prefix(i)}{int(rng.random() * 10**7):07d}")
        seen.add(code)
        out.append(code)
    return out


def _person_rows(
    ctx: BuildContext, rng: Random, who: list[int], seen: set[str]
) -> dict[str, list[object]]:
    c, p, geo, d, r = ctx.citizens, ctx.citizens.places, ctx.geo, ctx.dates, rng.random
    rows: dict[str, list[object]] = {col.name: [] for col in PERSON_COLUMNS}
    rows["mst"] = list(_tax_codes(rng, lambda i: c.personal_id[i][1:3], who, seen))
    for i in who:
        home = p.current[i]
        use_cmnd = c.cmnd[i] is not None and r() < 0.25
        issued = max(c.birth[i] + 18 * 366, FIRST_PERSONAL_CODES) + int(r() * 4000)
        rows["ho_ten"].append(c.full_name[i])
        rows["ngay_sinh"].append(d.dmy[c.birth[i] - d.base])
        rows["loai_giay_to"].append("CMND" if use_cmnd else "CCCD")
        rows["so_giay_to"].append(c.cmnd[i] if use_cmnd else c.personal_id[i])
        rows["dia_chi"].append(f"{p.current_detail[i]}, {geo.address(home)}")
        rows["ma_xa"].append(home)
        rows["so_dien_thoai"].append(c.phone[i])
        office = geo.province_name[geo.commune_province[home]]
        rows["co_quan_thue"].append(f"Thuế {office[0].lower()}{office[1:]}")
        rows["ngay_cap_mst"].append(d.dmy[min(issued, ctx.as_of.toordinal() - 1) - d.base])
        rows["trang_thai"].append("Đang hoạt động" if r() < 0.92 else "Ngừng hoạt động")
    return rows


def _business_rows(
    ctx: BuildContext, rng: Random, who: list[int], seen: set[str]
) -> tuple[dict[str, list[object]], list[int]]:
    c, geo, vocab, d, r = ctx.citizens, ctx.geo, ctx.vocab, ctx.dates, rng.random
    rows: dict[str, list[object]] = {col.name: [] for col in BUSINESS_COLUMNS}
    owners: list[int] = []
    codes = _tax_codes(rng, lambda i: c.personal_id[i][1:3], who, seen)
    for code, i in zip(codes, who, strict=True):
        x = r()
        kind = next(k for k, edge in _KINDS if x < edge)
        word = vocab.business_words[int(r() * len(vocab.business_words))]
        trade = vocab.business_fields[int(r() * len(vocab.business_fields))]
        name = {
            "HKD": f"Hộ kinh doanh {c.full_name[i]}",
            "TNHH": f"Công ty TNHH {trade} {word}",
            "CP": f"Công ty Cổ phần {trade} {word}",
            "DNTN": f"Doanh nghiệp tư nhân {word}",
        }
        office = geo.communes[int(r() * len(geo.communes))] if r() < 0.3 else c.places.current[i]
        units = [code] + ([f"{code}-001"] if kind in ("TNHH", "CP") and r() < BRANCH_SHARE else [])
        founded = d.dmy[ctx.as_of.toordinal() - 1 - int(r() * 7000) - d.base]
        street = vocab.streets[int(r() * len(vocab.streets))]
        address = f"Số {int(r() * 300) + 1} {street}, {geo.address(office)}"
        activity = vocab.activities[int(r() * len(vocab.activities))]
        capital = (int(r() * 200) + 1) * 10**8 if kind != "HKD" else (int(r() * 50) + 1) * 10**7
        for unit in units:
            suffix = " - Chi nhánh" if "-" in unit else ""
            values = (
                unit, name[kind] + suffix, kind, c.full_name[i], c.personal_id[i], address,
                office, founded, activity, capital,
            )  # fmt: skip
            for col, value in zip(BUSINESS_COLUMNS, values, strict=True):
                rows[col.name].append(value)
            owners.append(i)
    return rows, owners


def _inject(
    ctx: BuildContext, rng: Random, people: Table, who: list[int], biz: Table, seen: set[str]
) -> None:
    rates, geo, p = ctx.cfg.rates, ctx.geo, ctx.citizens.places
    inj = ctx.injector(NAME, rng)

    def second_code(i: int) -> dict[str, object]:  # registered twice: a second tax code
        return {"mst": _tax_codes(rng, lambda _i: people.data["mst"][i][:2], [i], seen)[0]}

    who.extend(who[i] for i in inj.duplicate(people, rates.duplicate, second_code))
    plan: list[tuple[str, tuple[str, ...], common.Mutation | None]] = [
        ("typo", ("ho_ten", "dia_chi"), common.typo_in(rng)),
        ("lost_diacritics", ("ho_ten", "dia_chi"), common.diacritics_lost()),
        ("swapped_day_month", ("ngay_sinh",), common.day_month_swapped()),
        ("invalid_code", ("ma_xa",), common.invalid_commune(rng, geo)),
        ("legacy_code", ("ma_xa",), common.legacy_commune(rng, geo)),
        ("missing", ("ngay_sinh", "so_giay_to", "dia_chi", "so_dien_thoai"), None),
        ("mistyped_id", ("so_giay_to",), common.id_mistyped(rng)),
    ]
    inj.apply_plan(people, rates, plan)

    def stale(row: int) -> tuple[str, str] | None:
        k = who[row]
        old = p.previous[k]
        return None if old is None else (old, f"{p.previous_detail[k]}, {geo.address(old)}")

    inj.apply_together(people, "stale_address", rates.stale_address, ("ma_xa", "dia_chi"), stale)
    inj.apply_plan(biz, rates, [
        ("typo", ("nguoi_dai_dien",), common.typo_in(rng)),
        ("lost_diacritics", ("nguoi_dai_dien", "dia_chi_tru_so"), common.diacritics_lost()),
        ("legacy_code", ("ma_xa",), common.legacy_commune(rng, geo)),
        ("missing", ("so_giay_to_dai_dien",), None),
        ("mistyped_id", ("so_giay_to_dai_dien",), common.id_mistyped(rng)),
    ])  # fmt: skip


def build_tax(ctx: BuildContext) -> Source:
    """Individual taxpayers (aged 18–70) and businesses with their representatives."""
    rng = ctx.rng(NAME)
    cov, pids = ctx.cfg.coverage, ctx.citizens.personal_id
    who = select(rng, [i for i, a in enumerate(ctx.ages) if 18 <= a <= 70], cov.tax)
    bosses = select(rng, [i for i, a in enumerate(ctx.ages) if 22 <= a <= 70], cov.business)
    seen: set[str] = set()
    people = make_table(
        "nguoi_nop_thue", PERSON_COLUMNS, "mst", _person_rows(ctx, rng, who, seen),
        [pids[i] for i in who], doc="individual taxpayers (người nộp thuế cá nhân)",
    )  # fmt: skip
    rows, owners = _business_rows(ctx, rng, bosses, seen)
    biz = make_table(
        "doanh_nghiep", BUSINESS_COLUMNS, "mst", rows, [pids[i] for i in owners],
        doc="businesses and household businesses (doanh nghiệp, hộ kinh doanh)",
    )  # fmt: skip
    _inject(ctx, rng, people, who, biz, seen)
    exports = [
        Export("nguoi_nop_thue", "nguoi_nop_thue.csv", "csv"),
        Export("doanh_nghiep", "doanh_nghiep.xlsx", "xlsx"),
    ]
    return Source(NAME, TITLE, [people, biz], exports)
