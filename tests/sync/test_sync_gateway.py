"""Sync through the exchange layer: real gateway processes on 127.0.0.1 between agency and hub.

One federation per module (national platform NDXP, the BHXH agency gateway, the hub's gateway
TTDLQG-GW) and one hub endpoint in this process; each test uses its own source id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from synctools import Keys, citizen_pipeline, consolidated, make_rig, make_sqlite_source

from lienthong.classification import Level
from lienthong.errors import SignatureError
from lienthong.exchange.processes import Running
from lienthong.exchange.testbed import (
    CONGTT,
    HUB_NODE,
    SVC_SYNC,
    SYNC_AGENCIES,
    Testbed,
    build_testbed,
    sync_spec,
)
from lienthong.ports import free_port
from lienthong.sync.agency import AgencySync
from lienthong.sync.connectors import open_connectors
from lienthong.sync.gateway_transport import GatewayRefused, GatewayTransport
from lienthong.sync.hub.dialect import connect_hub
from lienthong.sync.hub.server import HubThread
from lienthong.sync.hub.service import Hub
from lienthong.sync.hub.store import HubStore
from lienthong.sync.outbox import Outbox
from lienthong.sync.pipeline import pipeline_from_dict
from lienthong.sync.transport import FlakyTransport, Transport

CLIENT = SYNC_AGENCIES["BHXH-GW"][1]


@dataclass
class SyncFederation:
    testbed: Testbed
    running: Running
    hub: Hub
    store: HubStore
    clients: dict[str, str]
    hub_port: int
    server: HubThread

    def transport_doc(self, client: str = CLIENT) -> dict[str, Any]:
        return {
            "kind": "gateway",
            "url": self.testbed.internal_url("BHXH-GW"),
            "service": SVC_SYNC,
            "client": client,
            "purpose": "dong-bo-the-bhyt",
            "legal_basis": "Luat BHYT 2008; Cong dien 103/CD-TTg",
        }


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[SyncFederation]:
    work = tmp_path_factory.mktemp("sync-gw")
    port = free_port()
    tb = build_testbed(
        work / "federation",
        sync_spec(f"http://127.0.0.1:{port}/sync/v1", agencies=("BHXH-GW",)),
        message_log="jsonl",
    )
    conn, dialect = connect_hub(str(work / "hub.db"))
    store = HubStore(conn, dialect)
    store.ensure_entity("Citizen")  # each test may run alone: the table exists before any batch
    hub = Hub(store, keys.hub, {}, keys.recipient)
    clients: dict[str, str] = {}
    fed: SyncFederation | None = None
    try:
        with Running(tb) as running:
            for node in ("NDXP", HUB_NODE, "BHXH-GW"):
                running.start_gateway(node)
            server = HubThread(hub, port, clients, Level.SENSITIVE).start()
            fed = SyncFederation(tb, running, hub, store, clients, port, server)
            yield fed
    finally:
        if fed is not None:
            fed.server.stop()
        store.close()


def _agency(
    fed: SyncFederation, keys: Keys, tmp: Path, source_id: str, transport: Transport, **extra: Any
) -> AgencySync:
    doc = citizen_pipeline(**extra) | {"source_id": source_id}
    pipeline = pipeline_from_dict(doc, base_dir=tmp)
    fed.hub.sources[source_id] = keys.agency.public_key()
    fed.clients[source_id] = CLIENT  # only through the gateways, only from BHXH's sync subsystem
    return AgencySync(pipeline, open_connectors(pipeline), Outbox(tmp / "state.db"), transport,
                      keys.agency_keys())  # fmt: skip


def _gateway(fed: SyncFederation, client: str = CLIENT) -> GatewayTransport:
    doc = citizen_pipeline() | {"transport": fed.transport_doc(client)}
    settings = pipeline_from_dict(doc).transport
    assert settings is not None
    return GatewayTransport(settings)


def _rows(store: HubStore, source: str) -> dict[str, Any]:
    rows = store.conn.execute(
        "SELECT source_key, data FROM c_citizen WHERE source = ?", (source,)
    ).fetchall()
    return {str(k): v for k, v in rows}


def test_through_gateways_equals_direct(fed: SyncFederation, keys: Keys, tmp_path: Path) -> None:
    make_sqlite_source(tmp_path / "source.db", 600)
    direct_dir = tmp_path / "direct"
    direct_dir.mkdir()
    make_sqlite_source(direct_dir / "source.db", 600)
    rig = make_rig(direct_dir, keys, citizen_pipeline(batch_size=150))
    try:
        expected = rig.agency.run()
        expected_rows = consolidated(rig.store)
    finally:
        rig.close()
    agency = _agency(fed, keys, tmp_path, "BHXH.GW1", _gateway(fed), batch_size=150)
    try:
        report = agency.run()
    finally:
        agency.close()
    assert report.error is None and report.pending_batches == 0
    assert (report.read, report.applied, report.quarantined, report.batches) == (
        expected.read, expected.applied, expected.quarantined, expected.batches,
    )  # fmt: skip
    assert report.read == 600 == report.applied + report.quarantined and report.quarantined == 12
    got = _rows(fed.store, "BHXH.GW1")
    assert len(got) == len(expected_rows) == report.applied
    import orjson

    assert {k: orjson.loads(v) for k, v in got.items()} == expected_rows


def test_gateway_link_or_hub_down_keeps_batches_then_drains(
    fed: SyncFederation, keys: Keys, tmp_path: Path
) -> None:
    make_sqlite_source(tmp_path / "source.db", 400)
    agency = _agency(fed, keys, tmp_path, "BHXH.GW2", _gateway(fed), batch_size=100)
    try:
        fed.running.stop("BHXH-GW")  # the agency's own gateway
        report = agency.run()
        assert report.error and "own gateway unreachable" in report.error
        assert report.pending_batches == 4 and report.applied == 0
        fed.running.start_gateway("BHXH-GW")
        fed.running.stop(HUB_NODE)  # the hub's side of the exchange: relayed LT.UNAVAILABLE
        report = agency.run_drain()
        assert report.error and "LT.UNAVAILABLE" in report.error
        assert report.pending_batches == 4
        assert _rows(fed.store, "BHXH.GW2") == {}
        fed.running.start_gateway(HUB_NODE)
        fed.server.stop()  # the hub itself: its gateway answers LT.UNAVAILABLE
        report = agency.run_drain()
        assert report.error and "LT.UNAVAILABLE" in report.error
        assert report.pending_batches == 4 and _rows(fed.store, "BHXH.GW2") == {}
        fed.server = HubThread(fed.hub, fed.hub_port, fed.clients, Level.SENSITIVE).start()
        report = agency.run()
        assert report.error is None and report.pending_batches == 0
        assert report.read == 400 == report.applied + report.quarantined
        assert len(_rows(fed.store, "BHXH.GW2")) == report.applied
    finally:
        if "BHXH-GW" not in fed.running.procs:
            fed.running.start_gateway("BHXH-GW")
        if HUB_NODE not in fed.running.procs:
            fed.running.start_gateway(HUB_NODE)
        agency.close()


def test_access_right_refusal_is_precise(fed: SyncFederation, keys: Keys, tmp_path: Path) -> None:
    make_sqlite_source(tmp_path / "source.db", 50)
    agency = _agency(fed, keys, tmp_path, "BHXH.GW3", _gateway(fed, client=CONGTT))
    try:
        with pytest.raises(GatewayRefused) as refused:
            agency.run()
        assert refused.value.details["lt_code"] == "LT.ACCESS_DENIED"
        assert f"no access right for client {CONGTT} to service {SVC_SYNC}" in str(refused.value)
        assert agency.outbox.pending_count() == 1  # kept until the access right exists
    finally:
        agency.close()
    assert _rows(fed.store, "BHXH.GW3") == {}


def test_tampered_batch_rejected_by_hub_then_resent(
    fed: SyncFederation, keys: Keys, tmp_path: Path
) -> None:
    make_sqlite_source(tmp_path / "source.db", 100)
    flaky = FlakyTransport(_gateway(fed), corrupt=1)  # one flipped bit before the gateway
    agency = _agency(fed, keys, tmp_path, "BHXH.GW4", flaky)
    try:
        report = agency.run()
    finally:
        agency.close()
    assert flaky.corrupt == 0 and report.error is None
    assert report.read == 100 == report.applied + report.quarantined
    assert len(_rows(fed.store, "BHXH.GW4")) == report.applied


def test_source_bound_to_another_subsystem_is_rejected(
    fed: SyncFederation, keys: Keys, tmp_path: Path
) -> None:
    make_sqlite_source(tmp_path / "source.db", 20)
    agency = _agency(fed, keys, tmp_path, "BHXH.GW5", _gateway(fed))
    fed.clients["BHXH.GW5"] = "VN/GOV/G05.BGDDT/DONGBO"  # the hub expects it from elsewhere
    try:
        with pytest.raises(SignatureError, match=r"hub rejected the batch through the gateways"):
            agency.run()
    finally:
        agency.close()
    assert _rows(fed.store, "BHXH.GW5") == {}


def test_batch_above_the_channel_level_is_refused(
    fed: SyncFederation, keys: Keys, tmp_path: Path
) -> None:
    make_sqlite_source(tmp_path / "source.db", 20)
    agency = _agency(fed, keys, tmp_path, "BHXH.GW6", _gateway(fed), classification="MAT")
    try:
        with pytest.raises(SignatureError, match=r"hub rejected the batch through the gateways"):
            agency.run()  # a MAT batch on the SENSITIVE sync service: no write-down
        assert agency.outbox.pending_count() == 1
    finally:
        agency.close()
    assert _rows(fed.store, "BHXH.GW6") == {}
