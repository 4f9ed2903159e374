"""A running federation for the exchange tests: CA, three gateways (two agencies and the
national platform with two links), the sample service — real processes on 127.0.0.1, started
once per module."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from lienthong.exchange.config import load_config
from lienthong.exchange.node import Node, build_node
from lienthong.exchange.processes import Running
from lienthong.exchange.testbed import GIAMDINH, Testbed, build_testbed, demo_spec
from lienthong.identifiers import SubsystemId
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.enrol import make_csr
from lienthong.trust.keys import Algorithm, Signer
from lienthong.trust.keystore import FileKeyStore
from lienthong.trust.profiles import Profile

LIMITS = {
    "max_body_bytes": 8 << 20,
    "memory_body_bytes": 1 << 20,
    "header_timeout_s": 1.5,
    "idle_timeout_s": 2.0,
}


@dataclass
class Federation:
    testbed: Testbed
    running: Running
    record: Path
    extra_keys: dict[str, tuple[Signer, str]]  # name -> (signer, pem) of odd certificates
    nodes: dict[str, Node] = field(default_factory=dict)

    def received(self) -> list[dict[str, object]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def node(self, name: str) -> Node:
        """The node's keys and directory as loaded in this process (state in a scratch dir)."""
        if name not in self.nodes:
            cfg = load_config(self.testbed.configs[name])
            scratch = self.testbed.workdir / "scratch" / name
            self.nodes[name] = build_node(msgspec.structs.replace(cfg, state_dir=str(scratch)))
        return self.nodes[name]

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()


def _odd_certificates(tb: Testbed, workdir: Path) -> dict[str, tuple[Signer, str]]:
    """Signing certificates for GIAMDINH that must be refused: expired, revoked, foreign CA."""
    now = dt.datetime.now(dt.UTC)
    ref = {"$env": tb.passphrase_env}
    sid = SubsystemId.parse(GIAMDINH)
    store = FileKeyStore(workdir / "odd-keys", ref)
    out: dict[str, tuple[Signer, str]] = {}
    foreign = CertificateAuthority.init(
        workdir / "foreign-ca",
        keystore_spec={"type": "file", "dir": "keys", "passphrase": ref},
        now=now,
    )
    cases = {
        "expired": (tb.ca, now - dt.timedelta(days=30), 2),
        "revoked": (tb.ca, now, None),
        "foreign": (foreign, now, None),
    }
    for name, (ca, at, days) in cases.items():
        signer = store.generate(name, Algorithm.ECDSA_P256)
        cert = ca.issue(make_csr(signer, sid), profile=Profile.SIGNING, now=at, days=days)
        from cryptography.hazmat.primitives import serialization

        out[name] = (signer, cert.public_bytes(serialization.Encoding.PEM).decode())
        if name == "revoked":
            tb.ca.revoke(cert.serial_number, "keyCompromise", now)
    add_directory_certs(tb, GIAMDINH, [pem for _, pem in out.values()])
    return out


def add_directory_certs(tb: Testbed, subsystem: str, pems: list[str]) -> None:
    """Publish more signing certificates of ``subsystem`` in the testbed's directory."""
    directory = json.loads(tb.directory_path.read_text())
    for sub in directory["subsystems"]:
        if sub["id"] == subsystem:
            sub["certs"] += pems
    tb.directory_path.write_text(json.dumps(directory))


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    workdir = tmp_path_factory.mktemp("federation")
    tb = build_testbed(workdir, demo_spec(relay_links=2), limits=LIMITS)
    extra = _odd_certificates(tb, workdir)
    record = workdir / "service-received.jsonl"
    with Running(tb, log_level="INFO") as running:
        running.start_all(record=record)
        fed = Federation(tb, running, record, extra)
        yield fed
        fed.close()
