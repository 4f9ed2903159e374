"""A complete local federation for tests, the benchmark and the demo: PKI, keys, directory and
gateway configs, written under one work directory (real files, real certificates).

Certificates come from the trust capability's CA (root + intermediate, ECDSA P-256; ML-DSA-65
leaves for the hybrid signatures); every private key is a passphrase-encrypted PKCS#8 file and
the passphrase is only in the environment variable named by ``passphrase_env``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from lienthong.exchange.e2e import RecipientKeys
from lienthong.identifiers import SubsystemId, parse_member
from lienthong.ports import free_port
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.enrol import make_csr
from lienthong.trust.keys import Algorithm
from lienthong.trust.keystore import FileKeyStore
from lienthong.trust.profiles import Profile

PASSPHRASE_ENV = "LIENTHONG_GATEWAY_PASSPHRASE"
_PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class NodeSpec:
    name: str
    kind: str  # agency | platform
    member: str  # INSTANCE/CLASS/MEMBER operating the node
    parent: str | None = None
    zone: str | None = None
    max_level: str = "TOI_MAT"
    links: int = 1  # 2: a second physical path (the first goes through a cuttable proxy)


@dataclass(frozen=True)
class SubsystemSpec:
    id: str
    node: str
    clearance: str


@dataclass(frozen=True)
class ServiceSpec:
    id: str
    level: str
    endpoint: str  # path on the sample service, e.g. "/residence"
    url: str | None = None  # or: the base URL of another real endpoint (e.g. the sync hub)


@dataclass(frozen=True)
class FederationSpec:
    instance: str
    nodes: list[NodeSpec]
    subsystems: list[SubsystemSpec]
    services: list[ServiceSpec]
    access: list[tuple[str, str]]
    direct_links: list[tuple[str, str]] = field(default_factory=list)


BCA = "VN/GOV/G01.BCA"
BHXH = "VN/GOV/G07.BHXH"
NDXP = "VN/GOV/G00.NDXP"
DANCU = f"{BCA}/DANCU"  # population register
GIAMDINH = f"{BHXH}/GIAMDINH"  # health-insurance claims system
CONGTT = f"{BHXH}/CONGTHONGTIN"  # public web portal (low clearance)
SVC_RESIDENCE = f"{DANCU}/cu-tru"
SVC_SECRET = f"{DANCU}/ho-so-mat"
SVC_PUBLIC = f"{DANCU}/thong-ke"
SVC_ECHO = f"{DANCU}/echo"
SVC_SINK = f"{DANCU}/sink"
SVC_BLOB = f"{DANCU}/blob"
SVC_UPLOAD = f"{DANCU}/nop-ho-so"  # PERSONAL upload: end-to-end encrypted, streamed


def demo_spec(*, relay_links: int = 1, direct: bool = False) -> FederationSpec:
    """Two agencies under the national platform (NDXP); ``direct`` adds a direct link."""
    return FederationSpec(
        instance="VN",
        nodes=[
            NodeSpec("NDXP", "platform", NDXP, links=relay_links),
            NodeSpec("BCA-GW", "agency", BCA, parent="NDXP"),
            NodeSpec("BHXH-GW", "agency", BHXH, parent="NDXP"),
        ],
        subsystems=[
            SubsystemSpec(DANCU, "BCA-GW", "TOI_MAT"),
            SubsystemSpec(GIAMDINH, "BHXH-GW", "MAT"),
            SubsystemSpec(CONGTT, "BHXH-GW", "INTERNAL"),
        ],
        services=[
            ServiceSpec(SVC_RESIDENCE, "PERSONAL", "/residence"),
            ServiceSpec(SVC_SECRET, "MAT", "/echo"),
            ServiceSpec(SVC_PUBLIC, "PUBLIC", "/ping"),
            ServiceSpec(SVC_ECHO, "PUBLIC", "/echo"),
            ServiceSpec(SVC_SINK, "PUBLIC", "/sink"),
            ServiceSpec(SVC_BLOB, "PUBLIC", "/blob"),
            ServiceSpec(SVC_UPLOAD, "PERSONAL", "/sink"),
        ],
        access=[
            (GIAMDINH, SVC_RESIDENCE),
            (GIAMDINH, SVC_SECRET),
            (GIAMDINH, SVC_PUBLIC),
            (GIAMDINH, SVC_ECHO),
            (GIAMDINH, SVC_SINK),
            (GIAMDINH, SVC_BLOB),
            (GIAMDINH, SVC_UPLOAD),
            (CONGTT, SVC_PUBLIC),
            (CONGTT, SVC_RESIDENCE),
        ],
        direct_links=[("BHXH-GW", "BCA-GW")] if direct else [],
    )


TTDLQG = "VN/GOV/G01.TTDLQG"  # National Data Center (Trung tâm dữ liệu quốc gia)
CSDLTH = f"{TTDLQG}/CSDLTH"  # the National Consolidated Database (CSDL tổng hợp quốc gia)
SVC_SYNC = f"{CSDLTH}/dong-bo"  # its sync service: batches of changes (docs/sync.md)
HUB_NODE = "TTDLQG-GW"
BGDDT = "VN/GOV/G05.BGDDT"
BTC = "VN/GOV/G04.BTC"
# agency gateway -> (member, the agency's sync subsystem)
SYNC_AGENCIES: dict[str, tuple[str, str]] = {
    "BCA-GW": (BCA, f"{BCA}/DONGBO"),
    "BHXH-GW": (BHXH, f"{BHXH}/DONGBO"),
    "BGDDT-GW": (BGDDT, f"{BGDDT}/DONGBO"),
    "BTC-GW": (BTC, f"{BTC}/DONGBO"),
}


def sync_spec(
    hub_url: str, *, agencies: tuple[str, ...] = tuple(SYNC_AGENCIES), level: str = "SENSITIVE"
) -> FederationSpec:
    """Agencies synchronising into the national hub through the national platform (NDXP).

    ``hub_url`` is the base URL of the hub's sync endpoint (``http://HOST:PORT/sync/v1``),
    which the hub's gateway (``TTDLQG-GW``) forwards to. Each agency's sync subsystem
    ``…/DONGBO`` has the access right; BHXH's public portal (when BHXH takes part) has not.
    """
    unknown = [a for a in agencies if a not in SYNC_AGENCIES]
    if unknown:
        raise ValueError(f"unknown sync agencies {unknown}: choose from {list(SYNC_AGENCIES)}")
    subsystems = [SubsystemSpec(CSDLTH, HUB_NODE, "TOI_MAT")]
    subsystems += [SubsystemSpec(SYNC_AGENCIES[a][1], a, "MAT") for a in agencies]
    if "BHXH-GW" in agencies:
        subsystems.append(SubsystemSpec(CONGTT, "BHXH-GW", "INTERNAL"))
    return FederationSpec(
        instance="VN",
        nodes=[
            NodeSpec("NDXP", "platform", NDXP),
            *(NodeSpec(a, "agency", SYNC_AGENCIES[a][0], parent="NDXP") for a in agencies),
            NodeSpec(HUB_NODE, "agency", TTDLQG, parent="NDXP"),
        ],
        subsystems=subsystems,
        services=[ServiceSpec(SVC_SYNC, level, "", url=hub_url)],
        access=[(SYNC_AGENCIES[a][1], SVC_SYNC) for a in agencies],
    )


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class despite its name
    workdir: Path
    spec: FederationSpec
    ca: CertificateAuthority
    configs: dict[str, Path]
    internal_ports: dict[str, int]
    peer_ports: dict[str, int]
    proxies: dict[str, tuple[int, int]]  # node -> (proxy port, target port) of its first link
    service_port: int
    directory_path: Path
    passphrase_env: str = PASSPHRASE_ENV

    def internal_url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.internal_ports[node]}"


def _write_key(path: Path, key: Any, passphrase: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(
        _PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(passphrase)
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _issue(
    ca: CertificateAuthority,
    store: FileKeyStore,
    label: str,
    identity: Any,
    profile: Profile,
    algorithm: Algorithm,
    out: Path,
    now: dt.datetime,
    common_name: str | None = None,
    days: int | None = None,
) -> str:
    signer = store.generate(label, algorithm)
    tls = profile is Profile.TLS
    csr = make_csr(
        signer,
        identity,
        common_name=common_name,
        dns_names=["localhost"] if tls else (),
        ip_addresses=["127.0.0.1"] if tls else (),
    )
    pem = ca.issue(csr, profile=profile, now=now, days=days).public_bytes(_PEM)
    out.write_bytes(pem)
    return pem.decode()


@dataclass
class _Build:
    """What the steps of :func:`build_testbed` share."""

    workdir: Path
    spec: FederationSpec
    ca: CertificateAuthority
    ref: dict[str, str]
    now: dt.datetime
    peer_ports: dict[str, int]
    proxies: dict[str, tuple[int, int]]


def _node_entry(b: _Build, n: NodeSpec) -> dict[str, Any]:
    """Issue the node's TLS certificate; return its directory entry."""
    home = b.workdir / "nodes" / n.name
    home.mkdir(parents=True, exist_ok=True)
    store = FileKeyStore(home / "keys", b.ref)
    member = parse_member(n.member)
    pem = _issue(
        b.ca,
        store,
        "tls",
        member,
        Profile.TLS,
        Algorithm.ECDSA_P256,
        home / "tls.pem",
        b.now,
        n.name.lower(),
    )
    addresses = [f"127.0.0.1:{b.peer_ports[n.name]}"]
    if n.name in b.proxies:
        addresses.insert(0, f"127.0.0.1:{b.proxies[n.name][0]}")
    return {
        "name": n.name,
        "kind": n.kind,
        "addresses": addresses,
        "parent": n.parent,
        "max_level": n.max_level,
        "zone": n.zone,
        "tls_cert": pem,
    }


