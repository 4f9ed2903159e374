"""Identifier references inside a registry file: full (``VN/GOV/000.00.00.G01``) or without
the instance (``GOV/000.00.00.G01``)."""

from __future__ import annotations

from typing import Any

from lienthong.federation import fields as f
from lienthong.identifiers import MemberId, ServiceId, SubsystemId, parse_member


def member_ref(text: str, instance: str) -> MemberId:
    """``INSTANCE/CLASS/CODE`` or, inside one instance, the short ``CLASS/CODE``."""
    return parse_member(text if text.count("/") == 2 else f"{instance}/{text}")


def subsystem_ref(text: str, instance: str) -> SubsystemId:
    return SubsystemId.parse(text if text.strip("/").count("/") == 3 else f"{instance}/{text}")


def service_ref(text: str, instance: str) -> ServiceId:
    return ServiceId.parse(text if text.strip("/").count("/") == 4 else f"{instance}/{text}")


def ref_field(problems: f.Problems, obj: dict[str, Any], key: str, path: str, parse: Any) -> Any:
    """Required field ``key`` parsed by ``parse``; None (and a problem at its path) if bad."""
    value = f.text(problems, obj, key, path)
    return None if value is None else f.convert(problems, f.join(path, key), lambda: parse(value))
