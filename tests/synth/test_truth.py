"""The ground truth matches what was written: links resolve, labelled defects are visible,
unlabelled rows pass the shared validators, and labelled defects break the rules they should."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from lienthong.dictionary.record import record_validator
from lienthong.errors import InputError
from lienthong.synth.checks import MAPPINGS, to_record
from lienthong.synth.config import DefectRates, SynthConfig
from lienthong.synth.generator import build
from lienthong.synth.truth import link_index, read_truth_csv
from lienthong.validate import check_commune_code, check_personal_id, check_province_code
from lienthong.validate.dates import parse_date

from .conftest import SOURCES, Generated


def _keyed(g: Generated) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    out = {}
    manifest = _manifest(g)
    for source in SOURCES:
        for table in g.tables(source):
            key = manifest["sources"][source]["tables"][table]["key"]
            out[(source, table)] = {str(r[key]): r for r in g.rows(source, table)}
    return out


def _manifest(g: Generated) -> dict[str, Any]:
    return json.loads((g.out / "truth" / "manifest.json").read_text("utf-8"))


def test_every_row_has_exactly_one_link_and_every_link_resolves(generated: Generated) -> None:
    rows = _keyed(generated)
    citizens = {c["citizen_id"] for c in generated.csv("citizens.csv")}
    links = generated.csv("links.csv")
    by_table: dict[tuple[str, str], list[str]] = defaultdict(list)
    for link in links:
        assert link["citizen_id"] in citizens
        by_table[(link["source"], link["table"])].append(link["key"])
    assert set(by_table) == set(rows)
    for table, keys in by_table.items():
        assert len(keys) == len(set(keys)) == len(rows[table]), table
        assert set(keys) == set(rows[table]), table
    assert _manifest(generated)["links"] == len(links)


def test_population_register_is_the_truth(generated: Generated) -> None:
    truth = {c["citizen_id"]: c for c in generated.csv("citizens.csv")}
    register = generated.rows("population", "cong_dan")
    assert len(register) == len(truth) == generated.cfg.citizens
    for row in register:
        t = truth[row["so_dinh_danh"]]
        assert (row["ho_ten"], row["ngay_sinh"], row["gioi_tinh"]) == (
            t["full_name"], t["birth_date"], t["sex"],
        )  # fmt: skip
        assert row["noi_o_hien_tai_ma_xa"] == t["current_commune"]
        assert row["thuong_tru_ma_xa"] == t["permanent_commune"]
        assert (row["so_cmnd"] or "") == t["cmnd"]


def test_sources_cover_overlapping_subsets(generated: Generated) -> None:
    links = generated.csv("links.csv")
    people: dict[str, set[str]] = defaultdict(set)
    for link in links:
        people[link["source"]].add(link["citizen_id"])
    everyone = people["population"]
    assert len(everyone) == generated.cfg.citizens
    for source in ("health", "education", "tax"):
        assert people[source] < everyone, source
    assert people["health"] & people["education"] & people["tax"]
    assert people["education"] - people["tax"] and people["tax"] - people["education"]


def test_every_labelled_defect_is_visible_in_its_row(generated: Generated) -> None:
    rows = _keyed(generated)
    links = {
        (x["source"], x["table"], x["key"]): x["citizen_id"] for x in generated.csv("links.csv")
    }
    defects = generated.csv("defects.csv")
    seen_types = set()
    for d in defects:
        seen_types.add(d["defect"])
        table = rows[(d["source"], d["table"])]
        assert d["key"] in table, d
        assert d["original"] != d["injected"], d
        if d["defect"] == "duplicate":
            assert d["original"] in table
            assert (
                links[(d["source"], d["table"], d["original"])]
                == links[(d["source"], d["table"], d["key"])]
            )
            continue
        value = table[d["key"]][d["field"]]
        assert (value if value is not None else "") == d["injected"], d
    assert seen_types == set(_manifest(generated)["defect_rates"])


def test_rows_without_defects_pass_the_validators(generated: Generated) -> None:
    labelled = {(d["source"], d["table"], d["key"]) for d in generated.csv("defects.csv")
                if d["defect"] != "duplicate"}  # fmt: skip
    manifest = _manifest(generated)
    checked = 0
    for mapping in MAPPINGS:
        validate = record_validator(mapping.entity, None)
        key = manifest["sources"][mapping.source]["tables"][mapping.table]["key"]
        for row in generated.rows(mapping.source, mapping.table):
            if (mapping.source, mapping.table, str(row[key])) in labelled:
                continue
            _, reasons = validate(to_record(mapping, row))
            errors = [f"{r.code}: {r.message}" for r in reasons if r.severity == "error"]
            assert not errors, (mapping.table, row, errors)
            checked += 1
    assert checked > generated.cfg.citizens


def test_labelled_defects_break_the_rules_they_should(generated: Generated) -> None:
    truth = {c["citizen_id"]: c for c in generated.csv("citizens.csv")}
    links = {
        (x["source"], x["table"], x["key"]): x["citizen_id"] for x in generated.csv("links.csv")
    }
    counts: dict[str, int] = defaultdict(int)
    for d in generated.csv("defects.csv"):
        kind, value = d["defect"], d["injected"]
        citizen = truth[links[(d["source"], d["table"], d["key"])]]
        counts[kind] += 1
        if kind == "invalid_code" and d["field"] == "ma_xa":
            assert check_commune_code(value).codes == ["commune_unknown"], d
        elif kind == "invalid_code":
            assert check_province_code(value, legacy=True).codes == ["province_unknown"], d
        elif kind == "legacy_code":
            assert "commune_legacy_refused" in check_commune_code(value, legacy=False).codes, d
            assert check_commune_code(value).ok, d  # converted back to a current commune
        elif kind == "swapped_day_month":
            born = dt.date.fromisoformat(citizen["birth_date"])
            parsed = parse_date(value).value
            assert parsed is not None and parsed != born, d
            assert (parsed.day, parsed.month) == (born.month, born.day), d
        elif kind == "mistyped_id":
            assert d["original"] in (citizen["citizen_id"], citizen["cmnd"]), d
            assert len(value) == len(d["original"]), d
            assert sum(a != b for a, b in zip(value, d["original"], strict=True)) in (1, 2), d
        elif kind == "missing":
            assert value == "", d
        elif kind == "stale_address" and d["field"] == "ma_xa":
            assert value == citizen["previous_commune"], d
    assert all(counts[k] > 0 for k in ("invalid_code", "legacy_code", "swapped_day_month"))


def test_exports_hold_the_same_rows_as_the_tax_database(generated: Generated) -> None:
    people = generated.rows("tax", "nguoi_nop_thue")
    with (generated.out / "tax" / "nguoi_nop_thue.csv").open(encoding="utf-8", newline="") as fh:
        exported = list(csv.DictReader(fh))
    as_text = [{k: "" if v is None else str(v) for k, v in r.items()} for r in people]
    assert exported == as_text
    book = load_workbook(generated.out / "tax" / "doanh_nghiep.xlsx", read_only=True)
    sheet = book["doanh_nghiep"]
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    book.close()
    businesses = generated.rows("tax", "doanh_nghiep")
    assert values[0] == list(businesses[0])
    assert values[1:] == [list(r.values()) for r in businesses]


def test_personal_ids_in_the_truth_are_valid_and_unique(generated: Generated) -> None:
    citizens = generated.csv("citizens.csv")
    assert len({c["citizen_id"] for c in citizens}) == len(citizens)
    for c in citizens:
        check = check_personal_id(c["citizen_id"], sex=c["sex"], birth_date=c["birth_date"])
        assert check.ok, (c, check)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 120), st.integers(0, 2**32), st.sampled_from([0.0, 0.05, 0.3, 0.5]))
def test_labels_match_rows_for_any_size_seed_and_rate(n: int, seed: int, rate: float) -> None:
    world = build(SynthConfig(citizens=n, seed=seed, rates=DefectRates.uniform(rate)))
    tables = {(s.name, t.name): t for s in world.sources for t in s.tables}
    index = {k: {str(key): i for i, key in enumerate(t.data[t.key])} for k, t in tables.items()}
    for k, t in tables.items():
        assert len(index[k]) == len(t), "duplicate keys"
    for d in world.ctx.defects:
        table = tables[(d.source, d.table)]
        row = index[(d.source, d.table)][d.key]
        if d.defect == "duplicate":
            original = index[(d.source, d.table)][d.original]
            assert table.citizens[row] == table.citizens[original]
        else:
            assert (table.data[d.field][row] or "") == d.injected
    if rate == 0.0:
        assert world.ctx.defects == []


def test_truth_readers(generated: Generated) -> None:
    folder = generated.out / "truth"
    links = link_index(folder)
    assert len(links) == generated.report["links"]
    first = next(read_truth_csv(folder, "citizens.csv"))
    assert links[("population", "cong_dan", first["citizen_id"])] == first["citizen_id"]
    with pytest.raises(InputError):
        next(read_truth_csv(folder, "manifest.json"))
    with pytest.raises(InputError):
        next(read_truth_csv(generated.out, "links.csv"))