def _subsystem(
    b: _Build, s: SubsystemSpec, passphrase: bytes
) -> tuple[dict[str, Any], dict[str, str]]:
    """Issue signing certificates and key-agreement keys; return (directory entry, local keys)."""
    sid = SubsystemId.parse(s.id)
    home = b.workdir / "subsystems" / s.id.replace("/", "_")
    home.mkdir(parents=True, exist_ok=True)
    store = FileKeyStore(home / "keys", b.ref)
    ec_pem = _issue(
        b.ca, store, "sign", sid, Profile.SIGNING, Algorithm.ECDSA_P256, home / "sign.pem", b.now
    )
    pq_pem = _issue(
        b.ca, store, "pq", sid, Profile.SIGNING, Algorithm.ML_DSA_65, home / "pq.pem", b.now
    )
    kem = RecipientKeys.generate()
    keys = home / "keys"
    _write_key(keys / "kem-x25519.key.pem", kem.x25519, passphrase)
    _write_key(keys / "kem-mlkem.key.pem", kem.mlkem, passphrase)
    entry = {
        "id": s.id,
        "clearance": s.clearance,
        "node": s.node,
        "certs": [ec_pem, pq_pem],
        "kem": kem.public(),
    }
    local = {
        "id": s.id,
        "sign_key": str(keys / "sign.key.pem"),
        "sign_cert": str(home / "sign.pem"),
        "pq_key": str(keys / "pq.key.pem"),
        "pq_cert": str(home / "pq.pem"),
        "kem_x25519": str(keys / "kem-x25519.key.pem"),
        "kem_mlkem": str(keys / "kem-mlkem.key.pem"),
    }
    return entry, local


