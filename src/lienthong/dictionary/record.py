"""Validate and normalise whole records against the data dictionary (the sync hot path).

Each entity is compiled once into a list of bound field checkers; values whose check depends
only on the value (dates, names, sexes, codes) are memoised, because source tables repeat
them. Fields whose validator reads other fields (the personal ID reads sex and date of birth)
run last, on the already normalised values.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
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
