"""QA 10: duplicate source keys within one file drop — the first occurrence wins, the later
ones are quarantined with ``duplicate key (also at row N)``; a new drop repeats nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from synctools import Keys, citizen_pipeline, citizen_row, consolidated, make_rig

COLS = ["id", "so_dinh_danh", "ho_ten", "ngay_sinh", "gioi_tinh", "quoc_tich", "ma_tinh",
        "updated_at", "deleted"]  # fmt: skip


def _drop(path: Path, rows: list[tuple[object, ...]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLS)
        w.writerows(rows)


def test_duplicate_keys_in_a_drop_are_quarantined(tmp_path: Path, keys: Keys, hub_url: str) -> None:
    (tmp_path / "drop").mkdir()
    path = tmp_path / "drop" / "citizens.csv"
    rows = [citizen_row(i) for i in range(1, 31)]
    renamed = (*citizen_row(5)[:2], "LÊ VĂN KHÁC", *citizen_row(5)[3:])
    # row 31: key 5 again with another name (a later chunk); 32: key 12 again, identical;
    # 33 and 34: key 31 twice in the same chunk
    rows += [renamed, citizen_row(12), citizen_row(31), citizen_row(31)]
    _drop(path, rows)
    doc = citizen_pipeline(kind="files", path="drop", file="citizens.csv", batch_size=10)
    rig = make_rig(tmp_path, keys, doc, hub_url=hub_url)
    try:
        report = rig.agency.run()
        assert report.error is None and report.read == 34
        assert (report.applied, report.quarantined) == (30, 4)  # 29 valid + 31; 7 is defective
        current = consolidated(rig.store)
        assert current["5"]["full_name"] != "Lê Văn Khác"  # the first occurrence, not the last
        entries = rig.store.conn.execute(
            "SELECT source_key, position, reasons FROM sync_quarantine ORDER BY id"
        ).fetchall()
        dup = {(k, p): json.loads(r) for k, p, r in entries if "duplicate" in r}
        assert len(entries) == 4
        assert dup == {
            ("5", "citizens.csv:31"): ["key: duplicate key (also at row 5)"],
            ("12", "citizens.csv:32"): ["key: duplicate key (also at row 12)"],
            ("31", "citizens.csv:34"): ["key: duplicate key (also at row 33)"],
        }
        # a new drop (one more row): the same duplicates are counted, not entered again, and
        # key 5 does not flip-flop between its two versions
        _drop(path, [*rows, citizen_row(40)])
        again = rig.agency.run()
        assert again.read == 35 and again.quarantined == 4
        assert rig.store.conn.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0] == 4
        assert rig.store.conn.execute("SELECT count(*) FROM h_citizen").fetchone()[0] == 0
    finally:
        rig.close()
