"""docs/synth.md names every table, column, defect type and CLI option (docs stay in step)."""

from __future__ import annotations

from pathlib import Path

import typer.main

from lienthong.synth.cli import app
from lienthong.synth.config import DEFECT_TYPES, SynthConfig
from lienthong.synth.generator import build
from lienthong.synth.truth import CITIZEN_FIELDS

DOC = (Path(__file__).parents[2] / "docs" / "synth.md").read_text("utf-8")


def test_every_table_and_column_is_documented() -> None:
    world = build(SynthConfig(citizens=50))
    for source in world.sources:
        for table in source.tables:
            assert f"`{source.name}.{table.name}`" in DOC
            for col in table.columns:
                assert f"`{col.name}`" in DOC, (table.name, col.name)


def test_every_defect_type_truth_field_and_option_is_documented() -> None:
    for name in DEFECT_TYPES:
        assert f"`{name}`" in DOC
    for name in CITIZEN_FIELDS:
        assert f"`{name}`" in DOC
    command = typer.main.get_command(app)
    for param in command.params:
        for opt in getattr(param, "opts", []):
            if opt != "--help":
                assert f"`{opt}" in DOC, opt
