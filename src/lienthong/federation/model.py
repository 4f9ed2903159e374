"""The federation registry (sổ đăng ký liên thông): who is in the federation and what they may do.

A pure, immutable model. The declarative file (:mod:`lienthong.federation.loader`) builds it,
the signed global configuration (:mod:`lienthong.federation.globalconf`) carries it, and the
gateways read it through :mod:`lienthong.federation.routing` and
:mod:`lienthong.federation.access`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lienthong.classification import Level
from lienthong.identifiers import MemberId, ServiceId, SubsystemId


class CertUsage(enum.StrEnum):
    SIGNING = "signing"
    TLS = "tls"


class PlatformKind(enum.StrEnum):
    """National platform (NDXP or the data sharing and coordination platform), ministry or
    province platform (LGSP)."""

    NATIONAL = "national"
    MINISTRY = "ministry"
    PROVINCE = "province"


class ContractKind(enum.StrEnum):
    OPENAPI = "openapi"
    JSON_SCHEMA = "json-schema"


@dataclass(frozen=True)
class CertificateRef:
    """A certificate registered for a member or subsystem: SHA-256 fingerprint (lower-case hex
    of the DER) and optionally the PEM itself."""

    usage: CertUsage
    fingerprint: str
    pem: str | None = None


@dataclass(frozen=True)
class Contract:
    """The service contract: a reference (URL or path) or the document inline."""

    kind: ContractKind
    ref: str | None = None
    inline: dict[str, Any] | None = None


@dataclass(frozen=True)
class Service:
    """A service offered by a subsystem. Its endpoint is the provider's private business and
    is never published in the global configuration."""

    id: ServiceId
    level: Level
    description: str = ""
    contract: Contract | None = None


@dataclass(frozen=True)
class Subsystem:
    """An information system (hệ thống thông tin) of a member.

    ``security_level`` is the approved level 1–5 of Decree 85/2016; ``clearance`` is the
    highest classification it may process.
    """

    id: SubsystemId
    name: str
    security_level: int
    clearance: Level
    certificates: tuple[CertificateRef, ...] = ()
    gateways: tuple[str, ...] = ()
    # Public keys for end-to-end encryption to this subsystem, by algorithm (e.g. "x25519",
    # "mlkem768"), base64 of the raw public key.
    encryption_keys: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Member:
    """An agency (cơ quan, tổ chức) and the platform it attaches to."""

    id: MemberId
    name: str
    platform: str | None = None
    subsystems: tuple[Subsystem, ...] = ()
    certificates: tuple[CertificateRef, ...] = ()
    gateways: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlatformLink:
    """One physical path from a platform to its parent (Decision 1562 Art. 2.2.a asks for two
    physically separate paths)."""

    name: str
    address: str


@dataclass(frozen=True)
class Platform:
    """A sharing platform: the national platform at the root, ministry/province platforms
    (LGSP) below it."""

    code: str
    name: str
    kind: PlatformKind
    parent: str | None = None
    operator: MemberId | None = None
    gateways: tuple[str, ...] = ()
    links: tuple[PlatformLink, ...] = ()
    # TLS certificates of the platform's gateway (they name its operator): peers identify it
    certificates: tuple[CertificateRef, ...] = ()


@dataclass(frozen=True)
class Group:
    """A global group of subsystems, usable as an access-right subject."""

    code: str
    description: str = ""
    subsystems: tuple[SubsystemId, ...] = ()


@dataclass(frozen=True)
class AccessRight:
    """``client`` (a subsystem) or ``group`` may call ``service``; if ``path`` is set, only
    paths under that prefix (segment-wise)."""

    service: ServiceId
    client: SubsystemId | None = None
    group: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class IsolatedZone:
    """An isolated network (mạng LAN độc lập) where state-secret data may travel."""

    code: str
    members: tuple[MemberId, ...] = ()


@dataclass(frozen=True)
class LevelPolicy:
    """Crypto policy for one classification level.

    ``transport``: allowed channel suites (e.g. ``tls13``); ``encryption``: end-to-end suites
    (e.g. ``hybrid-x25519-mlkem768-aes256gcm``); ``signature``: message signature suites
    (``ecdsa-p256``, ``hybrid-ecdsa-p256+ml-dsa-65``).
    """

    level: Level
    allowed: bool = False
    e2e_encryption: bool = True
    transport: tuple[str, ...] = ("tls13",)
    encryption: tuple[str, ...] = ()
    signature: tuple[str, ...] = ("ecdsa-p256",)
    isolated_zone_only: bool = False
    direct: bool = True
    relayed: bool = True


@dataclass(frozen=True)
class Registry:
    """The whole federation registry of one instance."""

    instance: str
    members: tuple[Member, ...] = ()
    services: tuple[Service, ...] = ()
    access: tuple[AccessRight, ...] = ()
    groups: tuple[Group, ...] = ()
    platforms: tuple[Platform, ...] = ()
    direct_links: tuple[tuple[MemberId, MemberId], ...] = ()
    isolated_zones: tuple[IsolatedZone, ...] = ()
    crypto_policy: tuple[LevelPolicy, ...] = ()
    _index: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def member(self, member_id: MemberId) -> Member | None:
        return self._lookup("members", lambda: {m.id: m for m in self.members}).get(member_id)

    def subsystem(self, subsystem_id: SubsystemId) -> Subsystem | None:
        def table() -> dict[Any, Any]:
            return {s.id: s for m in self.members for s in m.subsystems}

        return self._lookup("subsystems", table).get(subsystem_id)

    def service(self, service_id: ServiceId) -> Service | None:
        return self._lookup("services", lambda: {s.id: s for s in self.services}).get(service_id)

    def platform(self, code: str) -> Platform | None:
        return self._lookup("platforms", lambda: {p.code: p for p in self.platforms}).get(code)

    def group(self, code: str) -> Group | None:
        return self._lookup("groups", lambda: {g.code: g for g in self.groups}).get(code)

    def rights_for(self, service_id: ServiceId) -> tuple[AccessRight, ...]:
        """The access rights naming ``service_id`` (indexed once per registry)."""

        def table() -> dict[Any, Any]:
            out: dict[ServiceId, tuple[AccessRight, ...]] = {}
            for right in self.access:
                out[right.service] = (*out.get(right.service, ()), right)
            return out

        return self._lookup("rights", table).get(service_id, ())

    def _lookup(self, name: str, build: Callable[[], dict[Any, Any]]) -> dict[Any, Any]:
        # Memoised per instance: the registry is immutable, the dict cache is not part of it.
        if name not in self._index:
            self._index[name] = build()
        return self._index[name]
