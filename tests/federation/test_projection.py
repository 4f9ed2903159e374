"""The global configuration projected onto the exchange gateway's directory format."""

from __future__ import annotations

import json
from pathlib import Path

from lienthong.classification import Level
from lienthong.demo import DemoContext
from lienthong.exchange.directory import directory_from_json
from lienthong.federation.demo import run
from lienthong.federation.projection import host_port, to_exchange_directory
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
