"""The population register (CSDL quốc gia về dân cư): authoritative, clean, current codes.

Every citizen is here, with the current (post-2025) commune codes and ISO dates; the
residence-change table (di biến động cư trú) lists each dated move. No defects are injected:
this is the source of truth other agencies are reconciled against.
"""

from __future__ import annotations

from lienthong.synth.model import Column, Source
from lienthong.synth.sources.base import BuildContext, make_table

NAME = "population"
TITLE = "CSDL quốc gia về dân cư (population register)"

CITIZEN_COLUMNS = (
    Column("so_dinh_danh", size=12, nullable=False, doc="personal ID (số định danh cá nhân)"),
    Column("so_cmnd", size=9, doc="legacy 9-digit identity card (CMND), if one was issued"),
    Column("ho_ten", size=100, nullable=False, doc="full name, NFC"),
    Column("ngay_sinh", size=10, nullable=False, doc="date of birth, yyyy-mm-dd"),
    Column("gioi_tinh", size=1, nullable=False, doc="sex, ISO/IEC 5218: 1 male, 2 female"),
    Column("noi_dang_ky_khai_sinh", size=5, doc="commune code where the birth was registered"),
    Column("que_quan", size=5, doc="hometown commune code (quê quán)"),
    Column("thuong_tru_ma_xa", size=5, doc="permanent residence commune code (thường trú)"),
    Column("thuong_tru_chi_tiet", size=200, doc="permanent residence: house, street, hamlet"),
    Column("noi_o_hien_tai_ma_xa", size=5, doc="current residence commune code"),
    Column("noi_o_hien_tai_chi_tiet", size=200, doc="current residence: house, street, hamlet"),
    Column("dan_toc", size=2, doc="ethnic group code 01–54"),
    Column("ton_giao", size=2, doc="religion code, 00 none"),
    Column("quoc_tich", size=2, doc="nationality, ISO 3166-1 alpha-2"),
    Column("so_dien_thoai", size=10, doc="mobile phone, 0xxxxxxxxx"),
)
MOVE_COLUMNS = (
    Column("ma_bien_dong", "int", nullable=False, doc="event number"),
    Column("so_dinh_danh", size=12, nullable=False, doc="personal ID"),
    Column(
        "loai_bien_dong", size=20, nullable=False, doc="thuong_tru or tam_tru (dictionary codes)"
    ),
    Column("ma_xa_cu", size=5, doc="commune code before the move"),
    Column("ma_xa_moi", size=5, nullable=False, doc="commune code after the move"),
    Column("dia_chi_chi_tiet_moi", size=200, doc="new address: house, street, hamlet"),
    Column("ngay_hieu_luc", size=10, nullable=False, doc="effective date, yyyy-mm-dd"),
)


def build_population(ctx: BuildContext) -> Source:
    """Both tables of the population register."""
    c, p = ctx.citizens, ctx.citizens.places
    citizens = make_table(
        "cong_dan", CITIZEN_COLUMNS, "so_dinh_danh",
        {
            "so_dinh_danh": c.personal_id, "so_cmnd": c.cmnd, "ho_ten": c.full_name,
            "ngay_sinh": ctx.dates.iso_of(c.birth), "gioi_tinh": c.sex,
            "noi_dang_ky_khai_sinh": p.birth_commune, "que_quan": p.hometown,
            "thuong_tru_ma_xa": p.permanent, "thuong_tru_chi_tiet": p.permanent_detail,
            "noi_o_hien_tai_ma_xa": p.current, "noi_o_hien_tai_chi_tiet": p.current_detail,
            "dan_toc": c.ethnicity, "ton_giao": c.religion, "quoc_tich": c.nationality,
            "so_dien_thoai": c.phone,
        },
        list(c.personal_id), doc="citizens (công dân)",
    )  # fmt: skip
    pid = c.personal_id
    moved = [pid[m.citizen] for m in p.moves]
    moves = make_table(
        "di_bien_dong_cu_tru", MOVE_COLUMNS, "ma_bien_dong",
        {
            "ma_bien_dong": list(range(1, len(p.moves) + 1)), "so_dinh_danh": moved,
            "loai_bien_dong": [m.kind for m in p.moves],
            "ma_xa_cu": [m.from_commune for m in p.moves],
            "ma_xa_moi": [m.to_commune for m in p.moves],
            "dia_chi_chi_tiet_moi": [m.detail for m in p.moves],
            "ngay_hieu_luc": ctx.dates.iso_of([m.date for m in p.moves]),
        },
        list(moved), doc="residence changes (di biến động cư trú)",
    )  # fmt: skip
    return Source(NAME, TITLE, [citizens, moves])
