"""The gateway reads its federation view from the verified global configuration."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from lienthong.demo import DemoContext
from lienthong.exchange.config import GatewayConfig, Listen, TlsSettings
from lienthong.exchange.node import load_directory
from lienthong.federation.demo import run as federation_demo


def test_directory_from_global_configuration(tmp_path: Path) -> None:
    ctx = DemoContext(workdir=tmp_path)
    federation_demo(ctx)
    node = next(iter(ctx.state["federation"]["nodes"].values()))
    cfg = GatewayConfig(
        node="NDXP",
        role="platform",
        peer=Listen(),
        tls=TlsSettings("c", "k", "r"),
        state_dir=str(tmp_path / "s"),
        passphrase={"$env": "X"},
        globalconf=str(node["globalconf"]),
    )
    directory = load_directory(cfg, time.time())
    assert "NDXP" in directory.nodes
    assert directory.services and directory.subsystems
    expected = ctx.state["federation"]["exchange_directory"]
    assert len(directory.nodes) == len(expected["nodes"])
    assert msgspec.json.encode(sorted(directory.nodes))  # plain names, usable as node ids
