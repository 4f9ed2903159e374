"""Every command, node setting and registry key is documented for operators."""

from __future__ import annotations

from pathlib import Path

import typer.main

from lienthong.federation.cli import app
from lienthong.federation.entries import MEMBER_KEYS, SERVICE_KEYS, SUBSYSTEM_KEYS
from lienthong.federation.loader import TOP_KEYS
from lienthong.federation.node import KEYS as NODE_KEYS
from lienthong.federation.policy_loader import POLICY_KEYS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_command_is_documented() -> None:
    text = (DOCS / "federation.md").read_text(encoding="utf-8")
    group = typer.main.get_group(app)
    for name, command in group.commands.items():
        subs = getattr(command, "commands", None)
        for full in [f"{name} {s}" for s in subs] if subs else [name]:
            assert f"lienthong federation {full}" in text, full
    assert "lienthong doctor" in text


def test_every_setting_and_key_is_documented() -> None:
    text = (DOCS / "federation.md").read_text(encoding="utf-8")
    for key in NODE_KEYS | TOP_KEYS | POLICY_KEYS | MEMBER_KEYS | SUBSYSTEM_KEYS | SERVICE_KEYS:
        assert f"{key}" in text and (f'"{key}"' in text or f"{key}:" in text), key


def test_onboarding_doc_names_every_step() -> None:
    text = (DOCS / "onboarding.md").read_text(encoding="utf-8")
    for step in (
        "lienthong ca init",
        "lienthong federation member add",
        "lienthong ca csr",
        "lienthong ca issue",
        "lienthong federation publish",
        "lienthong federation fetch",
        "lienthong doctor",
    ):
        assert step in text, step
