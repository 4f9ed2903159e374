"""End to end through real processes: agency gateway → national platform → agency gateway →
population-register service, at every level; large bodies; operations; faults."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.exchange.conftest import Federation

from lienthong.audit.entries import decode_entry
from lienthong.audit.log import AuditLog
from lienthong.exchange.testbed import (
    GIAMDINH,
    SVC_BLOB,
    SVC_ECHO,
    SVC_PUBLIC,
    SVC_RESIDENCE,
    SVC_SECRET,
    SVC_SINK,
)

HEADERS = {
    "X-LT-Client": GIAMDINH,
    "X-LT-Purpose": "giam-dinh-bhyt",
    "X-LT-Legal-Basis": "Luat BHYT 2008",
    "X-LT-UserId": "VN-CCCD-001203004567",
}


@pytest.fixture(scope="module")
def client(federation: Federation) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=federation.testbed.internal_url("BHXH-GW"), headers=HEADERS, timeout=30
    ) as c:
        yield c


def test_residence_lookup_through_the_hierarchy(
    federation: Federation, client: httpx.Client
) -> None:
    resp = client.get(f"/r1/{SVC_RESIDENCE}/001203004567")
    assert resp.status_code == 200, resp.text
    assert resp.json()["so_dinh_danh"] == "001203004567"
    assert resp.headers["X-LT-Request-Hash"]
    seen = federation.received()[-1]
    assert seen["client"] == GIAMDINH and seen["purpose"] == "giam-dinh-bhyt"


@pytest.mark.parametrize("service", [SVC_ECHO, SVC_SECRET])
def test_echo_public_and_mat(client: httpx.Client, service: str) -> None:
    body = "Hồ sơ mật số 12/2026".encode() * 100
    resp = client.post(f"/r1/{service}", content=body, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 200, resp.text
    assert resp.content == body
    assert resp.headers["Content-Type"].startswith("text/plain")


def test_message_id_is_kept(client: httpx.Client) -> None:
    mid = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    resp = client.get(f"/r1/{SVC_PUBLIC}", headers={"X-LT-Id": mid})
    assert resp.headers["X-LT-Id"] == mid


def test_relay_cannot_read_mat_body_and_logs_receipts(
    federation: Federation, client: httpx.Client
) -> None:
    marker = b"BI-MAT-" + b"Q" * 64
    assert client.post(f"/r1/{SVC_SECRET}", content=marker).status_code == 200
    path = federation.testbed.workdir / "state" / "BCA-GW" / "message-log.auditlog"
    with AuditLog.open(path, create=False) as log:
        last = decode_entry(log.entry(log.size() - 1))
    assert last["classification"] == "4" and last["hops"] == 1  # NDXP's signed receipt
    # token hashes: request ES256 + ML-DSA, NDXP's receipt, response ES256 + ML-DSA
    assert last["response_hash"] and len(last["evidence"]) == 5
    assert b"QQQQ" not in (federation.testbed.workdir / "logs" / "NDXP.log").read_bytes()


def test_large_bodies_stream_both_ways(client: httpx.Client) -> None:
    size = 7 << 20  # above the in-memory threshold of this testbed: spooled, hashed, streamed

    def gen() -> Iterator[bytes]:
        for _ in range(7):
            yield b"\x01" * (1 << 20)

    resp = client.post(f"/r1/{SVC_SINK}", content=gen())
    assert resp.status_code == 200, resp.text
    assert resp.json()["bytes"] == size
    assert resp.json()["sha256"] == hashlib.sha256(b"\x01" * size).hexdigest()
    with client.stream("GET", f"/r1/{SVC_BLOB}?bytes={size}") as down:
        assert down.status_code == 200
        total = sum(len(c) for c in down.iter_bytes())
    assert total == size


def test_health_metrics_and_monitor(federation: Federation, client: httpx.Client) -> None:
    # an exchange of its own to monitor (the test no longer relies on the ones before it)
    assert client.get(f"/r1/{SVC_RESIDENCE}/001203004567").status_code == 200
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["ok"] is True
    checks = {"keys", "certificates", "configuration", "storage", "message_log"}
    assert set(health.json()["checks"]) == checks
    metrics = client.get("/metrics").text
    assert "lienthong_exchanges_total" in metrics
    # the connection in use (this client's) counted on the internal listener
    open_lines = [
        line
        for line in metrics.splitlines()
        if line.startswith('lienthong_connections_open{listener="internal"}')
    ]
    assert len(open_lines) == 1 and float(open_lines[0].split()[-1]) >= 1
    import time

    time.sleep(0.7)  # records are flushed every half second
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lienthong",
            "gateway",
            "monitor",
            "--config",
            str(federation.testbed.configs["BHXH-GW"]),
            "--limit",
            "5",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    records = json.loads(out.stdout)
    assert records and {"client", "service", "total_ms", "upstream_ms", "error_code"} <= set(
        records[0]
    )
    timed = [r for r in records if r["hop_ms"]]
    assert timed and "NDXP=" in timed[0]["hop_ms"] and "service=" in timed[0]["hop_ms"]


def _monitor(federation: Federation, *args: str) -> subprocess.CompletedProcess[str]:
    config = str(federation.testbed.configs["BHXH-GW"])
    return subprocess.run(
        [sys.executable, "-m", "lienthong", "gateway", "monitor", "--config", config, *args],
        capture_output=True,
        text=True,
    )


def test_monitor_finds_one_call_by_its_message_id_service_and_time(
    federation: Federation, client: httpx.Client
) -> None:
    """An operator asked about one call (its information system gives the message id) finds
    its record, and filters by service, result and time range."""
    import time
    import uuid

    mid = str(uuid.uuid4())
    resp = client.get(f"/r1/{SVC_RESIDENCE}/001203004567", headers={"X-LT-Id": mid})
    assert resp.status_code == 200
    time.sleep(0.7)  # records are flushed every half second
    (found,) = json.loads(_monitor(federation, "--message-id", mid).stdout)
    assert (found["service"], found["result"], found["status"]) == (SVC_RESIDENCE, "ok", 200)
    recent = json.loads(_monitor(federation, "--service", SVC_RESIDENCE, "--since", "5m").stdout)
    assert mid in [r["message_id"] for r in recent]
    assert {r["service"] for r in recent} == {SVC_RESIDENCE}
    assert json.loads(_monitor(federation, "--message-id", mid, "--until", "1h").stdout) == []
    refused = json.loads(_monitor(federation, "--result", "refused", "--limit", "50").stdout)
    assert all(r["result"] == "refused" and r["error_code"] for r in refused)
    summary = json.loads(_monitor(federation, "--summary", "--service", SVC_RESIDENCE).stdout)
    ok = [row for row in summary if row["result"] == "ok"]
    assert len(ok) == 1 and ok[0]["count"] >= 1 and ok[0]["p50_ms"] <= ok[0]["max_ms"]
    for args, message in [
        (("--since", "yesterday"), "--since 'yesterday': give a time"),
        (("--result", "failed"), "--result must be one of ok, refused"),
    ]:
        bad = _monitor(federation, *args)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


def test_a_refused_call_s_monitoring_record_says_why(
    federation: Federation, client: httpx.Client
) -> None:
    """An operator asked why a call was refused had only its LT.* code in ``gateway monitor``;
    the reason was in the message log's security entry or the INFO log. The record now holds
    it (the same scrubbed text)."""
    import time
    import uuid

    mid = str(uuid.uuid4())
    service = SVC_RESIDENCE.rsplit("/", 1)[0] + "/khong-co"  # no such service
    resp = client.get(f"/r1/{service}", headers={"X-LT-Id": mid})
    assert resp.headers.get("X-LT-Error") == "LT.ACCESS_DENIED"
    assert "unknown service" not in resp.text  # nothing more for the caller
    time.sleep(0.7)  # records are flushed every half second
    (found,) = json.loads(_monitor(federation, "--message-id", mid).stdout)
    assert (found["result"], found["error_code"]) == ("refused", "LT.ACCESS_DENIED")
    assert found["reason"] == "unknown service"


def test_gateway_check_command(federation: Federation) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lienthong",
            "gateway",
            "check",
            "--config",
            str(federation.testbed.configs["BCA-GW"]),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["node"] == "BCA-GW"


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "gw.json"
    bad.write_text('{"node": "X", "role": "hub"}')
    out = subprocess.run(
        [sys.executable, "-m", "lienthong", "gateway", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_failover_to_second_link(federation: Federation, client: httpx.Client) -> None:
    federation.running.stop("link:NDXP", kill=True)
    for _ in range(3):
        assert client.get(f"/r1/{SVC_PUBLIC}").status_code == 200


def test_provider_service_down_then_back(federation: Federation, client: httpx.Client) -> None:
    federation.running.stop("service", kill=True)
    resp = client.get(f"/r1/{SVC_PUBLIC}")
    assert resp.headers["X-LT-Error"] == "LT.UNAVAILABLE"
    federation.running.start_service(federation.record)
    assert client.get(f"/r1/{SVC_PUBLIC}").status_code == 200


def test_relay_dies_mid_stream(federation: Federation, client: httpx.Client) -> None:
    import threading

    def gen() -> Iterator[bytes]:
        for i in range(64):
            if i == 4:
                threading.Thread(
                    target=federation.running.stop, args=("NDXP",), kwargs={"kill": True}
                ).start()
            yield b"\x02" * (64 << 10)

    before = len(federation.received())
    try:
        resp = client.post(f"/r1/{SVC_SECRET}", content=gen())
        assert resp.status_code != 200
    except httpx.HTTPError:
        pass  # the stream was cut: also a correct outcome
    assert len(federation.received()) == before
    resp = client.get(f"/r1/{SVC_PUBLIC}")
    assert resp.headers["X-LT-Error"] == "LT.UNAVAILABLE"
    federation.running.start_gateway("NDXP")
    assert client.get(f"/r1/{SVC_PUBLIC}").status_code == 200


def _kill_after(federation: Federation, name: str, chunks: int, size: int) -> Iterator[bytes]:
    """A request body of ``chunks`` pieces; process ``name`` is killed after the fourth."""
    import threading

    for i in range(chunks):
        if i == 4:
            threading.Thread(
                target=federation.running.stop, args=(name,), kwargs={"kill": True}
            ).start()
        yield b"\x03" * size


@pytest.mark.parametrize("service", [SVC_SINK, SVC_SECRET], ids=["public-spooled", "mat-e2e"])
def test_provider_gateway_dies_mid_upload(
    federation: Federation, client: httpx.Client, service: str
) -> None:
    """The provider's gateway is killed while a large body is on its way: the caller gets an
    error or a cut connection, never a 200; the service records no upload; the restarted
    gateway answers again."""
    before = len(federation.received())
    try:
        resp = client.post(f"/r1/{service}", content=_kill_after(federation, "BCA-GW", 48, 1 << 17))
        assert resp.status_code != 200, resp.text
        assert resp.headers["X-LT-Error"] in {"LT.UNAVAILABLE", "LT.TIMEOUT"}
    except httpx.HTTPError:
        pass  # the stream was cut: also a correct outcome
    assert len(federation.received()) == before
    federation.running.start_gateway("BCA-GW")
    assert client.get(f"/r1/{SVC_PUBLIC}").status_code == 200


def test_provider_service_dies_mid_response(
    federation: Federation, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's service dies after 2 MiB of its 8 MiB answer: the caller never gets a
    clean end — a refusal (the provider gateway hashes a PUBLIC answer before it signs it,
    so it sees the cut first) or a cut stream; the restarted service answers again."""
    size, cut = 8 << 20, 2 << 20
    federation.running.stop("service")
    monkeypatch.setenv("LIENTHONG_SAMPLE_FAULTS", "1")  # the service obeys die_after
    federation.running.start_service(federation.record)
    monkeypatch.delenv("LIENTHONG_SAMPLE_FAULTS")
    got, status, code = 0, 0, None
    try:
        with client.stream("GET", f"/r1/{SVC_BLOB}?bytes={size}&die_after={cut}") as down:
            status, code = down.status_code, down.headers.get("X-LT-Error")
            for chunk in down.iter_bytes():
                got += len(chunk)
    except httpx.HTTPError:
        assert status == 200 and got < size  # cut while streaming
    else:
        assert (status, code) == (502, "LT.UNAVAILABLE"), (status, code, got)
    federation.running.stop("service")  # gone already: reaped
    federation.running.start_service(federation.record)
    assert client.get(f"/r1/{SVC_PUBLIC}").status_code == 200


