"""Pipeline files: typed, every error at once with its location; secrets only by reference."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from synctools import Keys, citizen_pipeline, make_rig, make_sqlite_source

from lienthong.errors import ConfigError
from lienthong.sync.connectors import open_connectors
from lienthong.sync.mapping import Mapper, dictionary_validator
from lienthong.sync.model import Chunk
from lienthong.sync.pipeline import load_pipeline, pipeline_from_dict
from lienthong.sync.secrets import check_no_plaintext, resolve_secret

BAD = """
source_id = "X"
colour = "blue"
[source]
kind = "oracle"
[[tables]]
name = "t"
key = []
batch_size = 0
classification = "ULTRA"
[tables.fields]
a = { to = "b", transform = "no_such" }
"""


def test_every_error_reported_at_once_with_location(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(BAD, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    msg = err.value.message
    for part in ("colour: unknown setting", "source.kind: 'oracle'", "tables[0].key",
                 "tables[0].entity: required", "tables[0].batch_size", "tables[0].classification",
                 "tables[0].fields.a.transform"):  # fmt: skip
        assert part in msg, part


def test_yaml_pipeline_and_postgres_dsn_must_be_a_reference(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "source_id: X\nsource: {kind: postgres, dsn: 'postgresql://u:pw@h/db'}\n"
        "tables: [{name: t, key: [id], entity: Citizen}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"source.dsn: must be a reference"):
        load_pipeline(path)


def test_secrets_by_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LT_TEST_DSN", "postgresql://127.0.0.1/x")
    assert resolve_secret({"$env": "LT_TEST_DSN"}, "dsn", tmp_path) == "postgresql://127.0.0.1/x"
    (tmp_path / "dsn.txt").write_text("mysql://root@127.0.0.1/x\n")
    assert resolve_secret({"$file": "dsn.txt"}, "dsn", tmp_path) == "mysql://root@127.0.0.1/x"
    with pytest.raises(ConfigError, match="reference"):
        resolve_secret("postgresql://u:pw@h/db", "dsn", tmp_path)
    with pytest.raises(ConfigError, match="plaintext password"):
        check_no_plaintext("host=h password=pw", "dsn")


def test_split_name_join_and_code_list(tmp_path: Path) -> None:
    doc = {
        "source_id": "GD.HN", "source": {"kind": "sqlite", "path": "x.db"},
        "tables": [{
            "name": "hoc_sinh", "key": ["ma"], "entity": "Student", "entity_schema": "free",
            "fields": {"ma": "student_id", "gt": {"to": "sex", "codes": {"1": "1", "0": "2"}}},
            "joins": {"ho_ten": {"to": "full_name", "from": ["ho", "dem", "ten"],
                                 "transform": "name"}},
        }],
    }  # fmt: skip
    spec = pipeline_from_dict(doc).tables[0]
    mapper = Mapper(spec, ["ma", "ho", "dem", "ten", "gt"])
    rows = [("A1", "PHẠM", "THỊ", "HOA", "0"), ("A2", "LÊ", None, "NAM", "9")]
    out = mapper.map_chunk(Chunk(["ma", "ho", "dem", "ten", "gt"], rows, {}))
    assert b'"full_name":"Ph\xe1\xba\xa1m Th\xe1\xbb\x8b Hoa"' in out.upserts[0][2]
    assert b'"sex":"2"' in out.upserts[0][2]
    assert out.quarantine[0][0] == "A2"
    assert out.quarantine[0][3] == ["sex: unknown_code: '9' is not in the code list"]


def _id_column_doc(**cmnd: object) -> dict[str, object]:
    return {
        "source_id": "BHXH.VN", "source": {"kind": "sqlite", "path": "x.db"},
        "tables": [{
            "name": "the_bhyt", "key": ["ma"], "entity": "Taxpayer",
            "fields": {
                "ma": "tax_code", "ten": "name", "loai": "taxpayer_type",
                "so": {"to": "personal_id", "transform": "drop_if_length", "format": "9"},
            },
            "joins": {"cmnd": {"to": "legacy_id_number", "from": ["so"],
                               "transform": "keep_if_length", **cmnd}},
        }],
    }  # fmt: skip


def test_one_column_of_mixed_ids_split_by_length() -> None:
    """A column holding 12-digit personal IDs and old 9-digit CMND numbers feeds two fields;
    every other length still reaches the personal-ID validator (and quarantine)."""
    spec = pipeline_from_dict(_id_column_doc(format="9")).tables[0]
    cols = ["ma", "ten", "loai", "so"]
    mapper = Mapper(spec, cols, validator=dictionary_validator("Taxpayer"))
    rows = [
        ("0101276396", "Lê Văn Nam", "ca_nhan", "001203004567"),
        ("0108743561", "Trần Thị Hoa", "ca_nhan", " 123456789 "),
        ("0111388934", "Phạm Minh Đức", "ca_nhan", "0012030045"),
        ("0120880645", "Võ Thị Lan", "ca_nhan", None),
    ]
    out = mapper.map_chunk(Chunk(cols, rows, {}))
    data = {key: body for key, _pos, body in out.upserts}
    assert b'"personal_id":"001203004567"' in data["0101276396"]
    assert b'"legacy_id_number":null' in data["0101276396"]
    assert b'"legacy_id_number":"123456789"' in data["0108743561"]
    assert b'"personal_id":null' in data["0108743561"]
    assert b'"personal_id":null' in data["0120880645"]
    [(key, *_rest, reasons)] = out.quarantine
    assert key == "0111388934" and any(r.startswith("personal_id: id_length") for r in reasons)


@pytest.mark.parametrize("cmnd", [{}, {"format": "nine"}, {"format": "0"}])
def test_length_transforms_need_a_length(cmnd: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"format: keep_if_length needs a length"):
        pipeline_from_dict(_id_column_doc(**cmnd))


def test_schema_drift_stops_or_continues(tmp_path: Path, keys: Keys) -> None:
    make_sqlite_source(tmp_path / "source.db", 100)
    rig = make_rig(tmp_path, keys, citizen_pipeline(cursor="updated_at"))
    assert rig.agency.run().read == 100
    db = sqlite3.connect(tmp_path / "source.db")
    db.execute("ALTER TABLE citizens ADD COLUMN so_dien_thoai TEXT")
    db.commit()
    with pytest.raises(ConfigError, match="schema drift in source table citizens: column "
                       "so_dien_thoai added"):  # fmt: skip
        rig.agency.run().raise_failure()
    rig.close()
    relaxed = citizen_pipeline(cursor="updated_at", on_added_columns="continue")
    rig = make_rig(tmp_path, keys, relaxed)
    report = rig.agency.run()
    assert report.warnings == ["citizens: column so_dien_thoai added"]
    db.execute("ALTER TABLE citizens DROP COLUMN quoc_tich")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="column quoc_tich removed"):
        rig.agency.run().raise_failure()
    rig.close()


def test_connectors_from_pipeline(tmp_path: Path) -> None:
    doc = citizen_pipeline(kind="files", path="drop", file="citizens.csv")
    conns = open_connectors(pipeline_from_dict(doc, base_dir=tmp_path))
    assert conns["citizens"].name == "citizens.csv"


def test_null_keys_quarantined_and_null_cursors_reported(tmp_path: Path, keys: Keys) -> None:
    make_sqlite_source(tmp_path / "source.db", 10)
    db = sqlite3.connect(tmp_path / "source.db")
    db.execute("CREATE TABLE people (id TEXT, name TEXT, updated_at TEXT)")
    db.executemany("INSERT INTO people VALUES (?, ?, ?)",
                   [("a", "A", "1"), (None, "no key", "2"), ("c", "no cursor", None)])  # fmt: skip
    db.commit()
    db.close()
    doc = citizen_pipeline(cursor="updated_at")
    doc["tables"] = [
        {
            "name": "people",
            "key": ["id"],
            "entity": "person",
            "cursor": "updated_at",
            "entity_schema": "free",
        }
    ]
    rig = make_rig(tmp_path, keys, doc)
    report = rig.agency.run()
    assert (report.read, report.applied, report.quarantined) == (2, 1, 1)
    assert report.warnings == ["people: 1 rows have a NULL updated_at and cannot be synchronised "
                               "in cursor mode"]  # fmt: skip
    reasons = rig.store.conn.execute("SELECT reasons FROM sync_quarantine").fetchone()[0]
    assert "empty source key" in reasons
    rig.close()


def _citizen_doc(**table: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": "cd", "key": ["id"], "entity": "Citizen",
        "fields": {"so": "personal_id", "ten": "full_name", "dan_toc": "ethnicity"},
    }  # fmt: skip
    spec.update(table)
    return {"source_id": "CA.HN", "source": {"kind": "sqlite", "path": "x.db"}, "tables": [spec]}


def test_classification_below_mapped_fields_is_refused() -> None:
    """QA2 #2: a PUBLIC table mapping PERSONAL/SENSITIVE fields would travel unencrypted."""
    with pytest.raises(ConfigError) as exc:
        pipeline_from_dict(_citizen_doc(classification="PUBLIC"))
    assert exc.value.details["errors"] == [
        "tables[0].classification: PUBLIC is below the level of the mapped fields of Citizen "
        "(PERSONAL/SENSITIVE); batches are encrypted at the table's classification"
    ]
    with pytest.raises(ConfigError, match=r"PERSONAL is below .* \(SENSITIVE\)"):
        pipeline_from_dict(_citizen_doc(classification="PERSONAL"))
    spec = pipeline_from_dict(_citizen_doc(classification="SENSITIVE")).tables[0]
    assert spec.classification.name == "SENSITIVE"


