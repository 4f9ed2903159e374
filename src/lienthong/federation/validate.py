"""Cross-reference checks of a registry: duplicates, dangling references, clearance, the
platform tree. Pure; every problem goes to the same :class:`~.fields.Problems` list."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import Counter
from collections.abc import Iterable

from lienthong.federation.fields import Problems
from lienthong.federation.model import CertificateRef, CertUsage, Platform, PlatformKind, Registry

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def pem_fingerprint(pem: str) -> str:
    """SHA-256 (lower-case hex) of the DER inside a PEM certificate; ValueError if not PEM."""
    match = _PEM.search(pem)
    if match is None:
        raise ValueError("not a PEM certificate")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except binascii.Error as exc:
        raise ValueError("bad base64 in PEM certificate") from exc
    return hashlib.sha256(der).hexdigest()


def validate_registry(reg: Registry, problems: Problems) -> None:
    """Add every cross-reference problem of ``reg`` to ``problems``."""
    _duplicates(problems, "members", (str(m.id) for m in reg.members))
    _duplicates(problems, "subsystems", (str(s.id) for m in reg.members for s in m.subsystems))
    _duplicates(problems, "services", (str(s.id) for s in reg.services))
    _duplicates(problems, "platforms", (p.code for p in reg.platforms))
    _duplicates(problems, "groups", (g.code for g in reg.groups))
    _duplicates(problems, "isolated_zones", (z.code for z in reg.isolated_zones))
    _members(reg, problems)
    _services(reg, problems)
    _access(reg, problems)
    _groups_links_zones(reg, problems)
    _platforms(reg, problems)


def _duplicates(problems: Problems, what: str, ids: Iterable[str]) -> None:
    for value, n in Counter(ids).items():
        if n > 1:
            problems.add(what, f"duplicate id {value!r} ({n} times)")


def _members(reg: Registry, problems: Problems) -> None:
    codes = {p.code for p in reg.platforms}
    for i, m in enumerate(reg.members):
        if m.platform is not None and m.platform not in codes:
            problems.add(f"members[{i}].platform", f"unknown platform {m.platform!r}")
        if m.id.instance != reg.instance:
            problems.add(f"members[{i}]", f"member {m.id} is not in instance {reg.instance}")
        _certificates(problems, f"members[{i}].certificates", m.certificates, str(m.id))
        for j, s in enumerate(m.subsystems):
            _certificates(
                problems, f"members[{i}].subsystems[{j}].certificates", s.certificates, str(s.id)
            )
    _shared_fingerprints(reg, problems)


def _shared_fingerprints(reg: Registry, problems: Problems) -> None:
    """One certificate, one holder: a fingerprint registered twice binds a key to two owners."""
    holders: dict[str, list[str]] = {}
    for p in reg.platforms:
        for c in p.certificates:
            holders.setdefault(c.fingerprint, []).append(f"platform {p.code}")
    for m in reg.members:
        for c in m.certificates:
            holders.setdefault(c.fingerprint, []).append(str(m.id))
        for s in m.subsystems:
            for c in s.certificates:
                holders.setdefault(c.fingerprint, []).append(str(s.id))
    for fp, owners in holders.items():
        if fp and len(owners) > 1:
            problems.add(
                "certificates",
                f"certificate {fp[:16]}… is registered {len(owners)} times "
                f"({', '.join(owners)}): a certificate belongs to one member or subsystem",
            )


def certificate_identity_problem(pem: str, owner: str) -> str | None:
    """Why the certificate in ``pem`` cannot be registered for ``owner`` (None if it can).

    The identity the certificate names (subjectAltName URI / subject) must be ``owner``
    exactly: otherwise one agency's key would be accepted as another's.
    """
    from cryptography import x509

    from lienthong.errors import CertificateError
    from lienthong.trust.identity import identity_of

    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
        named = str(identity_of(cert))
    except (ValueError, CertificateError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        return f"the certificate names no federation identity ({message})"
    if named != owner:
        return f"the certificate is for {named}, not for its registered owner {owner}"
    return None


def _certificates(
    problems: Problems, path: str, certs: Iterable[CertificateRef], owner: str
) -> None:
    for k, c in enumerate(certs):
        if c.fingerprint and not _FINGERPRINT.fullmatch(c.fingerprint):
            problems.add(f"{path}[{k}].fingerprint", "expected 64 hex digits (SHA-256 of the DER)")
        if c.pem is None:
            continue
        try:
            actual = pem_fingerprint(c.pem)
        except ValueError as exc:
            problems.add(f"{path}[{k}].pem", str(exc))
            continue
        if c.fingerprint and c.fingerprint != actual:
            problems.add(f"{path}[{k}]", f"fingerprint does not match the PEM (it is {actual})")
            continue
        mismatch = certificate_identity_problem(c.pem, owner)
        if mismatch is not None:
            problems.add(f"{path}[{k}]", mismatch)


def _services(reg: Registry, problems: Problems) -> None:
    for s in reg.services:
        provider = reg.subsystem(s.id.subsystem)
        if provider is not None and s.level > provider.clearance:
            problems.add(
                f"services[{s.id}]",
                f"level {s.level} is above the clearance {provider.clearance} of its provider "
                f"{provider.id}",
            )


def _access(reg: Registry, problems: Problems) -> None:
    first: dict[object, int] = {}
    for i, a in enumerate(reg.access):
        path = f"access[{i}]"
        if a in first:
            problems.add(path, f"duplicate of access[{first[a]}] (the same right twice)")
        first.setdefault(a, i)
        service = reg.service(a.service)
        if service is None:
            problems.add(f"{path}.service", f"unknown service {a.service}")
        clients = []
        if a.client is not None:
            if reg.subsystem(a.client) is None:
                problems.add(f"{path}.client", f"unknown subsystem {a.client}")
            clients = [a.client]
        elif a.group is not None:
            group = reg.group(a.group)
            if group is None:
                problems.add(f"{path}.group", f"unknown group {a.group!r}")
            clients = list(group.subsystems) if group else []
        for c in clients:
            sub = reg.subsystem(c)
            if service is not None and sub is not None and sub.clearance < service.level:
                problems.add(
                    path,
                    f"client {c} is cleared for {sub.clearance}, below the level "
                    f"{service.level} of {service.id}",
                )


def _groups_links_zones(reg: Registry, problems: Problems) -> None:
    for i, g in enumerate(reg.groups):
        for j, s in enumerate(g.subsystems):
            if reg.subsystem(s) is None:
                problems.add(f"groups[{i}].subsystems[{j}]", f"unknown subsystem {s}")
    for i, (a, b) in enumerate(reg.direct_links):
        for j, m in enumerate((a, b)):
            if reg.member(m) is None:
                problems.add(f"direct_links[{i}][{j}]", f"unknown member {m}")
        if a == b:
            problems.add(f"direct_links[{i}]", "a direct link needs two different members")
    for i, z in enumerate(reg.isolated_zones):
        for j, m in enumerate(z.members):
            if reg.member(m) is None:
                problems.add(f"isolated_zones[{i}].members[{j}]", f"unknown member {m}")


def _platforms(reg: Registry, problems: Problems) -> None:
    roots = [p for p in reg.platforms if p.parent is None]
    if reg.platforms and len(roots) != 1:
        problems.add("platforms", f"expected exactly one root platform, found {len(roots)}")
    for i, p in enumerate(reg.platforms):
        path = f"platforms[{i}]"
        if p.parent is None and p.kind is not PlatformKind.NATIONAL:
            problems.add(path, f"root platform {p.code!r} must be of kind national")
        if p.parent is not None and reg.platform(p.parent) is None:
            problems.add(f"{path}.parent", f"unknown platform {p.parent!r}")
        if p.parent is not None and not p.links:
            problems.add(f"{path}.links", f"platform {p.code!r} needs a link to its parent")
        if len(p.links) > 2:
            problems.add(f"{path}.links", f"at most two links to the parent, got {len(p.links)}")
        if p.operator is not None and reg.member(p.operator) is None:
            problems.add(f"{path}.operator", f"unknown member {p.operator}")
        _platform_certificates(problems, path, p)
        if _in_cycle(reg, p.code):
            problems.add(f"{path}.parent", f"platform {p.code!r} is in a parent cycle")


def _platform_certificates(problems: Problems, path: str, p: Platform) -> None:
    """A platform's gateway presents TLS certificates naming its operator (a member)."""
    if not p.certificates:
        return
    if p.operator is None:
        problems.add(
            f"{path}.certificates",
            f"platform {p.code!r} has certificates but no operator: they name the operator",
        )
        return
    for k, c in enumerate(p.certificates):
        if c.usage is not CertUsage.TLS:
            problems.add(
                f"{path}.certificates[{k}].usage",
                "a platform holds TLS certificates only (its operator member signs)",
            )
    _certificates(problems, f"{path}.certificates", p.certificates, str(p.operator))


def _in_cycle(reg: Registry, code: str) -> bool:
    seen: set[str] = set()
    current: str | None = code
    while current is not None:
        if current in seen:
            return current == code
        seen.add(current)
        platform = reg.platform(current)
        current = platform.parent if platform else None
    return False


def warnings_of(reg: Registry) -> list[str]:
    """Advice that does not block publication (e.g. a single physical path)."""
    out = []
    for p in reg.platforms:
        if p.parent is not None and len(p.links) == 1:
            out.append(
                f"platform {p.code!r} has one link to its parent; Decision 1562 Art. 2.2.a "
                "asks for two physically separate paths"
            )
    for m in reg.members:
        if m.platform is None and not any(m.id in link for link in reg.direct_links):
            out.append(f"member {m.id} is attached to no platform and has no direct link")
    return out
