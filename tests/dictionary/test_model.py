"""The data dictionary: loading, self-consistency and record validation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from lienthong.classification import Level
from lienthong.dictionary import has_errors, load_dictionary, validate_record
from lienthong.dictionary.model import CATEGORIES
from lienthong.errors import ConfigError, NotFound
from lienthong.validate import make_personal_id
from lienthong.validate.registry import VALIDATORS

ENTITIES = {"Citizen", "ResidenceChange", "HealthInsuranceCard", "EducationRecord", "Taxpayer"}


def test_loads_every_entity_with_a_version() -> None:
    d = load_dictionary()
    assert d.version.count(".") == 2
    assert set(d.entities) >= ENTITIES
    assert d.entity("citizen").label == "Công dân"
    with pytest.raises(NotFound):
        d.entity("Alien")


def test_every_field_is_complete_and_consistent() -> None:
    d = load_dictionary()
    for entity in d.entities.values():
        assert entity.key in entity.field_names
        for f in entity.fields:
            assert f.validator in VALIDATORS
            assert f.source in d.sources
            assert f.personal_data in ("none", "basic", "sensitive")
            assert f.importance in ("core", "important", "other")
            assert isinstance(f.classification, Level)
            assert f.category is None or f.category in CATEGORIES
            assert f.category is None or f.category in d.categories
            if f.personal_data == "sensitive":
                assert f.classification >= Level.SENSITIVE, f"{entity.name}.{f.name}"
            if f.personal_data == "basic":
                assert f.classification >= Level.PERSONAL, f"{entity.name}.{f.name}"


def test_citizen_covers_the_required_items() -> None:
    citizen = load_dictionary().entity("Citizen")
    for name in (
        "personal_id", "full_name", "date_of_birth", "sex", "birth_registration_commune_code",
        "hometown_commune_code", "permanent_commune_code", "current_commune_code", "ethnicity",
        "religion", "nationality", "phone",
    ):  # fmt: skip
        citizen.field(name)
    assert citizen.field("ethnicity").personal_data == "sensitive"


def _citizen(**overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "personal_id": make_personal_id("001", "2", dt.date(1990, 3, 14), 123),
        "full_name": "TRẦN  thị BÌNH",
        "date_of_birth": "14/03/1990",
        "sex": "Nữ",
        "permanent_address": "Số 1, P. Hoàn Kiếm, Hà Nội",
        "permanent_commune_code": "70",
        "ethnicity": "Kinh",
        "nationality": "VNM",
        "phone": "+84 912 345 678",
    }
    record.update(overrides)
    return record


def test_validate_record_normalises() -> None:
    out, reasons = validate_record("Citizen", _citizen())
    assert reasons == []
    assert out["full_name"] == "Trần Thị Bình"
    assert out["date_of_birth"] == dt.date(1990, 3, 14)
    assert out["sex"] == "2" and out["ethnicity"] == "01" and out["nationality"] == "VN"
    assert out["permanent_commune_code"] == "00070" and out["phone"] == "0912345678"
    assert out["religion"] is None
    assert set(out) == set(load_dictionary().entity("Citizen").field_names)


def test_validate_record_reports_field_reasons() -> None:
    out, reasons = validate_record(
        "Citizen", _citizen(sex="Nam", date_of_birth="31/02/1990", nationality=None, extra=1)
    )
    got = {(r.field, r.code) for r in reasons}
    assert ("date_of_birth", "date_impossible") in got
    assert ("personal_id", "id_sex_mismatch") in got
    assert ("nationality", "required") in got
    assert out["personal_id"] is None and "extra" not in out
    assert has_errors(reasons)


def test_validate_record_cross_checks_birth_year() -> None:
    _, reasons = validate_record("Citizen", _citizen(date_of_birth="1991-03-14"))
    assert [(r.field, r.code) for r in reasons] == [("personal_id", "id_birth_year_mismatch")]


def test_future_dates_need_today() -> None:
    record = _citizen(date_of_birth="2030-01-01", personal_id=None)
    _, reasons = validate_record("Citizen", record, today=dt.date(2026, 1, 1))
    assert ("date_of_birth", "date_in_future") in {(r.field, r.code) for r in reasons}


def test_other_entities_validate() -> None:
    _, reasons = validate_record(
        "Taxpayer",
        {"tax_code": "0100109106", "taxpayer_type": "doanh_nghiep", "name": "Công ty A"},
    )
    assert reasons == []
    _, reasons = validate_record(
        "HealthInsuranceCard",
        {
            "card_number": "DN4797912345678",
            "social_insurance_number": "7912345678",
            "full_name": "NGUYEN VAN AN",
            "date_of_birth": "01/01/1980",
            "sex": "1",
            "valid_from": "2025-01-01",
        },
    )
    assert [r.code for r in reasons] == ["name_no_diacritics"]


def _broken(tmp_path: Path, mutate: object) -> Path:
    raw = yaml.safe_load(
        (Path(__file__).parents[2] / "src/lienthong/dictionary/data/dictionary.yaml").read_text()
    )
    assert callable(mutate)
    mutate(raw)
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["entities"]["Citizen"]["fields"][0].update(validator="nope"), "validator"),
        (lambda r: r["entities"]["Citizen"]["fields"][0].update(source="moon"), "source"),
        (lambda r: r["entities"]["Citizen"]["fields"][0].update(classification="X"), "level"),
        (lambda r: r["entities"]["Citizen"]["fields"][0].update(importance="vip"), "importance"),
        (lambda r: r["entities"]["Citizen"]["fields"][3].update(category="planets"), "category"),
        (lambda r: r["entities"]["Citizen"]["fields"][0].update(context={"sex": "x"}), "no field"),
        (lambda r: r["entities"]["Citizen"].update(key="nothing"), "key"),
        (lambda r: r.pop("version"), "version"),
    ],
)
def test_broken_dictionary_is_a_config_error(tmp_path: Path, mutate: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_dictionary(_broken(tmp_path, mutate))


def test_card_expiry_may_lie_in_the_future_but_birth_date_may_not() -> None:
    today = dt.date(2026, 1, 1)
    _, reasons = validate_record(
        "HealthInsuranceCard",
        {"valid_from": "01/01/2020", "valid_to": "31/12/2030", "date_of_birth": "01/01/2030"},
        today=today,
    )
    by_field = {r.field: r.code for r in reasons}
    assert "valid_to" not in by_field
    assert by_field["date_of_birth"] == "date_in_future"
