"""The message log (nhật ký thông điệp): every exchange recorded before its response leaves.

Default: the node's audit log (:class:`lienthong.audit.log.AuditLog`, an RFC 6962 Merkle log
with group commit — an acknowledged entry survives a crash), signed by the node: checkpoints
are signed with the node's TLS key every ``checkpoint_interval_s`` and on close, and the log's
public key is written beside it (``message-log.pub.pem``).

What goes where (docs/exchange.md, "Message log"):

- the **Merkle leaves** hold only non-identifying fields — identifiers of subsystems and
  services, message id, purpose, legal basis, level, status, body hashes — and the SHA-256 of
  every signed token (``evidence``). The tokens' claims carry the request path, the query and
  the end-user id, which may be a citizen's personal ID: they never enter a leaf;
- the signed tokens themselves (the non-repudiation evidence, as X-Road keeps signed messages)
  go to a side store ``message-log.evidence.sqlite`` keyed by their SHA-256, committed before
  the leaf that names them; :func:`verify_evidence` checks one against the other. The side
  store holds personal data: it is kept under the agency's retention rules and never handed
  out with the log;
- refused calls are ``security`` entries, relays write one ``exchange`` entry (role ``relay``)
  per call they carry, and a provider's answer to a PERSONAL-or-above call naming a data
  subject adds a ``personal_data.access`` entry (keyed hash of the personal ID).

The JSON-lines variant is for diagnosis only (no integrity, flushed but not synced; it keeps
the tokens in clear).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lienthong.audit.entries import (
    KIND_SECURITY,
    Entry,
    decode_entry,
    exchange_entry,
    timestamp,
)
from lienthong.audit.log import WAL_CHECKPOINT_INTERVAL_S, AuditLog
from lienthong.audit.sqlstore import WAL_SAFETY_PAGES, sync_wal
from lienthong.errors import BackendError, InputError, IntegrityError
from lienthong.trust.keys import Signer, public_key_to_pem

TOKEN_FIELDS = ("request_tokens", "response_tokens", "hops")


class MessageLog(Protocol):
    async def append(
        self, record: dict[str, Any], *, also: Sequence[Entry] = (), alone: bool = False
    ) -> None:
        """Return once ``record`` (and the entries ``also``) are durably logged (raise if not).

        ``alone``: no other exchange is in flight on this node, so there is nothing to batch
        with — the log may commit at once instead of waiting for the end of the loop iteration.
        """
        ...

    def note(self, entry: Entry) -> None:
        """Queue ``entry`` (e.g. a security event) for the next commit; do not wait for it."""
        ...

    def close(self) -> None: ...


class JsonlMessageLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self.person_key: bytes | None = None

    async def append(
        self, record: dict[str, Any], *, also: Sequence[Entry] = (), alone: bool = False
    ) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        for entry in also:
            self._file.write(entry.data.decode() + "\n")
        self._file.flush()

    def note(self, entry: Entry) -> None:
        self._file.write(entry.data.decode() + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def token_sha256(token: str) -> str:
    """How a signed token is named in a leaf and keyed in the evidence store."""
    return hashlib.sha256(token.encode()).hexdigest()


def _tokens(record: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name in TOKEN_FIELDS:
        out += [t for t in record.get(name) or () if isinstance(t, str) and t]
    return out


def to_entry(
    record: dict[str, Any],
    person_key: bytes | None = None,
    evidence: dict[str, str] | None = None,
) -> Any:
    """The audit entry of one message-log record: non-identifying fields and token hashes.

    Never copied into the leaf: the signed tokens (their claims hold the path, the query and
    the end-user id), the path, the query. The end-user id is kept only as a keyed hash with
    the federation person key (``user_ref``), and only when the node has that key.
    ``evidence``: token → SHA-256 already computed for the evidence rows (else computed here).
    """
    if evidence is None:
        evidence = {t: token_sha256(t) for t in _tokens(record)}
    tokens = record.get("response_tokens") or [""]
    user = record.get("user")
    return exchange_entry(
        at=datetime.fromtimestamp(record["ts"], UTC),
        message_id=str(record["id"]),
        client=str(record["client"]),
        service=str(record["service"]),
        outcome=str(record.get("outcome") or "ok"),
        status=record.get("response_status"),
        request_hash=record.get("request_hash"),
        response_hash=(evidence.get(tokens[0]) or token_sha256(tokens[0])) if tokens[0] else None,
        classification=str(record.get("level")),
        reason=record.get("reason"),
        node=record.get("node"),
        role=record.get("role"),
        purpose=record.get("purpose"),
        legal=record.get("legal"),
        request_body=record.get("request_body"),
        response_body=record.get("response_body"),
        hops=len(record.get("hops") or ()),
        evidence=[evidence[t] for t in _tokens(record)],
        user_ref=_user_ref(user, person_key) if user else None,
    )


def _user_ref(user: str, key: bytes | None) -> str | None:
    if key is None:
        return None
    from lienthong.audit.entries import person_hash, person_ref

    return person_ref(person_hash(str(user), key))


class EvidenceStore:
    """The signed tokens of the logged exchanges, by SHA-256 (SQLite, WAL).

    Written in the same flush as the leaves that name them, before them; synced with the log.
    Holds personal data (paths and end-user ids inside the claims).
    """

    def __init__(self, path: Path, *, durability: str = "power", create: bool = True) -> None:
        self.path = path
        if not create and not path.exists():
            raise InputError(f"{path}: no such evidence store")
        if create and not path.exists():  # personal data: readable by the node's account only
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                f"PRAGMA synchronous={'FULL' if durability == 'power' else 'NORMAL'}"
            )
            if not create:
                names = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master")}
                if "tokens" not in names:
                    self._conn.close()
                    raise InputError(f"{path} is not a message-log evidence store")
            if create:
                # appended in rowid order, no index: writes are sequential (the hot path);
                # lookups by hash are for audits and build their own index (see ``get``)
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS tokens(sha256 TEXT NOT NULL, "
                    "message_id TEXT NOT NULL, token TEXT NOT NULL)"
                )
            if create and durability == "process":  # checkpoints in the syncer, see sync()
                self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_SAFETY_PAGES}")
        except sqlite3.Error as exc:
            raise InputError(f"cannot open evidence store {path}: {exc}") from exc
        self._lock = threading.Lock()
        self._durability = durability
        self._background: sqlite3.Connection | None = None
        self._checkpointed_at = time.monotonic()

    def add(self, rows: list[tuple[str, str, str]]) -> None:
        """Commit ``(sha256, message_id, token)`` rows."""
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT INTO tokens VALUES (?, ?, ?)", rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def index(self) -> None:
        """Index the tokens by hash (for audits; never on the gateway's write path)."""
        with self._lock, contextlib.suppress(sqlite3.OperationalError):  # read-only copy: scan
            self._conn.execute("CREATE INDEX IF NOT EXISTS tokens_sha256 ON tokens(sha256)")

    def get(self, sha: str, message_id: str | None = None) -> tuple[str, str] | None:
        """``(message_id, token)`` of a token with this SHA-256 — filed under ``message_id``
        when one is given — or None. One token may be filed under several messages: a relay
        keeps the answer token it passes back unverified, whatever the next hop repeats."""
        sql, args = "SELECT message_id, token FROM tokens WHERE sha256 = ?", [sha]
        if message_id is not None:
            sql, args = sql + " AND message_id = ?", [sha, message_id]
        with self._lock:
            row = self._conn.execute(sql, args).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    @property
    def deleted_before(self) -> str | None:
        """The RFC 3339 time before which tokens were deleted at the end of their retention
        (:func:`delete_evidence_before`), or None."""
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT value FROM meta WHERE key = 'deleted_before'"
                ).fetchone()
            except sqlite3.OperationalError:  # no meta table: nothing was ever deleted
                return None
        return str(row[0]) if row else None

    def delete(self, pairs: list[tuple[str, str]], before: str) -> int:
        """Delete the tokens ``(sha256, message_id)``, overwriting their bytes on disk
        (``secure_delete``, then a truncating WAL checkpoint), and record ``before`` as the
        time before which tokens may be missing; the number of rows deleted."""
        with self._lock:
            self._conn.execute("PRAGMA secure_delete=ON")  # personal data: zeroed, not freed
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)"
                )
                deleted = 0
                for sha, mid in pairs:
                    cur = self._conn.execute(
                        "DELETE FROM tokens WHERE sha256 = ? AND message_id = ?", (sha, mid)
                    )
                    deleted += cur.rowcount
                self._conn.execute(
                    "INSERT INTO meta VALUES ('deleted_before', ?) ON CONFLICT(key) DO UPDATE "
                    "SET value = max(value, excluded.value)",
                    (before,),
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def for_message(self, message_id: str) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT token FROM tokens WHERE message_id = ? ORDER BY rowid", (message_id,)
            ).fetchall()
        return [str(r[0]) for r in rows]

    def sync(self) -> None:
        """``fdatasync`` the WAL (durability "process": called with the log's syncs, in its
        syncer thread); the database file is synced by SQLite itself after each checkpoint
        (WAL, ``synchronous=NORMAL``). Under "process" the WAL checkpoints run here too, on a
        connection of this thread (``PASSIVE``: the writer never waits for them), every
        ``WAL_CHECKPOINT_INTERVAL_S``, rather than in the committing event loop."""
        if not Path(str(self.path) + "-wal").exists():
            return  # nothing written since the last full checkpoint
        sync_wal(str(self.path))
        if self._durability != "process":
            return
        if time.monotonic() - self._checkpointed_at < WAL_CHECKPOINT_INTERVAL_S:
            return
        try:
            if self._background is None:
                self._background = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=0
                )
                self._background.execute("PRAGMA synchronous=NORMAL")
            self._background.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            raise BackendError(f"evidence store {self.path}: checkpoint failed: {exc}") from exc
        self._checkpointed_at = time.monotonic()

    def __enter__(self) -> EvidenceStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            if self._background is not None:
                self._background.close()
                self._background = None
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()