def test_monitoring_records_past_their_keeping_time_are_deleted(
    federation: Federation, client: httpx.Client
) -> None:
    """Records older than limits.monitor_keep_days (7 days here) are deleted by the running
    gateway — before, the monitoring database grew for ever; newer ones stay."""
    import sqlite3
    import time

    from lienthong.exchange.monitor import MonitorStore

    path = federation.testbed.workdir / "state" / "BHXH-GW" / "monitor.sqlite"
    federation.running.stop("BHXH-GW")
    store = MonitorStore(path)
    old = time.time() - 8 * 86400
    store._db.executemany(
        "INSERT INTO monitor_record (ts, node, message_id) VALUES (?, 'BHXH-GW', ?)",
        [(old + i, f"old-{i}") for i in range(2500)] + [(time.time() - 86400, "recent")],
    )
    store._db.commit()
    store.close()
    federation.running.start_gateway("BHXH-GW")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with sqlite3.connect(path) as db:
            left = db.execute("SELECT count(*) FROM monitor_record WHERE ts < ?", (old + 1e4,))
            if left.fetchone()[0] == 0:
                break
        time.sleep(0.2)
    with sqlite3.connect(path) as db:
        ids = {r[0] for r in db.execute("SELECT message_id FROM monitor_record")}
    assert "recent" in ids and not any(i.startswith("old-") for i in ids)
    assert client.get(f"/r1/{SVC_PUBLIC}").status_code == 200


def test_monitoring_records_survive_a_database_that_cannot_be_written(tmp_path: Path) -> None:
    """A flush that fails (disk full, a locked or read-only database) dropped its records and
    raised out of the gateway's flush loop — the task that also re-reads the federation view;
    now they stay pending (bounded), the error is kept for /health, and the next flush that
    works writes them all."""
    import sqlite3

    from lienthong.exchange.monitor import MonitorRecord, MonitorStore

    store = MonitorStore(tmp_path / "monitor.sqlite")

    def record(i: int) -> MonitorRecord:
        return MonitorRecord(
            1.0 + i, "N", "client", f"m{i}", "c", "s", "GET", "PUBLIC", 200, "ok", None, 0, 0,
            1.0, 0.5, 1,
        )  # fmt: skip

    store.add(record(0))
    store._db.execute("PRAGMA query_only = ON")  # as a full disk would: no write succeeds
    with pytest.raises(sqlite3.OperationalError):
        store.flush()
    assert store.write_error is not None and "readonly" in store.write_error
    store.add(record(1))
    store._db.execute("PRAGMA query_only = OFF")
    assert store.flush() == 2 and store.write_error is None
    assert [r["message_id"] for r in store.query(limit=10)] == ["m1", "m0"]
    store.close()
