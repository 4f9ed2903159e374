"""From a source row to a data-dictionary record, or to the quarantine with every reason.

:class:`Mapper` is compiled once per table from its :class:`TableSpec` and the source columns
(indexes resolved up front so the per-row path is a tight loop). For each row it applies every
field conversion, collects *all* failures (not just the first), then hands the record to the
data dictionary's whole-record rules (``lienthong.dictionary.validate_record``) when the
dictionary knows the entity.
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import isfinite
from operator import itemgetter
from typing import Any, cast

import orjson

from lienthong.dictionary.record import Constant
from lienthong.errors import ConfigError, LienthongError
from lienthong.sync.model import Chunk, Unreadable, plain, source_key
from lienthong.sync.pipeline import FieldSpec, TableSpec
from lienthong.sync.transforms import transform

RecordValidator = Callable[[str, dict[str, Any]], tuple[dict[str, Any], list[Any]]]


_gc_lock = threading.Lock()
_gc_pausers = 0


@contextmanager
def paused_gc() -> Iterator[None]:
    """Suspend the cyclic garbage collector while a chunk or a batch is processed.

    A chunk allocates hundreds of thousands of short-lived tuples, strings and bytes (none in
    cycles); the collector would walk them again and again (~20 % of the mapping time).
    Reference counting still frees them at once. Nested and concurrent pauses (reader,
    sender and hub threads) are counted: the collector resumes when the last one ends, unless
    it was off before."""
    global _gc_pausers
    with _gc_lock:
        if _gc_pausers == 0 and not gc.isenabled():
            owned = False
        else:
            owned = True
            _gc_pausers += 1
            gc.disable()
    try:
        yield
    finally:
        if owned:
            with _gc_lock:
                _gc_pausers -= 1
                if _gc_pausers == 0:
                    gc.enable()


class DictionaryValidator:
    """The data dictionary's compiled record validator for one entity (a RecordValidator)."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled

    def __call__(self, _entity: str, record: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        result: tuple[dict[str, Any], list[Any]] = self.compiled(record)
        return result


def dictionary_validator(entity: str) -> RecordValidator | None:
    """The data dictionary's compiled record validator if it defines ``entity``, else None."""
    try:
        module = importlib.import_module("lienthong.dictionary.record")
        compiled = module.record_validator(entity)
    except ImportError:
        return None
    except LienthongError:  # unknown entity: the dictionary has no rules for it
        return None
    return DictionaryValidator(compiled)


@dataclass
class Mapped:
    """The outcome of mapping one chunk."""

    upserts: list[tuple[str, str, bytes]] = field(default_factory=list)  # key, position, json
    deletes: list[tuple[str, str]] = field(default_factory=list)  # key, position
    quarantine: list[tuple[str, str, bytes, list[str]]] = field(default_factory=list)
    resolves: list[int] = field(default_factory=list)  # quarantine ids a re-submission fixes
    # changes of a stream chunk replaced by a later change of their key (counted as applied)
    superseded: int = 0

    @property
    def read(self) -> int:
        return len(self.upserts) + len(self.deletes) + len(self.quarantine) + self.superseded

    @property
    def applied(self) -> int:
        return len(self.upserts) + len(self.deletes) + self.superseded


def jsonb_key(name: str) -> tuple[int, bytes]:
    """PostgreSQL jsonb's order of object keys: shorter (in UTF-8 bytes) first, then by bytes."""
    raw = name.encode()
    return len(raw), raw


_ORDERS: dict[tuple[str, ...], tuple[str, ...]] = {}


def jsonb_ordered(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its keys in jsonb's order. Each row's JSON is written in that order:
    PostgreSQL stores a jsonb object's keys sorted so, and sorting keys that arrive sorted
    costs it almost nothing (≈ 0.5–0.9 µs less per applied row than in dictionary order);
    both mapping paths write the same bytes for the same row."""
    names = tuple(record)
    order = _ORDERS.get(names)
    if order is None:
        order = tuple(sorted(names, key=jsonb_key))
        if len(_ORDERS) < 1024:  # a handful of shapes per pipeline
            _ORDERS[names] = order
    return record if order == names else {k: record[k] for k in order}


class Mapper:
    """Maps the rows of one source table (columns fixed at construction).

    Two paths with the same results: :meth:`map_row_by_row` (the reference: each row mapped,
    validated and serialised on its own) and the columnar fast path used by
    :meth:`map_chunk`, which converts and validates each column once per distinct value,
    checks personal IDs with a column kernel and writes the JSON of every row from
    pre-serialised fragments. Rows the fast path finds wrong in any way (a failed
    conversion, an error reason, an empty key) are mapped again by the reference path, so
    quarantine reasons come from one place. Parity: tests/sync/test_sync_mapping_parity.py.
    """

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
        # cursor mode: a quarantined row is located by its cursor value and key (the key
        # alone names every version of the row)
        self.cursor_idx = index.get(spec.cursor) if spec.cursor else None
        fields = spec.fields or tuple(FieldSpec(c, (c,)) for c in columns)
        self.fields = [_compile(f, index) for f in fields]
        self.plan = [(f.target, f.row) for f in self.fields]
        self._layout = self._json_layout()

    def _json_layout(self) -> tuple[list[str], list[str]] | None:
        """Key order of a row's JSON (targets, then the dictionary's other fields), or None
        when the fast path does not apply (a custom validator, a target named twice)."""
        targets = [f.target for f in self.fields]
        if len(set(targets)) != len(targets):
            return None
        if self.validator is None:
            return targets, []
        if not isinstance(self.validator, DictionaryValidator):
            return None
        known = list(self.validator.compiled.field_names)
        return targets, [f for f in known if f not in set(targets)]

    def map_chunk(self, chunk: Chunk) -> Mapped:
        """Map every row of ``chunk``: upserts, tombstones, or quarantine with every reason."""
        n, width = len(chunk.rows), len(self.columns)
        if self._layout is None or n < 2 or set(map(len, chunk.rows)) != {width}:
            out = self.map_row_by_row(chunk)
        else:
            out = self._map_columns(chunk, self._layout)
        duplicates: dict[int, int] | None = getattr(chunk, "duplicates", None)
        if duplicates:
            self._quarantine_duplicates(chunk, duplicates, out)
        out.superseded = chunk.superseded
        return out

    def _quarantine_duplicates(self, chunk: Chunk, duplicates: dict[int, int], out: Mapped) -> None:
        """Rows whose key appeared earlier in the same source (a file drop): quarantined with
        ``key: duplicate key (also at row N)`` instead of silently replacing the first."""
        locate, keyof = chunk.locate, self._keyof()
        where = {(locate(i) if locate else str(i)): i for i in duplicates}
        out.upserts = [u for u in out.upserts if u[1] not in where]
        done: set[int] = set()
        for entry in out.quarantine:
            i = where.get(entry[1])
            if i is not None:
                entry[3].append(f"key: duplicate key (also at row {duplicates[i]})")
                done.add(i)
        for pos, i in where.items():
            if i not in done:
                row = chunk.rows[i]
                reason = f"key: duplicate key (also at row {duplicates[i]})"
                self._quarantine(out, row, keyof(row), pos, [reason])

    def map_row_by_row(self, chunk: Chunk) -> Mapped:
        """The reference path: every row on its own."""
        out = Mapped()
        plan, validator, entity = self.plan, self.validator, self.spec.entity
        locate, keyof = chunk.locate, self._keyof()
        upserts, dumps = out.upserts, orjson.dumps
        width = len(self.columns)
        for i, row in enumerate(chunk.rows):
            key = keyof(row)
            record, reasons = self._record(row, plan, validator, entity)
            reasons += _nul_reasons(key, record)
            # a file row with values beyond its header: its cells are shifted (empty trailing
            # cells, `K1,a,` under `ma,ten`, are harmless)
            if len(row) > width and any(v not in (None, "") for v in row[width:]):
                reasons.append(
                    f"row: {len(row)} cells, the header has {width} (a separator inside an "
                    "unquoted value?)"
                )
            if reasons or not key:
                where = locate(i) if locate else self._row_position(row, key)
                self._quarantine(out, row, key, where, reasons)
            else:
                upserts.append((key, locate(i) if locate else key, dumps(jsonb_ordered(record))))
        self._deletes(chunk, out)
        return out

    @staticmethod
    def _record(
        row: tuple[Any, ...],
        plan: list[tuple[str, Callable[[tuple[Any, ...]], Any]]],
        validator: RecordValidator | None,
        entity: str,
    ) -> tuple[dict[str, Any], list[str]]:
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
        return record, reasons

    def _deletes(self, chunk: Chunk, out: Mapped) -> None:
        for deleted in chunk.deletes:
            key = source_key(deleted).replace("\x00", "\ufffd")  # never stored with a NUL
            out.deletes.append((key, key))

    def _map_columns(self, chunk: Chunk, layout: tuple[list[str], list[str]]) -> Mapped:
        rows, n = chunk.rows, len(chunk.rows)
        cols = _Columns(rows)
        bad: set[int] = set()
        keys = self._key_column(rows, cols)
        if "" in keys:
            bad.update(i for i, k in enumerate(keys) if not k)
        mapped = {f.target: f.column(rows, cols, bad) for f in self.fields}
        targets, others = layout
        values: dict[str, list[Any] | Constant] = dict(mapped)
        if isinstance(self.validator, DictionaryValidator):
            normalised, wrong = self.validator.compiled.columns(n, mapped)
            bad |= wrong
            values.update(normalised)
        pieces: list[bytes] = []
        frags: list[list[bytes]] = []
        buf = b"{"
        for j, name in enumerate(sorted([*targets, *others], key=jsonb_key)):
            buf += (b"," if j else b"") + orjson.dumps(name) + b":"
            col = values[name]
            if isinstance(col, Constant):
                buf += orjson.dumps(col.value)
                continue
            pieces.append(buf)
            frags.append(_fragments(col))
            buf = b""
        buf += b"}"
        jsons: list[bytes | None]
        if frags:
            # one bytes %-template per chunk: the constant text with a %s per varying field
            template = b"%s".join(p.replace(b"%", b"%%") for p in [*pieces, buf])
            jsons = list(map(template.__mod__, zip(*frags, strict=True)))
        else:
            jsons = [buf] * n
        # a NUL character (orjson writes it \u0000): the reference path quarantines the row
        bad.update(i for i, j in enumerate(jsons) if j is not None and b"\\u0000" in j)
        bad.update(i for i, k in enumerate(keys) if "\x00" in k)
        out = Mapped()
        locate = chunk.locate
        positions = [locate(i) for i in range(n)] if locate else keys
        if bad:
            self._redo(chunk, sorted(bad), keys, positions, jsons, out)
            # rows re-mapped into quarantine have json None: keep the others
            triples = zip(keys, positions, jsons, strict=True)
            out.upserts = [(k, p, j) for k, p, j in triples if j is not None]
        else:
            done = cast(list[bytes], jsons)  # no row was re-mapped: every json was written
            out.upserts = list(zip(keys, positions, done, strict=True))
        self._deletes(chunk, out)
        return out

    def _redo(
        self,
        chunk: Chunk,
        rows: list[int],
        keys: list[str],
        positions: list[str],
        jsons: list[bytes | None],
        out: Mapped,
    ) -> None:
        """Map the rows the fast path flagged with the reference path, in order."""
        plan, validator, entity = self.plan, self.validator, self.spec.entity
        for i in rows:
            row = chunk.rows[i]
            record, reasons = self._record(row, plan, validator, entity)
            reasons += _nul_reasons(keys[i], record)
            if reasons or not keys[i]:
                jsons[i] = None
                where = positions[i] if chunk.locate else self._row_position(row, keys[i])
                self._quarantine(out, row, keys[i], where, reasons)
            else:
                jsons[i] = orjson.dumps(jsonb_ordered(record))

    def _key_column(self, rows: list[tuple[Any, ...]], cols: _Columns) -> list[str]:
        if len(self.key_idx) == 1:
            col = cols[self.key_idx[0]]
            types = set(map(type, col))
            if types == {int}:
                return list(map(str, col))
            if types == {str}:
                return list(map(str.strip, col))
        return list(map(self._keyof(), rows))

    def _keyof(self) -> Callable[[tuple[Any, ...]], str]:
        if len(self.key_idx) > 1:
            idx = self.key_idx
            return lambda row: source_key([row[k] for k in idx])
        (k,) = self.key_idx

        def single(row: tuple[Any, ...]) -> str:
            v = row[k]
            return v.strip() if type(v) is str else source_key((v,))

        return single

    def _row_position(self, row: tuple[Any, ...], key: str) -> str:
        """A row's source position when the connector gives none: the key, or in cursor mode
        ``{"<cursor>": value, "<key column>": value, …}`` (compact JSON, cursor first)."""
        if self.cursor_idx is None:
            return key
        doc = {self.spec.cursor: plain(row[self.cursor_idx])}
        doc.update((c, plain(row[i])) for c, i in zip(self.spec.key, self.key_idx, strict=True))
        return orjson.dumps(doc).decode()

    def _quarantine(
        self, out: Mapped, row: tuple[Any, ...], key: str, pos: str, reasons: list[str]
    ) -> None:
        if not key:
            reasons.append("key: empty source key")
        raw = {c: plain(v) for c, v in zip(self.columns, row, strict=False)}
        if any(v not in (None, "") for v in row[len(self.columns) :]):  # shown too
            raw[EXTRA_CELLS] = [plain(v) for v in row[len(self.columns) :]]
        # the entry itself must be storable: a NUL shows as U+FFFD (the reason says where)
        body = orjson.dumps(raw).replace(b"\\u0000", b"\\ufffd")
        key, pos = key.replace("\x00", "\ufffd"), pos.replace("\x00", "\ufffd")
        out.quarantine.append((key, pos, body, reasons))


# the raw values' entry for the cells of a file row beyond its header (not a column)
EXTRA_CELLS = "(extra cells)"
_NATIVE = frozenset({str, int, float, bool, type(None)})
_MISS = object()
_MEMO_LIMIT = 200_000
# types whose equal values serialise and convert alike (not 1 == True, 0.0 == -0.0, or one
# instant in two time zones): a column of one of them may be handled per distinct value
_EXACT = frozenset({str, int, dt.date, type(None)})


class _Failure(str):
    """A cached conversion failure (its text is the reason)."""


def _one_type(col: Sequence[Any]) -> bool:
    types = set(map(type, col))
    types.discard(type(None))
    return len(types) <= 1 and types <= _EXACT


class _Columns:
    """The columns of a chunk's rows, each extracted on first use."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.cache: dict[int, list[Any]] = {}

    def __getitem__(self, j: int) -> list[Any]:
        col = self.cache.get(j)
        if col is None:
            col = self.cache[j] = list(map(itemgetter(j), self.rows))
        return col


# what orjson escapes inside a string; any other text serialises as '"' + text + '"'
_ESCAPED = re.compile('[\x00-\x1f"\\\\]')
_NULL_MARK = "\x01"


def _string_fragments(col: Sequence[Any]) -> list[bytes] | None:
    """orjson.dumps of a column of strings (and None) in one join/encode/split, or None when
    a value would need escaping (or cannot be encoded)."""
    nulls = None in col
    if _ESCAPED.search("".join([v for v in col if v is not None] if nulls else col)):
        return None
    # no value holds a control character: NUL separates them, \x01 stands for None
    joined = "\x00".join([_NULL_MARK if v is None else v for v in col] if nulls else col)
    try:
        frags = ('"' + joined.replace("\x00", '"\x00"') + '"').encode().split(b"\x00")
    except UnicodeEncodeError:
        return None
    if nulls:
        mark = b'"' + _NULL_MARK.encode() + b'"'
        frags = [b"null" if f == mark else f for f in frags]
    return frags


def _fragments(col: Sequence[Any]) -> list[bytes]:
    """orjson.dumps of every value, serialising each distinct value once when that is exact."""
    types = set(map(type, col))
    if len(types - {type(None)}) <= 1 and types <= _EXACT:
        distinct = set(col)
        if len(distinct) * 4 < len(col):
            frag = {v: orjson.dumps(v) for v in distinct}
            return list(map(frag.__getitem__, col))
    if str in types and types <= {str, type(None)}:
        frags = _string_fragments(col)
        if frags is not None:
            return frags
    return list(map(orjson.dumps, col))


class _Field:
    """One target field compiled: ``row(row)`` (reference) and ``column(cols, n, bad)``."""

    def __init__(self, target: str, row: Callable[[tuple[Any, ...]], Any]) -> None:
        self.target = target
        self.row = row

    def column(
        self, rows: list[tuple[Any, ...]], cols: _Columns, bad: set[int]
    ) -> list[Any] | Constant:
        # generic: the reference conversion per row; failures flag the row
        out: list[Any] = []
        convert = self.row
        for i, row in enumerate(rows):
            try:
                out.append(convert(row))
            except ValueError:
                out.append(None)
                bad.add(i)
        return out


class _ConstantField(_Field):
    def __init__(self, target: str, value: Any) -> None:
        super().__init__(target, lambda _row: value)
        self.value = value

    def column(
        self, rows: list[tuple[Any, ...]], cols: _Columns, bad: set[int]
    ) -> list[Any] | Constant:
        return Constant(self.value)


class _SimpleField(_Field):
    """No transform, no code list, not required: the value itself ('' means missing)."""

    def __init__(self, target: str, j: int) -> None:
        def simple(row: tuple[Any, ...]) -> Any:
            v = row[j]
            if type(v) in _NATIVE and (type(v) is not float or isfinite(v)):
                return None if v == "" else v
            if type(v) is Unreadable:
                raise ValueError(v.reason)
            return plain(v)

        super().__init__(target, simple)
        self.j = j

    def column(
        self, rows: list[tuple[Any, ...]], cols: _Columns, bad: set[int]
    ) -> list[Any] | Constant:
        col = cols[self.j]
        types = set(map(type, col))
        # NaN / ±Infinity: JSON has no such number (plain() gives their text)
        finite = float not in types or all(isfinite(v) for v in col if type(v) is float)
        if types <= _NATIVE and finite:
            if str in types and "" in col:
                return [None if v == "" else v for v in col]
            return list(col)
        if Unreadable in types:  # the row by row conversion flags them
            return super().column(rows, cols, bad)
        return [
            (None if v == "" else v)
            if type(v) in _NATIVE and (type(v) is not float or isfinite(v))
            else plain(v)
            for v in col
        ]


class _MemoField(_Field):
    """A conversion memoised per distinct source value (dates, codes, sexes, places)."""

    def __init__(self, target: str, j: int, finish: Callable[[Any], Any]) -> None:
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

        super().__init__(target, memoised)
        self.j, self.memo, self.finish = j, memo, finish

    def column(
        self, rows: list[tuple[Any, ...]], cols: _Columns, bad: set[int]
    ) -> list[Any] | Constant:
        col, memo = cols[self.j], self.memo
        distinct = set(col) if _one_type(col) else None
        if distinct is None or len(memo) + len(distinct) > _MEMO_LIMIT:
            return super().column(rows, cols, bad)
        values: dict[Any, Any] = {}
        failed: set[Any] = set()
        for v in distinct:
            hit = memo.get(v, _MISS)
            if hit is _MISS:
                try:
                    hit = self.finish(v)
                except ValueError as exc:
                    hit = _Failure(str(exc))
                memo[v] = hit
            if type(hit) is _Failure:
                failed.add(v)
                hit = None
            values[v] = hit
        if failed:
            bad.update(i for i, v in enumerate(col) if v in failed)
        return list(map(values.__getitem__, col))


def _compile(spec: FieldSpec, index: dict[str, int]) -> _Field:
    """Compile one field's conversion (a function of the source row, and a column form).

    Conversions are memoised per distinct source value (dates, codes, sexes and places repeat
    a lot), so the per-row cost is mostly one dict look-up.
    """
    if not spec.sources:
        return _ConstantField(spec.target, spec.value)
    fn = transform(spec.transform) if spec.transform else None
    codes, required = spec.codes, spec.required
    if len(spec.sources) > 1:
        idx, sep = [index[s] for s in spec.sources], spec.sep
        join_then = _finish(spec, fn, codes, required)

        def joined(row: tuple[Any, ...]) -> Any:
            for i in idx:
                if type(row[i]) is Unreadable:
                    raise ValueError(row[i].reason)
            parts = [str(row[i]).strip() for i in idx if row[i] is not None]
            return join_then(sep.join(p for p in parts if p) or None)

        return _Field(spec.target, joined)
    j = index[spec.sources[0]]
    if fn is None and codes is None and not required:
        return _SimpleField(spec.target, j)
    return _MemoField(spec.target, j, _finish(spec, fn, codes, required))


def _finish(
    spec: FieldSpec, fn: Any, codes: dict[str, str] | None, required: bool
) -> Callable[[Any], Any]:
    def finish(value: Any) -> Any:
        if type(value) is Unreadable:  # a source value that is not what its column says
            raise ValueError(value.reason)
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


NUL_REASON = (
    "contains the NUL character (U+0000), which the consolidated database cannot store "
    "(PostgreSQL text and jsonb refuse it)"
)


def _has_nul(value: Any) -> bool:
    if type(value) is str:
        return "\x00" in value
    if isinstance(value, dict):
        return any(map(_has_nul, value.values())) or any(map(_has_nul, value))
    if isinstance(value, list):
        return any(map(_has_nul, value))
    return False


def _nul_reasons(key: str, record: dict[str, Any]) -> list[str]:
    """A NUL in the key or in a mapped value: the row cannot be stored in a PostgreSQL
    consolidated database (a SQLite one would take it: the rule is the same for both)."""
    found = [f"{target}: {NUL_REASON}" for target, v in record.items() if _has_nul(v)]
    return [f"key: {NUL_REASON}", *found] if "\x00" in key else found


def _is_error(reason: Any) -> bool:
    return getattr(reason, "severity", "error") == "error"


def _reason_text(reason: Any) -> str:
    code = getattr(reason, "code", None)
    if code is None:
        return str(reason)
    where = getattr(reason, "field", None)
    return f"{where}: {code}: {reason.message}" if where else f"{code}: {reason.message}"