def evidence_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name.removesuffix(".auditlog") + ".evidence.sqlite")


def public_key_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name.removesuffix(".auditlog") + ".pub.pem")


def _live_entries(log: AuditLog) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(index, kind, decoded entry)`` of every live leaf (archived ones are skipped: the
    archive holds the leaf, the side store its tokens)."""
    for rows in log.store.leaves(0, log.size()):
        for idx, kind, data in rows:
            if data is not None:
                yield idx, kind, decode_entry(bytes(data))


def verify_evidence(
    log: AuditLog,
    evidence: EvidenceStore,
    visit: Callable[[int, str, dict[str, Any]], None] | None = None,
) -> dict[str, int]:
    """Check every live leaf's ``evidence`` hashes against the side store: each token present,
    hashing to the leaf's value and recorded for the leaf's message id. Raise IntegrityError
    on the first mismatch; return counts. ``visit`` sees each live entry on the way (one pass
    over the log for a report that also selects entries)."""
    evidence.index()
    checked = expired = 0
    before = evidence.deleted_before
    for idx, kind, entry in _live_entries(log):
        if visit is not None:
            visit(idx, kind, entry)
        for sha in _evidence(idx, entry):
            found = evidence.get(sha, str(entry.get("message_id"))) or evidence.get(sha)
            if found is None:
                if before is not None and _at(idx, entry) < before:
                    expired += 1  # deleted at the end of its retention period
                    continue
                raise IntegrityError(f"entry {idx}: signed token {sha[:16]}… is missing")
            mid, token = found
            if token_sha256(token) != sha or mid != entry.get("message_id"):
                raise IntegrityError(f"entry {idx}: signed token {sha[:16]}… was altered")
            checked += 1
    counts = {"tokens_checked": checked}
    if before is not None:
        counts["tokens_deleted_by_retention"] = expired
    return counts


_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _at(idx: int, entry: dict[str, Any]) -> str:
    """An entry's time as stored (RFC 3339 UTC with milliseconds: compares as text); a leaf
    without one was not written by a gateway (IntegrityError): its tokens are never taken for
    old enough to delete."""
    at = entry.get("at")
    if not isinstance(at, str) or not _AT.fullmatch(at):
        raise IntegrityError(f"entry {idx}: its time {at!r} is not one a gateway writes")
    return at


def _evidence(idx: int, entry: dict[str, Any]) -> list[str]:
    """The token hashes a leaf names (IntegrityError when they are not SHA-256 hex strings: a
    leaf a gateway never wrote)."""
    shas = entry.get("evidence") or []
    if not isinstance(shas, list) or not all(
        isinstance(sha, str) and _SHA256.fullmatch(sha) for sha in shas
    ):
        raise IntegrityError(f"entry {idx}: its evidence is not a list of SHA-256 hashes")
    return shas


def delete_evidence_before(log_path: Path, before: datetime) -> dict[str, Any]:
    """``lienthong gateway evidence --delete-before``: at the end of the retention period of
    exchange records (Decree 13/2023), delete the signed tokens — personal data — of every
    live entry older than ``before``. The log's leaves stay (they name no one and keep the
    tokens' hashes); the store records the time, so :func:`verify_evidence` counts those
    tokens as deleted, not missing. Tokens of entries already archived out of the live log are
    not dated here and stay: delete before archiving."""
    cutoff = timestamp(before)
    with (
        AuditLog.open(log_path, create=False) as log,
        EvidenceStore(evidence_path(log_path), create=False) as store,
    ):
        pairs = [
            (sha, str(entry.get("message_id")))
            for idx, _kind, entry in _live_entries(log)
            if _evidence(idx, entry) and _at(idx, entry) < cutoff
            for sha in _evidence(idx, entry)
        ]
        previous = store.deleted_before
        if previous is not None and cutoff < previous:
            cutoff = previous  # never moves back: earlier deletions stay accounted for
        deleted = store.delete(pairs, cutoff)
    return {"log": str(log_path), "deleted_before": cutoff, "tokens_deleted": deleted}


def _claims(token: str) -> Any:
    """The JSON payload of a compact JWS (for display; the signature was checked on receipt
    — except for the answer token a relay passes back, kept unverified): None when it cannot
    be decoded, nested past the decoder's recursion limit included (a compromised provider's
    token must not stop the evidence of the exchange from being read)."""
    import base64

    try:
        part = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, RecursionError):
        return None


def _exchange(store: EvidenceStore, idx: int, kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    """One leaf of :func:`evidence_report`'s message: its identifiers and the signed tokens it
    names, as filed under its own message id, with their claims."""
    mid = str(entry.get("message_id"))
    tokens = []
    for sha in _evidence(idx, entry):
        row = store.get(sha, mid)
        token = row[1] if row else None
        claims = _claims(token) if token is not None else None
        tokens.append({"sha256": sha, "token": token, "claims": claims})
    return (
        {"entry": idx, "kind": kind}
        | {k: entry.get(k) for k in ("at", "client", "service", "outcome")}
        | {"tokens": tokens}
    )


def evidence_report(
    log_path: Path, message_id: str | None = None, client: str | None = None
) -> dict[str, Any]:
    """``lienthong gateway evidence``: verify the evidence store beside a message log against
    the log's leaves; with ``message_id`` (and ``client``), also each exchange of that id: its
    leaf's identifiers and its tokens with their claims (which may hold personal data: for the
    agency's data-protection officer, not for auditors)."""
    with (
        AuditLog.open(log_path, create=False) as log,
        EvidenceStore(evidence_path(log_path), create=False) as store,
    ):
        # A message id is unique per client subsystem only: two clients may use the same
        # one, and each leaf shows its own exchange's tokens, never the other's.
        selected: list[tuple[int, str, dict[str, Any]]] = []
        events: list[dict[str, Any]] = []

        def select(idx: int, kind: str, entry: dict[str, Any]) -> None:
            if (
                entry.get("message_id") == message_id
                and entry.get("evidence")
                and client in (None, entry.get("client"))
            ):
                selected.append((idx, kind, entry))
            detail = entry.get("detail")
            if (  # what went wrong after the leaf: e.g. a streamed answer cut or altered
                kind == KIND_SECURITY
                and isinstance(detail, dict)
                and detail.get("message_id") == message_id
                and client in (None, detail.get("client"))
            ):
                events.append(
                    {"entry": idx, "at": entry.get("at"), "event": entry.get("event")}
                    | {k: detail.get(k) for k in ("code", "role", "client", "reason")}
                )

        report: dict[str, Any] = {"log": str(log_path), "origin": log.origin}
        counts = verify_evidence(log, store, select if message_id is not None else None)
        report.update(entries=log.size(), **counts)
        if message_id is not None:
            exchanges = [_exchange(store, *leaf) for leaf in selected]
            if not exchanges:
                of = f" of client {client}" if client is not None else ""
                raise InputError(f"no exchange with message id {message_id}{of} in the log")
            report["message"] = {
                "message_id": message_id,
                "exchanges": exchanges,
                "security_events": events,
            }
    return report


