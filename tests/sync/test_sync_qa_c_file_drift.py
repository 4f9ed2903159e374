"""QA-C 2: schema drift of file drops — a column added, removed or retyped in a CSV, Excel
.xlsx, JSON Lines or Parquet drop is detected and reported, never silently mis-mapped."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from synctools import Keys, Rig, citizen_pipeline, citizen_row, make_rig

from lienthong.errors import ConfigError
from lienthong.sync.connectors.files import FileConnector
from lienthong.sync.drift import accept_schema

COLS = ["id", "so_dinh_danh", "ho_ten", "ngay_sinh", "gioi_tinh", "quoc_tich", "ma_tinh",
        "updated_at", "deleted"]  # fmt: skip
FORMATS = ["csv", "xlsx", "jsonl", "parquet"]


def write_drop(path: Path, rows: list[dict[str, Any]]) -> None:
    """One drop in the format of ``path``'s suffix; a key a row lacks is an empty cell (in
    JSON Lines: absent from that line)."""
    cols = list(dict.fromkeys(c for r in rows for c in r))
    fmt = path.suffix.lstrip(".")
    if fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, cols, restval="")
            w.writeheader()
            w.writerows(rows)
    elif fmt == "xlsx":
        wb = openpyxl.Workbook()
        ws = wb.active
        assert ws is not None
        ws.append(cols)
        for r in rows:
            ws.append([r.get(c) for c in cols])
        wb.save(path)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in rows]), path)


def citizens(n: int = 40) -> list[dict[str, Any]]:
    return [dict(zip(COLS, citizen_row(i), strict=True)) for i in range(1, n + 1)]


@pytest.fixture(params=FORMATS)
def drop(request: pytest.FixtureRequest, tmp_path: Path, keys: Keys) -> Iterator[Rig]:
    """A file-drop pipeline after its first run (40 rows, the schema recorded)."""
    (tmp_path / "drop").mkdir()
    name = f"citizens.{request.param}"
    write_drop(tmp_path / "drop" / name, citizens())
    rig = make_rig(tmp_path, keys, citizen_pipeline(kind="files", path="drop", file=name,
                                                    batch_size=15))  # fmt: skip
    report = rig.agency.run()
    assert report.error is None and report.read == 40
    yield rig
    rig.close()


def _path(rig: Rig) -> Path:
    table = rig.pipeline.tables[0]
    return rig.pipeline.base_dir / str(rig.pipeline.source.path) / str(table.file)


def _added(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # a sparse new column: only the rows from 20 on have it (the first JSON line lacks it)
    return [r | {"so_dien_thoai": f"09{i:08d}"} if i >= 20 else r for i, r in enumerate(rows)]


def _removed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{c: v for c, v in r.items() if c != "updated_at"} for r in rows]


def _retyped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r | {"deleted": "khong"} for r in rows]  # a number column now holds text


RETYPED = {"parquet": "int64 → string"}  # Parquet declares its types; others: of the values
CHANGES: dict[str, tuple[Callable[[list[dict[str, Any]]], list[dict[str, Any]]], str]] = {
    "added": (_added, "column so_dien_thoai added"),
    "removed": (_removed, "column updated_at removed"),
    "retyped": (_retyped, "column deleted retyped {retyped}"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_drift_in_a_new_drop_is_detected(drop: Rig, change: str) -> None:
    edit, expected = CHANGES[change]
    fmt = _path(drop).suffix.lstrip(".")
    expected = expected.format(retyped=RETYPED.get(fmt, "number → string"))
    applied = drop.store.conn.execute("SELECT count(*) FROM sync_batches").fetchone()[0]
    write_drop(_path(drop), edit(citizens()))
    with pytest.raises(ConfigError) as raised:
        drop.agency.run().raise_failure()
    assert raised.value.message.startswith(
        f"schema drift in source table citizens: {expected}; update the pipeline's mapping"
    )
    # nothing of the new drop was read or sent, and sync status shows why
    assert drop.store.conn.execute("SELECT count(*) FROM sync_batches").fetchone()[0] == applied
    assert drop.outbox.pending_count() == 0
    assert expected in str(drop.outbox.last_error("citizens"))
    # the documented procedure: accept the new schema, the run goes on with the new drop
    assert accept_schema(drop.pipeline, "citizens") == [{"table": "citizens", "accepted": expected}]
    report = drop.agency.run()
    assert report.error is None and report.read == 40


def test_jsonl_key_only_on_later_lines_is_a_column(tmp_path: Path) -> None:
    """A JSON Lines drop's columns are every key of every line, not the first line's keys."""
    path = tmp_path / "d.jsonl"
    rows = [{"id": 1, "ten": "An"}, {"id": 2, "ten": "Bình", "ghi_chu": "mới"}]
    write_drop(path, rows)
    conn = FileConnector(path, ["id"])
    assert conn.schema() == {"id": "number", "ten": "string", "ghi_chu": "string"}
    (chunk,) = conn.read(None, 10)
    assert chunk.columns == ["id", "ten", "ghi_chu"]
    assert chunk.rows == [(1, "An", None), (2, "Bình", "mới")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_types_of_each_format(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"d.{fmt}"
    rows = [
        {"id": 1, "ten": "An", "so": 3, "tien": 1.5, "trong": None},
        {"id": 2, "ten": "Bình", "so": 4, "tien": 2, "trong": None},
    ]
    write_drop(path, rows)
    types = FileConnector(path, ["id"]).schema()
    if fmt == "parquet":
        assert types == {"id": "int64", "ten": "string", "so": "int64", "tien": "double",
                         "trong": "empty"}  # fmt: skip
    else:
        assert types == {"id": "number", "ten": "string", "so": "number", "tien": "number",
                         "trong": "empty"}  # fmt: skip


def test_csv_values_are_typed_by_their_look(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "id,ngay,luc,so,ma\n1,01/02/1990,2024-01-01T08:00:00,1,01\n"
        '2,1990-02-01,2024-01-01 08:00,"1,5",HN\n',
        encoding="utf-8",
    )
    assert FileConnector(path, ["id"]).schema() == {
        "id": "number", "ngay": "date", "luc": "datetime", "so": "number", "ma": "number|string",
    }  # fmt: skip


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "jsonl"])
def test_empty_and_mixed_columns_are_no_false_drift(tmp_path: Path, keys: Keys, fmt: str) -> None:
    """A column without values fits any type (its first values teach it); a mixed column
    accepts drops with fewer of its types; a value of a new type is a drift."""
    (tmp_path / "drop").mkdir()
    path = tmp_path / "drop" / f"citizens.{fmt}"
    base = citizens(30)
    write_drop(path, [r | {"ghi_chu": None, "so_nha": "12A" if i % 2 else 12}
                      for i, r in enumerate(base)])  # fmt: skip
    rig = make_rig(tmp_path, keys, citizen_pipeline(kind="files", path="drop",
                                                    file=path.name))  # fmt: skip
    try:
        assert rig.agency.run().error is None
        assert (rig.outbox.schema("citizens") or {})["so_nha"] == "number|string"
        write_drop(path, [r | {"ghi_chu": "đã xác minh", "so_nha": "7B"} for r in base])
        assert rig.agency.run().error is None  # no drift: the empty column got its type
        assert (rig.outbox.schema("citizens") or {})["ghi_chu"] == "string"
        write_drop(path, [r | {"ghi_chu": 5, "so_nha": "7B"} for r in base])
        with pytest.raises(ConfigError, match="column ghi_chu retyped string → number"):
            rig.agency.run().raise_failure()
    finally:
        rig.close()


def test_states_recorded_before_file_types_do_not_drift(drop: Rig) -> None:
    """File schemas recorded untyped (every column "text") learn their types on the next run
    instead of reporting every column as retyped."""
    typed = drop.outbox.schema("citizens") or {}
    drop.outbox.set_field("citizens", "schema", {c: "text" for c in typed}, "2026-12-01T00:00:00")
    report = drop.agency.run()
    assert report.error is None and report.warnings == []
    assert drop.outbox.schema("citizens") == typed
