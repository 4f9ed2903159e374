"""Routing through the platform hierarchy (Law on E-Transactions Art. 42(4)).

By default a call climbs from the client's gateway through its ministry/province platform to
the lowest platform shared with the provider, then descends to the provider's gateway. A direct
link is used only where the directory lists it. The route is computed by the client gateway,
signed inside the request claims, and each relay checks it stands on it.
"""

from __future__ import annotations

from lienthong.exchange.directory import Directory
from lienthong.exchange.protocol import ErrorCode, Refused


def ancestors(directory: Directory, node: str) -> list[str]:
    """``node`` and its parents up to the root (raise Refused(LT.ROUTE) on a cycle)."""
    chain = [node]
    seen = {node}
    current = directory.nodes[node].parent
    while current is not None:
        if current in seen:
            raise Refused(ErrorCode.ROUTE, "cycle in the platform hierarchy", node=current)
        chain.append(current)
        seen.add(current)
        current = directory.nodes[current].parent
    return chain


def plan_route(directory: Directory, client_node: str, provider_node: str) -> list[str]:
    """Nodes from the client's gateway to the provider's, both included."""
    for name in (client_node, provider_node):
        if name not in directory.nodes:
            raise Refused(ErrorCode.ROUTE, "unknown gateway node", node=name)
    if client_node == provider_node:
        return [client_node]
    if frozenset((client_node, provider_node)) in directory.direct_links:
        return [client_node, provider_node]
    up = ancestors(directory, client_node)
    down = ancestors(directory, provider_node)
    common = next((n for n in up if n in set(down)), None)
    if common is None:
        raise Refused(
            ErrorCode.ROUTE, "no common platform", client=client_node, provider=provider_node
        )
    climb = up[: up.index(common) + 1]
    descend = list(reversed(down[: down.index(common)]))
    return climb + descend


def next_hop(route: list[str], me: str) -> str | None:
    """The node after ``me`` on ``route`` (None when ``me`` is the destination)."""
    if me not in route:
        raise Refused(ErrorCode.ROUTE, "this node is not on the signed route", node=me)
    i = route.index(me)
    return route[i + 1] if i + 1 < len(route) else None


def previous_hop(route: list[str], me: str) -> str | None:
    i = route.index(me)
    return route[i - 1] if i > 0 else None
