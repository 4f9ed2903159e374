"""The columnar fast path of the mapper gives exactly the results of the row-by-row path.

Same upserts (keys, positions, JSON bytes), same quarantine entries (raw values, every
reason, in order) on generated chunks full of defects: impossible dates, unknown codes, empty
and blank keys, mixed value types, personal IDs that disagree with sex or birth year.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.dictionary.categories import LEGACY_ID_PROVINCES
from lienthong.sync.mapping import Mapper, _fragments, dictionary_validator
from lienthong.sync.model import Chunk
from lienthong.sync.pipeline import pipeline_from_dict
from lienthong.validate import make_personal_id

COLUMNS = ["id", "so_dinh_danh", "ho_ten", "ngay_sinh", "gioi_tinh", "quoc_tich", "ma_tinh"]
CODES = sorted(LEGACY_ID_PROVINCES)


def _table(**extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "so_dinh_danh": "personal_id",
        "ho_ten": {"to": "full_name", "transform": "name", "required": True},
        "ngay_sinh": {"to": "date_of_birth", "transform": "date", "format": "%d/%m/%Y"},
        "gioi_tinh": "sex",
        "quoc_tich": "nationality",
    }
    fields.update(extra)
    return {
        "name": "citizens",
        "key": ["id"],
        "entity": "Citizen",
        "fields": fields,
        "extra_fields": ["province_now", "note", "country_note"],
    }


SPECS = [
    _table(),
    _table(  # code lists, a legacy-code transform, a constant, a field the dictionary lacks
        gioi_tinh={"to": "sex", "codes": {"Nam": "1", "Nữ": "2", "1": "1", "2": "2"}},
        ma_tinh={"to": "province_now", "transform": "legacy_province"},
        note={"value": "100% ok"},
        nationality={"value": "VN"},
        quoc_tich={"to": "country_note"},
    ),
    {
        "name": "citizens",
        "key": ["id", "quoc_tich"],
        "entity": "Citizen",
        "classification": "SENSITIVE",
    },  # columns as is
    {
        "name": "citizens",
        "key": ["id"],
        "entity": "NoSuchEntity",
        "entity_schema": "free",
    },  # no dictionary rules
]


def _mappers(table: dict[str, Any]) -> tuple[Mapper, Mapper]:
    spec = pipeline_from_dict(
        {"source_id": "S", "source": {"kind": "sqlite", "path": "x.db"}, "tables": [table]}
    ).tables[0]
    fast = Mapper(spec, COLUMNS, dictionary_validator(spec.entity))
    return fast, Mapper(spec, COLUMNS, dictionary_validator(spec.entity))


def _mostly(draw: st.DrawFn, good: Any, defects: list[Any]) -> Any:
    """``good`` four times in five, else one of ``defects``."""
    return good if draw(st.integers(0, 4)) else draw(st.sampled_from(defects))


@st.composite
def rows(draw: st.DrawFn, typed: bool = False) -> tuple[Any, ...]:
    """A source row; ``typed``: one type per column (what database sources give)."""
    sex = draw(st.sampled_from(["Nam", "Nữ", "nam", "F", "1", "2"]))
    sex = _mostly(draw, sex, ["x", "", None])
    born = draw(st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31)))
    male = sex in ("Nam", "nam", "1")
    pid: Any = make_personal_id(
        draw(st.sampled_from(CODES)), "1" if male else "2", born, draw(st.integers(0, 999_999))
    )
    pid = _mostly(draw, pid, [pid[:11], f" {pid} ", "999" + pid[3:], "", None,
                              pid.replace("0", "O"), pid[:3] + "4" + pid[4:], pid[:4] + "00" +
                              pid[6:], *([] if typed else [int(pid)])])  # fmt: skip
    date: Any = _mostly(draw, born.strftime("%d/%m/%Y"), ["31/02/1990", "1990-01-02", "",
                        None, "00/00/1985", *([] if typed else [born])])  # fmt: skip
    name = draw(st.sampled_from(["NGUYỄN VĂN AN", "trần  thị   bình", "H'HEN NIÊ", "Lò Văn Ơ"]))
    name = _mostly(draw, name, ["Lê 3", "", None, "AN", "Nguyen Van A", '"Quote" Ơ', "Tê\\n"])
    keys = st.integers(-5, 10**12)
    key = draw(keys if typed else st.one_of(keys, st.sampled_from(["", " ", " k1 ", "k2"])))
    nat = _mostly(draw, "VN", ["Việt Nam", "VNM", "XX", "", None, *([] if typed else [704])])
    tinh = _mostly(draw, "01", ["79", "99", "", None, "1"])
    return (key, pid, name, date, sex, nat, tinh)


@given(st.booleans().flatmap(lambda typed: st.lists(rows(typed), min_size=2, max_size=60)),
       st.integers(0, len(SPECS) - 1), st.booleans())  # fmt: skip
@settings(deadline=None, max_examples=200)
def test_columnar_equals_row_by_row(data: list[tuple[Any, ...]], which: int, locate: bool) -> None:
    fast, reference = _mappers(SPECS[which])
    where = (lambda i: f"file.csv:{i + 2}") if locate else None
    deletes = [(7,), ("k9",)]
    got = fast.map_chunk(Chunk(COLUMNS, data, {}, deletes, where))
    want = reference.map_row_by_row(Chunk(COLUMNS, data, {}, deletes, where))
    assert got.upserts == want.upserts
    assert got.quarantine == want.quarantine
    assert got.deletes == want.deletes


def test_columnar_on_a_clean_citizen_table_and_after_warm_memos() -> None:
    fast, reference = _mappers(SPECS[0])
    data = [
        (i, make_personal_id("001", "1" if i % 2 else "2", dt.date(1950 + i % 60, 1 + i % 12,
         1 + i % 28), i), "NGUYỄN VĂN AN", f"{1 + i % 28:02d}/{1 + i % 12:02d}/{1950 + i % 60}",
         "Nam" if i % 2 else "Nữ", "VN", None)
        for i in range(500)
    ]  # fmt: skip
    data[17] = (*data[17][:3], "31/02/1990", *data[17][4:])
    for _ in range(2):  # second pass: every memo warm
        got = fast.map_chunk(Chunk(COLUMNS, data, {}))
        want = reference.map_row_by_row(Chunk(COLUMNS, data, {}))
        assert got.upserts == want.upserts and got.quarantine == want.quarantine
        assert len(got.upserts) == 499 and got.quarantine[0][0] == "17"


values = st.one_of(
    st.none(),
    st.text(st.characters(), max_size=8),  # any code point, surrogates and controls included
    st.sampled_from(["Nguyễn", "a\x00b", "\x01", '"', "\\", "\u2028", "\x7f", ""]),
)


@given(st.one_of(st.lists(values, max_size=30), st.lists(st.sampled_from(["VN", None, "1"]),
       max_size=30), st.lists(st.one_of(st.none(), st.integers(), st.floats(), st.dates(),
       st.booleans()), max_size=30)))  # fmt: skip
@settings(deadline=None, max_examples=300)
def test_json_fragments_equal_orjson(col: list[Any]) -> None:
    try:
        want: Any = [orjson.dumps(v) for v in col]
    except orjson.JSONEncodeError:
        want = orjson.JSONEncodeError
    try:
        got: Any = _fragments(col)
    except orjson.JSONEncodeError:
        got = orjson.JSONEncodeError
    assert got == want
