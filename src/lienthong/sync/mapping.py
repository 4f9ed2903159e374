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
        self.plan = [(f.target, _convert(f, index)) for f in fields]

    def map_chunk(self, chunk: Chunk) -> Mapped:
        """Map every row of ``chunk``: upserts, tombstones, or quarantine with every reason."""
        out = Mapped()
        plan, validator, entity = self.plan, self.validator, self.spec.entity
        locate, keyof = chunk.locate, self._keyof()
        upserts, dumps = out.upserts, orjson.dumps
        for i, row in enumerate(chunk.rows):
            key = keyof(row)
            record: dict[str, Any] = {}
            reasons: list[str] = []
            for target, convert in plan:
                try:
                    record[target] = convert(row)
                except ValueError as exc:
                    reasons.append(f"{target}: {exc}")
            if validator is not None and not reasons:
                normalised, found = validator(entity, record)
                record.update(normalised)  # fields the dictionary does not know are kept
                if found:
                    reasons = [_reason_text(r) for r in found if _is_error(r)]
            if reasons or not key:
                self._quarantine(out, row, key, locate(i) if locate else key, reasons)
            else:
                upserts.append((key, locate(i) if locate else key, dumps(record)))
        for deleted in chunk.deletes:
            key = source_key(deleted)
            out.deletes.append((key, key))
        return out

    def _keyof(self) -> Callable[[tuple[Any, ...]], str]:
        if len(self.key_idx) > 1:
            idx = self.key_idx
            return lambda row: source_key([row[k] for k in idx])
        (k,) = self.key_idx

        def single(row: tuple[Any, ...]) -> str:
            v = row[k]
            return v.strip() if type(v) is str else source_key((v,))

        return single

    def _quarantine(
        self, out: Mapped, row: tuple[Any, ...], key: str, pos: str, reasons: list[str]
    ) -> None:
        if not key:
            reasons.append("key: empty source key")
        raw = {c: plain(v) for c, v in zip(self.columns, row, strict=False)}
        out.quarantine.append((key, pos, orjson.dumps(raw), reasons))


_NATIVE = frozenset({str, int, float, bool, type(None)})
_MISS = object()
_MEMO_LIMIT = 200_000


class _Failure(str):
    """A cached conversion failure (its text is the reason)."""


def _convert(spec: FieldSpec, index: dict[str, int]) -> Callable[[tuple[Any, ...]], Any]:
    """Compile one field's conversion into a function of the source row.

    Conversions are memoised per distinct source value (dates, codes, sexes and places repeat
    a lot), so the per-row cost is mostly one dict look-up.
    """
    if not spec.sources:
        constant = spec.value
        return lambda _row: constant
    fn = transform(spec.transform) if spec.transform else None
    codes, required = spec.codes, spec.required
    if len(spec.sources) > 1:
        idx, sep = [index[s] for s in spec.sources], spec.sep
        join_then = _finish(spec, fn, codes, required)

        def joined(row: tuple[Any, ...]) -> Any:
            parts = [str(row[i]).strip() for i in idx if row[i] is not None]
            return join_then(sep.join(p for p in parts if p) or None)

        return joined
    j = index[spec.sources[0]]
    if fn is None and codes is None and not required:

        def simple(row: tuple[Any, ...]) -> Any:
            v = row[j]
            if type(v) in _NATIVE:
                return None if v == "" else v
            return plain(v)

        return simple
    finish = _finish(spec, fn, codes, required)
    memo: dict[Any, Any] = {}

    def memoised(row: tuple[Any, ...]) -> Any:
        v = row[j]
        hit = memo.get(v, _MISS)
        if hit is _MISS:
            try:
                hit = finish(v)
            except ValueError as exc:
                hit = _Failure(str(exc))
            if len(memo) < _MEMO_LIMIT:
                memo[v] = hit
        if type(hit) is _Failure:
            raise ValueError(str(hit))
        return hit

    return memoised


def _finish(
    spec: FieldSpec, fn: Any, codes: dict[str, str] | None, required: bool
) -> Callable[[Any], Any]:
    def finish(value: Any) -> Any:
        if value is None or value == "":
            if required:
                raise ValueError("missing: a value is required")
            return None
        if codes is not None:
            text = str(value).strip()
            if text not in codes:
                raise ValueError(f"unknown_code: {text!r} is not in the code list")
            value = codes[text]
        return plain(fn(value, spec)) if fn is not None else plain(value)

    return finish


def _is_error(reason: Any) -> bool:
    return getattr(reason, "severity", "error") == "error"


def _reason_text(reason: Any) -> str:
    code = getattr(reason, "code", None)
    if code is None:
        return str(reason)
    where = getattr(reason, "field", None)
    return f"{where}: {code}: {reason.message}" if where else f"{code}: {reason.message}"
