"""The message log across a change of the node's TLS key (a renewal, see lifecycle.py).

An audit log's checkpoints are signed with one key, and witnesses keep one history per log
origin. When the gateway starts with another TLS key than the one its message log was
signed with, it keeps that log whole — the SQLite files with their WAL, the evidence store
and the public key — as ``message-log.until-<UTC time>.*`` and starts a new log, signed with
the new key, under an origin of its own (``lienthong/exchange/<node>/key-<key id>``: the first
16 hex digits of the SHA-256 of the key's SubjectPublicKeyInfo). The new log's first entry, a
``message_log.key_changed`` security event, names the previous log's file, origin, size and
last signed checkpoint.

Crash-safe: before the first file is moved, an intent file (``message-log.rollover``: the
new name and what the next log records of the old one) is written and synced; a start that
finds it finishes the moves and writes the entry, and the intent goes only once that entry
is committed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from lienthong.audit.entries import security_event_entry
from lienthong.audit.log import AuditLog
from lienthong.errors import ConfigError, InputError
from lienthong.exchange.messagelog import AuditMessageLog, evidence_path, public_key_path
from lienthong.federation.store import write_atomic
from lienthong.trust.keys import PublicKey

INTENT = "message-log.rollover"


def origin_for(node: str, state: Path, key: PublicKey) -> str:
    """The origin of a new message log: the node's own until its first key change, then one
    per key (a log kept aside already holds the plain one)."""
    base = f"lienthong/exchange/{node}"
    if not any(state.glob("message-log.until-*.auditlog")):
        return base
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"{base}/key-{hashlib.sha256(spki).hexdigest()[:16]}"


def pending(state: Path) -> dict[str, Any] | None:
    """The rollover a stopped start left half done, or None."""
    path = state / INTENT
    try:
        intent = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"message log rollover record {path} cannot be read: {exc}") from exc
    if not isinstance(intent, dict) or not isinstance(intent.get("log"), str):
        raise ConfigError(f"message log rollover record {path} is not one this gateway wrote")
    return intent


def move_aside(path: Path) -> dict[str, Any]:
    """Record the intent, then move the log signed with the previous key aside; the intent."""
    try:
        with AuditLog.open(path, create=False, readonly=True) as old:
            latest = old.latest_checkpoint()
            intent = {
                "log": f"message-log.until-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.auditlog",
                "origin": old.origin,
                "entries": old.size(),
                "checkpoint_size": latest[0].size if latest else 0,
                "checkpoint_root": latest[0].root.hex() if latest else None,
            }
    except InputError as exc:
        raise ConfigError(f"message log {path}: {exc.message}") from exc
    for src, dst in _moves(path, intent):
        if dst.exists():
            raise ConfigError(f"message log: cannot move {src} aside: {dst} exists")
    _write_synced(path.parent / INTENT, json.dumps(intent))
    finish(path, intent)
    return intent


def finish(path: Path, intent: dict[str, Any]) -> None:
    """Move what is not moved yet (each move is atomic; none is done twice)."""
    for src, dst in _moves(path, intent):
        if src.exists() and not dst.exists():
            os.replace(src, dst)
    _sync_dir(path.parent)


def record(mlog: AuditMessageLog, node: str, intent: dict[str, Any]) -> None:
    """Make the new log's first entry name the previous one (committed now), then drop the
    intent."""
    if mlog.log.size() == 0:
        mlog.log.append_one(
            security_event_entry(
                at=dt.datetime.now(dt.UTC),
                event="message_log.key_changed",
                severity=3,
                source=node,
                detail={"previous_" + k: v for k, v in intent.items()},
            )
        )
    (mlog.path.parent / INTENT).unlink(missing_ok=True)


def _moves(path: Path, intent: dict[str, Any]) -> list[tuple[Path, Path]]:
    new = path.with_name(str(intent["log"]))
    pairs = [(path, new), (evidence_path(path), evidence_path(new))]
    wal = [(Path(f"{a}{x}"), Path(f"{b}{x}")) for a, b in pairs for x in ("-wal", "-shm")]
    return [*pairs, *wal, (public_key_path(path), public_key_path(new))]


def _write_synced(path: Path, text: str) -> None:
    """The intent, durable (file and directory entry) before anything moves."""
    write_atomic(path, text.encode())
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
