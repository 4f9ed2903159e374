"""Fault: the CA's status (OCSP) service goes away. Traffic continues on the last good answers
(grace period, reported by /health) and needs nothing when the service returns. (Revocation is
learnt when the cached OCSP answer is due; the CRL path is tested in the security suite.)"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.exchange.craft import HEADERS

from lienthong.exchange.processes import Running
from lienthong.exchange.testbed import (
    SVC_PUBLIC,
    Testbed,
    build_testbed,
    demo_spec,
)
from lienthong.ports import free_port


@pytest.fixture(scope="module")
def ocsp_federation(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Testbed, Running, int]]:
    workdir = tmp_path_factory.mktemp("ocsp")
    tb = build_testbed(workdir, demo_spec(direct=True), limits={"status_ttl_s": 0.2})
    port = free_port()
    for path in tb.configs.values():
        cfg = json.loads(path.read_text())
        del cfg["tls"]["crl"]
        cfg["tls"]["status_url"] = f"http://127.0.0.1:{port}"
        path.write_text(json.dumps(cfg))
    with Running(tb) as running:
        running.start_trust_service(port)
        running.start_service()
        running.start_gateway("BCA-GW")
        running.start_gateway("BHXH-GW")
        yield tb, running, port


def _call(tb: Testbed) -> httpx.Response:
    return httpx.get(f"{tb.internal_url('BHXH-GW')}/r1/{SVC_PUBLIC}", headers=HEADERS, timeout=20)


def test_outage_then_revocation(ocsp_federation: tuple[Testbed, Running, int]) -> None:
    tb, running, port = ocsp_federation
    assert _call(tb).status_code == 200
    running.stop("status", kill=True)
    time.sleep(0.5)  # past status_ttl_s: the gateways ask again and find nobody
    assert _call(tb).status_code == 200  # grace period: last good answers still count
    health = httpx.get(f"{tb.internal_url('BHXH-GW')}/health").json()
    assert health["ok"] is True
    assert health["checks"]["certificates"]["status_service"]["state"] in ("warning", "ok")

    running.start_trust_service(port)
    assert _call(tb).status_code == 200  # service back: nothing to recover by hand
