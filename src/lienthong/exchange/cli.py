"""``lienthong gateway``: run a gateway, read its monitoring records, check a config."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lienthong.cli.output import emit_json
from lienthong.errors import BackendError, ConfigError, InputError
from lienthong.exchange.config import load_config
from lienthong.exchange.monitor import open_readonly

if TYPE_CHECKING:
    from lienthong.exchange.node import Node

app = typer.Typer(
    help="Exchange gateways (cổng liên thông): serve, monitor, check.", no_args_is_help=True
)


@app.command()
def serve(
    config: Path = typer.Option(..., "--config", help="Gateway config file (JSON or YAML)."),
    log_level: str = typer.Option("WARNING", "--log-level", help="Local log level."),
    profile: Path | None = typer.Option(
        None, "--profile", help="Write cProfile statistics to this file at exit (diagnosis)."
    ),
) -> None:
    """Run one gateway process until SIGTERM/SIGINT."""
    from lienthong.exchange.server import serve as run

    level = log_level.strip().upper()
    if level not in _LOG_LEVELS:
        raise InputError(f"--log-level {log_level!r}: give one of {', '.join(_LOG_LEVELS)}")
    if profile is not None:
        _check_writable(profile, "--profile")
    cfg = load_config(config)
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )

    def ready(ports: dict[str, int]) -> None:
        print(json.dumps({"ready": True, "node": cfg.node, "ports": ports}), flush=True)

    if profile is None:
        _run_loop(run(cfg, ready=ready))
        return
    import cProfile

    with cProfile.Profile(time.process_time) as prof:  # CPU, not wall, time
        _run_loop(run(cfg, ready=ready))
    prof.dump_stats(profile)


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _check_writable(path: Path, option: str) -> None:
    """Refuse at start a file the command could write only at its end (after hours of work)."""
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory, give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{option} {path}: not writable")


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop (measured ~2x less event-loop overhead per exchange) when installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


@app.command()
def check(config: Path = typer.Option(..., "--config", help="Gateway config file.")) -> None:
    """Validate a config and load its keys, certificates and directory; print a summary."""
    from lienthong.exchange.certs import CrlStatus
    from lienthong.exchange.lifecycle import OwnCertificates
    from lienthong.exchange.node import build_node

    node = build_node(load_config(config))
    try:
        now = time.time()
        if isinstance(node.status, CrlStatus):
            node.status.report = None  # only a look: no security event in the node's log
            crl = node.status.health(now)
            if crl["state"] == "failing":
                reason = crl["unusable"] or "past its next update and grace period"
                raise ConfigError(
                    f"tls.crl {node.cfg.tls.crl}: {reason}: every certificate check would "
                    "fail closed"
                )
        own = OwnCertificates.of(node.cfg).report(now)
        for cert in own["certificates"]:
            if cert["state"] == "failing":  # peers refuse every call with it
                raise ConfigError(
                    f"the {cert['role']} certificate of {cert['owner']} is not in force "
                    f"(valid until {cert['not_after']}): peers would refuse every call"
                )
        emit_json(
            {
                "node": node.name,
                "role": node.cfg.role,
                "subsystems": [str(s) for s in node.local],
                "services": [str(s) for s in node.services],
                "certificates": node.certs.status_summary(),
                "own_certificates": own["certificates"],
                "warnings": _warnings(node, own["certificates"]),
            }
        )
    finally:
        node.close()


def _warnings(node: Node, own: list[dict[str, Any]]) -> list[str]:
    """What ``check`` finds that would make calls fail or soon fail, but that may be a step of
    onboarding or renewal under way (the federation not yet publishing it): said, not fatal."""
    out = []
    directory = node.directory
    for sid in node.local:
        entry = directory.subsystems.get(sid)
        if entry is None:
            out.append(f"subsystem {sid} is not in the federation directory: its calls are refused")
        elif entry.node != node.name:
            out.append(f"subsystem {sid} is served by {entry.node} in the directory, not here")
    for service in node.services:
        if service not in directory.services:
            out.append(f"service {service} is not in the federation directory: no call reaches it")
        elif service.subsystem not in node.local:
            out.append(f"service {service} belongs to a subsystem this gateway does not serve")
    for cert in own:
        who = f"the {cert['role']} certificate of {cert['owner']} ({cert['fingerprint'][:16]}…)"
        if cert["fingerprint"] not in node.certs:
            out.append(f"{who} is not published in the federation directory: peers refuse it")
        if cert["state"] == "warning":
            out.append(f"{who} expires in {cert['days_left']} days ({cert['not_after']})")
    return out


def _when(text: str, option: str, *, durations: bool = True) -> dt.datetime:
    """``--since``/``--until``/``--delete-before``: an ISO 8601 time (UTC when it names no
    zone) or, with ``durations``, a duration back from now (``90m``, ``36h``, ``7d``)."""
    from lienthong.federation.publish import parse_duration

    try:
        at = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        if not durations:
            raise InputError(
                f"{option} {text!r}: give a date or time (2025-12-07, 2025-12-07T08:00:00+07:00)"
            ) from None
        try:
            return dt.datetime.now(dt.UTC) - parse_duration(text)
        except InputError:
            raise InputError(
                f"{option} {text!r}: give a time (2026-12-07T08:00:00+07:00) or a duration "
                "back from now (90m, 36h, 7d)"
            ) from None
    try:  # an offset can carry the first or last day of the calendar outside of it
        return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except OverflowError:
        raise InputError(
            f"{option} {text!r}: out of the range of dates (years 1 to 9999)"
        ) from None


_RESULTS = ("ok", "refused")


@app.command()
def monitor(
    config: Path = typer.Option(..., "--config", help="Gateway config file."),
    limit: int = typer.Option(20, "--limit", min=1, max=100_000, help="Most recent records."),
    error_code: str | None = typer.Option(None, "--error-code", help="Only this LT.* code."),
    message_id: str | None = typer.Option(None, "--message-id", help="Only this message id."),
    client: str | None = typer.Option(None, "--client", help="Only this client subsystem."),
    service: str | None = typer.Option(None, "--service", help="Only this service."),
    result: str | None = typer.Option(None, "--result", help="Only ok or refused."),
    since: str | None = typer.Option(
        None, "--since", help="From this time (ISO 8601) or this long ago (90m, 36h, 7d)."
    ),
    until: str | None = typer.Option(None, "--until", help="Before this time, as --since."),
    summary: bool = typer.Option(
        False, "--summary", help="Per service, result and code: count, p50/p95/max ms, bytes."
    ),
) -> None:
    """Print the operational-monitoring records of a gateway (most recent first), as JSON,
    optionally only those of a message id, client, service, result, error code or time
    range; with --summary, one line per service, result and error code instead (all the
    selected records, not --limit). Records older than limits.monitor_keep_days (7 by
    default) are deleted by the gateway."""
    if result is not None and result not in _RESULTS:
        raise InputError(f"--result must be one of {', '.join(_RESULTS)}, not {result!r}")
    start = _when(since, "--since").timestamp() if since is not None else 0.0
    end = _when(until, "--until").timestamp() if until is not None else None
    if since is not None and end is not None and end <= start:
        raise InputError(f"--until {until!r} is not after --since {since!r}: no time between")
    cfg = load_config(config)
    path = Path(cfg.state_dir) / "monitor.sqlite"
    store = open_readonly(path)
    filters: dict[str, str | float | None] = {
        "error_code": error_code,
        "message_id": message_id,
        "client": client,
        "service": service,
        "result": result,
        "until": end,
    }
    try:
        if summary:
            records = store.summary(since=start, **filters)
        else:
            records = store.query(since=start, limit=limit, **filters)
    except sqlite3.Error as exc:  # a damaged database: tables missing or unreadable
        raise BackendError(f"cannot read the monitoring database {path}: {exc}") from exc
    finally:
        store.close()
    emit_json(records)


@app.command()
def evidence(
    log: Path = typer.Option(..., "--log", help="A gateway's message-log.auditlog."),
    message_id: str | None = typer.Option(
        None, "--message-id", help="Also print each exchange of this id: leaf, tokens, claims."
    ),
    client: str | None = typer.Option(
        None, "--client", help="With --message-id: only the exchanges of this client subsystem."
    ),
    delete_before: str | None = typer.Option(
        None,
        "--delete-before",
        help="End of retention: delete the tokens of entries before this time (ISO 8601).",
    ),
) -> None:
    """Check the signed tokens kept beside a message log (message-log.evidence.sqlite) against
    the log's leaves: exit 1 on a missing or altered token. With --message-id each exchange
    of that id is printed apart (ids are unique per client subsystem only), with its tokens'
    claims: they may hold personal data (paths, end users).

    With --delete-before, at the end of the retention period of exchange records, the tokens
    of the entries before that time are deleted (overwritten on disk) instead; the log's
    leaves stay, and later checks count those tokens as deleted, not missing."""
    from lienthong.exchange.messagelog import delete_evidence_before, evidence_report

    if client is not None and message_id is None:
        raise InputError("--client needs --message-id")
    if delete_before is not None:
        if message_id is not None:
            raise InputError("--delete-before and --message-id are separate runs")
        at = _when(delete_before, "--delete-before", durations=False)
        if at > dt.datetime.now(dt.UTC):  # it would delete every token, the newest ones too
            raise InputError(
                f"--delete-before {delete_before!r} is in the future: give the end of the "
                "retention period, a past date"
            )
        emit_json(delete_evidence_before(log, at))
        return
    emit_json(evidence_report(log, message_id, client))
