"""What every validator returns: the normalised value (or None) and precise reasons.

Validators never answer with a bare bool: a data steward must see *why* a value was refused
(``id_birth_year_mismatch`` is actionable, ``invalid`` is not). Codes are stable strings,
listed in docs/validators.md; messages are one line for a human.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from lienthong.errors import ValidationError

T = TypeVar("T")


class Reason:
    """One broken (or, with ``severity="warning"``, doubtful) rule."""

    __slots__ = ("code", "field", "message", "severity")

    def __init__(
        self, code: str, message: str, severity: str = "error", field: str | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.severity = severity
        self.field = field

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def for_field(self, field: str) -> Reason:
        """This reason attributed to a record field."""
        return Reason(self.code, self.message, self.severity, field)

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message, "severity": self.severity}
        if self.field is not None:
            out["field"] = self.field
        return out

    def _key(self) -> tuple[str, str, str, str | None]:
        return (self.code, self.message, self.severity, self.field)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reason) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        where = f", field={self.field!r}" if self.field is not None else ""
        return f"Reason({self.code!r}, {self.message!r}, {self.severity!r}{where})"


_NO_REASONS: tuple[Reason, ...] = ()


class Check(Generic[T]):
    """Outcome of one validator: ``value`` is the normalised value, None when it is unusable.

    ``reasons`` may hold warnings even when ``ok`` (e.g. an ambiguous date read one way).
    """

    __slots__ = ("reasons", "value")

    def __init__(self, value: T | None, reasons: tuple[Reason, ...] = _NO_REASONS) -> None:
        self.value = value
        self.reasons = reasons

    @property
    def ok(self) -> bool:
        """True when no reason is an error."""
        return all(r.severity != "error" for r in self.reasons)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    def unwrap(self, field: str = "value") -> T:
        """The normalised value; raises ValidationError carrying every reason otherwise."""
        if self.value is None or not self.ok:
            errors = [r for r in self.reasons if r.is_error] or [Reason("missing", "no value")]
            raise ValidationError(
                f"{field}: {errors[0].message}",
                code=errors[0].code,
                reasons=[f"{r.code}: {r.message}" for r in errors],
                field=field,
            )
        return self.value

    def __repr__(self) -> str:
        return f"Check({self.value!r}, {list(self.reasons)!r})"


def fail(code: str, message: str) -> Check[Any]:
    """A failed check with one reason."""
    return Check(None, (Reason(code, message),))


def ensure(check: Check[T], field: str = "value") -> T:
    """Raising variant of any validator: ``ensure(check_tax_code(x))``."""
    return check.unwrap(field)
