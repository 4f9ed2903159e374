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

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography import x509

from lienthong.audit import merkle
from lienthong.audit.archive import (
    ArchiveUnproven,
    attestation,
    check_archive_file,
    proven_prefix,
)
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
    archives: int = 0
    archive_files_checked: int = 0
    archive_files_absent: int = 0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"verified": True, **self.__dict__}


def _fail(kind: str, message: str, **details: Any) -> LogInconsistency:
    return LogInconsistency(message, kind=kind, **details)


@dataclass
class _Scan:
    """What the leaf pass learns for later checks."""

    size: int
    hashed: int  # leaf hashes stored (≠ size: entries inserted or deleted with renumbering)
    signed: int  # the largest size a stored checkpoint claims (not yet verified)
    pruned_end: int  # end of the prefix the archives table claims (proven later)
    attested: dict[int, dict[str, Any]] = field(default_factory=dict)
    persons: set[tuple[bytes, int]] = field(default_factory=set)


_PERSON_MARK = b'"person":"hmac-sha256:'
_KIND_MARK = b'"kind":"'


def _kind_is(data: bytes, kind: str) -> bool:
    """True if the entry's own ``kind`` is ``kind``. One ``"kind":"`` in the bytes is the
    entry's own; with more (a nested object has a "kind" key) the entry is decoded."""
    first = data.find(_KIND_MARK)
    if first >= 0 and data.find(_KIND_MARK, first + 1) < 0:
        return data.startswith(kind.encode() + b'"', first + len(_KIND_MARK))
    try:
        entry = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(entry, dict) and entry.get("kind") == kind


def _classify(
    i: int, computed: list[bytes], stored: list[bytes], base: int, scan: _Scan, log: AuditLog
) -> LogInconsistency:
    """Name the first leaf mismatch at chunk offset ``i``.

    ``stored`` may extend two hashes beyond the chunk. More entries than stored leaf hashes
    means insertion, fewer deletion (each with renumbering, if the following entries line up
    shifted by one); the same count with the entry's content found elsewhere means reordering
    or duplication; a content that still fits its stored parent means only the stored leaf
    hash was rewritten."""
    idx = base + i
    if scan.size > scan.hashed and _shifted(computed[i + 1 :], stored[i:]):
        return _fail(
            "inserted",
            f"an entry was inserted at index {idx} (later entries renumbered)",
            index=idx,
        )
    if scan.size < scan.hashed and _shifted(computed[i:], stored[i + 1 :]):
        return _fail("deleted", f"entry {idx} was deleted and later entries renumbered", index=idx)
    n = len(computed)
    where = {h: k for k, h in enumerate(stored[:n])}
    j = where.get(computed[i])
    if j is not None and j != i and stored[i] in set(computed):
        k = computed.index(stored[i])
        return _fail(
            "reordered",
            f"entries were reordered: index {idx} holds entry {base + j} and entry {idx} "
            f"now sits at index {base + k}",
            index=idx,
            other=base + j,
        )
    if j is not None and j != i:
        return _fail(
            "modified",
            f"entry {idx} was modified: it now duplicates entry {base + j}",
            index=idx,
            other=base + j,
        )
    if _parent_fits(log, idx, i, computed):
        return _fail(
            "hash_tree",
            f"the stored leaf hash of entry {idx} was rewritten (the entry itself still fits "
            "the stored tree above it)",
            index=idx,
            level=0,
        )
    return _fail(
        "modified",
        f"entry {idx} was modified: its content does not match its stored leaf hash",
        index=idx,
    )


def _parent_fits(log: AuditLog, idx: int, i: int, computed: list[bytes]) -> bool:
    """True if entry ``idx``'s recomputed hash and its sibling's give the stored parent."""
    sib = i ^ 1
    if sib >= len(computed):
        return False
    parent = _stored_hashes(log, 1, idx >> 1, (idx >> 1) + 1)
    left, right = (computed[i], computed[sib]) if i < sib else (computed[sib], computed[i])
    return bool(parent) and parent[0] == merkle.node_hash(left, right)


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
    log: AuditLog,
    rows: list[Any],
    stored_ext: list[bytes],
    lo: int,
    scan: _Scan,
    report: VerifyReport,
) -> None:
    """``stored_ext``: stored leaf hashes of the chunk plus up to two beyond (to classify)."""
    stored = stored_ext[: len(rows)]
    pruned_end = scan.pruned_end
    for k, row in enumerate(rows):
        if row[0] != lo + k:
            raise _fail("deleted", f"entry {lo + k} is missing (deleted)", index=lo + k)
        if row[2] is None and row[0] >= pruned_end:
            raise _fail(
                "deleted",
                f"entry {row[0]} has no content but was never archived (deleted)",
                index=row[0],
            )
    n = min(len(rows), len(stored))
    if rows and rows[0][0] < pruned_end:
        report.archived_entries += sum(1 for r in rows if r[2] is None)
        computed = [
            merkle.leaf_hash(r[2]) if r[2] is not None else stored[k]
            for k, r in enumerate(rows[:n])
        ]
    else:
        computed = merkle.leaf_hashes([r[2] for r in rows])
    if computed[:n] != stored:
        first = next(k for k in range(n) if computed[k] != stored[k])
        raise _classify(first, computed, stored_ext, lo, scan, log)
    if len(stored) < len(rows):
        idx = lo + len(stored)
        if idx < scan.signed:  # a signed entry cannot be new: its hashes were removed
            raise _fail(
                "hash_tree",
                f"the stored leaf hash of entry {idx} is missing (tree hashes deleted)",
                index=idx,
                level=0,
            )
        raise _fail(
            "inserted",
            f"entry {idx} has no leaf hash: it was inserted outside the log",
            index=idx,
        )
    for idx, kind, data in rows:  # the kind column (used to filter exports) is not hashed
        if data is None:
            continue
        if not _kind_is(data, kind):
            raise _fail(
                "modified", f"entry {idx}: its kind column was changed to {kind!r}", index=idx
            )
        if kind == "personal_data.access" and idx >= pruned_end:
            at = data.find(_PERSON_MARK)
            if at >= 0:
                hx = data[at + len(_PERSON_MARK) : at + len(_PERSON_MARK) + 64]
                with contextlib.suppress(ValueError):  # not hex: names nobody indexable
                    scan.persons.add((bytes.fromhex(hx.decode("ascii", "replace")), idx))
        elif kind == "admin":
            detail = attestation(kind, data)
            if detail is not None:
                scan.attested[idx] = detail
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


