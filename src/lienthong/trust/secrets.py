"""Secret references: passphrases and PINs come from the environment or a file, never inline.

A reference is ``{"$env": "NAME"}`` or ``{"$file": "path"}`` (JSON/YAML config) or the short
forms ``env:NAME`` / ``file:PATH`` (CLI options). A bare string is refused, so a secret can
never end up in a config file or on a command line by accident.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lienthong.errors import InputError

SecretRef = dict[str, str]


def parse_secret_ref(value: Any, *, what: str = "secret") -> SecretRef:
    """Normalise ``value`` to ``{"$env": NAME}`` or ``{"$file": PATH}``; raise InputError else."""
    if isinstance(value, str):
        kind, sep, rest = value.partition(":")
        if sep and kind in ("env", "file") and rest:
            return {f"${kind}": rest}
        raise InputError(
            f"{what} must be a reference (env:NAME or file:PATH), never the secret itself"
        )
    if isinstance(value, dict) and len(value) == 1:
        ((key, ref),) = value.items()
        if key in ("$env", "$file") and isinstance(ref, str) and ref:
            return {key: ref}
    raise InputError(f'{what} must be {{"$env": NAME}} or {{"$file": PATH}}, got {value!r}')


def resolve_secret(ref: Any, *, what: str = "secret") -> bytes:
    """Return the secret bytes a reference points to (trailing newline of a file stripped)."""
    norm = parse_secret_ref(ref, what=what)
    if "$env" in norm:
        name = norm["$env"]
        value = os.environ.get(name)
        if not value:
            raise InputError(f"{what}: environment variable {name} is not set or empty")
        return value.encode()
    path = Path(norm["$file"])
    try:
        data = path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise InputError(f"{what}: cannot read {path}: {exc.strerror}") from exc
    if not data:
        raise InputError(f"{what}: file {path} is empty")
    return data