def _gateway_config(
    b: _Build,
    n: NodeSpec,
    local: list[dict[str, str]],
    internal_port: int | None,
    service_port: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    home = b.workdir / "nodes" / n.name
    cfg: dict[str, Any] = {
        "node": n.name,
        "role": n.kind,
        "peer": {"port": b.peer_ports[n.name]},
        "tls": {
            "cert": str(home / "tls.pem"),
            "key": str(home / "keys" / "tls.key.pem"),
            "roots": str(b.ca.bundle_path),
            "crl": str(b.workdir / "ca" / "crl.pem"),
        },
        "directory": str(b.workdir / "directory.json"),
        "state_dir": str(b.workdir / "state" / n.name),
        "passphrase": b.ref,
        "subsystems": local,
        **extra,
    }
    if internal_port is not None:
        served = {s.id for s in b.spec.subsystems if s.node == n.name}
        cfg["internal"] = {"port": internal_port}
        cfg["services"] = {
            s.id: s.url or f"http://127.0.0.1:{service_port}{s.endpoint}"
            for s in b.spec.services
            if s.id.rsplit("/", 1)[0] in served
        }
    return cfg


def issue_renewal(
    tb: Testbed,
    owner: str,
    role: str = "tls",
    *,
    now: dt.datetime | None = None,
    days: int | None = None,
) -> tuple[Path, Path, str]:
    """A new key and certificate from the testbed's CA for node ``owner`` (``role`` "tls") or
    subsystem ``owner`` ("sign": ECDSA, "pq": ML-DSA-65), written to new files beside the
    current ones: (certificate file, encrypted key file, certificate PEM). Neither published
    nor installed: a renewal test does both (see lifecycle.py)."""
    now = now or dt.datetime.now(dt.UTC)
    ref = {"$env": tb.passphrase_env}
    if role == "tls":
        home = tb.workdir / "nodes" / owner
        spec = next(n for n in tb.spec.nodes if n.name == owner)
        identity: Any = parse_member(spec.member)
        profile, algorithm, cn = Profile.TLS, Algorithm.ECDSA_P256, owner.lower()
    else:
        home = tb.workdir / "subsystems" / owner.replace("/", "_")
        identity = SubsystemId.parse(owner)
        algorithm = Algorithm.ML_DSA_65 if role == "pq" else Algorithm.ECDSA_P256
        profile, cn = Profile.SIGNING, None
    store = FileKeyStore(home / "keys", ref)
    label = f"{role}-{now.strftime('%Y%m%dT%H%M%S')}-{os.urandom(3).hex()}"
    cert_path = home / f"{label}.pem"
    pem = _issue(tb.ca, store, label, identity, profile, algorithm, cert_path, now, cn, days)
    return cert_path, home / "keys" / f"{label}.key.pem", pem


def build_testbed(
    workdir: Path,
    spec: FederationSpec,
    *,
    passphrase_env: str = PASSPHRASE_ENV,
    now: dt.datetime | None = None,
    limits: dict[str, Any] | None = None,
    message_log: str | dict[str, Any] = "audit",  # a kind, or message_log settings
) -> Testbed:
    """Write CA, keys, certificates, directory and one config per node under ``workdir``."""
    now = now or dt.datetime.now(dt.UTC)
    os.environ.setdefault(passphrase_env, "testbed-" + os.urandom(12).hex())
    ref = {"$env": passphrase_env}
    ca = CertificateAuthority.init(
        workdir / "ca",
        keystore_spec={"type": "file", "dir": "keys", "passphrase": ref},
        now=now,
        intermediate=True,
    )
    peer_ports = {n.name: free_port() for n in spec.nodes}
    internal_ports = {n.name: free_port() for n in spec.nodes if n.kind == "agency"}
    proxies = {n.name: (free_port(), peer_ports[n.name]) for n in spec.nodes if n.links == 2}
    service_port = free_port()
    b = _Build(workdir, spec, ca, ref, now, peer_ports, proxies)
    passphrase = os.environ[passphrase_env].encode()
    subsystems = [_subsystem(b, s, passphrase) for s in spec.subsystems]
    directory = {
        "instance": spec.instance,
        "subsystems": [entry for entry, _ in subsystems],
        "services": [{"id": s.id, "level": s.level} for s in spec.services],
        "access": [list(a) for a in spec.access],
        "nodes": [_node_entry(b, n) for n in spec.nodes],
        "direct_links": [list(d) for d in spec.direct_links],
    }
    directory_path = workdir / "directory.json"
    directory_path.write_text(json.dumps(directory, indent=1, ensure_ascii=False))
    extra = {"limits": limits or {}, "message_log": message_log}
    configs = {}
    for n in spec.nodes:
        local = [keys for (entry, keys) in subsystems if entry["node"] == n.name]
        cfg = _gateway_config(b, n, local, internal_ports.get(n.name), service_port, extra)
        configs[n.name] = workdir / f"gateway-{n.name}.json"
        configs[n.name].write_text(json.dumps(cfg, indent=1))
    return Testbed(
        workdir,
        spec,
        ca,
        configs,
        internal_ports,
        peer_ports,
        proxies,
        service_port,
        directory_path,
        passphrase_env,
    )
