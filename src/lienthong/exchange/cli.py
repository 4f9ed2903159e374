"""``lienthong gateway``: run a gateway, read its monitoring records, check a config."""

from __future__ import annotations

import asyncio
import base64
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
    help="Exchange gateways (cổng liên thông): serve, check, monitor, evidence, kem-keygen.",
    no_args_is_help=True,
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
    out += _encryption_warnings(node)
    for cert in own:
        who = f"the {cert['role']} certificate of {cert['owner']} ({cert['fingerprint'][:16]}…)"
        if cert["fingerprint"] not in node.certs:
            out.append(f"{who} is not published in the federation directory: peers refuse it")
        if cert["state"] == "warning":
            out.append(f"{who} expires in {cert['days_left']} days ({cert['not_after']})")
    return out


def _encryption_warnings(node: Node) -> list[str]:
    """A local service whose level the policy encrypts end to end needs the provider
    subsystem's key-agreement keys here (kem_x25519/kem_mlkem) and their public half in the
    federation directory (the registry's encryption_keys); else every call to it is refused."""
    out = []
    for service in node.services:
        level = node.directory.services.get(service)
        if level is None or not node.directory.policy[level].encrypt:
            continue
        sid = service.subsystem
        what = f"service {service} ({level.name}) is encrypted end to end"
        local = node.local.get(sid)
        entry = node.directory.subsystems.get(sid)
        if local is not None and local.kem is None:
            out.append(
                f"{what}, but subsystem {sid} has no key-agreement keys here (kem_x25519, "
                "kem_mlkem: lienthong gateway kem-keygen): no call to it can be decrypted"
            )
        if entry is not None and not entry.kem:
            out.append(
                f"{what}, but the federation directory publishes no encryption keys for {sid} "
                "(lienthong federation subsystem encryption-keys): clients refuse to call it"
            )
        elif (
            entry is not None
            and local is not None
            and local.kem is not None
            and _kem_public_raw(local.kem.public()) != _kem_public_raw(entry.kem)
        ):
            out.append(
                f"{what}, but the encryption keys the federation directory publishes for "
                f"{sid} are not the public half of kem_x25519/kem_mlkem here: no call to it "
                "can be decrypted"
            )
    return out


def _kem_public_raw(keys: dict[str, str]) -> dict[str, bytes]:
    """Key-agreement public keys decoded (base64 or base64url, as either is published)."""
    from lienthong.exchange.e2e import b64d

    return {name: b64d(value) for name, value in keys.items()}


@app.command("kem-keygen")
def kem_keygen(
    directory: Path = typer.Option(
        ..., "--dir", help="Where to write the keys: the provider subsystem's key directory."
    ),
    passphrase: str = typer.Option(
        "env:LIENTHONG_KEY_PASSPHRASE",
        "--passphrase",
        help="Passphrase REFERENCE (env:NAME or file:PATH): the gateway config's passphrase.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Generate a provider subsystem's end-to-end key-agreement keys (X25519 + ML-KEM-768):
    kem-x25519.key.pem and kem-mlkem.key.pem (encrypted, for the gateway config's
    kem_x25519/kem_mlkem) and kem.pub.json, their public half for the federation registry
    (lienthong federation subsystem encryption-keys). Existing files are never replaced."""
    from cryptography.hazmat.primitives import serialization

    from lienthong.exchange.e2e import RecipientKeys
    from lienthong.trust.keystore import MIN_PASSPHRASE
    from lienthong.trust.secrets import resolve_secret

    secret = resolve_secret(passphrase, what="--passphrase")
    if len(secret) < MIN_PASSPHRASE:
        raise InputError(
            f"--passphrase is {len(secret)} characters: use at least {MIN_PASSPHRASE} "
            "(a long random passphrase)"
        )
    if directory.exists() and not directory.is_dir():
        raise InputError(f"--dir {directory}: is a file, not a directory")
    paths = {
        "x25519": directory / "kem-x25519.key.pem",
        "mlkem768": directory / "kem-mlkem.key.pem",
        "public": directory / "kem.pub.json",
    }
    present = [str(p) for p in paths.values() if p.exists()]
    if present:
        raise InputError(
            f"{', '.join(present)} already exist: a published key must not be replaced "
            "(choose another --dir for a renewal)"
        )
    keys = RecipientKeys.generate()
    encryption = serialization.BestAvailableEncryption(secret)
    pems = {
        "x25519": keys.x25519.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ),
        "mlkem768": keys.mlkem.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ),
    }
    # standard base64 with padding: what the registry's encryption_keys validation reads
    public = {
        name: base64.b64encode(raw).decode() for name, raw in _kem_public_raw(keys.public()).items()
    }
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, pem in pems.items():
            fd = os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
        paths["public"].write_text(json.dumps(public, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the keys into {directory}: {exc.strerror}") from exc
    result = {
        "kem_x25519": str(paths["x25519"]),
        "kem_mlkem": str(paths["mlkem768"]),
        "public": str(paths["public"]),
        "encryption_keys": public,
    }
    if json_output:
        emit_json(result)
        return
    print(f"wrote {paths['x25519']} and {paths['mlkem768']} (encrypted), {paths['public']}")
    print(
        "next: kem_x25519/kem_mlkem in the gateway config; the operator registers the public "
        f"keys: lienthong federation subsystem encryption-keys FILE --subsystem ID "
        f"--keys {paths['public']}"
    )


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
