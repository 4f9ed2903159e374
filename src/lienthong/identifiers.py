"""Federation identifiers, modelled on X-Road's: ``INSTANCE/CLASS/MEMBER[/SUBSYSTEM]`` for a
client and ``INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`` for a service.

Member codes follow Decision 20/2020/QĐ-TTg: at most 35 characters of digits, A–Z and dots,
one dot-separated group per administrative level (e.g. ``G01.BCA``, ``000.00.00.H29``).
Instance, class, subsystem and service codes use X-Road's safe character set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lienthong.errors import InputError

MEMBER_CLASSES = ("GOV", "COM", "ORG", "NGO")
_MEMBER_CODE = re.compile(r"[0-9A-Z]+(\.[0-9A-Z]+)*")
_PART = re.compile(r"[A-Za-z0-9'()+,\-.=?_]+")


def validate_member_code(code: str) -> str:
    """Return ``code`` if it is a valid Decision 20/2020 agency code, else raise InputError."""
    if not code:
        raise InputError("member code is empty")
    if len(code) > 35:
        raise InputError(f"member code {code!r} is {len(code)} characters long (at most 35)")
    if not _MEMBER_CODE.fullmatch(code):
        raise InputError(
            f"member code {code!r} may contain only digits, A-Z and single dots between groups"
        )
    return code


def _validate_part(kind: str, value: str) -> str:
    if not value or len(value) > 255 or not _PART.fullmatch(value) or value in (".", ".."):
        raise InputError(
            f"{kind} {value!r} is empty, too long or has characters outside [A-Za-z0-9'()+,-.=?_]"
        )
    return value


@dataclass(frozen=True, order=True)
class MemberId:
    instance: str
    member_class: str
    member_code: str

    def __post_init__(self) -> None:
        _validate_part("instance", self.instance)
        if self.member_class not in MEMBER_CLASSES:
            raise InputError(
                f"member class {self.member_class!r} is not one of {', '.join(MEMBER_CLASSES)}"
            )
        validate_member_code(self.member_code)

    def __str__(self) -> str:
        return f"{self.instance}/{self.member_class}/{self.member_code}"


@dataclass(frozen=True, order=True)
class SubsystemId:
    member: MemberId
    subsystem: str

    def __post_init__(self) -> None:
        _validate_part("subsystem", self.subsystem)

    def __str__(self) -> str:
        return f"{self.member}/{self.subsystem}"

    @classmethod
    def parse(cls, text: str) -> SubsystemId:
        parts = text.strip("/").split("/")
        if len(parts) != 4:
            raise InputError(f"subsystem id {text!r} must be INSTANCE/CLASS/MEMBER/SUBSYSTEM")
        return cls(MemberId(*parts[:3]), parts[3])


@dataclass(frozen=True, order=True)
class ServiceId:
    subsystem: SubsystemId
    service: str

    def __post_init__(self) -> None:
        _validate_part("service code", self.service)

    def __str__(self) -> str:
        return f"{self.subsystem}/{self.service}"

    @classmethod
    def parse(cls, text: str) -> ServiceId:
        parts = text.strip("/").split("/")
        if len(parts) != 5:
            raise InputError(f"service id {text!r} must be INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE")
        return cls(SubsystemId(MemberId(*parts[:3]), parts[3]), parts[4])


def parse_member(text: str) -> MemberId:
    parts = text.strip("/").split("/")
    if len(parts) != 3:
        raise InputError(f"member id {text!r} must be INSTANCE/CLASS/MEMBER")
    return MemberId(*parts)
