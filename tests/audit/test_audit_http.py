"""Witnessing over HTTP: a real ``lienthong audit serve`` process on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from audit_reference import admin_entries

from lienthong.audit import AuditLog, verify_inclusion
from lienthong.audit.http import HttpLogSource
from lienthong.audit.verify import verify_log
from lienthong.audit.witness import ForkDetected, Witness, WitnessState
from lienthong.errors import BackendError
from lienthong.ports import free_port
from lienthong.trust.keys import SoftwareSigner, generate_private_key, public_key_to_pem

WITNESS = SoftwareSigner(generate_private_key())


@pytest.fixture
def served(tmp_path: Path, signer) -> Iterator[tuple[str, Path]]:
    path = tmp_path / "node.auditlog"
    (tmp_path / "w.pem").write_bytes(public_key_to_pem(WITNESS.public_key()))
    with AuditLog.open(path, signer=signer, origin="http.example/log") as log:
        log.append(admin_entries(20))
        log.checkpoint()
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lienthong",
            "audit",
            "serve",
            "--log",
            str(path),
            "--port",
            str(port),
            "--witness",
            f"w.example/w={tmp_path / 'w.pem'}",
        ],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/checkpoint", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield url, path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_witness_over_http_and_fork(served: tuple[str, Path], signer, tmp_path: Path) -> None:
    url, path = served
    wsigner = WITNESS
    wit = Witness("w.example/w", wsigner, WitnessState(tmp_path / "w.json"))
    stranger = Witness(
        "x.example/x", SoftwareSigner(generate_private_key()), WitnessState(tmp_path / "x.json")
    )
    stranger_source = HttpLogSource(url)
    with pytest.raises(BackendError, match="403"):
        stranger.witness(stranger_source, "http.example/log", signer.public_key())
    stranger_source.close()
    source = HttpLogSource(url)
    wit.witness(source, "http.example/log", signer.public_key())
    with AuditLog.open(path, signer=signer) as log:  # the node keeps appending meanwhile
        log.append(admin_entries(33, "more"))
        log.checkpoint()
    wit.witness(source, "http.example/log", signer.public_key())
    proof = httpx.get(url + "/proof", params={"index": 7}).json()
    verify_inclusion(
        7,
        proof["tree_size"],
        bytes.fromhex(proof["leaf_hash"]),
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["root_hash"]),
    )
    with AuditLog.open(path) as log:
        report = verify_log(
            log, public_key=signer.public_key(), witnesses={"w.example/w": wsigner.public_key()}
        )
    assert report.cosignatures == 2
    assert httpx.get(url + "/proof", params={"index": "x"}).status_code == 400
    # the same origin served from a rewritten copy: the witness refuses
    evil = tmp_path / "evil.auditlog"
    with AuditLog.open(evil, signer=signer, origin="http.example/log") as log:
        log.append(admin_entries(53, "evil"))
        log.checkpoint()
        from lienthong.audit.witness import LocalLogSource

        with pytest.raises(ForkDetected):
            wit.witness(LocalLogSource(log), "http.example/log", signer.public_key())
    source.close()
    with pytest.raises(BackendError):
        HttpLogSource(f"http://127.0.0.1:{free_port()}", timeout=1).latest_note()
