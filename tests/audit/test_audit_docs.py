"""docs/audit.md documents every ``lienthong audit`` command and every option."""

from __future__ import annotations

from pathlib import Path

import typer.main

from lienthong.audit.cli import app

DOC = (Path(__file__).parents[2] / "docs" / "audit.md").read_text(encoding="utf-8")


def test_every_command_and_option_is_documented() -> None:
    commands = getattr(typer.main.get_command(app), "commands", {})  # typer's own click Group
    assert commands
    for name, command in commands.items():
        assert f"lienthong audit {name}" in DOC, name
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert opt in DOC, f"{name} {opt}"
