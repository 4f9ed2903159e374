"""Parsing member entries of a registry file: members, subsystems, services, contracts,
certificates and encryption keys (structure only; references are checked by ``validate``)."""

from __future__ import annotations

from functools import partial
from typing import Any

from lienthong.classification import Level
from lienthong.errors import ConfigError
from lienthong.exchange.e2e import KEM_PUBLIC_SIZES, kem_public_problems
from lienthong.federation import fields as f
from lienthong.federation.model import (
    CertificateRef,
    CertUsage,
    Contract,
    ContractKind,
    Member,
    Service,
    Subsystem,
)
from lienthong.federation.validate import pem_fingerprint
from lienthong.identifiers import MemberId, ServiceId, SubsystemId

MEMBER_KEYS = {"class", "code", "name", "platform", "subsystems", "certificates", "gateways"}
SUBSYSTEM_KEYS = {
    "code",
    "name",
    "security_level",
    "clearance",
    "certificates",
    "gateways",
    "services",
    "encryption_keys",
}
SERVICE_KEYS = {"code", "level", "description", "contract"}


def _level(problems: f.Problems, obj: dict[str, Any], key: str, path: str) -> Level | None:
    value = obj.get(key)
    if value is None:
        problems.add(f.join(path, key), "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.add(f.join(path, key), f"expected a level name, got {value!r}")
        return None
    return f.convert(problems, f.join(path, key), lambda: Level.parse(value))


def _certs(problems: f.Problems, obj: dict[str, Any], path: str) -> tuple[CertificateRef, ...]:
    out = []
    for i, raw in enumerate(f.items(problems, obj, "certificates", path)):
        p = f.join(f.join(path, "certificates"), i)
        d = f.mapping(problems, raw, p, {"usage", "fingerprint", "pem"})
        if d is None:
            continue
        usage = f.text(problems, d, "usage", p)
        fp = f.text(problems, d, "fingerprint", p, required="pem" not in d)
        pem = f.text(problems, d, "pem", p, required=False)
        if usage is not None and usage not in CertUsage.__members__.values():
            problems.add(f.join(p, "usage"), f"unknown usage {usage!r} (signing or tls)")
        elif usage is not None and (fp or pem):
            if fp is None and pem is not None:
                fp = f.convert(problems, f.join(p, "pem"), partial(_fingerprint, pem))
            out.append(CertificateRef(CertUsage(usage), (fp or "").lower().replace(":", ""), pem))
    return tuple(out)


certificates_entry = _certs  # a platform's certificates, same shape


def _fingerprint(pem: str) -> str:
    try:
        return pem_fingerprint(pem)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def member_entry(
    problems: f.Problems, raw: Any, path: str, instance: str
) -> tuple[Member | None, list[Service]]:
    d = f.mapping(problems, raw, path, MEMBER_KEYS)
    if d is None:
        return None, []
    cls, code = f.text(problems, d, "class", path), f.text(problems, d, "code", path)
    name = f.text(problems, d, "name", path)
    member_id = None
    if cls and code:
        member_id = f.convert(problems, path, lambda: MemberId(instance, cls, code))
    subsystems, services = [], []
    for i, s in enumerate(f.items(problems, d, "subsystems", path)):
        sub, svcs = _subsystem(problems, s, f.join(f.join(path, "subsystems"), i), member_id)
        subsystems += [sub] if sub else []
        services += svcs
    certs, gateways = _certs(problems, d, path), f.gateway_urls(problems, d, "gateways", path)
    platform = f.text(problems, d, "platform", path, required=False)
    if member_id is None or name is None:
        return None, services
    return Member(member_id, name, platform, tuple(subsystems), certs, gateways), services


def _subsystem(
    problems: f.Problems, raw: Any, path: str, member_id: MemberId | None
) -> tuple[Subsystem | None, list[Service]]:
    d = f.mapping(problems, raw, path, SUBSYSTEM_KEYS)
    if d is None:
        return None, []
    code, name = f.text(problems, d, "code", path), f.text(problems, d, "name", path)
    sec = f.integer(problems, d, "security_level", path)
    if sec is not None and not 1 <= sec <= 5:
        problems.add(f.join(path, "security_level"), f"{sec} is not a Decree 85/2016 level 1-5")
    clearance = _level(problems, d, "clearance", path)
    sid = None
    if code and member_id is not None:
        sid = f.convert(problems, f.join(path, "code"), lambda: SubsystemId(member_id, code))
    services = [
        _service(problems, s, f.join(f.join(path, "services"), i), sid)
        for i, s in enumerate(f.items(problems, d, "services", path))
    ]
    certs, gateways = _certs(problems, d, path), f.gateway_urls(problems, d, "gateways", path)
    ok = [s for s in services if s is not None]
    if sid is None or name is None or sec is None or clearance is None:
        return None, ok
    enc = _encryption_keys(problems, d.get("encryption_keys"), f.join(path, "encryption_keys"))
    return Subsystem(sid, name, sec, clearance, certs, gateways, enc), ok


def _encryption_keys(problems: f.Problems, raw: Any, path: str) -> tuple[tuple[str, str], ...]:
    """``{algorithm: base64 public key}`` for end-to-end encryption to a subsystem."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        problems.add(path, "expected a mapping of algorithm name to base64 public key")
        return ()
    keys = {str(name): str(value) for name, value in raw.items()}
    if not keys:  # none published (as the dump writes it)
        return ()
    problems_found = kem_public_problems(keys)
    for name, got in problems_found:
        if name is None:
            problems.add(path, f"must hold exactly {sorted(KEM_PUBLIC_SIZES)}, not {sorted(keys)}")
        elif got is None:
            problems.add(f.join(path, name), "public key is not base64")
        else:
            problems.add(
                f.join(path, name),
                f"public key is {got} bytes, not {KEM_PUBLIC_SIZES[name]} ({name})",
            )
    return () if problems_found else tuple(sorted(keys.items()))


def _service(problems: f.Problems, raw: Any, path: str, sid: SubsystemId | None) -> Service | None:
    d = f.mapping(problems, raw, path, SERVICE_KEYS)
    if d is None:
        return None
    code = f.text(problems, d, "code", path)
    level = _level(problems, d, "level", path)
    description = f.text(problems, d, "description", path, required=False) or ""
    contract = _contract(problems, d.get("contract"), f.join(path, "contract"))
    service_id = None
    if code and sid is not None:
        service_id = f.convert(problems, f.join(path, "code"), lambda: ServiceId(sid, code))
    if service_id is None or level is None:
        return None
    return Service(service_id, level, description, contract)


def _contract(problems: f.Problems, raw: Any, path: str) -> Contract | None:
    if raw is None:
        return None
    d = f.mapping(problems, raw, path, {"kind", "ref", "inline"})
    if d is None:
        return None
    kind = f.text(problems, d, "kind", path)
    ref = f.text(problems, d, "ref", path, required=False)
    inline = d.get("inline")
    if kind is not None and kind not in ContractKind.__members__.values():
        problems.add(
            f.join(path, "kind"), f"unknown contract kind {kind!r} (openapi or json-schema)"
        )
        return None
    if inline is not None and not isinstance(inline, dict):
        problems.add(
            f.join(path, "inline"), "expected a mapping (the OpenAPI/JSON Schema document)"
        )
        return None
    if (ref is None) == (inline is None):
        problems.add(path, "give exactly one of 'ref' and 'inline'")
        return None
    return Contract(ContractKind(kind), ref, inline) if kind else None
