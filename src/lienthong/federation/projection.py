"""Projection of a verified global configuration onto the exchange gateway's directory
(``lienthong.exchange.directory.DirectoryFile`` JSON shape).

Nodes: one ``agency`` node per member (named by its member id; addresses from the member's,
else its subsystems', gateways) and one ``platform`` node per platform (named by its code).
Where the two models differ, the projection fails closed and says so in its warnings:

- access rights restricted to a path prefix are left out (the directory has no paths; call
  :func:`lienthong.federation.access.check_access` for them);
- levels the crypto policy refuses are marked ``isolated_only`` (the directory has no
  "refused" flag) and platform nodes get the highest level they may relay as ``max_level``;
- members without any gateway address, and their subsystems, are left out.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from lienthong.classification import Level
from lienthong.federation.access import RegistryLike, policy_for, registry_of
from lienthong.federation.model import CertUsage, LevelPolicy, Member, Registry

_SUITE_NAMES = {"hybrid-x25519-mlkem768-aes256gcm": "X25519-MLKEM768-AES256GCM"}


def host_port(address: str) -> str:
    """``https://host:8443/x`` → ``host:8443`` (addresses without a scheme are kept)."""
    if "://" not in address:
        return address
    parts = urlsplit(address)
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.hostname}:{parts.port or default}"


def _addresses(member: Member) -> list[str]:
    found = list(member.gateways) + [g for s in member.subsystems for g in s.gateways]
    return list(dict.fromkeys(host_port(a) for a in found))[:2]


def _tls_pems(member: Member) -> list[str]:
    """Every TLS certificate registered for the member (several while one is renewed)."""
    refs = list(member.certificates) + [c for s in member.subsystems for c in s.certificates]
    return [c.pem for c in refs if c.usage is CertUsage.TLS and c.pem]


def _zone(reg: Registry, member: Member) -> str | None:
    return next((z.code for z in reg.isolated_zones if member.id in z.members), None)


def _policy(p: LevelPolicy) -> dict[str, Any]:
    suite = p.encryption[0] if p.encryption else "hybrid-x25519-mlkem768-aes256gcm"
    return {
        "encrypt": p.e2e_encryption,
        "hybrid_signature": any(s.startswith("hybrid") for s in p.signature),
        "suite": _SUITE_NAMES.get(suite, suite.upper()),
        "isolated_only": p.isolated_zone_only or not p.allowed,
    }


def _nodes(reg: Registry, warnings: list[str]) -> tuple[list[dict[str, Any]], set[str]]:
    relayable = [lv for lv in Level if policy_for(reg, lv).allowed and policy_for(reg, lv).relayed]
    platform_max = max(relayable, default=Level.PUBLIC).name
    nodes: list[dict[str, Any]] = []
    for p in reg.platforms:
        addresses = [host_port(a) for a in p.gateways][:2]
        tls = [c.pem for c in p.certificates if c.usage is CertUsage.TLS and c.pem]
        if not addresses:
            warnings.append(f"platform {p.code} has no gateway address: left out")
            continue
        nodes.append(
            {
                "name": p.code,
                "kind": "platform",
                "addresses": addresses,
                "parent": p.parent,
                "max_level": platform_max,
                "zone": None,
                "tls_cert": next(iter(tls), None),
                "tls_certs": tls[1:],
            }
        )
    agencies: set[str] = set()
    for m in reg.members:
        addresses = _addresses(m)
        if not addresses:
            warnings.append(f"member {m.id} has no gateway address: left out")
            continue
        clearance = max((s.clearance for s in m.subsystems), default=Level.PUBLIC)
        tls = _tls_pems(m)
        nodes.append(
            {
                "name": str(m.id),
                "kind": "agency",
                "addresses": addresses,
                "parent": m.platform,
                "max_level": clearance.name,
                "zone": _zone(reg, m),
                "tls_cert": next(iter(tls), None),
                "tls_certs": tls[1:],
            }
        )
        agencies.add(str(m.id))
    return nodes, agencies


def _access(reg: Registry, warnings: list[str]) -> list[list[str]]:
    pairs: list[list[str]] = []
    for right in reg.access:
        if right.path not in (None, "", "/"):
            warnings.append(
                f"access to {right.service} limited to {right.path} left out "
                "(the directory has no path prefixes)"
            )
            continue
        group = reg.group(right.group) if right.group else None
        clients = [right.client] if right.client else list(group.subsystems if group else ())
        pairs += [[str(c), str(right.service)] for c in clients if c is not None]
    return pairs


def to_exchange_directory(
    config: RegistryLike, *, roots: list[str] | None = None, expires_at: float | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The directory document for the exchange gateways, and warnings about what was left out.

    ``roots`` and ``expires_at`` default to the configuration's trust anchors and expiry when
    ``config`` is a :class:`~lienthong.federation.globalconf.GlobalConfiguration`.
    """
    reg = registry_of(config)
    warnings: list[str] = []
    nodes, agencies = _nodes(reg, warnings)
    subsystems = [
        {
            "id": str(s.id),
            "clearance": s.clearance.name,
            "node": str(m.id),
            "certs": [c.pem for c in s.certificates if c.usage is CertUsage.SIGNING and c.pem],
            "kem": dict(s.encryption_keys),
        }
        for m in reg.members
        if str(m.id) in agencies
        for s in m.subsystems
    ]
    expiry = getattr(config, "expires_at", None)
    doc = {
        "instance": reg.instance,
        "subsystems": subsystems,
        "services": [{"id": str(s.id), "level": s.level.name} for s in reg.services],
        "access": _access(reg, warnings),
        "nodes": nodes,
        "direct_links": [[str(a), str(b)] for a, b in reg.direct_links],
        "policy": {p.level.name: _policy(p) for p in reg.crypto_policy},
        "roots": roots if roots is not None else list(getattr(config, "trust_anchors", [])),
        "expires_at": expires_at
        if expires_at is not None
        else (expiry.timestamp() if expiry is not None else None),
    }
    return doc, warnings
