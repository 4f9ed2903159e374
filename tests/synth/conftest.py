"""One generated federation shared by the ground-truth tests (generation is the slow part)."""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lienthong.synth.config import DefectRates, SynthConfig
from lienthong.synth.generator import generate

SOURCES = ("population", "health", "education", "tax")


@dataclass
class Generated:
    out: Path
    report: dict[str, Any]
    cfg: SynthConfig

    def csv(self, name: str) -> list[dict[str, str]]:
        with (self.out / "truth" / name).open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))

    def rows(self, source: str, table: str) -> list[dict[str, Any]]:
        con = sqlite3.connect(self.out / f"{source}.sqlite")
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(f'SELECT * FROM "{table}"')]
        finally:
            con.close()

    def tables(self, source: str) -> list[str]:
        con = sqlite3.connect(self.out / f"{source}.sqlite")
        try:
            found = con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
            return [r[0] for r in found]
        finally:
            con.close()


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """3,000 citizens with every defect type at 5% (enough of each to test)."""
    cfg = SynthConfig(citizens=3000, seed=11, rates=DefectRates.uniform(0.05))
    out = tmp_path_factory.mktemp("synth")
    return Generated(out, generate(cfg, out), cfg)
