"""Routing between members: up the platform hierarchy and down again, or direct where allowed.

Law on E-Transactions 2023 Art. 42(4): agencies connect through intermediary platforms
(ministry/province platforms up to the national platform); a direct link is the registered
exception. The classification level of the exchange further restricts the path: a level may
be refused outright, allowed only inside an isolated zone, or only on direct links.
"""

from __future__ import annotations

from dataclasses import dataclass

from lienthong.classification import Level
from lienthong.errors import AccessDenied
from lienthong.federation.access import RegistryLike, policy_for, registry_of
from lienthong.federation.model import Member, PlatformLink, Registry
from lienthong.identifiers import MemberId


@dataclass(frozen=True)
class Hop:
    """One node on a route.

    ``kind`` is ``"member"`` or ``"platform"``; ``id`` the member id or platform code;
    ``addresses`` the gateway addresses of that node; ``links`` the physical paths (at most
    two) that join this node to the previous hop when the edge is a platform–parent edge.
    """

    kind: str
    id: str
    addresses: tuple[str, ...] = ()
    links: tuple[PlatformLink, ...] = ()


def route(
    config: RegistryLike,
    client_member: MemberId,
    provider_member: MemberId,
    *,
    level: Level | None = None,
) -> list[Hop]:
    """The hops from ``client_member`` to ``provider_member``, both included.

    One hop when both are the same member, two when they talk directly (registered direct link
    or shared isolated zone), else client → its platform → … → common ancestor → … →
    provider's platform → provider. With ``level``, the crypto policy of that level is
    enforced. Raises :class:`AccessDenied` (with ``reasons``) when no allowed route exists.
    """
    reg = registry_of(config)
    client, provider = _member(reg, client_member), _member(reg, provider_member)
    if client.id == provider.id:
        return [_member_hop(client)]
    direct = _direct_allowed(reg, client.id, provider.id)
    zone = _shared_zone(reg, client.id, provider.id)
    if level is None:
        return _direct(client, provider) if direct or zone else _relayed(reg, client, provider)
    policy = policy_for(reg, level)
    refuse = f"no route from {client.id} to {provider.id} at level {level}"
    if not policy.allowed:
        raise AccessDenied(refuse, reasons=[f"level {level} is not allowed in this federation"])
    if policy.isolated_zone_only:
        if zone is None:
            raise AccessDenied(
                refuse,
                reasons=[
                    f"level {level} may travel only inside an isolated zone and the two share none"
                ],
            )
        return _direct(client, provider)
    if (direct or zone) and policy.direct:
        return _direct(client, provider)
    if not policy.relayed:
        raise AccessDenied(
            refuse,
            reasons=[
                f"level {level} may not be relayed by platforms and no direct link is registered"
            ],
        )
    return _relayed(reg, client, provider)


def _member(reg: Registry, member_id: MemberId) -> Member:
    member = reg.member(member_id)
    if member is None:
        raise AccessDenied(f"unknown member {member_id}", reasons=[f"unknown member {member_id}"])
    return member


def _member_hop(m: Member) -> Hop:
    return Hop(
        "member", str(m.id), m.gateways or tuple(g for s in m.subsystems for g in s.gateways)
    )


def _direct(client: Member, provider: Member) -> list[Hop]:
    return [_member_hop(client), _member_hop(provider)]


def _direct_allowed(reg: Registry, a: MemberId, b: MemberId) -> bool:
    return (a, b) in reg.direct_links or (b, a) in reg.direct_links


def _shared_zone(reg: Registry, a: MemberId, b: MemberId) -> str | None:
    for zone in reg.isolated_zones:
        if a in zone.members and b in zone.members:
            return zone.code
    return None


def _chain(reg: Registry, member: Member) -> list[str]:
    """The member's platform and its ancestors, up to the root."""
    chain: list[str] = []
    code = member.platform
    while code is not None and code not in chain:
        chain.append(code)
        platform = reg.platform(code)
        code = platform.parent if platform else None
    return chain


def _relayed(reg: Registry, client: Member, provider: Member) -> list[Hop]:
    up, down = _chain(reg, client), _chain(reg, provider)
    common = next((code for code in up if code in down), None)
    if common is None:
        missing = [str(m.id) for m, c in ((client, up), (provider, down)) if not c]
        why = (
            f"not attached to any platform: {', '.join(missing)}"
            if missing
            else "their platforms share no common ancestor"
        )
        raise AccessDenied(f"no route from {client.id} to {provider.id}", reasons=[why])
    codes = up[: up.index(common) + 1] + list(reversed(down[: down.index(common)]))
    hops = [_member_hop(client)]
    for i, code in enumerate(codes):
        platform = reg.platform(code)
        assert platform is not None  # codes come from the chains above
        previous = codes[i - 1] if i else None
        links = _edge_links(reg, previous, code)
        hops.append(Hop("platform", code, platform.gateways, links))
    hops.append(_member_hop(provider))
    return hops


def _edge_links(reg: Registry, a: str | None, b: str) -> tuple[PlatformLink, ...]:
    """The physical links of the a–b platform edge (owned by whichever is the child)."""
    if a is None:
        return ()
    pa, pb = reg.platform(a), reg.platform(b)
    if pa is not None and pa.parent == b:
        return pa.links
    if pb is not None and pb.parent == a:
        return pb.links
    return ()
