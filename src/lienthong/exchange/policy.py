"""Authorisation and classification rules for one call (pure; every refusal is uniform).

The classification rule: a service's level must not exceed the clearance of the client
subsystem nor of the provider subsystem (no write-down: data never flows to a place cleared for
less), nor the highest level allowed on any node of the route; levels whose policy is
``isolated_only`` (by default TUYET_MAT) travel only when every node is in the same isolated
zone.
"""

from __future__ import annotations

from dataclasses import dataclass

from lienthong.classification import Level
from lienthong.exchange.directory import Directory, LevelPolicy
from lienthong.exchange.protocol import ErrorCode, Refused
from lienthong.identifiers import ServiceId, SubsystemId


@dataclass(frozen=True)
class Decision:
    level: Level
    policy: LevelPolicy
    provider_node: str
    client_node: str


def verify_access(directory: Directory, client: SubsystemId, service: ServiceId) -> Decision:
    """Raise Refused unless ``client`` may call ``service`` (membership, right, clearance)."""
    if client not in directory.subsystems:
        raise Refused(ErrorCode.ACCESS_DENIED, "unknown client subsystem", client=str(client))
    level = directory.services.get(service)
    provider = service.subsystem
    if level is None or provider not in directory.subsystems:
        raise Refused(ErrorCode.ACCESS_DENIED, "unknown service", service=str(service))
    if (client, service) not in directory.access:
        raise Refused(
            ErrorCode.ACCESS_DENIED, "no access right", client=str(client), service=str(service)
        )
    for who in (client, provider):
        if directory.clearance[who] < level:
            raise Refused(
                ErrorCode.CLEARANCE,
                "subsystem clearance below service level",
                subsystem=str(who),
                clearance=directory.clearance[who].name,
                level=level.name,
            )
    return Decision(
        level=level,
        policy=directory.policy[level],
        provider_node=directory.subsystems[provider].node,
        client_node=directory.subsystems[client].node,
    )


def verify_route(directory: Directory, level: Level, route: list[str]) -> None:
    """Raise Refused(LT.ROUTE) unless ``level`` may travel on every node of ``route``."""
    for node in route:
        allowed = directory.node_level.get(node)
        if allowed is None or allowed < level:
            raise Refused(ErrorCode.ROUTE, "level not allowed on node", node=node, level=level.name)
    if directory.policy[level].isolated_only:
        zones = {directory.nodes[n].zone for n in route}
        if len(zones) != 1 or None in zones:
            raise Refused(
                ErrorCode.ROUTE, "level travels only inside one isolated zone", level=level.name
            )
