"""Classification levels of data and services, lowest to highest.

``PUBLIC`` (công khai), ``INTERNAL`` (nội bộ), ``PERSONAL`` (basic personal data — dữ liệu cá
nhân cơ bản, Decree 13/2023), ``SENSITIVE`` (sensitive personal data — dữ liệu cá nhân nhạy
cảm), and the three state-secret levels of Law 117/2025: ``MAT`` (Mật, confidential),
``TOI_MAT`` (Tối mật, secret), ``TUYET_MAT`` (Tuyệt mật, top secret).

Levels are totally ordered: a subsystem cleared for a level may process every level below it;
data may never flow to a place cleared for less ("no write-down").
"""

from __future__ import annotations

import enum

from lienthong.errors import InputError


class Level(enum.IntEnum):
    PUBLIC = 0
    INTERNAL = 1
    PERSONAL = 2
    SENSITIVE = 3
    MAT = 4
    TOI_MAT = 5
    TUYET_MAT = 6

    def __str__(self) -> str:
        return self.name

    @property
    def vietnamese(self) -> str:
        return _VIETNAMESE[self]

    @property
    def is_state_secret(self) -> bool:
        return self >= Level.MAT

    @property
    def is_personal(self) -> bool:
        return self in (Level.PERSONAL, Level.SENSITIVE)

    @classmethod
    def parse(cls, value: str | int | Level) -> Level:
        """Accept a level name (any case, Vietnamese spelling too) or its number."""
        if isinstance(value, Level):
            return value
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise InputError(f"classification level {value} is not between 0 and 6") from None
        key = value.strip().upper().replace("-", "_").replace(" ", "_")
        if key in cls.__members__:
            return cls[key]
        for level, name in _VIETNAMESE.items():
            if value.strip().casefold() == name.casefold():
                return level
        raise InputError(
            f"unknown classification level {value!r}: use one of {', '.join(cls.__members__)}"
        )


_VIETNAMESE = {
    Level.PUBLIC: "Công khai",
    Level.INTERNAL: "Nội bộ",
    Level.PERSONAL: "Dữ liệu cá nhân cơ bản",
    Level.SENSITIVE: "Dữ liệu cá nhân nhạy cảm",
    Level.MAT: "Mật",
    Level.TOI_MAT: "Tối mật",
    Level.TUYET_MAT: "Tuyệt mật",
}
