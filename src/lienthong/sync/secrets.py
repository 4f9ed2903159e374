"""Secrets by reference: ``{"$env": NAME}`` or ``{"$file": path}``, never plaintext in config."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from lienthong.errors import ConfigError

# a password inside a connection string: "password=..." or "scheme://user:secret@host"
_PLAINTEXT = re.compile(r"(password\s*=\s*\S)|(://[^/@:\s]+:[^/@\s]+@)", re.IGNORECASE)


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("$env", "$file")


def resolve_secret(value: Any, where: str, base: Path) -> str:
    """Return the secret a reference points to; raise :class:`ConfigError` otherwise."""
    if not is_reference(value):
        raise ConfigError(f'{where}: must be a reference {{"$env": NAME}} or {{"$file": path}}')
    ((kind, name),) = value.items()
    if kind == "$env":
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return os.environ[name]
    path = (base / str(name)).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read secret file {path}: {exc.strerror}") from exc


def check_no_plaintext(value: str, where: str) -> None:
    """Refuse a connection string that carries its password in clear text."""
    if _PLAINTEXT.search(value):
        raise ConfigError(f'{where}: plaintext password; use {{"$env": NAME}} or {{"$file": path}}')
