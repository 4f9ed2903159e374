"""The data dictionary as typed objects, loaded once from the YAML shipped in the package.

``load_dictionary()`` parses and checks ``data/dictionary.yaml`` (every validator, category,
source and classification it names must exist) and caches the result; a broken dictionary is
a ConfigError naming the entity and field.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lienthong.classification import Level
from lienthong.errors import ConfigError, InputError, NotFound

PERSONAL_DATA = ("none", "basic", "sensitive")
IMPORTANCE = ("core", "important", "other")
TYPES = ("string", "date", "code", "integer")
CATEGORIES = (
    "provinces", "communes", "legacy_id_provinces", "ethnic_groups", "religions", "sexes",
    "nationalities",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Source:
    """An authoritative source database (one source of truth per data item)."""

    key: str
    name: str
    owner: str


@dataclass(frozen=True, slots=True)
class Field:
    """One field of an entity and the rules that apply to it."""

    name: str
    label: str
    type: str
    validator: str
    required: bool
    personal_data: str
    importance: str
    classification: Level
    source: str
    category: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entity:
    """A record type of the dictionary (e.g. Citizen — Công dân)."""

    name: str
    label: str
    source: str
    key: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field:
        """The field called ``name``; NotFound otherwise."""
        for f in self.fields:
            if f.name == name:
                return f
        raise NotFound(f"entity {self.name} has no field {name!r}", code="field_not_found")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def classification(self) -> Level:
        """The highest default level of its fields: a whole record is at least that."""
        return max(f.classification for f in self.fields)


@dataclass(frozen=True, slots=True)
class Dictionary:
    """The whole dictionary: version, sources, category lists and entities."""

    version: str
    released: str
    sources: dict[str, Source]
    categories: dict[str, str]
    entities: dict[str, Entity]

    def entity(self, name: str) -> Entity:
        """The entity called ``name`` (case-insensitive); NotFound otherwise."""
        found = self.entities.get(name)
        if found is None:
            lowered = {k.lower(): v for k, v in self.entities.items()}
            found = lowered.get(name.lower())
        if found is None:
            raise NotFound(
                f"no entity {name!r} in the data dictionary: use one of {', '.join(self.entities)}",
                code="entity_not_found",
            )
        return found


def _require(raw: dict[str, Any], key: str, where: str) -> Any:
    if key not in raw:
        raise ConfigError(f"data dictionary: {where} lacks {key!r}")
    return raw[key]


def _choice(value: Any, allowed: tuple[str, ...], what: str, where: str) -> str:
    if value not in allowed:
        raise ConfigError(f"data dictionary: {where}: {what} {value!r} is not one of {allowed}")
    return str(value)


def _field(raw: dict[str, Any], where: str, sources: dict[str, Source]) -> Field:
    from lienthong.validate.registry import VALIDATORS  # late: validate imports dictionary

    name = str(_require(raw, "name", where))
    where = f"{where}.{name}"
    validator = str(_require(raw, "validator", where))
    spec = VALIDATORS.get(validator)
    if spec is None:
        raise ConfigError(f"data dictionary: {where}: unknown validator {validator!r}")
    params = dict(raw.get("params") or {})
    if "values" in params:
        params["values"] = tuple(str(v) for v in params["values"])
    context = {str(k): str(v) for k, v in (raw.get("context") or {}).items()}
    for bad in set(params) - spec.params:
        raise ConfigError(f"data dictionary: {where}: validator {validator} takes no {bad!r}")
    for bad in set(context) - spec.context:
        raise ConfigError(f"data dictionary: {where}: validator {validator} reads no {bad!r}")
    source = str(_require(raw, "source", where))
    if source not in sources:
        raise ConfigError(f"data dictionary: {where}: unknown source {source!r}")
    category = raw.get("category")
    if category is not None:
        _choice(category, CATEGORIES, "category", where)
    try:
        level = Level.parse(_require(raw, "classification", where))
    except InputError as exc:
        raise ConfigError(f"data dictionary: {where}: {exc}") from exc
    return Field(
        name=name,
        label=str(_require(raw, "label", where)),
        type=_choice(_require(raw, "type", where), TYPES, "type", where),
        validator=validator,
        required=bool(_require(raw, "required", where)),
        personal_data=_choice(raw.get("personal_data"), PERSONAL_DATA, "personal_data", where),
        importance=_choice(raw.get("importance"), IMPORTANCE, "importance", where),
        classification=level,
        source=source,
        category=category,
        params=params,
        context=context,
    )


def _entity(name: str, raw: dict[str, Any], sources: dict[str, Source]) -> Entity:
    fields = tuple(_field(f, name, sources) for f in _require(raw, "fields", name))
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise ConfigError(f"data dictionary: {name} has duplicate field names")
    for f in fields:
        for target in f.context.values():
            if target not in names:
                raise ConfigError(f"data dictionary: {name}.{f.name}: no field {target!r}")
    key = str(_require(raw, "key", name))
    if key not in names:
        raise ConfigError(f"data dictionary: {name}: key {key!r} is not a field")
    source = str(_require(raw, "source", name))
    if source not in sources:
        raise ConfigError(f"data dictionary: {name}: unknown source {source!r}")
    return Entity(name, str(_require(raw, "label", name)), source, key, fields)


def parse_dictionary(raw: Any) -> Dictionary:
    """Build and check a Dictionary from parsed YAML/JSON."""
    if not isinstance(raw, dict):
        raise ConfigError("data dictionary: top level must be a mapping")
    sources = {
        k: Source(k, str(v["name"]), str(v["owner"]))
        for k, v in _require(raw, "sources", "top level").items()
    }
    entities = {
        name: _entity(name, body, sources)
        for name, body in _require(raw, "entities", "top level").items()
    }
    return Dictionary(
        version=str(_require(raw, "version", "top level")),
        released=str(raw.get("released", "")),
        sources=sources,
        categories={str(k): str(v) for k, v in (raw.get("categories") or {}).items()},
        entities=entities,
    )


@functools.cache
def _load_packaged() -> Dictionary:
    text = (
        importlib.resources.files("lienthong.dictionary") / "data" / "dictionary.yaml"
    ).read_text(encoding="utf-8")
    return parse_dictionary(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def load_dictionary(path: str | Path | None = None) -> Dictionary:
    """The packaged dictionary (cached), or one read from ``path``."""
    if path is None:
        return _load_packaged()
    try:
        text = Path(path).read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read data dictionary {path}: {exc}") from exc
    return parse_dictionary(raw)