def test_entity_and_targets_must_be_in_the_dictionary() -> None:
    """QA2 #9: a typo in the entity or a target no longer disables validation silently."""
    with pytest.raises(ConfigError, match=r"'Citizn' is not an entity .*did you mean 'Citizen'"):
        pipeline_from_dict(_citizen_doc(entity="Citizn", classification="SENSITIVE"))
    typos = {"so": "personal_id", "ten": "ful_name", "dc": "dia_chi"}
    doc = _citizen_doc(classification="SENSITIVE", fields=typos)
    with pytest.raises(ConfigError) as exc:
        pipeline_from_dict(doc)
    assert any("'ful_name' is not a field of Citizen (did you mean 'full_name'?" in e
               for e in exc.value.details["errors"])  # fmt: skip
    assert any("'dia_chi' is not a field of Citizen" in e for e in exc.value.details["errors"])
    doc = _citizen_doc(
        classification="SENSITIVE", fields={"so": "personal_id", "cmnd": "personal_id"}
    )
    with pytest.raises(ConfigError, match=r"\['cmnd', 'so'\] all map to 'personal_id'"):
        pipeline_from_dict(doc)
    # the explicit opt-ins: an entity outside the dictionary, a deliberate extra target
    free = pipeline_from_dict(_citizen_doc(entity="Citizn", entity_schema="free")).tables[0]
    assert free.entity_schema == "free"
    extra = _citizen_doc(classification="SENSITIVE", extra_fields=["ghi_chu"],
                         fields={"so": "personal_id", "gc": "ghi_chu"})  # fmt: skip
    assert pipeline_from_dict(extra).tables[0].extra_fields == ("ghi_chu",)
