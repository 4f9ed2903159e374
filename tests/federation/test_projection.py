"""The global configuration projected onto the exchange gateway's directory format."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from lienthong.classification import Level
from lienthong.demo import DemoContext
from lienthong.exchange.directory import directory_from_json
from lienthong.federation.demo import run
from lienthong.federation.model import CertificateRef, CertUsage
from lienthong.federation.projection import host_port, registry_of, to_exchange_directory
from lienthong.identifiers import ServiceId, SubsystemId


def test_projection_is_accepted_by_the_exchange_directory(tmp_path: Path) -> None:
    ctx = DemoContext(workdir=tmp_path)
    run(ctx)
    config = ctx.state["federation"]["config"]
    doc, warnings = to_exchange_directory(config)
    directory = directory_from_json(json.dumps(doc).encode())
    portal = SubsystemId.parse("VN/GOV/000.00.00.H29/CONG-DVC")
    card = ServiceId.parse("VN/GOV/000.00.00.G12/BHYT/card-status")
    assert (portal, card) in directory.access  # granted through a group
    # Path-restricted rights are left out (fail closed) and reported.
    residence = ServiceId.parse("VN/GOV/000.00.00.G01/DAN-CU/residence-lookup")
    assert (portal, residence) not in directory.access
    assert any("limited to /residence" in w for w in warnings)
    assert directory.nodes["LGSP-HN"].parent == "NDXP"
    assert directory.nodes["VN/GOV/000.00.00.G01"].zone == "VUNG-MAT-1"
    assert directory.nodes["NDXP"].max_level == "SENSITIVE"  # MAT is not relayed
    assert directory.policy[Level.TOI_MAT].isolated_only  # refused level: strictest marking
    assert directory.roots == config.trust_anchors
    assert directory.subsystems[portal].certs  # signing certificate PEMs carried


def test_host_port() -> None:
    assert host_port("https://gw.example:8443/x") == "gw.example:8443"
    assert host_port("https://gw.example") == "gw.example:443"
    assert host_port("127.0.0.1:9000") == "127.0.0.1:9000"


def test_every_tls_certificate_of_a_member_is_projected(tmp_path: Path) -> None:
    """During a renewal the registry holds the old and the new TLS certificate of a member:
    the gateways must accept both, so both reach the directory (the first as ``tls_cert``)."""
    ctx = DemoContext(workdir=tmp_path)
    run(ctx)
    reg = registry_of(ctx.state["federation"]["config"])
    member = next(
        m for m in reg.members if any(c.usage is CertUsage.TLS and c.pem for c in m.certificates)
    )
    old = next(c for c in member.certificates if c.usage is CertUsage.TLS and c.pem)
    renewed = CertificateRef(CertUsage.TLS, "ab" * 32, "-----BEGIN CERTIFICATE-----\nrenewed")
    members = tuple(
        replace(m, certificates=(*m.certificates, renewed)) if m is member else m
        for m in reg.members
    )
    doc, _ = to_exchange_directory(replace(reg, members=members))
    node = next(n for n in doc["nodes"] if n["name"] == str(member.id))
    assert node["tls_cert"] == old.pem
    registered = [
        c.pem
        for c in (*member.certificates, *(c for s in member.subsystems for c in s.certificates))
        if c.usage is CertUsage.TLS and c.pem
    ]
    assert sorted([node["tls_cert"], *node["tls_certs"]]) == sorted([*registered, renewed.pem])
