"""``lienthong dictionary`` end to end through the real entry point (exit codes, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lienthong.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "dictionary", "show", "Citizen", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["entity"] == "Citizen"
    assert {"name", "validator", "classification"} <= set(doc["fields"][0])


def test_unknown_entity_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "dictionary", "show", "Martian")
    assert code == 2 and "Martian" in err and "Traceback" not in err


def test_check_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "dictionary", "check", "tax_code", "0100109106")[0] == 0
    code, out, _ = run(capsys, "dictionary", "check", "tax_code", "0100109107", "--json")
    assert code == 1 and json.loads(out)["reasons"][0]["code"] == "tax_check_digit"
    assert run(capsys, "dictionary", "check", "nope", "x")[0] == 2


def test_validate_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"tax_code": "0100109106", "taxpayer_type": "doanh_nghiep", "name": "A"}\n'
        '{"tax_code": "0100109107", "taxpayer_type": "x", "name": "B"}\n',
        encoding="utf-8",
    )
    out_file = tmp_path / "out.jsonl"
    code, out, _ = run(
        capsys,
        "dictionary",
        "validate",
        "-e",
        "Taxpayer",
        str(src),
        "--out",
        str(out_file),
        "--json",
    )
    summary = json.loads(out)
    assert code == 0 and summary["valid"] == 1 and summary["invalid"] == 1
    assert summary["reasons"] == {"tax_code:tax_check_digit": 1, "taxpayer_type:enum_unknown": 1}
    assert len(out_file.read_text().splitlines()) == 2


def test_validate_bad_json_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"tax_code": "0100109106"}\n{oops\n', encoding="utf-8")
    out_file = tmp_path / "out.jsonl"
    code, _, err = run(
        capsys, "dictionary", "validate", "-e", "Taxpayer", str(src), "--out", str(out_file)
    )
    assert code == 2 and "in.jsonl:2" in err
    assert not out_file.exists()


def test_categories_and_convert(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "dictionary", "categories", "provinces", "--json")
    assert code == 0 and len(json.loads(out)["items"]) == 34
    code, out, _ = run(capsys, "dictionary", "categories", "communes", "--province", "01", "--json")
    assert code == 0 and all(i["province_code"] == "01" for i in json.loads(out)["items"])
    code, out, _ = run(
        capsys, "dictionary", "convert", "--province", "HCM", "--district", "Quận 9",
        "--commune", "Long Bình", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["commune_name"] == "Phường Long Bình"
    assert run(capsys, "dictionary", "categories", "planets")[0] == 2
    assert run(capsys, "dictionary", "convert", "--province", "Atlantis")[0] == 2


def test_missing_file_and_bad_today_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "none.jsonl")
    assert run(capsys, "dictionary", "validate", "-e", "Citizen", missing)[0] == 2
    src = tmp_path / "in.jsonl"
    src.write_text("{}\n", encoding="utf-8")
    assert run(capsys, "dictionary", "validate", "-e", "Citizen", str(src), "--today", "x")[0] == 2
    assert run(capsys, "dictionary", "validate", "-e", "Martian", str(src))[0] == 2


def test_check_invalid_prints_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "dictionary", "check", "personal_id", "12345")
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith("INVALID: '12345'") and "None" not in first
    assert "12" in first  # the reason: 5 digits, not 12


def test_validate_out_into_missing_directory_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("{}\n")
    target = tmp_path / "missing" / "out.jsonl"
    code, _, err = run(
        capsys, "dictionary", "validate", str(src), "-e", "Citizen", "--out", str(target)
    )
    assert code == 2 and str(target) in err and len(err.strip().splitlines()) == 1
    assert "unexpected" not in err and not target.parent.exists()
