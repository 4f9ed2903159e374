"""Parsing the network part of a registry file: platforms and their links, groups, access
rights, direct links and isolated zones."""

from __future__ import annotations

from functools import partial
from typing import Any

from lienthong.federation import fields as f
from lienthong.federation.entries import certificates_entry
from lienthong.federation.model import (
    AccessRight,
    Group,
    IsolatedZone,
    Platform,
    PlatformKind,
    PlatformLink,
)
from lienthong.federation.refs import member_ref, ref_field, service_ref, subsystem_ref
from lienthong.identifiers import MemberId


def access_entry(problems: f.Problems, raw: Any, path: str, instance: str) -> AccessRight | None:
    d = f.mapping(problems, raw, path, {"client", "group", "service", "path"})
    if d is None:
        return None
    service = ref_field(problems, d, "service", path, lambda v: service_ref(v, instance))
    client = group = None
    if ("client" in d) == ("group" in d):
        problems.add(path, "give exactly one of 'client' (a subsystem) and 'group'")
    elif "client" in d:
        client = ref_field(problems, d, "client", path, lambda v: subsystem_ref(v, instance))
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


def group_entry(problems: f.Problems, raw: Any, path: str, instance: str) -> Group | None:
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


def platform_entry(problems: f.Problems, raw: Any, path: str, instance: str) -> Platform | None:
    keys = {"code", "name", "kind", "parent", "operator", "gateways", "links", "certificates"}
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
        operator = ref_field(problems, d, "operator", path, lambda v: member_ref(v, instance))
    links = []
    for i, raw_link in enumerate(f.items(problems, d, "links", path)):
        p = f.join(f.join(path, "links"), i)
        ld = f.mapping(problems, raw_link, p, {"name", "address"})
        if ld is not None:
            ln, la = f.text(problems, ld, "name", p), f.text(problems, ld, "address", p)
            links += [PlatformLink(ln, la)] if ln and la else []
    parent = f.text(problems, d, "parent", path, required=False)
    gateways = f.strings(problems, d, "gateways", path)
    certs = certificates_entry(problems, d, path)
    if code is None or name is None or kind is None:
        return None
    return Platform(code, name, PlatformKind(kind), parent, operator, gateways, tuple(links), certs)


def link_entry(
    problems: f.Problems, raw: Any, path: str, instance: str
) -> tuple[MemberId, MemberId] | None:
    if not isinstance(raw, list) or len(raw) != 2 or not all(isinstance(x, str) for x in raw):
        problems.add(path, "expected a pair of member ids, e.g. [VN/GOV/G01.BCA, VN/GOV/G12]")
        return None
    a = f.convert(problems, f.join(path, 0), lambda: member_ref(raw[0], instance))
    b = f.convert(problems, f.join(path, 1), lambda: member_ref(raw[1], instance))
    return (a, b) if a and b else None


def zone_entry(problems: f.Problems, raw: Any, path: str, instance: str) -> IsolatedZone | None:
    d = f.mapping(problems, raw, path, {"code", "members"})
    if d is None:
        return None
    code = f.text(problems, d, "code", path)
    members = [
        f.convert(problems, f.join(f.join(path, "members"), i), partial(member_ref, v, instance))
        for i, v in enumerate(f.strings(problems, d, "members", path))
    ]
    return IsolatedZone(code, tuple(m for m in members if m)) if code else None