def _claimed_size(log: AuditLog) -> int:
    sizes = [s for s, _n in log.store.checkpoints()]
    return max(sizes, default=0)


def _hashed(log: AuditLog) -> int:
    last = log.store.last_tile(0)
    return 0 if last is None else (last[0] & ((1 << 48) - 1)) * TILE_WIDTH + last[1]


def _check_tree(log: AuditLog, size: int, report: VerifyReport) -> _Scan:
    first = log.store.min_index()
    if first is not None and first < 0:
        raise _fail(
            "inserted",
            f"an entry was inserted at index {first}, before the log's first entry",
            index=first,
        )
    pruned_end = max((a[2] for a in log.store.archives()), default=0)
    scan = _Scan(size, _hashed(log), _claimed_size(log), pruned_end)
    tops: list[bytes] = []
    for lo in range(0, size, CHUNK):
        hi = min(lo + CHUNK, size)
        rows = [r for part in log.store.leaves(lo, hi, CHUNK) for r in part]
        if len(rows) < hi - lo and all(r[0] == lo + k for k, r in enumerate(rows)):
            raise _fail(
                "deleted", f"entry {lo + len(rows)} is missing (deleted)", index=lo + len(rows)
            )
        stored_ext = _stored_hashes(log, 0, lo, hi + 2)
        _check_leaves(log, rows, stored_ext, lo, scan, report)
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
    _check_persons(log, scan)
    return scan


def _check_persons(log: AuditLog, scan: _Scan) -> None:
    """The person index (citizens' access history) must list exactly the live entries that
    name a person; rows of archived entries can only be checked against the archives."""
    rows = {(p, i) for p, i in log.store.person_rows(scan.pruned_end)}
    live = {(p, i) for p, i in rows if i < scan.size}
    for _p, i in sorted(scan.persons - live, key=lambda r: r[1])[:1]:
        raise _fail(
            "deleted",
            f"the person index row of entry {i} was deleted (its access would be hidden "
            "from the citizen's history)",
            index=i,
            table="persons",
        )
    for _p, i in sorted(rows - scan.persons, key=lambda r: r[1])[:1]:
        raise _fail(
            "inserted",
            f"the person index holds a row for entry {i} that names nobody there "
            "(inserted into the index)",
            index=i,
            table="persons",
        )


def _check_archives(log: AuditLog, scan: _Scan, signed: int, report: VerifyReport) -> None:
    """The archived (pruned) prefix must be attested by the log itself: see
    :func:`~lienthong.audit.archive.proven_prefix`; present archive files must match."""
    rows = log.store.archives()
    try:
        proven_prefix(rows, scan.attested, signed)
    except ArchiveUnproven as exc:
        raise LogInconsistency(exc.message, **exc.details) from exc
    for row in rows:
        ok = check_archive_file(row)
        if ok is None:
            report.archive_files_absent += 1
        elif not ok:
            raise _fail(
                "bad_archive",
                f"archive file {row[3]} does not hash to the SHA-256 recorded for archive {row[0]}",
                index=row[1],
            )
        else:
            report.archive_files_checked += 1
    report.archives = len(rows)


def check_note(
    log: AuditLog, note: str, key: PublicKey, size: int, good: int, where: str
) -> Checkpoint:
    """One signed checkpoint against the log: signature, origin, size, root (the stored tree
    hashes'). ``size``: the entries the log holds; ``good``: the size already proven.
    Shared by ``verify`` and ``access-history`` (checkpoints kept outside the log)."""
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
        cp = check_note(log, note, key, size, good, f"stored checkpoint {cp_size}")
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
        try:
            public_key = public_key_from_pem(pem.encode()) if pem else None
        except InputError as exc:  # the log's own record is damaged: an integrity failure
            raise _fail(
                "bad_signature", f"the public key recorded in the log is unreadable: {exc}"
            ) from exc
    scan = _check_tree(log, report.size, report)
    if public_key is not None:
        _check_checkpoints(log, public_key, witnesses or {}, report.size, report)
        for k, note in enumerate(external_notes or []):
            check_note(log, note, public_key, report.size, 0, f"external checkpoint #{k + 1}")
            report.external_checkpoints += 1
    else:
        report.unsigned_tail = report.size
    _check_archives(log, scan, report.size - report.unsigned_tail, report)
    if tsa_certificates is not None:
        _check_stamps(log, tsa_certificates, report)
    report.elapsed_s = round(time.perf_counter() - started, 3)
    return report
