"""What a gateway needs to know about the federation, as one typed, validated object.

The signed global configuration (federation capability) is projected onto this view:
subsystems (clearance, gateway node, signing certificates, key-agreement public keys),
services (classification level), access rights, gateway nodes of the platform hierarchy
(kind, parent, two addresses, highest level allowed, isolated zone), allowed direct links and
the crypto policy per level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from lienthong.classification import Level
from lienthong.errors import ConfigError, InputError
from lienthong.identifiers import ServiceId, SubsystemId


class LevelPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    encrypt: bool = False  # end-to-end encryption of bodies to the provider subsystem
    hybrid_signature: bool = False  # ECDSA P-256 + ML-DSA-65
    suite: str = "X25519-MLKEM768-AES256GCM"
    isolated_only: bool = False  # may only travel inside one isolated zone


DEFAULT_POLICY: dict[str, LevelPolicy] = {
    "PUBLIC": LevelPolicy(),
    "INTERNAL": LevelPolicy(),
    "PERSONAL": LevelPolicy(encrypt=True),
    "SENSITIVE": LevelPolicy(encrypt=True),
    "MAT": LevelPolicy(encrypt=True, hybrid_signature=True),
    "TOI_MAT": LevelPolicy(encrypt=True, hybrid_signature=True),
    "TUYET_MAT": LevelPolicy(encrypt=True, hybrid_signature=True, isolated_only=True),
}


class SubsystemEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    clearance: str
    node: str  # the gateway node that serves this subsystem
    certs: list[str] = []  # PEM signing certificates (ECDSA P-256, ML-DSA-65)
    kem: dict[str, str] = {}  # key-agreement public keys: {"x25519": b64, "mlkem768": b64}


class ServiceEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    level: str


class NodeEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    kind: str  # "agency" | "platform"
    addresses: list[str]  # "host:port" of its mTLS listener, two physical paths at most
    parent: str | None = None
    max_level: str = "TOI_MAT"
    zone: str | None = None  # isolated zone (mạng LAN độc lập) the node sits in
    tls_cert: str | None = None  # PEM of its TLS certificate (identity check of peers)
    # more TLS certificates of the node, e.g. the renewed one beside the old during a renewal
    # (see lifecycle.py): peers accept any of them
    tls_certs: list[str] = []

    def all_tls_certs(self) -> list[str]:
        return ([self.tls_cert] if self.tls_cert else []) + self.tls_certs


class DirectoryFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    instance: str
    subsystems: list[SubsystemEntry]
    services: list[ServiceEntry]
    access: list[list[str]]  # [client subsystem id, service id]
    nodes: list[NodeEntry]
    direct_links: list[list[str]] = []
    policy: dict[str, LevelPolicy] = {}
    roots: list[str] = []  # PEM CA certificates trusted for this federation
    expires_at: float | None = None


@dataclass(frozen=True)
class Directory:
    """Indexed, validated view; build with :func:`directory_from_json` or from a federation."""

    instance: str
    subsystems: dict[SubsystemId, SubsystemEntry]
    clearance: dict[SubsystemId, Level]
    services: dict[ServiceId, Level]
    access: frozenset[tuple[SubsystemId, ServiceId]]
    nodes: dict[str, NodeEntry]
    direct_links: frozenset[frozenset[str]]
    policy: dict[Level, LevelPolicy]
    roots: tuple[str, ...] = ()
    expires_at: float | None = None
    node_level: dict[str, Level] = field(default_factory=dict)


def directory_from_file(data: DirectoryFile) -> Directory:
    """Index and cross-check a decoded directory (raise ConfigError on any inconsistency)."""
    try:
        subsystems = {SubsystemId.parse(s.id): s for s in data.subsystems}
        clearance = {k: Level.parse(v.clearance) for k, v in subsystems.items()}
        services = {ServiceId.parse(s.id): Level.parse(s.level) for s in data.services}
        access = frozenset((SubsystemId.parse(c), ServiceId.parse(s)) for c, s in data.access)
        policy = {Level.parse(k): v for k, v in {**DEFAULT_POLICY, **data.policy}.items()}
        node_level = {n.name: Level.parse(n.max_level) for n in data.nodes}
    except (InputError, ValueError) as exc:
        raise ConfigError(f"federation directory: {exc}") from exc
    nodes = {n.name: n for n in data.nodes}
    for sid, sub in subsystems.items():
        if sub.node not in nodes:
            raise ConfigError(
                f"federation directory: subsystem {sid} names unknown node {sub.node!r}"
            )
    for sid, sub in subsystems.items():
        problem = _kem_problem(sub.kem)
        if problem:
            raise ConfigError(f"federation directory: subsystem {sid}: kem {problem}")
    for node in nodes.values():
        if node.parent is not None and node.parent not in nodes:
            raise ConfigError(f"federation directory: node {node.name} has unknown parent")
        if not 1 <= len(node.addresses) <= 2:
            raise ConfigError(f"federation directory: node {node.name} needs one or two addresses")
        for address in node.addresses:
            if not _is_host_port(address):
                raise ConfigError(
                    f"federation directory: node {node.name}: address {address!r} is not "
                    "host:port (port 1-65535)"
                )
    return Directory(
        instance=data.instance,
        subsystems=subsystems,
        clearance=clearance,
        services=services,
        access=access,
        nodes=nodes,
        direct_links=frozenset(frozenset(pair) for pair in data.direct_links),
        policy=policy,
        roots=tuple(data.roots),
        expires_at=data.expires_at,
        node_level=node_level,
    )


def _is_host_port(address: str) -> bool:
    """``host:port`` or ``[IPv6]:port``, as the gateway dials it (transport._host_port)."""
    host, sep, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or any(c.isspace() or c in "/@?#[]" for c in host):
        return False
    return port.isascii() and port.isdigit() and 1 <= int(port) <= 65535


def _kem_problem(kem: dict[str, str]) -> str | None:
    """Why a subsystem's key-agreement public keys cannot be used (None: absent or fine) —
    found at load, not by the first call encrypted to it."""
    from lienthong.exchange.e2e import KEM_PUBLIC_SIZES, kem_public_problems

    for name, got in kem_public_problems(kem) if kem else []:
        if name is None:
            return f"must hold exactly {sorted(KEM_PUBLIC_SIZES)}, not {sorted(kem)}"
        if got is None:
            return f"{name} is not base64url"
        return f"{name} is {got} bytes, not {KEM_PUBLIC_SIZES[name]}"
    return None


def directory_from_json(raw: bytes) -> Directory:
    try:
        data = msgspec.json.decode(raw, type=DirectoryFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"federation directory: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"federation directory is not JSON: {exc}") from exc
    return directory_from_file(data)
