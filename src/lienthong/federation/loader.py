"""Declarative registry files (YAML or TOML) → :class:`~lienthong.federation.model.Registry`.

:func:`registry_from_dict` checks the structure of every entry, then
:mod:`lienthong.federation.validate` checks the references between entries; every problem of
both passes is reported at once in one :class:`~lienthong.errors.ConfigError`.
"""

from __future__ import annotations

import base64
import binascii
import tomllib
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from lienthong.classification import Level
from lienthong.errors import ConfigError
from lienthong.federation import fields as f
from lienthong.federation.model import (
    AccessRight,
    CertificateRef,
    CertUsage,
    Contract,
    ContractKind,
    Group,
    IsolatedZone,
    Member,
    Platform,
    PlatformKind,
    PlatformLink,
    Registry,
    Service,
    Subsystem,
)
from lienthong.federation.policy_loader import crypto_policy
from lienthong.federation.validate import pem_fingerprint, validate_registry
from lienthong.identifiers import MemberId, ServiceId, SubsystemId, parse_member

TOP_KEYS = {
    "instance",
    "platforms",
    "members",
    "groups",
    "access",
    "direct_links",
    "isolated_zones",
    "crypto_policy",
}


def load_registry(path: Path) -> Registry:
    """Read and validate a ``.yaml``/``.yml``/``.toml``/``.json`` registry file."""
    return registry_from_dict(read_document(path), source=str(path))


