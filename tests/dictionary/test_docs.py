"""The operator docs stay in step with the dictionary and the validator registry."""

from __future__ import annotations

from pathlib import Path

from lienthong.dictionary import load_dictionary
from lienthong.validate.registry import VALIDATORS

DOCS = Path(__file__).parents[2] / "docs"


def test_every_entity_and_field_is_documented() -> None:
    text = (DOCS / "dictionary.md").read_text(encoding="utf-8")
    d = load_dictionary()
    assert f"version {d.version}" in text
    for entity in d.entities.values():
        assert f"### {entity.name}" in text
        for f in entity.fields:
            assert f"`{f.name}`" in text, f"{entity.name}.{f.name}"


def test_every_validator_is_documented() -> None:
    text = (DOCS / "validators.md").read_text(encoding="utf-8")
    for name in VALIDATORS:
        assert f"`{name}`" in text, name
