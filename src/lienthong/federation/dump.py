"""Registry → plain data in the declarative file format (the inverse of the loader).

The signed global configuration carries exactly this form, so a gateway rebuilds the registry
with the same loader and validation as the operator's ``validate`` command.
"""

from __future__ import annotations

from typing import Any

from lienthong.federation.model import (
    AccessRight,
    CertificateRef,
    Member,
    Platform,
    Registry,
    Service,
    Subsystem,
)
from lienthong.federation.policy_loader import policy_to_dict


def registry_to_dict(reg: Registry) -> dict[str, Any]:
    """The declarative form of ``reg``; ``registry_from_dict`` of it gives ``reg`` back."""
    services: dict[str, list[Service]] = {}
    for s in reg.services:
        services.setdefault(str(s.id.subsystem), []).append(s)
    return {
        "instance": reg.instance,
        "platforms": [_platform(p) for p in reg.platforms],
        "members": [_member(m, services) for m in reg.members],
        "groups": [
            {
                "code": g.code,
                "description": g.description,
                "subsystems": [str(s) for s in g.subsystems],
            }
            for g in reg.groups
        ],
        "access": [_access(a) for a in reg.access],
        "direct_links": [[str(a), str(b)] for a, b in reg.direct_links],
        "isolated_zones": [
            {"code": z.code, "members": [str(m) for m in z.members]} for z in reg.isolated_zones
        ],
        "crypto_policy": {p.level.name: policy_to_dict(p) for p in reg.crypto_policy},
    }


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _certs(certs: tuple[CertificateRef, ...]) -> list[dict[str, Any]]:
    return [
        _drop_none({"usage": c.usage.value, "fingerprint": c.fingerprint or None, "pem": c.pem})
        for c in certs
    ]


def _platform(p: Platform) -> dict[str, Any]:
    return _drop_none(
        {
            "code": p.code,
            "name": p.name,
            "kind": p.kind.value,
            "parent": p.parent,
            "operator": str(p.operator) if p.operator else None,
            "gateways": list(p.gateways),
            "links": [{"name": link.name, "address": link.address} for link in p.links],
            "certificates": _certs(p.certificates) if p.certificates else None,
        }
    )


def _member(m: Member, services: dict[str, list[Service]]) -> dict[str, Any]:
    return _drop_none(
        {
            "class": m.id.member_class,
            "code": m.id.member_code,
            "name": m.name,
            "platform": m.platform,
            "certificates": _certs(m.certificates),
            "gateways": list(m.gateways),
            "subsystems": [_subsystem(s, services.get(str(s.id), [])) for s in m.subsystems],
        }
    )


def _subsystem(s: Subsystem, services: list[Service]) -> dict[str, Any]:
    return {
        "code": s.id.subsystem,
        "name": s.name,
        "security_level": s.security_level,
        "clearance": s.clearance.name,
        "certificates": _certs(s.certificates),
        "gateways": list(s.gateways),
        "services": [_service(x) for x in services],
        "encryption_keys": dict(s.encryption_keys),
    }


def _service(s: Service) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": s.id.service,
        "level": s.level.name,
        "description": s.description,
    }
    if s.contract is not None:
        out["contract"] = _drop_none(
            {"kind": s.contract.kind.value, "ref": s.contract.ref, "inline": s.contract.inline}
        )
    return out


def _access(a: AccessRight) -> dict[str, Any]:
    return _drop_none(
        {
            "service": str(a.service),
            "client": str(a.client) if a.client else None,
            "group": a.group,
            "path": a.path,
        }
    )