def read_document(path: Path) -> Any:
    """Parse a YAML/TOML/JSON file into plain data; syntax errors become ConfigError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(raw.decode("utf-8"))
        return yaml.safe_load(raw.decode("utf-8"))  # JSON is YAML too
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {first}"
        ) from exc


def registry_from_dict(data: Any, *, source: str = "registry") -> Registry:
    """Build and validate a registry; raise ConfigError listing every problem."""
    problems = f.Problems()
    doc = f.mapping(problems, data, "", TOP_KEYS)
    if doc is None:
        problems.raise_if_any(source)
        raise AssertionError("unreachable")
    instance = f.text(problems, doc, "instance", "") or "INVALID"
    members = [
        _member(problems, m, f.join("members", i), instance)
        for i, m in enumerate(f.items(problems, doc, "members", ""))
    ]
    members_ok = tuple(m for m, _ in members if m is not None)
    registry = Registry(
        instance=instance,
        members=members_ok,
        services=tuple(s for _, svcs in members for s in svcs),
        access=_each(problems, doc, "access", lambda v, p: _access(problems, v, p, instance)),
        groups=_each(problems, doc, "groups", lambda v, p: _group(problems, v, p, instance)),
        platforms=_each(
            problems, doc, "platforms", lambda v, p: _platform(problems, v, p, instance)
        ),
        direct_links=_each(
            problems, doc, "direct_links", lambda v, p: _link(problems, v, p, instance)
        ),
        isolated_zones=_each(
            problems, doc, "isolated_zones", lambda v, p: _zone(problems, v, p, instance)
        ),
        crypto_policy=crypto_policy(problems, doc.get("crypto_policy"), "crypto_policy"),
    )
    # Cross-checks run even after structural problems so one pass reports everything; an
    # entry dropped for a structural problem may add an "unknown ..." line, which is true.
    validate_registry(registry, problems)
    problems.raise_if_any(source)
    return registry


def _each(problems: f.Problems, doc: dict[str, Any], key: str, parse: Any) -> tuple[Any, ...]:
    out = [parse(v, f.join(key, i)) for i, v in enumerate(f.items(problems, doc, key, ""))]
    return tuple(x for x in out if x is not None)


def member_ref(text: str, instance: str) -> MemberId:
    """``INSTANCE/CLASS/CODE`` or, inside one instance, the short ``CLASS/CODE``."""
    return parse_member(text if text.count("/") == 2 else f"{instance}/{text}")


def subsystem_ref(text: str, instance: str) -> SubsystemId:
    return SubsystemId.parse(text if text.strip("/").count("/") == 3 else f"{instance}/{text}")


def service_ref(text: str, instance: str) -> ServiceId:
    return ServiceId.parse(text if text.strip("/").count("/") == 4 else f"{instance}/{text}")


def _ref(problems: f.Problems, obj: dict[str, Any], key: str, path: str, parse: Any) -> Any:
    value = f.text(problems, obj, key, path)
    return None if value is None else f.convert(problems, f.join(path, key), lambda: parse(value))


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


def _fingerprint(pem: str) -> str:
    try:
        return pem_fingerprint(pem)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _member(
    problems: f.Problems, raw: Any, path: str, instance: str
) -> tuple[Member | None, list[Service]]:
    keys = {"class", "code", "name", "platform", "subsystems", "certificates", "gateways"}
    d = f.mapping(problems, raw, path, keys)
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
    certs, gateways = _certs(problems, d, path), f.strings(problems, d, "gateways", path)
    platform = f.text(problems, d, "platform", path, required=False)
    if member_id is None or name is None:
        return None, services
    return Member(member_id, name, platform, tuple(subsystems), certs, gateways), services


def _subsystem(
    problems: f.Problems, raw: Any, path: str, member_id: MemberId | None
) -> tuple[Subsystem | None, list[Service]]:
    keys = {
        "code",
        "name",
        "security_level",
        "clearance",
        "certificates",
        "gateways",
        "services",
        "encryption_keys",
    }
    d = f.mapping(problems, raw, path, keys)
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
    certs, gateways = _certs(problems, d, path), f.strings(problems, d, "gateways", path)
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
    out = []
    for name, value in raw.items():
        try:
            base64.b64decode(str(value), validate=True)
        except binascii.Error:
            problems.add(f.join(path, str(name)), "public key is not base64")
            continue
        out.append((str(name), str(value)))
    return tuple(sorted(out))


def _service(problems: f.Problems, raw: Any, path: str, sid: SubsystemId | None) -> Service | None:
    d = f.mapping(problems, raw, path, {"code", "level", "description", "contract"})
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


def _access(problems: f.Problems, raw: Any, path: str, instance: str) -> AccessRight | None:
    d = f.mapping(problems, raw, path, {"client", "group", "service", "path"})
    if d is None:
        return None
    service = _ref(problems, d, "service", path, lambda v: service_ref(v, instance))
    client = group = None
    if ("client" in d) == ("group" in d):
        problems.add(path, "give exactly one of 'client' (a subsystem) and 'group'")
    elif "client" in d:
        client = _ref(problems, d, "client", path, lambda v: subsystem_ref(v, instance))
    else:
        group = f.text(problems, d, "group", path)
    prefix = f.text(problems, d, "path", path, required=False)
    if prefix is not None and (not prefix.startswith("/") or "/../" in prefix + "/"):
        problems.add(
            f.join(path, "path"), f"path prefix {prefix!r} must start with '/' and not use '..'"
        )
    if service is None or (client is None and group is None):
        return None
    return AccessRight(service, client, group, prefix)


def _group(problems: f.Problems, raw: Any, path: str, instance: str) -> Group | None:
    d = f.mapping(problems, raw, path, {"code", "description", "subsystems"})
    if d is None:
        return None
    code = f.text(problems, d, "code", path)
    description = f.text(problems, d, "description", path, required=False) or ""
    subs = [
        f.convert(
            problems, f.join(f.join(path, "subsystems"), i), partial(subsystem_ref, v, instance)
        )
        for i, v in enumerate(f.strings(problems, d, "subsystems", path))
    ]
    return Group(code, description, tuple(s for s in subs if s)) if code else None


def _platform(problems: f.Problems, raw: Any, path: str, instance: str) -> Platform | None:
    keys = {"code", "name", "kind", "parent", "operator", "gateways", "links"}
    d = f.mapping(problems, raw, path, keys)
    if d is None:
        return None
    code, name = f.text(problems, d, "code", path), f.text(problems, d, "name", path)
    kind = f.text(problems, d, "kind", path)
    if kind is not None and kind not in PlatformKind.__members__.values():
        problems.add(f.join(path, "kind"), f"unknown kind {kind!r} (national, ministry, province)")
        kind = None
    operator = None
    if "operator" in d:
        operator = _ref(problems, d, "operator", path, lambda v: member_ref(v, instance))
    links = []
    for i, raw_link in enumerate(f.items(problems, d, "links", path)):
        p = f.join(f.join(path, "links"), i)
        ld = f.mapping(problems, raw_link, p, {"name", "address"})
        if ld is not None:
            ln, la = f.text(problems, ld, "name", p), f.text(problems, ld, "address", p)
            links += [PlatformLink(ln, la)] if ln and la else []
    parent = f.text(problems, d, "parent", path, required=False)
    gateways = f.strings(problems, d, "gateways", path)
    if code is None or name is None or kind is None:
        return None
    return Platform(code, name, PlatformKind(kind), parent, operator, gateways, tuple(links))


def _link(
    problems: f.Problems, raw: Any, path: str, instance: str
) -> tuple[MemberId, MemberId] | None:
    if not isinstance(raw, list) or len(raw) != 2 or not all(isinstance(x, str) for x in raw):
        problems.add(path, "expected a pair of member ids, e.g. [VN/GOV/G01.BCA, VN/GOV/G12]")
        return None
    a = f.convert(problems, f.join(path, 0), lambda: member_ref(raw[0], instance))
    b = f.convert(problems, f.join(path, 1), lambda: member_ref(raw[1], instance))
    return (a, b) if a and b else None


def _zone(problems: f.Problems, raw: Any, path: str, instance: str) -> IsolatedZone | None:
    d = f.mapping(problems, raw, path, {"code", "members"})
    if d is None:
        return None
    code = f.text(problems, d, "code", path)
    members = [
        f.convert(problems, f.join(f.join(path, "members"), i), partial(member_ref, v, instance))
        for i, v in enumerate(f.strings(problems, d, "members", path))
    ]
    return IsolatedZone(code, tuple(m for m in members if m)) if code else None
