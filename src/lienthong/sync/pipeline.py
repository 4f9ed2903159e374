"""Declarative pipelines (``pipeline.toml`` or ``.yaml``): typed, validated, every error at once.

See ``docs/sync.md`` for the format. :func:`load_pipeline` reads a file;
:func:`pipeline_from_dict` validates an already-parsed document. Both report *all* problems in
one :class:`ConfigError`, each with its location (``tables[1].fields.ngay_sinh.transform``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lienthong.classification import Level
from lienthong.errors import ConfigError, InputError
from lienthong.sync.gateway_transport import GatewaySettings, parse_transport
from lienthong.sync.secrets import check_no_plaintext
from lienthong.sync.transforms import LENGTH_TRANSFORMS, TRANSFORMS
from lienthong.sync.transforms import transform as find_transform
from lienthong.trust.secrets import parse_secret_ref

SOURCE_KINDS = ("sqlite", "postgres", "mariadb", "files")
DRIFT_POLICIES = ("stop", "continue")


@dataclass(frozen=True)
class FieldSpec:
    """One target field: from one source column (or several joined) with a conversion."""

    target: str
    sources: tuple[str, ...]
    transform: str | None = None
    format: str | None = None
    codes: dict[str, str] | None = None
    sep: str = " "
    required: bool = False
    value: Any = None  # a constant (no source column), e.g. taxpayer_type = "ca_nhan"


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: tuple[str, ...]
    entity: str
    fields: tuple[FieldSpec, ...] = ()
    cursor: str | None = None
    deleted_column: str | None = None
    batch_size: int = 5000
    classification: Level = Level.PERSONAL
    on_added_columns: str = "stop"
    file: str | None = None
    format: str | None = None
    logical_slot: str | None = None  # PostgreSQL log-based capture through this slot
    binlog_server_id: int | None = None  # MariaDB/MySQL binlog capture as this replica id
    cursor_overlap_s: float = 0.0  # cursor mode: re-check this many seconds behind the position
    entity_schema: str = "dictionary"  # "free": an entity outside the data dictionary
    extra_fields: tuple[str, ...] = ()  # targets kept beside a dictionary entity's fields


@dataclass(frozen=True)
class SourceSpec:
    kind: str
    dsn: Any = None  # a reference for postgres/mariadb; resolved by the composition root
    path: str | None = None  # sqlite database or files directory


@dataclass(frozen=True)
class Pipeline:
    source_id: str
    source: SourceSpec
    tables: tuple[TableSpec, ...]
    state: str = "sync-state.db"
    hub: dict[str, Any] = field(default_factory=dict)
    base_dir: Path = Path(".")
    keys: dict[str, Any] = field(default_factory=dict)
    transport: GatewaySettings | None = None  # [transport] kind = "gateway"

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise InputError(f"pipeline has no table {name!r}")


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file (TOML, or YAML by extension)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline {p}: {exc.strerror}") from exc
    try:
        doc = yaml.safe_load(text) if p.suffix in (".yaml", ".yml") else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: not valid {p.suffix.lstrip('.') or 'TOML'}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: the document must be a table/mapping")
    return pipeline_from_dict(doc, base_dir=p.parent)


class _Errors(list[str]):
    def need(self, doc: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
        if key not in doc:
            self.append(f"{where}{key}: required")
            return None
        return self.check(doc[key], typ, f"{where}{key}")

    def check(self, value: Any, typ: type | tuple[type, ...], where: str) -> Any:
        if value is not None and not isinstance(value, typ):
            self.append(f"{where}: expected {_tname(typ)}, got {type(value).__name__}")
            return None
        return value


def _tname(typ: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in (typ if isinstance(typ, tuple) else (typ,)))


def pipeline_from_dict(doc: dict[str, Any], base_dir: Path = Path(".")) -> Pipeline:
    """Validate a parsed pipeline document; raise one ConfigError listing every problem."""
    err = _Errors()
    allowed = {"source_id", "source", "tables", "state", "hub", "keys", "transport"}
    err.extend(f"{k}: unknown setting" for k in doc if k not in allowed)
    source_id = err.need(doc, "source_id", str, "")
    source = _source(doc.get("source"), err)
    tables_doc = err.need(doc, "tables", list, "") or []
    parsed = [_table(t, f"tables[{i}].", err) for i, t in enumerate(tables_doc)]
    tables = tuple(t for t in parsed if t is not None)
    if not tables_doc and "tables" in doc:
        err.append("tables: at least one table is required")
    names = [t.name for t in tables]
    err.extend(f"tables: duplicate table {n!r}" for n in {n for n in names if names.count(n) > 1})
    state = err.check(doc.get("state", "sync-state.db"), str, "state")
    hub = err.check(doc.get("hub", {}), dict, "hub") or {}
    err.extend(f"hub.{k}: unknown setting" for k in hub if k not in ("url", "database"))
    if isinstance(hub.get("database"), str):
        try:
            check_no_plaintext(hub["database"], "hub.database")
        except ConfigError as exc:
            err.append(exc.message)
    if hub and len(set(hub) & {"url", "database"}) != 1:
        err.append("hub: set exactly one of url (a hub process) or database (in-process hub)")
    transport = None
    if "transport" in doc:
        transport = parse_transport(doc["transport"], err)
        if hub:
            err.append(
                "transport: the gateway carries batches to a remote hub; remove the hub table"
            )
    keys = err.check(doc.get("keys", {}), dict, "keys") or {}
    err.extend(f"keys.{k}: unknown setting" for k in keys if k not in _KEY_SETTINGS)
    _check_keys(keys, err)
    if err or source is None or source_id is None:
        raise ConfigError("invalid pipeline: " + "; ".join(err), errors=list(err))
    return Pipeline(source_id, source, tables, state or "sync-state.db", hub, base_dir, keys,
                    transport)  # fmt: skip


_KEY_SETTINGS = ("store", "signer", "hub_public", "hub_recipient", "hub_signer")


def _check_keys(keys: dict[str, Any], err: _Errors) -> None:
    """Types of the [keys] settings, and the store's passphrase a reference — reported with
    the other problems instead of one by one when the run opens the key store."""
    for name in ("signer", "hub_signer", "hub_public", "hub_recipient"):
        if name in keys:
            err.check(keys[name], str, f"keys.{name}")
    store = err.check(keys.get("store"), dict, "keys.store")
    if isinstance(store, dict) and "passphrase" in store:
        try:
            parse_secret_ref(store["passphrase"], what="keys.store.passphrase")
        except InputError:  # its message may show the value: never echo a passphrase
            err.append(
                'keys.store.passphrase: must be a reference {"$env": NAME} or '
                '{"$file": path} (or "env:NAME" / "file:PATH"), never the passphrase itself'
            )


def _source(doc: Any, err: _Errors) -> SourceSpec | None:
    if not isinstance(doc, dict):
        err.append("source: required table with kind = " + "|".join(SOURCE_KINDS))
        return None
    kind = err.need(doc, "kind", str, "source.")
    if kind is not None and kind not in SOURCE_KINDS:
        err.append(f"source.kind: {kind!r} is not one of {', '.join(SOURCE_KINDS)}")
    err.extend(f"source.{k}: unknown setting" for k in doc if k not in ("kind", "dsn", "path"))
    if kind in ("postgres", "mariadb"):
        dsn = doc.get("dsn")
        if not (isinstance(dsn, dict) and len(dsn) == 1 and next(iter(dsn)) in ("$env", "$file")):
            err.append('source.dsn: must be a reference {"$env": NAME} or {"$file": path}')
    elif kind in ("sqlite", "files"):
        err.need(doc, "path", str, "source.")
    return SourceSpec(kind or "", doc.get("dsn"), doc.get("path"))


_TABLE_KEYS = {
    "name", "key", "entity", "fields", "joins", "cursor", "deleted_column", "batch_size",
    "classification", "on_added_columns", "file", "format", "logical_slot",
    "binlog_server_id", "cursor_overlap_s", "entity_schema", "extra_fields",
}  # fmt: skip
ENTITY_SCHEMAS = ("dictionary", "free")


def _table(doc: Any, where: str, err: _Errors) -> TableSpec | None:
    if not isinstance(doc, dict):
        err.append(f"{where[:-1]}: expected a table")
        return None
    err.extend(f"{where}{k}: unknown setting" for k in doc if k not in _TABLE_KEYS)
    name = err.need(doc, "name", str, where)
    key = err.need(doc, "key", (list, str), where)
    key = [key] if isinstance(key, str) else key
    if key is not None and (not key or not all(isinstance(k, str) for k in key)):
        err.append(f"{where}key: a non-empty list of column names")
    entity = err.need(doc, "entity", str, where)
    size = err.check(doc.get("batch_size", 5000), int, f"{where}batch_size")
    if isinstance(size, int) and not 1 <= size <= 1_000_000:
        err.append(f"{where}batch_size: must be between 1 and 1000000")
    level = Level.PERSONAL
    try:
        level = Level.parse(doc.get("classification", "PERSONAL"))
    except InputError as exc:
        err.append(f"{where}classification: {exc.message}")
    drift = doc.get("on_added_columns", "stop")
    if drift not in DRIFT_POLICIES:
        err.append(f"{where}on_added_columns: {drift!r} is not one of {DRIFT_POLICIES}")
    fields = _fields(doc.get("fields", {}), doc.get("joins", {}), where, err)
    for opt in ("cursor", "deleted_column", "file", "format", "logical_slot"):
        err.check(doc.get(opt), str, f"{where}{opt}")
    if doc.get("logical_slot") and doc.get("cursor"):
        err.append(f"{where}logical_slot: use either a cursor column or a logical slot, not both")
    server_id = err.check(doc.get("binlog_server_id"), int, f"{where}binlog_server_id")
    if server_id is not None and not 1 <= server_id < 2**32:
        err.append(f"{where}binlog_server_id: a replica server id between 1 and 4294967295")
    overlap = doc.get("cursor_overlap_s", 0)
    if isinstance(overlap, bool) or not isinstance(overlap, int | float) or overlap < 0:
        err.append(f"{where}cursor_overlap_s: a number of seconds >= 0")
        overlap = 0
    elif overlap and not doc.get("cursor"):
        err.append(f"{where}cursor_overlap_s: only with a cursor column")
    schema = doc.get("entity_schema", "dictionary")
    if schema not in ENTITY_SCHEMAS:
        err.append(f"{where}entity_schema: {schema!r} is not one of {', '.join(ENTITY_SCHEMAS)}")
        schema = "dictionary"
    targets = [f.target for f in fields]
    err.extend(
        f"{where}fields: {sorted(c for f in fields if f.target == t for c in f.sources)} all map "
        f"to {t!r}; map one column (or a join) to each target"
        for t in sorted({t for t in targets if targets.count(t) > 1})
    )
    if not (name and key and entity):
        return None
    extra = err.check(doc.get("extra_fields", []), list, f"{where}extra_fields") or []
    extra = [str(x) for x in extra]
    if schema == "dictionary":
        _check_dictionary(entity, fields, level, extra, where, err)
    return TableSpec(
        name, tuple(key), entity, fields, doc.get("cursor"), doc.get("deleted_column"),
        size or 5000, level, drift, doc.get("file"), doc.get("format"), doc.get("logical_slot"),
        server_id, float(overlap), schema, tuple(extra),
    )  # fmt: skip


def _check_dictionary(
    entity: str,
    fields: tuple[FieldSpec, ...],
    level: Level,
    extra: list[str],
    where: str,
    err: _Errors,
) -> None:
    """A dictionary entity: it exists, every target is one of its fields, and the table's
    classification is not below the fields it maps (they are encrypted at that level)."""
    import difflib

    from lienthong.dictionary.model import load_dictionary

    entities = load_dictionary().entities
    found = entities.get(entity) or {k.lower(): v for k, v in entities.items()}.get(entity.lower())
    if found is None:
        near = difflib.get_close_matches(entity, list(entities), n=1, cutoff=0.6)
        hint = f"did you mean {near[0]!r}? " if near else ""
        err.append(
            f"{where}entity: {entity!r} is not an entity of the data dictionary ({hint}one of "
            f'{", ".join(entities)}); set entity_schema = "free" for an entity outside it'
        )
        return
    names = found.field_names
    for f in fields:
        if f.target not in names and f.target not in extra:
            near = difflib.get_close_matches(f.target, list(names), n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}? " if near else ""
            err.append(
                f"{where}fields.{f.sources[0] if f.sources else f.target}: {f.target!r} is not "
                f"a field of {found.name} ({hint}see `lienthong dictionary show {found.name}`; "
                "list a deliberate extra target in extra_fields)"
            )
    mapped = [found.field(f.target) for f in fields if f.target in names] or list(found.fields)
    above = sorted({m.classification for m in mapped if m.classification > level})
    if above:
        err.append(
            f"{where}classification: {level.name} is below the level of the mapped fields of "
            f"{found.name} ({'/'.join(a.name for a in above)}); batches are encrypted at the "
            "table's classification"
        )


def _fields(fields: Any, joins: Any, where: str, err: _Errors) -> tuple[FieldSpec, ...]:
    out: list[FieldSpec] = []
    for section, doc in (("fields", fields), ("joins", joins)):
        if not isinstance(doc, dict):
            err.append(f"{where}{section}: expected a table")
            continue
        for col, spec in doc.items():
            loc = f"{where}{section}.{col}"
            spec = {"to": spec} if isinstance(spec, str) else spec
            if not isinstance(spec, dict):
                err.append(f"{loc}: expected a target name or a table")
                continue
            err.extend(
                f"{loc}.{k}: unknown setting"
                for k in spec
                if k
                not in ("to", "from", "transform", "format", "codes", "sep", "required", "value")
            )
            sources = spec.get("from", [col]) if section == "joins" else [col]
            if "value" in spec:
                sources = []
            if section == "joins" and not (isinstance(sources, list) and sources):
                err.append(f"{loc}.from: a non-empty list of source columns")
                continue
            transform = spec.get("transform")
            if transform is not None and find_transform(str(transform)) is None:
                err.append(
                    f"{loc}.transform: {transform!r} is not one of {sorted(TRANSFORMS)} "
                    "or a lienthong.validate check"
                )
            if transform in LENGTH_TRANSFORMS and not (
                str(spec.get("format", "")).isdigit() and int(str(spec["format"])) > 0
            ):
                err.append(f'{loc}.format: {transform} needs a length, e.g. format = "9"')
            codes = spec.get("codes")
            if codes is not None and not isinstance(codes, dict):
                err.append(f"{loc}.codes: expected a table of source code = target code")
            target = spec.get("to", col)
            out.append(FieldSpec(
                str(target), tuple(str(s) for s in sources), transform, spec.get("format"),
                {str(k): str(v) for k, v in codes.items()} if isinstance(codes, dict) else None,
                str(spec.get("sep", " ")), bool(spec.get("required", False)), spec.get("value"),
            ))  # fmt: skip
    return tuple(out)
