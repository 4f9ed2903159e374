"""Same seed, same bytes; another seed, other data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lienthong.errors import BackendError
from lienthong.synth.config import SynthConfig
from lienthong.synth.generator import generate


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    cfg = SynthConfig(citizens=1500, seed=7)
    generate(cfg, tmp_path / "a")
    generate(cfg, tmp_path / "b")
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert set(a) == {
        "population.sqlite", "health.sqlite", "education.sqlite", "tax.sqlite",
        "tax/nguoi_nop_thue.csv", "tax/doanh_nghiep.xlsx", "truth/citizens.csv",
        "truth/links.csv", "truth/defects.csv", "truth/manifest.json",
    }  # fmt: skip
    assert a == b


def test_rerun_into_the_same_directory_replaces_files(tmp_path: Path) -> None:
    generate(SynthConfig(citizens=300, seed=1), tmp_path)
    first = _digests(tmp_path)
    generate(SynthConfig(citizens=300, seed=2), tmp_path)
    generate(SynthConfig(citizens=300, seed=1), tmp_path)
    assert _digests(tmp_path) == first
    assert not [p for p in tmp_path.rglob(".*") if p.name != "."], "temporary files left"


def test_another_seed_gives_other_citizens(tmp_path: Path) -> None:
    generate(SynthConfig(citizens=300, seed=1), tmp_path / "a")
    generate(SynthConfig(citizens=300, seed=2), tmp_path / "b")
    a = (tmp_path / "a" / "truth" / "citizens.csv").read_text("utf-8")
    b = (tmp_path / "b" / "truth" / "citizens.csv").read_text("utf-8")
    assert a.splitlines()[0] == b.splitlines()[0]
    assert set(a.splitlines()[1:]).isdisjoint(b.splitlines()[1:])


def test_a_failed_write_leaves_the_previous_output(tmp_path: Path) -> None:
    generate(SynthConfig(citizens=100, seed=1), tmp_path)
    before = _digests(tmp_path)
    (tmp_path / "tax" / ".doanh_nghiep.xlsx.tmp").mkdir()  # the export cannot be staged
    with pytest.raises(BackendError):
        generate(SynthConfig(citizens=100, seed=2), tmp_path)
    (tmp_path / "tax" / ".doanh_nghiep.xlsx.tmp").rmdir()
    assert _digests(tmp_path) == before
    assert not [p for p in tmp_path.rglob(".*")], "temporary files left"
