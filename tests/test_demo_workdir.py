"""The demo's work directory: emptied when an earlier demo made it, foreign files never touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lienthong.demo import MARKER, prepare_workdir
from lienthong.errors import InputError


def test_new_directory_is_created_and_marked(tmp_path: Path) -> None:
    work = tmp_path / "a" / "b"
    prepare_workdir(work)
    assert sorted(p.name for p in work.iterdir()) == [MARKER]


def test_earlier_demo_directory_is_emptied(tmp_path: Path) -> None:
    prepare_workdir(tmp_path / "w")
    (tmp_path / "w" / "consolidated.db").write_bytes(b"old state")
    (tmp_path / "w" / "sources").mkdir()
    (tmp_path / "w" / "sources" / "x.sqlite").write_bytes(b"old")
    prepare_workdir(tmp_path / "w")
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == [MARKER]


def test_foreign_directory_is_refused_and_left_intact(tmp_path: Path) -> None:
    (tmp_path / "thesis.docx").write_bytes(b"precious")
    with pytest.raises(InputError, match="not empty and was not made by 'lienthong demo'"):
        prepare_workdir(tmp_path)
    assert (tmp_path / "thesis.docx").read_bytes() == b"precious"
    assert not (tmp_path / MARKER).exists()


def test_cli_refuses_foreign_directory_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine", "utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "lienthong", "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "choose a new or empty directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "keep.txt").read_text("utf-8") == "mine"


def test_file_in_place_of_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x", "utf-8")
    with pytest.raises(InputError, match="is not a directory"):
        prepare_workdir(tmp_path / "f")
