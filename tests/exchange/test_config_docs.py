"""Every gateway setting is documented in docs/exchange.md; bad configs fail in one line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.exchange.configs import MINIMAL

from lienthong.errors import ConfigError
from lienthong.exchange.config import (
    GatewayConfig,
    Limits,
    LocalSubsystem,
    MessageLogSettings,
    TlsSettings,
    load_config,
)

DOC = (Path(__file__).parents[2] / "docs" / "exchange.md").read_text(encoding="utf-8")


def _fields(cls: type, prefix: str = "") -> list[str]:
    return [prefix + f.name for f in msgspec.structs.fields(cls)]


def test_every_setting_is_documented() -> None:
    names = _fields(GatewayConfig) + _fields(TlsSettings, "tls.") + _fields(Limits, "limits.")
    names += _fields(MessageLogSettings, "message_log.")
    names += ["subsystems[].id", *(f"`{f}`" for f in _fields(LocalSubsystem))]
    missing = [n for n in names if n.strip("`") not in DOC]
    assert not missing, f"undocumented settings: {missing}"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"role": "hub"}, "role"),
        ({"passphrase": "plain-text-secret"}, "passphrase"),
        ({"services": {"x": "ftp://a"}}, "http"),
        ({"unknown": 1}, "unknown"),
        ({"message_log": "stdout"}, "message_log"),
        ({"message_log": {"kind": "audit", "durability": "never"}}, "durability"),
        ({"message_log": {"sync_interval_ms": 0}}, "sync_interval_ms"),
        ({"message_log": {"fsync": True}}, "fsync"),
        ({"limits": {"idle_timeout_s": 0}}, "positive"),
        ({"limits": {"monitor_keep_days": -1}}, "monitor_keep_days must be in"),
    ],
)
def test_bad_config(tmp_path: Path, patch: dict[str, object], message: str) -> None:
    cfg = {**MINIMAL, **patch}
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_caller_networks() -> None:
    import ipaddress

    from lienthong.exchange.node import LocalKeys

    keys = LocalKeys([], None, (ipaddress.ip_network("10.1.0.0/16"),))
    assert keys.allows("10.1.2.3")
    assert not keys.allows("127.0.0.1") and not keys.allows(None) and not keys.allows("x")


def test_bad_caller_network(tmp_path: Path) -> None:
    sub = {"id": "VN/GOV/G01/S", "sign_key": "k", "sign_cert": "c"}
    cfg = {**MINIMAL, "subsystems": [sub | {"allowed_sources": ["10.0.0.0/33"]}]}
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"10\.0\.0\.0/33"):
        load_config(path)


def test_monitor_store_migrates_from_version_1(tmp_path: Path) -> None:
    import sqlite3

    from lienthong.exchange.monitor import SCHEMA_VERSION, MonitorStore

    path = tmp_path / "monitor.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE monitor_record (seq INTEGER PRIMARY KEY, ts, node, role, message_id, "
        "client, service, method, level, status, result, error_code, request_bytes, "
        "response_bytes, total_ms, upstream_ms, hops)"
    )
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO monitor_record (ts, node) VALUES (1.0, 'old')")
    db.commit()
    db.close()
    from lienthong.exchange.monitor import open_readonly

    reader = open_readonly(path)  # the CLI beside a gateway not yet restarted: no migration
    (before,) = reader.query()
    assert before["node"] == "old" and before["hop_ms"] is None and before["reason"] is None
    reader.close()
    store = MonitorStore(path)
    (old,) = store.query()
    assert old["node"] == "old" and old["hop_ms"] is None and old["reason"] is None
    version = store._db.execute("SELECT value FROM meta").fetchone()[0]
    assert version == str(SCHEMA_VERSION) == "4"  # 4: the refusal's reason
    indexes = [r[1] for r in store._db.execute("PRAGMA index_list(monitor_record)")]
    assert indexes == ["monitor_record_ts"]  # version 3: records by time (queries, retention)
    store.close()


def _record(ts: float, **fields: Any) -> Any:
    from lienthong.exchange.monitor import MonitorRecord

    base: dict[str, Any] = {
        "node": "BHXH-GW",
        "role": "client",
        "message_id": f"m{ts}",
        "client": "VN/GOV/G07.BHXH/GIAMDINH",
        "service": "VN/GOV/G01.BCA/DANCU/cu-tru",
        "method": "GET",
        "level": "PERSONAL",
        "status": 200,
        "result": "ok",
        "error_code": None,
        "request_bytes": 0,
        "response_bytes": 10,
        "total_ms": 2.0,
        "upstream_ms": 1.0,
        "hops": 2,
    }
    return MonitorRecord(ts=ts, **(base | fields))


def test_monitor_records_are_pruned_in_bounded_batches_and_filtered(tmp_path: Path) -> None:
    """The monitoring database grew without end (one record per exchange per node: tens of
    millions a day on a busy platform). prune() deletes records older than a time, oldest
    first, at most ``limit`` per call (the gateway calls it each half second until fewer
    come back, then hourly); query() filters on each column an operator asks about."""
    from lienthong.exchange.monitor import MonitorStore, open_readonly

    path = tmp_path / "monitor.sqlite"
    store = MonitorStore(path)
    for ts in range(1, 11):
        store.add(_record(float(ts), client="A" if ts % 2 else "B"))
    store.add(_record(11.0, result="refused", error_code="LT.ACCESS_DENIED"))
    store.flush()
    assert store.prune(before=6.0, limit=3) == 3  # 1, 2, 3
    assert store.prune(before=6.0, limit=3) == 2  # 4, 5: fewer than the limit, done
    assert store.prune(before=6.0, limit=3) == 0
    assert [r["ts"] for r in store.query(limit=100)] == [11.0, 10.0, 9.0, 8.0, 7.0, 6.0]
    reader = open_readonly(path)  # the CLI's connection: read-only
    assert [r["ts"] for r in reader.query(client="A", limit=100)] == [9.0, 7.0]
    assert [r["ts"] for r in reader.query(since=7.0, until=10.0, limit=100)] == [9.0, 8.0, 7.0]
    assert [r["message_id"] for r in reader.query(message_id="m8.0")] == ["m8.0"]
    refused = reader.query(result="refused", error_code="LT.ACCESS_DENIED")
    assert [r["ts"] for r in refused] == [11.0]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._db.execute("DELETE FROM monitor_record")
    reader.close()
    store.close()


def test_gateway_entry_point_errors_are_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "gw.yaml"
    bad.write_text('{"node": "X"')
    for args in (["serve", "--bogus"], ["check", "--config", str(bad)]):
        out = subprocess.run(
            [sys.executable, "-m", "lienthong.exchange", *args], capture_output=True, text=True
        )
        assert out.returncode == 2
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


@pytest.mark.parametrize("durability", ["process", "power"])
def test_message_log_durability_modes(tmp_path: Path, durability: str) -> None:
    """Both modes log every record before returning; "process" syncs in the background and
    on close, so a reopened log holds every entry either way."""
    import asyncio

    from lienthong.audit.log import AuditLog
    from lienthong.exchange.messagelog import AuditMessageLog

    record = {
        "ts": 1.5,
        "id": "6f9619ff-8b86-d011-b42d-00c04fc964ff",
        "client": "VN/GOV/G07.BHXH/GIAMDINH",
        "service": "VN/GOV/G01.BCA/DANCU/echo",
        "response_status": 200,
        "request_hash": "h",
        "level": 0,
        "response_tokens": ["t"],
    }
    path = tmp_path / "m.auditlog"
    mlog = AuditMessageLog(path, "o", durability=durability, sync_interval_s=0.001)

    async def many() -> None:
        await asyncio.gather(*(mlog.append(record) for _ in range(20)))

    asyncio.run(many())
    assert mlog.log.size() == 20
    mlog.log.sync()
    mlog.close()
    assert mlog.log.sync_error is None
    with AuditLog.open(path, create=False) as reopened:
        assert reopened.size() == 20


def test_monitor_summary_counts_and_times_each_service_and_outcome(tmp_path: Path) -> None:
    """An operator's overview: per service, result and error code, the number of exchanges,
    median, 95th percentile and largest time and the bytes carried, busiest first, over the
    selected records (the filters of query)."""
    from lienthong.exchange.monitor import MonitorStore

    store = MonitorStore(tmp_path / "monitor.sqlite")
    for i in range(20):  # 1..20 ms, 10 bytes out each
        store.add(_record(100.0 + i, total_ms=float(i + 1), request_bytes=3))
    store.add(_record(200.0, service="S2", total_ms=7.0))
    for ts in (201.0, 202.0):
        store.add(_record(ts, service="S2", result="refused", error_code="LT.CLEARANCE"))
    store.flush()
    rows = store.summary()
    assert [(r["service"], r["result"], r["error_code"], r["count"]) for r in rows] == [
        ("VN/GOV/G01.BCA/DANCU/cu-tru", "ok", None, 20),
        ("S2", "refused", "LT.CLEARANCE", 2),
        ("S2", "ok", None, 1),
    ]
    first = rows[0]
    assert (first["p50_ms"], first["p95_ms"], first["max_ms"]) == (10.0, 19.0, 20.0)  # rank
    assert (first["request_bytes"], first["response_bytes"]) == (60, 200)
    assert rows[2]["p50_ms"] == rows[2]["p95_ms"] == rows[2]["max_ms"] == 7.0
    since = store.summary(since=110.0, until=115.0)
    assert [(r["count"], r["p50_ms"], r["max_ms"]) for r in since] == [(5, 13.0, 15.0)]
    assert store.summary(service="S2", result="refused")[0]["count"] == 2
    store.close()
