"""The demo PKI builder (fast, openssl-verifiable) and mutual TLS with its certificates."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

from lienthong.identifiers import MemberId, SubsystemId
from lienthong.trust.demo import DEMO_PASSPHRASE_ENV, build_pki
from lienthong.trust.tls import client_context, peer_identity, server_context

IDS = ["VN/GOV/G01.BCA/DANCU", "VN/GOV/G02.BTC", "VN/GOV/H29.HNI/DVC", "VN/GOV/000.00.00.H29"]


def test_build_pki_is_fast_and_openssl_accepts_everything(tmp_path: Path) -> None:
    start = time.perf_counter()
    pki = build_pki(tmp_path, IDS)
    assert time.perf_counter() - start < 2
    assert len(pki.certificates) == 2 * len(IDS)
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki.ca_bundle), *map(str, pki.certificates)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert b"PRIVATE KEY" not in pki.ca_bundle.read_bytes()
    for path in tmp_path.rglob("*.key.pem"):
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_mutual_tls_names_the_peer(tmp_path: Path) -> None:
    pki = build_pki(tmp_path, IDS[:2])
    server_side, client_side = pki.enrolled[IDS[0]], pki.enrolled[IDS[1]]
    ref = {"$env": DEMO_PASSPHRASE_ENV}
    sctx = server_context(server_side.tls_cert, server_side.tls_key, ref, pki.ca_bundle)
    cctx = client_context(client_side.tls_cert, client_side.tls_key, ref, pki.ca_bundle)
    seen: dict[str, object] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with sctx.wrap_socket(conn, server_side=True) as tls:
                seen["client"] = peer_identity(tls)
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            cctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            seen["server"] = peer_identity(tls)
            assert tls.recv(2) == b"ok"
        thread.join(timeout=10)
    assert seen["client"] == MemberId("VN", "GOV", "G02.BTC")
    assert seen["server"] == SubsystemId.parse(IDS[0])
