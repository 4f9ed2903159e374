"""Whole-log verification (kiểm tra toàn bộ nhật ký): the first inconsistency, precisely.

Order of checks, so that the reported problem is the *first* one in log order:

1. per chunk of 65,536 entries, in index order: every index present (a gap = deleted entry);
   every entry's bytes hash to its stored leaf hash (else modified / inserted / reordered /
   deleted-and-renumbered, told apart by comparing neighbours); every stored subtree equals the
   hash of its leaves (else leaf hashes were rewritten);
2. every checkpoint: origin, the log key's signature, size not beyond the log (else truncated),
   root equal to the recomputed root (else history rewritten: a fork);
3. every witness co-signature by a known witness key.

Raises :class:`LogInconsistency` (an :class:`~lienthong.errors.IntegrityError`) with
``kind`` and ``index`` details; returns a :class:`VerifyReport` when everything holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from lienthong.audit import merkle
from lienthong.audit.checkpoint import Checkpoint, verify_cosignature, verify_note
from lienthong.audit.log import AuditLog
from lienthong.audit.merkle import HASH_SIZE
from lienthong.audit.stamping import stamp_digest
from lienthong.audit.tiles import TILE_WIDTH, hashes_from_tiles, tile_key
from lienthong.errors import InputError, IntegrityError, SignatureError, TrustError
from lienthong.trust.keys import PublicKey, public_key_from_pem
from lienthong.trust.tsa import verify_timestamp

CHUNK_LEVEL = 16
CHUNK = 1 << CHUNK_LEVEL


class LogInconsistency(IntegrityError):
    """The log is not what its hashes and signatures say; ``kind`` tells how."""

    code = "log_inconsistent"


@dataclass
class VerifyReport:
    origin: str
    size: int
    entries_checked: int = 0
    archived_entries: int = 0
    nodes_checked: int = 0
    checkpoints: int = 0
    cosignatures: int = 0
    unknown_cosigners: list[str] = field(default_factory=list)
    key_source: str = "given"
    unsigned_tail: int = 0
    stamps_verified: int = 0
    external_checkpoints: int = 0
    stamps_pending: int = 0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"verified": True, **self.__dict__}


def _fail(kind: str, message: str, **details: Any) -> LogInconsistency:
    return LogInconsistency(message, kind=kind, **details)


def _classify(i: int, computed: list[bytes], stored: list[bytes], base: int) -> LogInconsistency:
    """Name the first leaf mismatch at chunk offset ``i`` by looking at its neighbours."""
    where = {h: k for k, h in enumerate(stored)}
    j = where.get(computed[i])
    idx = base + i
    if j is not None and j != i and j < len(computed) and computed[j] == stored[i]:
        return _fail(
            "reordered",
            f"entries {idx} and {base + j} were swapped (reordered)",
            index=idx,
            other=base + j,
        )
    if _shifted(computed[i:], stored[i + 1 :]):
        return _fail("deleted", f"entry {idx} was deleted and later entries renumbered", index=idx)
    if _shifted(computed[i + 1 :], stored[i:]):
        return _fail(
            "inserted",
            f"an entry was inserted at index {idx} (later entries renumbered)",
            index=idx,
        )
    if j is not None:
        return _fail(
            "modified",
            f"entry {idx} was modified: it now duplicates entry {base + j}",
            index=idx,
            other=base + j,
        )
    return _fail(
        "modified",
        f"entry {idx} was modified: its content does not match its stored leaf hash",
        index=idx,
    )


def _shifted(computed: list[bytes], stored: list[bytes]) -> bool:
    """True if the next (up to) two hashes line up: a renumbering, not a coincidence."""
    n = min(2, len(computed), len(stored))
    return n > 0 and computed[:n] == stored[:n]


def _stored_hashes(log: AuditLog, level: int, first: int, end: int) -> list[bytes]:
    """Stored hashes of nodes ``[first, end)`` of ``level`` (shorter if tiles are missing)."""
    t0, t1 = first // TILE_WIDTH, -(-end // TILE_WIDTH)
    blobs = []
    for k, (key, blob) in enumerate(log.store.tiles_in(tile_key(level, t0), tile_key(level, t1))):
        if key != tile_key(level, t0 + k):
            break
        blobs.append(blob)
    buf = b"".join(blobs)
    off = (first % TILE_WIDTH) * HASH_SIZE
    stop = min(len(buf), off + (end - first) * HASH_SIZE)
    return [buf[p : p + HASH_SIZE] for p in range(off, stop, HASH_SIZE)]


def _check_leaves(
    rows: list[Any], stored_ext: list[bytes], lo: int, pruned_end: int, report: VerifyReport
) -> None:
    """``stored_ext``: stored leaf hashes of the chunk plus up to two beyond (to classify)."""
    stored = stored_ext[: len(rows)]
    for k, row in enumerate(rows):
        if row[0] != lo + k:
            raise _fail("deleted", f"entry {lo + k} is missing (deleted)", index=lo + k)
        if row[2] is None and row[0] >= pruned_end:
            raise _fail(
                "deleted",
                f"entry {row[0]} has no content but was never archived (deleted)",
                index=row[0],
            )
    if len(stored) < len(rows):
        raise _fail(
            "inserted",
            f"entry {lo + len(stored)} has no leaf hash: it was inserted outside the log",
            index=lo + len(stored),
        )
    if rows and rows[0][0] < pruned_end:
        report.archived_entries += sum(1 for r in rows if r[2] is None)
        computed = [
            merkle.leaf_hash(r[2]) if r[2] is not None else stored[k] for k, r in enumerate(rows)
        ]
    else:
        computed = merkle.leaf_hashes([r[2] for r in rows])
    if computed != stored:
        first = next(k for k in range(len(rows)) if computed[k] != stored[k])
        raise _classify(first, computed, stored_ext, lo)
    for idx, kind, data in rows:  # the kind column (used to filter exports) is not hashed
        if data is not None and b'"kind":"' + kind.encode() + b'"' not in data:
            raise _fail(
                "modified", f"entry {idx}: its kind column was changed to {kind!r}", index=idx
            )
    report.entries_checked += len(rows)


def _check_level(
    log: AuditLog, level: int, first: int, hashes: list[bytes], report: VerifyReport
) -> None:
    stored = _stored_hashes(log, level, first, first + len(hashes))
    for k, h in enumerate(hashes):
        if k >= len(stored) or stored[k] != h:
            idx = first + k
            lo, hi = idx << level, (idx + 1) << level
            what = "is missing" if k >= len(stored) else "does not match its leaves"
            raise _fail(
                "hash_tree",
                f"stored subtree over entries [{lo}, {hi}) {what}: "
                "entries in that range were altered with rewritten leaf hashes",
                index=lo,
                level=level,
            )
    report.nodes_checked += len(hashes)


def _check_no_extra(log: AuditLog, size: int) -> None:
    """No hash may be stored beyond the tree: that would be entries deleted from the end."""
    for level in range(size.bit_length() + 1):
        count = size >> level
        rows = log.store.tiles_in(tile_key(level, count // TILE_WIDTH), tile_key(level + 1, 0))
        extra = sum(len(b) for _k, b in rows) // HASH_SIZE - count % TILE_WIDTH
        if extra > 0:
            end = (count + extra) << level
            raise _fail(
                "deleted",
                f"entries [{size}, {end}) were deleted from the end of the "
                "log (their hashes remain)",
                index=size,
            )
    if log.store.tiles_in(tile_key(size.bit_length() + 1, 0), 1 << 62):
        raise _fail(
            "hash_tree", "the store holds tree hashes above the tree's root level", index=size
        )


def _check_tree(log: AuditLog, size: int, report: VerifyReport) -> None:
    pruned_end = max((a[2] for a in log.store.archives()), default=0)
    tops: list[bytes] = []
    for lo in range(0, size, CHUNK):
        hi = min(lo + CHUNK, size)
        rows = [r for part in log.store.leaves(lo, hi, CHUNK) for r in part]
        if len(rows) < hi - lo and all(r[0] == lo + k for k, r in enumerate(rows)):
            raise _fail(
                "deleted", f"entry {lo + len(rows)} is missing (deleted)", index=lo + len(rows)
            )
        stored_ext = _stored_hashes(log, 0, lo, hi + 2)
        _check_leaves(rows, stored_ext, lo, pruned_end, report)
        level_hashes = stored_ext[: hi - lo]
        for level in range(1, CHUNK_LEVEL + 1):
            level_hashes = merkle.parent_level(level_hashes)
            if not level_hashes:
                break
            _check_level(log, level, lo >> level, level_hashes, report)
        if hi - lo == CHUNK:
            tops.append(level_hashes[0])
    level = CHUNK_LEVEL
    while len(tops) > 1:
        tops = merkle.parent_level(tops)
        level += 1
        _check_level(log, level, 0, tops, report)
    _check_no_extra(log, size)


def _check_note(
    log: AuditLog, note: str, key: PublicKey, size: int, good: int, where: str
) -> Checkpoint:
    """One signed checkpoint against the log: signature, origin, size, root."""
    try:
        cp = verify_note(note, log.key_name, key)
    except (SignatureError, InputError) as exc:
        raise _fail("bad_signature", f"{where}: {exc}", index=good) from exc
    if cp.origin != log.origin:
        raise _fail("bad_checkpoint", f"{where} is for log {cp.origin!r}", index=good)
    if cp.size > size:
        raise _fail(
            "deleted",
            f"{where} covers {cp.size} entries but the log holds {size}: "
            f"entries [{size}, {cp.size}) were deleted",
            index=size,
        )
    stored_root = merkle.root_from_subtrees(
        cp.size, lambda ids: hashes_from_tiles(ids, log.store.get_tiles)
    )  # straight from storage: no cache of this process may hide a change on disk
    if stored_root != cp.root:
        raise _fail(
            "fork",
            f"the log's first {cp.size} entries do not match {where}: history "
            f"between entries {good} and {cp.size} was rewritten (forked history)",
            index=good,
            checkpoint=cp.size,
        )
    return cp


def _check_checkpoints(
    log: AuditLog, key: PublicKey, witnesses: dict[str, PublicKey], size: int, report: VerifyReport
) -> None:
    good = 0
    for cp_size, note in log.store.checkpoints():
        cp = _check_note(log, note, key, size, good, f"stored checkpoint {cp_size}")
        if cp.size != cp_size:
            raise _fail(
                "bad_checkpoint",
                f"checkpoint stored as size {cp_size} says size {cp.size}",
                index=cp_size,
            )
        for name, line in log.store.cosignatures(cp_size):
            if name not in witnesses:
                report.unknown_cosigners.append(name)
                continue
            try:
                verify_cosignature(cp, line, name, witnesses[name])
            except SignatureError as exc:
                raise _fail("bad_cosignature", str(exc), index=cp_size, witness=name) from exc
            report.cosignatures += 1
        good = cp.size
        report.checkpoints += 1
    report.unsigned_tail = size - good


def _check_stamps(log: AuditLog, certs: list[x509.Certificate], report: VerifyReport) -> None:
    roots = [c for c in certs if c.subject == c.issuer]
    others = [c for c in certs if c.subject != c.issuer]
    stamps = log.store.stamps()
    for size, note in log.store.checkpoints():
        if size not in stamps:
            report.stamps_pending += 1
            continue
        try:
            verify_timestamp(stamps[size][0], stamp_digest(note), roots=roots, intermediates=others)
        except TrustError as exc:
            raise _fail(
                "bad_timestamp", f"time-stamp of checkpoint {size}: {exc}", index=size
            ) from exc
        report.stamps_verified += 1


def verify_log(
    log: AuditLog,
    *,
    public_key: PublicKey | None = None,
    witnesses: dict[str, PublicKey] | None = None,
    tsa_certificates: list[x509.Certificate] | None = None,
    external_notes: list[str] | None = None,
) -> VerifyReport:
    """Re-check every leaf, subtree, checkpoint and co-signature of ``log``.

    ``public_key`` is the log's trusted key; without it the key recorded in the log itself is
    used and the report says ``key_source: "log"`` (only self-consistency is then proven).
    With ``tsa_certificates`` (self-signed ones are the trusted roots, the others
    intermediates) every RFC 3161 time-stamp on a checkpoint is verified too.
    ``external_notes`` are checkpoints of this log kept elsewhere (a witness's state, a
    citizen's receipt): they catch a history rewritten together with its stored checkpoints.
    """
    started = time.perf_counter()
    missing = log.store.missing_tables()
    if missing:  # reported, never repaired: a verifier writes nothing
        raise _fail(
            "deleted",
            f"the log's {', '.join(missing)} table(s) are missing (deleted)",
            index=0,
            tables=missing,
        )
    report = VerifyReport(origin=log.origin, size=log.size())
    if public_key is None:
        pem = log.store.get_meta("public_key")
        if pem is None and log.store.checkpoints():
            raise _fail("bad_signature", "no public key given and none recorded in the log")
        report.key_source = "log"
        public_key = public_key_from_pem(pem.encode()) if pem else None
    _check_tree(log, report.size, report)
    if public_key is not None:
        _check_checkpoints(log, public_key, witnesses or {}, report.size, report)
        for k, note in enumerate(external_notes or []):
            _check_note(log, note, public_key, report.size, 0, f"external checkpoint #{k + 1}")
            report.external_checkpoints += 1
    else:
        report.unsigned_tail = report.size
    if tsa_certificates is not None:
        _check_stamps(log, tsa_certificates, report)
    report.elapsed_s = round(time.perf_counter() - started, 3)
    return report
