"""Witnesses (nhân chứng): nodes co-sign each other's checkpoints and catch forks.

A witness keeps, per log origin, the last checkpoint it co-signed (its *state*). Before
co-signing a newer checkpoint it checks the log's signature and a consistency proof from
the checkpoint it saw last. A log that shows two different trees of the same size, goes
backwards, or cannot prove consistency has forked its history: :class:`ForkDetected` is
raised with both signed notes as evidence, and nothing is co-signed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lienthong.audit import merkle
from lienthong.audit.checkpoint import cosign_line, parse_note, verify_note
from lienthong.audit.log import AuditLog
from lienthong.errors import InputError, IntegrityError
from lienthong.trust.keys import PublicKey, Signer


class ForkDetected(IntegrityError):
    """A log served two histories that cannot both be true (evidence in ``details``)."""

    code = "fork_detected"


class LogSource(Protocol):
    """What a witness needs from a log: its latest note, proofs, and where to put co-sigs."""

    def latest_note(self) -> str: ...

    def consistency(self, old_size: int, new_size: int) -> list[bytes]: ...

    def add_cosignature(self, size: int, name: str, line: str) -> None: ...


@dataclass
class LocalLogSource:
    """A log file (or database) the witness can open directly."""

    log: AuditLog

    def latest_note(self) -> str:
        latest = self.log.latest_checkpoint()
        if latest is None:
            raise InputError(f"log {self.log.origin} has no checkpoint to witness yet")
        return self.log.store.checkpoints()[-1][1]

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        return self.log.consistency(old_size, new_size)

    def add_cosignature(self, size: int, name: str, line: str) -> None:
        self.log.store.add_cosignature(size, name, line)


class WitnessState:
    """Last co-signed checkpoint per origin, in a JSON file written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError) as exc:
            raise InputError(f"witness state {path} is unreadable: {exc}") from exc
        if not isinstance(self.data, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("note"), str) for e in self.data.values()
        ):
            raise InputError(f"witness state {path} is malformed: expected {{origin: {{note}}}}")

    def get(self, origin: str) -> str | None:
        entry = self.data.get(origin)
        return None if entry is None else str(entry["note"])

    def put(self, origin: str, note: str) -> None:
        self.data[origin] = {"note": note}
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)


def check_extension(old_note: str, new_note: str, proof: list[bytes]) -> None:
    """Raise :class:`ForkDetected` unless ``new_note``'s tree extends ``old_note``'s."""
    old, _ = parse_note(old_note)
    new, _ = parse_note(new_note)
    evidence = {"seen": old_note, "served": new_note}
    if new.size < old.size:
        raise ForkDetected(
            f"log {new.origin} went back from size {old.size} to {new.size}", **evidence
        )
    if new.size == old.size and new.root != old.root:
        raise ForkDetected(
            f"log {new.origin} signed two different trees of size {new.size}", **evidence
        )
    try:
        merkle.verify_consistency(old.size, new.size, old.root, new.root, proof)
    except merkle.ProofError as exc:
        raise ForkDetected(
            f"log {new.origin} at size {new.size} is not an extension of the "
            f"checkpoint of size {old.size} this witness saw: {exc}",
            **evidence,
        ) from exc


@dataclass
class Witness:
    """A node's witness identity: ``name`` (key name) and a co-signing key."""

    name: str
    signer: Signer
    state: WitnessState
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def witness(self, source: LogSource, log_key_name: str, log_key: PublicKey) -> str:
        """Check the latest checkpoint of ``source`` and co-sign it; return the co-sig line."""
        note = source.latest_note()
        cp = verify_note(note, log_key_name, log_key)
        for origin, entry in self.state.data.items():  # one key name, one log
            signers = {name for name, _blob in parse_note(entry["note"])[1]}
            if origin != cp.origin and log_key_name in signers:
                raise ForkDetected(
                    f"log key {log_key_name} was already witnessed for log {origin}; now it "
                    f"signs log {cp.origin}: a second history under another name",
                    seen=entry["note"],
                    served=note,
                )
        seen = self.state.get(cp.origin)
        if seen is not None:
            old, _ = parse_note(seen)
            proof = source.consistency(old.size, cp.size) if cp.size >= old.size else []
            check_extension(seen, note, proof)
        line = cosign_line(cp, self.name, self.signer, int(self.clock().timestamp()))
        self.state.put(cp.origin, note)
        source.add_cosignature(cp.size, self.name, line)
        return line


def detect_fork(notes: list[str], log_key_name: str, log_key: PublicKey) -> None:
    """Compare notes of one origin gathered from different places (e.g. several witnesses'
    states or copies of a log): two validly signed trees of one size prove a fork."""
    by_size: dict[int, str] = {}
    for note in notes:
        cp = verify_note(note, log_key_name, log_key)
        other = by_size.setdefault(cp.size, note)
        first = parse_note(other)[0]
        if first.root != cp.root:
            origins = (
                f"log {cp.origin}"
                if first.origin == cp.origin
                else f"key {log_key_name}, for logs {first.origin} and {cp.origin} (one key "
                "name is one log)"
            )
            raise ForkDetected(
                f"{origins} signed two different trees of size {cp.size}",
                seen=other,
                served=note,
            )
