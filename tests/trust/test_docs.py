"""docs/trust.md documents every CA setting and every ``lienthong ca`` command."""

from __future__ import annotations

import json
from pathlib import Path

from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.cli import app

DOC = (Path(__file__).parents[2] / "docs" / "trust.md").read_text()


def test_every_ca_setting_is_documented(ecdsa_ca: CertificateAuthority) -> None:
    settings = json.loads((ecdsa_ca.directory / "ca.json").read_text())
    missing = [key for key in settings if f'"{key}"' not in DOC]
    assert not missing, f"ca.json settings missing from docs/trust.md: {missing}"


def test_every_command_is_documented() -> None:
    commands = [
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    ]
    assert commands
    missing = [c for c in commands if f"lienthong ca {c}" not in DOC]
    assert not missing, f"commands missing from docs/trust.md: {missing}"
