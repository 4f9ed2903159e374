"""Declarative registry files (YAML or TOML) → :class:`~lienthong.federation.model.Registry`.

:func:`registry_from_dict` checks the structure of every entry, then
:mod:`lienthong.federation.validate` checks the references between entries; every problem of
both passes is reported at once in one :class:`~lienthong.errors.ConfigError`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from lienthong.errors import ConfigError
from lienthong.federation import fields as f
from lienthong.federation.entries import member_entry
from lienthong.federation.model import Registry
from lienthong.federation.network import (
    access_entry,
    group_entry,
    link_entry,
    platform_entry,
    zone_entry,
)
from lienthong.federation.policy_loader import crypto_policy
from lienthong.federation.validate import validate_registry

TOP_KEYS = {
    "instance",
    "platforms",
    "members",
    "groups",
    "access",
    "direct_links",
    "isolated_zones",
    "crypto_policy",
}


def load_registry(path: Path) -> Registry:
    """Read and validate a ``.yaml``/``.yml``/``.toml``/``.json`` registry file."""
    return registry_from_dict(read_document(path), source=str(path))


def read_document(path: Path) -> Any:
    """Parse a YAML/TOML/JSON file into plain data; syntax errors become ConfigError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(raw.decode("utf-8"))
        return yaml.safe_load(raw.decode("utf-8"))  # JSON is YAML too
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        mark = getattr(exc, "problem_mark", None)
        if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
            what = exc.problem or exc.context or "syntax error"
            first = f"line {mark.line + 1}, column {mark.column + 1}: {what}"
        raise ConfigError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {first}"
        ) from exc


def registry_from_dict(data: Any, *, source: str = "registry") -> Registry:
    """Build and validate a registry; raise ConfigError listing every problem."""
    problems = f.Problems()
    doc = f.mapping(problems, data, "", TOP_KEYS)
    if doc is None:
        problems.raise_if_any(source)
        raise AssertionError("unreachable")
    instance = f.text(problems, doc, "instance", "") or "INVALID"
    members = [
        member_entry(problems, m, f.join("members", i), instance)
        for i, m in enumerate(f.items(problems, doc, "members", ""))
    ]
    members_ok = tuple(m for m, _ in members if m is not None)
    registry = Registry(
        instance=instance,
        members=members_ok,
        services=tuple(s for _, svcs in members for s in svcs),
        access=_each(problems, doc, "access", lambda v, p: access_entry(problems, v, p, instance)),
        groups=_each(problems, doc, "groups", lambda v, p: group_entry(problems, v, p, instance)),
        platforms=_each(
            problems, doc, "platforms", lambda v, p: platform_entry(problems, v, p, instance)
        ),
        direct_links=_each(
            problems, doc, "direct_links", lambda v, p: link_entry(problems, v, p, instance)
        ),
        isolated_zones=_each(
            problems, doc, "isolated_zones", lambda v, p: zone_entry(problems, v, p, instance)
        ),
        crypto_policy=crypto_policy(problems, doc.get("crypto_policy"), "crypto_policy"),
    )
    # Cross-checks run even after structural problems so one pass reports everything; an
    # entry dropped for a structural problem may add an "unknown ..." line, which is true.
    validate_registry(registry, problems)
    problems.raise_if_any(source)
    return registry


def _each(problems: f.Problems, doc: dict[str, Any], key: str, parse: Any) -> tuple[Any, ...]:
    out = [parse(v, f.join(key, i)) for i, v in enumerate(f.items(problems, doc, key, ""))]
    return tuple(x for x in out if x is not None)
