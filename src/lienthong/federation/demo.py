"""Demo step ``trust``: a fresh federation — CA, platforms, agencies, certificates, a signed
global configuration published by the operator and fetched by every gateway node.

Later steps find everything in ``ctx.state["federation"]`` (see :func:`run`).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import yaml

from lienthong.classification import Level
from lienthong.errors import AccessDenied
from lienthong.federation.access import check_access
from lienthong.federation.doctor import diagnose
from lienthong.federation.loader import load_registry
from lienthong.federation.node import NodeSettings
from lienthong.federation.projection import to_exchange_directory
from lienthong.federation.publish import certificate_fingerprint, publish
from lienthong.federation.routing import route
from lienthong.federation.sample import BCA, HANOI, OPERATOR, THUE, sample_registry
from lienthong.federation.store import Anchor, ConfigStore
from lienthong.identifiers import ServiceId, SubsystemId, parse_member
from lienthong.trust.demo import DEMO_PASSPHRASE_ENV, Pki, build_pki
from lienthong.trust.x509 import load_certificate

VALID_FOR = dt.timedelta(days=7)


def _identities(doc: dict[str, Any]) -> list[str]:
    instance = doc["instance"]
    subs = [
        f"{instance}/{m['class']}/{m['code']}/{s['code']}"
        for m in doc["members"]
        for s in m.get("subsystems", [])
    ]
    return [f"{instance}/{OPERATOR}", *subs]


def _register_certificates(doc: dict[str, Any], pki: Pki) -> None:
    """Put every subsystem's signing and TLS certificate into the declarative registry."""
    instance = doc["instance"]
    for m in doc["members"]:
        member = f"{instance}/{m['class']}/{m['code']}"
        holders = [(member, m)] + [(f"{member}/{s['code']}", s) for s in m.get("subsystems", [])]
        for identity, holder in holders:
            enrolled = pki.enrolled.get(identity)
            if enrolled is not None:
                holder["certificates"] = [
                    {
                        "usage": usage,
                        "pem": path.read_text(),
                        "fingerprint": certificate_fingerprint(load_certificate(path.read_bytes())),
                    }
                    for usage, path in (
                        ("signing", enrolled.signing_cert),
                        ("tls", enrolled.tls_cert),
                    )
                ]


def _install_nodes(pki: Pki, published: Path, now: dt.datetime) -> dict[str, dict[str, Any]]:
    """Make each enrolled subsystem a node: node.json + fetched global configuration."""
    root_pem = pki.ca_bundle.read_bytes()  # root + intermediate
    nodes: dict[str, dict[str, Any]] = {}
    for identity, enrolled in pki.enrolled.items():
        home = enrolled.signing_cert.parent
        settings = NodeSettings(
            home,
            identity=identity,
            keystore={"type": "file", "dir": "keys", "passphrase": {"$env": DEMO_PASSPHRASE_ENV}},
            status={"ca_dir": str(pki.ca.directory)},
        )
        settings.save()
        store = ConfigStore.bootstrap(
            home / "globalconf",
            Anchor(root_pem, operator=f"VN/{OPERATOR}", sources=(str(published),)),
        )
        store.refresh(now)
        nodes[identity] = {
            "dir": home,
            "keystore": settings.keystore,
            "signing_cert": enrolled.signing_cert,
            "tls_cert": enrolled.tls_cert,
            "tls_key": enrolled.tls_key,
            "globalconf": store.directory,
        }
    return nodes


def _examples(config: Any) -> dict[str, Any]:
    hops = route(
        config, parse_member(f"VN/{HANOI}"), parse_member(f"VN/{BCA}"), level=Level.PERSONAL
    )
    try:
        check_access(
            config,
            SubsystemId.parse(f"VN/{THUE}/TMS"),
            ServiceId.parse(f"VN/{BCA}/AN-NINH/case-summary"),
            "/",
        )
        denied: list[str] = []
    except AccessDenied as exc:
        denied = list(exc.details["reasons"])
    return {
        "route_hanoi_portal_to_population_db": [h.id for h in hops],
        "tax_to_mat_service_denied": denied,
    }


def run(ctx: Any) -> dict[str, Any]:
    """Build the federation under ``ctx.workdir/"trust"``; see the module docstring."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    base = Path(ctx.workdir) / "trust"
    if base.exists():
        shutil.rmtree(base)  # a fresh federation each run: never reuse an old CA by accident
    doc = sample_registry()
    ctx.say("trust: creating the CA and enrolling every gateway (signing + TLS certificates)")
    pki = build_pki(base, _identities(doc), now=now - dt.timedelta(minutes=5))
    _register_certificates(doc, pki)
    registry_file = base / "federation.yaml"
    registry_file.write_text(
        yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    registry = load_registry(registry_file)
    operator = pki.enrolled[f"VN/{OPERATOR}"]
    chain = [load_certificate(operator.signing_cert.read_bytes()), *pki.ca.intermediates]
    published = base / "published" / "globalconf.json"
    version, expires = publish(
        registry,
        out=published,
        signers=[(operator.signer(), chain)],
        roots=[pki.ca.root],
        intermediates=pki.ca.intermediates,
        now=now,
        valid_for=VALID_FOR,
    )
    ctx.say(f"trust: published global configuration v{version}; gateways fetch and verify it")
    nodes = _install_nodes(pki, published, now)
    first_node = next(iter(nodes.values()))["dir"]
    config = ConfigStore(first_node / "globalconf").current(now)
    findings = diagnose(first_node, now)
    ctx.state["federation"] = {
        "config": config,
        "registry": registry,
        "registry_file": registry_file,
        "published": published,
        "ca_dir": pki.ca.directory,
        "ca_bundle": pki.ca_bundle,
        "operator": f"VN/{OPERATOR}",
        "passphrase_env": DEMO_PASSPHRASE_ENV,
        "nodes": nodes,
        "exchange_directory": to_exchange_directory(config)[0],
    }
    return {
        "members": len(registry.members),
        "platforms": len(registry.platforms),
        "subsystems": sum(len(m.subsystems) for m in registry.members),
        "services": len(registry.services),
        "access_rights": len(registry.access),
        "ca_bundle": str(pki.ca_bundle),
        "certificates": [str(p) for p in pki.certificates],
        "config_version": version,
        "config_expires": expires.isoformat(),
        "config_signed_by": list(config.signed_by),
        "published": str(published),
        "nodes_fetched": len(nodes),
        "doctor": {"ok": all(f.status != "fail" for f in findings), "checks": len(findings)},
        **_examples(config),
    }
