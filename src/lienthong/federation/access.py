"""Authorisation and lookups over the registry: access rights, clearance, crypto policy,
registered certificates. Pure; called by gateways on every exchange."""

from __future__ import annotations

from typing import Protocol

from lienthong.classification import Level
from lienthong.errors import AccessDenied, NotFound
from lienthong.federation.model import CertificateRef, CertUsage, LevelPolicy, Registry
from lienthong.identifiers import MemberId, ServiceId, SubsystemId


class HasRegistry(Protocol):
    @property
    def registry(self) -> Registry: ...


RegistryLike = Registry | HasRegistry


def registry_of(config: RegistryLike) -> Registry:
    """Accept a :class:`Registry` or anything carrying one (the global configuration)."""
    return config if isinstance(config, Registry) else config.registry


def policy_for(config: RegistryLike, level: Level) -> LevelPolicy:
    """The crypto policy of ``level``; a level the registry does not name is refused."""
    for policy in registry_of(config).crypto_policy:
        if policy.level == level:
            return policy
    return LevelPolicy(level, allowed=False)


def path_matches(prefix: str | None, path: str) -> bool:
    """Segment-wise prefix match: ``/a`` matches ``/a`` and ``/a/b``, never ``/ab``."""
    if prefix is None:
        return True
    prefix = prefix.rstrip("/")
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def check_access(
    config: RegistryLike, client: SubsystemId, service: ServiceId, path: str = "/"
) -> None:
    """Raise :class:`AccessDenied` unless ``client`` may call ``service`` at ``path``.

    Checks, all reported together in ``details["reasons"]``: the service and client exist, an
    access right names the client (directly or through a group) for a prefix of ``path``, the
    client's clearance covers the service level, and the level is allowed at all.
    """
    reg = registry_of(config)
    reasons: list[str] = []
    svc, sub = reg.service(service), reg.subsystem(client)
    if svc is None:
        reasons.append(f"unknown service {service}")
    if sub is None:
        reasons.append(f"unknown client subsystem {client}")
    segments = path.split("/")
    if not path.startswith("/") or ".." in segments or "." in segments:
        reasons.append(f"path {path!r} must be absolute and free of '.' and '..' segments")
    elif not any(
        _grants(reg, right.client, right.group, client) and path_matches(right.path, path)
        for right in reg.rights_for(service)
    ):
        reasons.append(f"no access right lets {client} call {service} at {path}")
    if svc is not None and sub is not None and sub.clearance < svc.level:
        reasons.append(f"client clearance {sub.clearance} is below the service level {svc.level}")
    if svc is not None and not policy_for(reg, svc.level).allowed:
        reasons.append(f"level {svc.level} is not allowed in this federation")
    if reasons:
        raise AccessDenied(
            f"{client} may not call {service}: {reasons[0]}",
            reasons=reasons,
            client=str(client),
            service=str(service),
            path=path,
        )


def _grants(
    reg: Registry, right_client: SubsystemId | None, group: str | None, client: SubsystemId
) -> bool:
    if right_client is not None:
        return right_client == client
    found = reg.group(group) if group is not None else None
    return found is not None and client in found.subsystems


def certificates_of(
    config: RegistryLike, owner: MemberId | SubsystemId, usage: CertUsage | None = None
) -> tuple[CertificateRef, ...]:
    """Certificates registered for a member or subsystem (optionally of one usage)."""
    reg = registry_of(config)
    holder = reg.member(owner) if isinstance(owner, MemberId) else reg.subsystem(owner)
    if holder is None:
        raise NotFound(
            f"unknown {'member' if isinstance(owner, MemberId) else 'subsystem'} {owner}"
        )
    return tuple(c for c in holder.certificates if usage is None or c.usage == usage)


def find_certificate(
    config: RegistryLike, fingerprint: str
) -> tuple[MemberId | SubsystemId, CertificateRef]:
    """Who registered the certificate with this SHA-256 fingerprint; NotFound otherwise."""
    wanted = fingerprint.lower().replace(":", "")
    for member in registry_of(config).members:
        holders: list[tuple[MemberId | SubsystemId, tuple[CertificateRef, ...]]] = [
            (member.id, member.certificates)
        ]
        holders += [(s.id, s.certificates) for s in member.subsystems]
        for owner, certs in holders:
            for cert in certs:
                if cert.fingerprint == wanted:
                    return owner, cert
    raise NotFound(f"no member or subsystem registered certificate {wanted[:16]}…")