class AuditMessageLog:
    """Group commit on the event-loop side: exchanges queue their entries and await a future;
    one writer thread appends everything queued as one batch (one transaction, one fsync)
    while the next batch accumulates. Measured: a thread per append cost ~0.6 ms of CPU per
    exchange in thread hand-offs; batching removes most of it."""

    def __init__(
        self,
        path: Path,
        origin: str,
        *,
        durability: str = "power",
        sync_interval_s: float = 0.01,
        signer: Signer | None = None,
        checkpoint_interval_s: float = 60.0,
        person_key: bytes | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.person_key = person_key
        self.log = AuditLog.open(path, origin=origin, durability=durability, signer=signer)
        self.evidence = EvidenceStore(evidence_path(path), durability=durability)
        self.log.sync_hooks.append(self.evidence.sync)
        if signer is not None:
            pem = public_key_to_pem(signer.public_key())
            pub = public_key_path(path)
            if not pub.exists() or pub.read_bytes() != pem:
                tmp = pub.with_name(pub.name + ".tmp")
                tmp.write_bytes(pem)
                tmp.replace(pub)
            self.log.checkpoint_every(checkpoint_interval_s)
        # "process": a commit is a few hundred microseconds of SQLite work with no fsync —
        # cheaper done on the event loop, once per loop iteration for everything queued,
        # than handed to a thread (measured: the hand-off cost ~45 µs CPU per exchange).
        self._inline = durability == "process"
        if self._inline:
            self.log.sync_every(sync_interval_s)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="message-log")
        # (entries, evidence rows, waiter or None for fire-and-forget notes)
        self._queue: list[
            tuple[list[Entry], list[tuple[str, str, str]], asyncio.Future[None] | None]
        ] = []
        self._writer: asyncio.Task[None] | None = None
        self._flush_scheduled = False
        self.note_error: str | None = None
        self._closed = False
        # a process that ends without closing the node still signs its last checkpoint
        atexit.register(self.close)

    def _enqueue(
        self,
        entries: list[Entry],
        rows: list[tuple[str, str, str]],
        future: asyncio.Future[None] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._queue.append((entries, rows, future))
        if self._inline:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush_inline)
        elif self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())

    async def append(
        self, record: dict[str, Any], *, also: Sequence[Entry] = (), alone: bool = False
    ) -> None:
        mid = str(record["id"])
        hashes = {t: token_sha256(t) for t in _tokens(record)}  # each token hashed once
        rows = [(hashes[t], mid, t) for t in _tokens(record)]
        entries = [to_entry(record, self.person_key, hashes), *also]
        if alone and self._inline and not self._queue:
            # one exchange in flight and nothing queued: a batch would hold this entry only,
            # so commit now rather than one loop iteration later (and wake up one later still)
            self._write([(entries, rows, None)])
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(entries, rows, future)
        await future

    def note(self, entry: Entry) -> None:
        try:
            self._enqueue([entry], [], None)
        except RuntimeError:  # no running loop (tests, tools): commit now
            self._write([([entry], [], None)])

    def _write(
        self,
        batch: list[tuple[list[Entry], list[tuple[str, str, str]], asyncio.Future[None] | None]],
    ) -> None:
        """Evidence first, then the leaves naming it (a crash in between leaves only
        unreferenced tokens behind)."""
        self.evidence.add([r for _, rows, _ in batch for r in rows])
        self.log.append([e for entries, _, _ in batch for e in entries])

    def _settle(
        self,
        batch: list[tuple[list[Entry], list[tuple[str, str, str]], asyncio.Future[None] | None]],
        exc: BaseException | None,
    ) -> None:
        if exc is not None and any(f is None for _, _, f in batch):
            self.note_error = f"{type(exc).__name__}: {exc}"
        for _, _, future in batch:
            if future is None or future.done():
                continue
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)

    def _flush_inline(self) -> None:
        """Commit everything queued during this loop iteration as one batch."""
        self._flush_scheduled = False
        batch, self._queue = self._queue, []
        try:
            self._write(batch)
        except Exception as exc:  # every waiter learns the batch failed
            self._settle(batch, exc)
            return
        self._settle(batch, None)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await loop.run_in_executor(self._pool, self._write, batch)
            except Exception as exc:  # every waiter learns the batch failed
                self._settle(batch, exc)
                continue
            self._settle(batch, None)

    def close(self) -> None:
        """Commit what is still queued, sign a final checkpoint when the log grew since the
        last one, and fold the WAL into the main file (a closed log is one self-contained
        file that can be copied to an auditor). Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self._pool.shutdown(wait=True)
        if self._queue:
            batch, self._queue = self._queue, []
            with contextlib.suppress(Exception):
                self._write(batch)
        if self.log.signer is not None:
            self.log.stop_checkpoints()
            cps = self.log.store.checkpoints()
            if self.log.size() > (cps[-1][0] if cps else 0):
                self.log.checkpoint()
        conn = getattr(self.log.store, "conn", None)
        if isinstance(conn, sqlite3.Connection):
            with contextlib.suppress(sqlite3.Error):
                self.log.sync()
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.log.close()
        self.evidence.close()
