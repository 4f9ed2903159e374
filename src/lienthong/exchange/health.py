"""Health (HTTP 200/500, X-Road style) and Prometheus metrics endpoints."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lienthong.exchange.certs import CrlStatus
from lienthong.exchange.exchange_log import Metrics, message_log_health
from lienthong.exchange.httpserver import Request, Response
from lienthong.exchange.node import Node


def health_report(node: Node, now: float) -> dict[str, Any]:
    """Keys loaded, certificates, configuration freshness, storage; ``ok`` is their conjunction."""
    checks: dict[str, Any] = {}
    checks["keys"] = {
        "ok": all(k.signers for k in node.local.values()),
        "subsystems": len(node.local),
    }
    summary = node.certs.status_summary()
    checks["certificates"] = {"ok": summary["certificates"] > 0, **summary}
    checker = getattr(node.status, "checker", None)
    if checker is not None:  # OCSP: warning during an outage (grace), failing once it is over
        import datetime as dt

        report = checker.health(dt.datetime.fromtimestamp(now, dt.UTC)).to_dict()
        checks["certificates"]["status_service"] = report
        checks["certificates"]["ok"] &= report.get("state") != "failing"
    if isinstance(node.status, CrlStatus):  # an unusable CRL file: warning while the last
        report = node.status.health(now)  # good list is kept, failing once it is over
        checks["certificates"]["crl"] = report
        checks["certificates"]["ok"] &= report["state"] != "failing"
    own = node.own  # this node's own certificates: expiry, renewals under way
    if own is not None:
        report = own.report(now)
        checks["certificates"]["own"] = report
        checks["certificates"]["ok"] &= report["state"] != "failing"
    exp = node.directory.expires_at
    checks["configuration"] = {
        "ok": exp is None or exp > now,
        "expires_at": exp,
        "age_s": round(now - node.directory_loaded_at, 1),
    }
    try:
        node.monitor.ping()
        free = shutil.disk_usage(node.cfg.state_dir).free
        checks["storage"] = {"ok": free > 64 << 20, "free_bytes": free}
        if node.monitor.write_error is not None:  # records kept in memory meanwhile
            checks["storage"].update(ok=False, monitor_write=node.monitor.write_error)
        audit = getattr(node.message_log, "log", None)
        sync_error = getattr(audit, "sync_error", None)
        if sync_error is not None:  # background fsync of the message log failing
            checks["storage"].update(ok=False, message_log_sync=sync_error)
    except Exception as exc:  # any storage failure makes the node unhealthy, never crashes it
        checks["storage"] = {"ok": False, "error": type(exc).__name__}
    checks["message_log"] = message_log_health(node)
    return {"node": node.name, "ok": all(c["ok"] for c in checks.values()), "checks": checks}


def health_handler(node: Node) -> Callable[[Request], Awaitable[Response]]:
    async def health(_request: Request) -> Response:
        report = health_report(node, time.time())
        return Response(
            status=200 if report["ok"] else 500,
            body=json.dumps(report).encode(),
            headers={"Content-Type": "application/json"},
        )

    return health


def metrics_handler(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    async def handler(_request: Request) -> Response:
        return Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    return handler
