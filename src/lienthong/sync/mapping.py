"""From a source row to a data-dictionary record, or to the quarantine with every reason.

:class:`Mapper` is compiled once per table from its :class:`TableSpec` and the source columns
(indexes resolved up front so the per-row path is a tight loop). For each row it applies every
field conversion, collects *all* failures (not just the first), then hands the record to the
data dictionary's whole-record rules (``lienthong.dictionary.validate_record``) when the
dictionary knows the entity.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from lienthong.errors import ConfigError, LienthongError
from lienthong.sync.model import Chunk, plain, source_key
from lienthong.sync.pipeline import FieldSpec, TableSpec
from lienthong.sync.transforms import transform

RecordValidator = Callable[[str, dict[str, Any]], tuple[dict[str, Any], list[Any]]]


def dictionary_validator(entity: str) -> RecordValidator | None:
    """The data dictionary's compiled record validator if it defines ``entity``, else None."""
    try:
        module = importlib.import_module("lienthong.dictionary.record")
        compiled = module.record_validator(entity)
    except ImportError:
        return None
    except LienthongError:  # unknown entity: the dictionary has no rules for it
        return None
    return lambda _entity, record: compiled(record)


@dataclass
class Mapped:
    """The outcome of mapping one chunk."""

    upserts: list[tuple[str, str, bytes]] = field(default_factory=list)  # key, position, json
    deletes: list[tuple[str, str]] = field(default_factory=list)  # key, position
    quarantine: list[tuple[str, str, bytes, list[str]]] = field(default_factory=list)
    resolves: list[int] = field(default_factory=list)  # quarantine ids a re-submission fixes

    @property
    def read(self) -> int:
        return len(self.upserts) + len(self.deletes) + len(self.quarantine)


class Mapper:
    """Maps the rows of one source table (columns fixed at construction)."""

    def __init__(
        self,
        spec: TableSpec,
        columns: list[str],
        validator: RecordValidator | None = None,
    ) -> None:
        self.spec = spec
        self.columns = columns
        self.validator = validator
        index = {c: i for i, c in enumerate(columns)}
        missing = [c for c in spec.key if c not in index]
        missing += [s for f in spec.fields for s in f.sources if s not in index]
        if missing:
            raise ConfigError(f"table {spec.name}: source has no column(s) {sorted(set(missing))}")
        self.key_idx = [index[c] for c in spec.key]
        fields = spec.fields or tuple(FieldSpec(c, (c,)) for c in columns)
        self.plan = [(f, [index[s] for s in f.sources], _convert(f)) for f in fields]

    def map_chunk(self, chunk: Chunk) -> Mapped:
        out = Mapped()
        key_idx, plan, validator = self.key_idx, self.plan, self.validator
        entity = self.spec.entity
        locate = chunk.locate
        for i, row in enumerate(chunk.rows):
            key = source_key([row[k] for k in key_idx])
            pos = locate(i) if locate is not None else key
            record: dict[str, Any] = {}
            reasons: list[str] = []
            for spec, idx, convert in plan:
                try:
                    record[spec.target] = convert([row[j] for j in idx])
                except ValueError as exc:
                    reasons.append(f"{spec.target}: {exc}")
            if validator is not None and not reasons:
                normalised, found = validator(entity, record)
                record.update(normalised)  # fields the dictionary does not know are kept
                reasons.extend(_reason_text(r) for r in found if _is_error(r))
            if reasons or not key:
                if not key:
                    reasons.append("key: empty source key")
                raw = {c: plain(v) for c, v in zip(self.columns, row, strict=False)}
                out.quarantine.append((key, pos, orjson.dumps(raw), reasons))
            else:
                out.upserts.append((key, pos, orjson.dumps(record)))
        for deleted in chunk.deletes:
            key = source_key(deleted)
            out.deletes.append((key, key))
        return out


def _convert(spec: FieldSpec) -> Callable[[list[Any]], Any]:
    fn = transform(spec.transform) if spec.transform else None
    codes = spec.codes
    join = len(spec.sources) > 1
    sep = spec.sep
    if not spec.sources:
        constant = spec.value
        return lambda _values: constant

    def convert(values: list[Any]) -> Any:
        if join:
            parts = [str(v).strip() for v in values if v is not None and str(v).strip()]
            value: Any = sep.join(parts) if parts else None
        else:
            value = values[0]
        if value is None or value == "":
            if spec.required:
                raise ValueError("missing: a value is required")
            return None
        if codes is not None:
            text = str(value).strip()
            if text not in codes:
                raise ValueError(f"unknown_code: {text!r} is not in the code list")
            value = codes[text]
        return plain(fn(value, spec)) if fn is not None else plain(value)

    return convert


def _is_error(reason: Any) -> bool:
    return getattr(reason, "severity", "error") == "error"


def _reason_text(reason: Any) -> str:
    code = getattr(reason, "code", None)
    if code is None:
        return str(reason)
    where = getattr(reason, "field", None)
    return f"{where}: {code}: {reason.message}" if where else f"{code}: {reason.message}"
