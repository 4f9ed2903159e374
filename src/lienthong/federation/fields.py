"""Reading untyped mappings (from YAML, TOML or JSON) while collecting every problem.

Each problem carries its location, e.g. ``members[3].subsystems[0].clearance: unknown level
'SECRET'``, so an operator fixes a file in one pass instead of one error per run.
"""

from __future__ import annotations

import unicodedata
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from lienthong.errors import ConfigError, InputError

T = TypeVar("T")


class Problems:
    """An ordered list of ``location: message`` lines."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, source: str) -> None:
        """Raise one :class:`ConfigError` listing every problem (``details["problems"]``)."""
        if not self.items:
            return
        n = len(self.items)
        summary = "; ".join(self.items)
        raise ConfigError(
            f"{source}: {n} problem{'s' if n != 1 else ''}: {summary}", problems=list(self.items)
        )


def convert(problems: Problems, path: str, func: Callable[[], T]) -> T | None:
    """Run a constructor that raises InputError; record the error at ``path`` instead."""
    try:
        return func()
    except InputError as exc:
        problems.add(path, exc.message)
        return None


_KINDS = {
    "NoneType": "nothing (an empty document or value)",
    "dict": "a mapping",
    "list": "a list",
    "str": "text",
    "int": "a number",
    "float": "a number",
    "bool": "true/false",
}


def kind(value: Any) -> str:
    """What ``value`` is, in words a registry author knows (never a Python type name)."""
    return _KINDS.get(type(value).__name__, type(value).__name__)


def mapping(problems: Problems, value: Any, path: str, allowed: set[str]) -> dict[str, Any] | None:
    """``value`` as a mapping, with unknown keys reported (typos are the commonest mistake)."""
    if not isinstance(value, dict):
        problems.add(path, f"expected a mapping, got {kind(value)}")
        return None
    for key in value:
        if key not in allowed:
            problems.add(
                join(path, str(key)), f"unknown key (allowed: {', '.join(sorted(allowed))})"
            )
    return value


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def text(
    problems: Problems, obj: dict[str, Any], key: str, path: str, *, required: bool = True
) -> str | None:
    """A non-empty string field, NFC-normalised (Vietnamese names arrive in both forms)."""
    value = obj.get(key)
    if value is None or (value == "" and not required):
        if required:
            problems.add(join(path, key), "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add(join(path, key), f"expected a non-empty string, got {value!r}")
        return None
    return unicodedata.normalize("NFC", value.strip())


def items(problems: Problems, obj: dict[str, Any], key: str, path: str) -> list[Any]:
    """A list field (absent means empty)."""
    value = obj.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(join(path, key), f"expected a list, got {kind(value)}")
        return []
    return value


def strings(problems: Problems, obj: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    """A list of non-empty strings."""
    out: list[str] = []
    for i, value in enumerate(items(problems, obj, key, path)):
        if isinstance(value, str) and value.strip():
            out.append(value.strip())
        else:
            problems.add(join(join(path, key), i), f"expected a non-empty string, got {value!r}")
    return tuple(out)


def flag(problems: Problems, obj: dict[str, Any], key: str, path: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        problems.add(join(path, key), f"expected true or false, got {value!r}")
        return default
    return value


def integer(problems: Problems, obj: dict[str, Any], key: str, path: str) -> int | None:
    value = obj.get(key)
    if value is None:
        problems.add(join(path, key), "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(join(path, key), f"expected an integer, got {value!r}")
        return None
    return value


def gateway_urls(problems: Problems, obj: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    """A list of gateway addresses, each an ``https://`` or ``http://`` URL with a host."""
    out: list[str] = []
    for i, value in enumerate(strings(problems, obj, key, path)):
        where = join(join(path, key), i)
        try:
            parts = urllib.parse.urlsplit(value)
            port = parts.port
        except ValueError as exc:
            problems.add(where, f"{value!r} is not a URL ({exc})")
            continue
        if parts.scheme not in ("https", "http") or not parts.hostname:
            problems.add(where, f"{value!r} is not a gateway URL like https://HOST:PORT")
            continue
        if port == 0:
            problems.add(where, f"{value!r}: port 0 is not a port")
            continue
        out.append(value)
    return tuple(out)
