"""Validate and normalise whole records against the data dictionary (the sync hot path).

Each entity is compiled once into a list of bound field checkers; values whose check depends
only on the value (dates, names, sexes, codes) are memoised, because source tables repeat
them. Fields whose validator reads other fields (the personal ID reads sex and date of birth)
run last, on the already normalised values.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lienthong.dictionary.model import Entity, load_dictionary
from lienthong.validate.result import Check, Reason

_MEMO_LIMIT = 200_000
_Checker = Callable[..., Check[Any]]


class _FieldChecker:
    __slots__ = ("context", "fn", "memo", "missing", "name")

    def __init__(self, name: str, required: bool, fn: _Checker, memo: bool, context: Any) -> None:
        self.name = name
        self.fn = fn
        self.memo: dict[Any, Check[Any]] | None = {} if memo and not context else None
        self.context: tuple[tuple[str, str], ...] = context
        self.missing = (
            Reason("required", f"{name} is required but missing", "error", name)
            if required
            else None
        )


class RecordValidator:
    """An entity compiled for fast validation; call it with a record (a mapping)."""

    def __init__(self, entity: Entity, *, today: dt.date | None = None) -> None:
        from lienthong.validate.registry import VALIDATORS  # late: validate imports dictionary

        self.entity = entity
        self.field_names = entity.field_names
        plain: list[_FieldChecker] = []
        contextual: list[_FieldChecker] = []
        for f in entity.fields:
            spec = VALIDATORS[f.validator]
            params = dict(f.params)
            if "today" in spec.params and today is not None:
                params["today"] = today
            fn = functools.partial(spec.function, **params) if params else spec.function
            ctx = tuple(f.context.items())
            checker = _FieldChecker(f.name, f.required, fn, spec.memo, ctx)
            (contextual if ctx else plain).append(checker)
        # Plain tuples, unpacked in the loop: cheaper than attribute access per field.
        self._plain = tuple((c.name, c.fn, c.memo, c.missing) for c in plain)
        self._contextual = tuple((c.name, c.fn, c.context, c.missing) for c in contextual)
        # column kernels (validators that check a whole column at once), by field name
        self._kernels = {
            f.name: VALIDATORS[f.validator].column
            for f in entity.fields
            if VALIDATORS[f.validator].column is not None and not f.params
        }

    def __call__(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], list[Reason]]:
        out: dict[str, Any] = dict.fromkeys(self.field_names)
        reasons: list[Reason] = []
        get = record.get
        for name, fn, memo, missing in self._plain:
            value = get(name)
            if value is None or value == "":
                if missing is not None:
                    reasons.append(missing)
                continue
            if memo is not None:
                check = memo.get(value)
                if check is None:
                    check = fn(value)
                    if len(memo) < _MEMO_LIMIT:
                        memo[value] = check
            else:
                check = fn(value)
            out[name] = check.value
            if check.reasons:
                reasons.extend([r.for_field(name) for r in check.reasons])
        for name, fn, context, missing in self._contextual:
            value = get(name)
            if value is None or value == "":
                if missing is not None:
                    reasons.append(missing)
                continue
            check = fn(value, **{kw: out[source] for kw, source in context})
            out[name] = check.value
            if check.reasons:
                reasons.extend([r.for_field(name) for r in check.reasons])
        return out, reasons

    def columns(
        self, n: int, columns: Mapping[str, Sequence[Any] | Constant]
    ) -> tuple[dict[str, list[Any] | Constant], set[int]]:
        """Validate ``n`` records given as columns; return (normalised columns, error rows).

        ``columns`` maps field names to lists of ``n`` values or to a :class:`Constant`
        (fields it lacks are missing in every record). The result has a column per entity
        field (a :class:`Constant` where every record has the same value) and the set of
        row indexes whose record has at least one *error* reason. For every other row the
        normalised values are exactly those of ``self(record)`` (warnings are not reported:
        call ``self(record)`` for a row's reasons). Values of distinct-valued fields are
        checked once per distinct value, through the same memo as the per-record path.
        """
        out: dict[str, list[Any] | Constant] = {}
        bad: set[int] = set()
        absent = Constant(None)
        for name, fn, memo, missing in self._plain:
            col = columns.get(name, absent)
            out[name] = _plain_column(n, col, fn, memo, missing, bad)
        for name, fn, context, missing in self._contextual:
            col = columns.get(name, absent)
            ctx = {kw: out[source] for kw, source in context}
            kernel = self._kernels.get(name)
            out[name] = _context_column(n, col, fn, ctx, missing, bad, kernel)
        return out, bad


class Constant:
    """A column whose every row holds the same value."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Constant({self.value!r})"


def expand(col: Sequence[Any] | Constant, n: int) -> Sequence[Any]:
    """The ``n`` values of a column (a :class:`Constant` repeated)."""
    return [col.value] * n if isinstance(col, Constant) else col


def _has_error(check: Check[Any]) -> bool:
    return any(r.severity == "error" for r in check.reasons)


# types whose equal values are interchangeable for every validator (``1 == True``,
# ``0.0 == -0.0`` or one instant in two time zones are not)
_EXACT = frozenset({str, int, dt.date, type(None)})


def _homogeneous(col: Sequence[Any]) -> bool:
    types = set(map(type, col))
    types.discard(type(None))
    return len(types) <= 1 and types <= _EXACT


def _plain_column(
    n: int,
    col: Sequence[Any] | Constant,
    fn: _Checker,
    memo: dict[Any, Check[Any]] | None,
    missing: Reason | None,
    bad: set[int],
) -> list[Any] | Constant:
    if isinstance(col, Constant):
        value = col.value
        if value is None or value == "":
            if missing is not None:
                bad.update(range(n))
            return Constant(None)
        check = _memo_check(value, fn, memo)
        if _has_error(check):
            bad.update(range(n))
        return Constant(check.value)
    if memo is not None and _homogeneous(col):
        distinct = set(col)
        if len(memo) + len(distinct) <= _MEMO_LIMIT:
            values: dict[Any, Any] = {}
            wrong: set[Any] = set()
            for value in distinct:
                if value is None or value == "":
                    values[value] = None
                    if missing is not None:
                        wrong.add(value)
                    continue
                check = _memo_check(value, fn, memo)
                values[value] = check.value
                if _has_error(check):
                    wrong.add(value)
            if wrong:
                bad.update(i for i, v in enumerate(col) if v in wrong)
            return list(map(values.__getitem__, col))
    out: list[Any] = []
    for i, value in enumerate(col):
        if value is None or value == "":
            if missing is not None:
                bad.add(i)
            out.append(None)
            continue
        check = _memo_check(value, fn, memo)
        out.append(check.value)
        if check.reasons and _has_error(check):
            bad.add(i)
    return out


def _memo_check(value: Any, fn: _Checker, memo: dict[Any, Check[Any]] | None) -> Check[Any]:
    if memo is None:
        return fn(value)
    check = memo.get(value)
    if check is None:
        check = fn(value)
        if len(memo) < _MEMO_LIMIT:
            memo[value] = check
    return check


def _context_column(
    n: int,
    col: Sequence[Any] | Constant,
    fn: _Checker,
    ctx: dict[str, list[Any] | Constant],
    missing: Reason | None,
    bad: set[int],
    kernel: Callable[..., tuple[list[Any], list[int]]] | None,
) -> list[Any] | Constant:
    values = expand(col, n)
    context = {kw: expand(c, n) for kw, c in ctx.items()}
    if kernel is not None and not isinstance(col, Constant) and _no_missing(values):
        out, errors = kernel(values, **context)
        bad.update(errors)
        return out
    result: list[Any] = []
    names = list(context)
    for i, value in enumerate(values):
        if value is None or value == "":
            if missing is not None:
                bad.add(i)
            result.append(None)
            continue
        check = fn(value, **{kw: context[kw][i] for kw in names})
        result.append(check.value)
        if check.reasons and _has_error(check):
            bad.add(i)
    return result


def _no_missing(values: Sequence[Any]) -> bool:
    return None not in values and "" not in values


@functools.lru_cache(maxsize=64)
def record_validator(entity: str, today: dt.date | None = None) -> RecordValidator:
    """The compiled validator of a packaged-dictionary entity (cached)."""
    return RecordValidator(load_dictionary().entity(entity), today=today)


def validate_record(
    entity: str | Entity, record: Mapping[str, Any], *, today: dt.date | None = None
) -> tuple[dict[str, Any], list[Reason]]:
    """Normalise ``record`` field by field; returns (normalised dict, every Reason).

    The normalised dict has exactly the entity's fields (None where missing or unusable);
    fields the dictionary does not know are left out. Reasons carry ``field``.
    """
    if isinstance(entity, Entity):
        return RecordValidator(entity, today=today)(record)
    return record_validator(entity, today)(record)


def has_errors(reasons: list[Reason]) -> bool:
    """True when any reason is an error (not just a warning)."""
    return any(r.severity == "error" for r in reasons)
