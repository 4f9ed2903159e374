"""A citizen's access history (lịch sử truy cập dữ liệu cá nhân), with proofs of completeness.

For each node log given, up to its latest signed checkpoint:

- the person index (``persons`` table, keyed by the HMAC person hash) lists the entries;
- each listed entry comes with an RFC 6962 inclusion proof against the checkpoint root;
- **completeness** is checked, not assumed: every live entry ``[0, size)`` is re-read, its leaf
  hash recomputed and the root rebuilt; the rebuilt root must equal the signed checkpoint root
  (so no entry was hidden or altered), and the set of entries whose canonical bytes carry this
  person's keyed hash must equal the index (so the index hid nothing). Entries already
  archived and pruned are accepted only if the log's own signed ``log.archive`` entries attest
  that prefix; they are outside the claim (``complete_from`` says where it starts,
  ``unchecked_ranges`` which are left out) unless their archive files are given:
- each archive file given is verified offline (:func:`~lienthong.audit.archive.read_archive`,
  one streaming pass), must be the file the log's proven archive record names (seq, range,
  SHA-256), and its signed checkpoint must be a prefix of the checkpoint the claim is made
  against (consistency proof); the accesses read from it must equal the person index's rows
  in its range, and each is listed with an inclusion proof against that checkpoint.

The log alone cannot show a rollback (its last entries deleted together with the checkpoints
above them). *Anchors*, checkpoints of the log kept outside it (a citizen's saved note, a
witness's state), are checked as ``verify --checkpoint`` checks them: a log shorter than an
anchor, or of another history, fails; an anchor beyond the stored checkpoint extends the
proven range to its size (its root must be that of the re-read entries).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lienthong.audit import merkle
from lienthong.audit.archive import (
    ArchiveRow,
    ArchiveUnproven,
    archive_origin,
    attestation,
    check_archive_file,
    proven_prefix,
    read_archive,
)
from lienthong.audit.checkpoint import Checkpoint, verify_note
from lienthong.audit.entries import (
    KIND_PERSONAL_DATA_ACCESS,
    decode_entry,
    person_hash,
    person_ref,
)
from lienthong.audit.log import AuditLog, InclusionProof
from lienthong.audit.verify import check_note
from lienthong.errors import InputError, IntegrityError
from lienthong.trust.keys import PublicKey, public_key_from_pem

NO_ANCHOR = (
    "; no checkpoint kept outside the log was given: a rollback (its last entries deleted "
    "with the checkpoints above them) cannot be seen from the log alone, pass a checkpoint "
    "you or a witness kept (--checkpoint NAME=NOTE, --witness-state FILE)"
)


@dataclass(frozen=True)
class Completeness:
    checkpoint_size: int
    complete_from: int
    root_recomputed: bool
    matches: int
    signed_by: str = "the log's latest stored checkpoint"
    checked: tuple[tuple[int, int], ...] = ()  # every range checked (default: the live one)
    archives: tuple[tuple[str, int, int], ...] = ()  # (file, first, end) read and verified
    archived_matches: int = 0
    live_from: int = 0

    def statement(self, origin: str) -> str:
        size = self.checkpoint_size
        checkpoint = f"the signed checkpoint of size {size} ({self.signed_by})"
        if not self.archives:
            return (
                f"complete for {origin} over entries [{self.complete_from}, {size}): all "
                f"re-hashed, root equals {checkpoint}, {self.matches} entries name this "
                "person and all are listed"
            )
        live = self.live_from
        read = ", ".join(f"{f} [{a}, {b})" for f, a, b in self.archives)
        return (
            f"complete for {origin} over entries {_ranges(self.checked)}: live entries "
            f"[{live}, {size}) all re-hashed, root equals {checkpoint}; archived entries "
            f"read from {read}, each archive verified (signed by the log's key, SHA-256 as "
            "recorded by the log's signed log.archive entries, its entries rebuild its signed "
            f"checkpoint, which a consistency proof shows is a prefix of the one of size "
            f"{size}); {self.matches} entries name this person ({self.archived_matches} of "
            f"them archived) and all are listed, each with an inclusion proof against the "
            f"checkpoint of size {size}"
        )


def _ranges(ranges: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"[{a}, {b})" for a, b in ranges) or "none"


def _merged(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Non-empty ranges, sorted, adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(r for r in ranges if r[0] < r[1]):
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _scan(
    log: AuditLog, size: int, needle: bytes, at: set[int]
) -> tuple[dict[int, bytes], set[int], int, dict[int, dict[str, Any]]]:
    """Rebuild the roots of ``[0, n)`` for each ``n`` in ``at`` (up to ``size``, from the
    first live entry on) and find live entries containing ``needle``.

    The archived prefix enters the root through its stored complete subtrees; the
    ``log.archive`` entries met on the way are returned (they must attest that prefix).
    """
    first_live = min(max((a[2] for a in log.store.archives()), default=0), size)
    attested: dict[int, dict[str, Any]] = {}
    frontier = merkle.Frontier()
    prefix = merkle.subtree_nodes(0, first_live)
    stored = log.hashes(prefix)
    missing = [node for node in prefix if node not in stored]
    if missing:
        raise IntegrityError(f"log {log.origin}: store lacks tree node(s) {missing[:3]}")
    for level, index in prefix:
        frontier.push_complete(stored[(level, index)], level)
    roots = {first_live: frontier.root()} if first_live in at else {}
    found: set[int] = set()
    for rows in log.store.leaves(first_live, size):
        for idx, _kind, data in rows:
            if data is None:
                raise IntegrityError(f"log {log.origin}: entry {idx} is empty but not archived")
            frontier.push(merkle.leaf_hash(data))
            if frontier.size in at:
                roots[frontier.size] = frontier.root()
            if needle in data and _kind_of(log, idx, data) == KIND_PERSONAL_DATA_ACCESS:
                found.add(idx)
            detail = attestation(_kind, data)
            if detail is not None:
                attested[idx] = detail
    if frontier.size != size:
        raise IntegrityError(
            f"log {log.origin} holds {frontier.size} entries, checkpoint says {size}"
        )
    return roots, found, first_live, attested


def _kind_of(log: AuditLog, idx: int, data: bytes) -> object:
    try:
        return decode_entry(data).get("kind")
    except InputError as exc:  # the log wrote it: garbage here is tampering, not bad input
        raise IntegrityError(f"log {log.origin}: entry {idx} is not a valid entry: {exc}") from exc


def person_key_id(key: bytes) -> str:
    """A short public fingerprint of the person key (which key the hashes were made with)."""
    return hashlib.sha256(b"lienthong/person-key-id\n" + key).hexdigest()[:16]


def history_in_log(
    log: AuditLog,
    person_id: str,
    key: bytes,
    public_key: PublicKey | None = None,
    anchors: Sequence[tuple[str, str]] = (),
    archives: Sequence[Path] = (),
) -> dict[str, Any]:
    """Accesses to ``person_id`` in one log, each with its proof, plus the completeness claim.

    ``anchors``: (where it comes from, note) of checkpoints of this log kept outside it;
    ``archives``: archive files of this log, whose accesses are then checked and listed too."""
    try:
        latest = log.latest_checkpoint()
    except InputError as exc:  # the stored note or a co-signature line appended to it
        size = log.store.checkpoints()[-1][0]
        raise IntegrityError(
            f"log {log.origin}: stored checkpoint {size} is malformed: {exc.message}"
        ) from exc
    if latest is None:
        raise IntegrityError(f"log {log.origin} has no signed checkpoint: nothing can be proven")
    cp, note = latest
    missing = log.store.missing_tables()
    if missing:
        raise IntegrityError(f"log {log.origin}: table(s) {', '.join(missing)} are missing")
    key_source = "given"
    if public_key is None:  # self-asserted: proves consistency, not who signed
        pem = log.store.get_meta("public_key")
        if pem is None:
            raise IntegrityError(f"log {log.origin}: no public key to check its checkpoint")
        try:
            public_key, key_source = public_key_from_pem(pem.encode()), "log"
        except InputError as exc:
            raise IntegrityError(f"log {log.origin}: its recorded public key: {exc}") from exc
    verify_note(note, log.key_name, public_key)
    if cp.origin != log.origin:  # the same key may sign several logs
        raise IntegrityError(f"log {log.origin}: its checkpoint is for log {cp.origin!r}")
    held = log.size()
    signed = [(cp, note, "the log's latest stored checkpoint")]
    for where, kept in anchors:  # verify's own check: signature, origin, size, stored root
        anchor = check_note(log, kept, public_key, held, 0, f"log {log.origin}: {where}")
        signed.append((anchor, kept, where))
    top, note, signed_by = max(signed, key=lambda s: s[0].size)  # the stored one on a tie
    digest = person_hash(person_id, key)
    needle = f'"person":"{person_ref(digest)}"'.encode()
    roots, found, first_live, attested = _scan(log, top.size, needle, {s[0].size for s in signed})
    for c, _note, where in signed:  # sizes below the archived prefix are outside the claim
        if c.size in roots and roots[c.size] != c.root:
            raise IntegrityError(
                f"log {log.origin}: recomputed root of entries [0, {c.size}) differs from "
                f"{where}: the log was altered"
            )
    cp = top
    archive_rows = log.store.archives()
    try:  # a pruned prefix counts only if the log's own signed entries attest its archives
        proven_prefix(archive_rows, attested, cp.size)
    except ArchiveUnproven as exc:
        raise IntegrityError(f"log {log.origin}: {exc.message}") from exc
    for row in archive_rows:  # the files the citizen is sent to, where present here
        if check_archive_file(row) is False:
            raise IntegrityError(
                f"log {log.origin}: archive file {row[3]} does not hash to the SHA-256 "
                f"recorded for archive {row[0]}"
            )
    listed = log.store.person_indexes(digest)
    indexed = {i for i in listed if first_live <= i < cp.size}
    if indexed != found:
        raise _index_differs(log, found, indexed, "")
    accesses = [_listed(log, idx, log.entry(idx), cp, None) for idx in sorted(found)]
    read = _read_archives(log, cp, archive_rows, archives, public_key, needle, listed)
    for path, hits in read.values():
        accesses += [_listed(log, idx, data, cp, path) for idx, data in hits]
    checked_archived = [(r[1], r[2]) for r in archive_rows if r[0] in read]
    unchecked = _merged([(r[1], r[2]) for r in archive_rows if r[0] not in read])
    checked = _merged([*checked_archived, (first_live, cp.size)])
    complete_from = checked[-1][0] if checked and checked[-1][1] == cp.size else cp.size
    archived = sum(1 for i in listed if i < first_live)
    archived_matches = sum(len(hits) for _p, hits in read.values())
    done = Completeness(
        cp.size,
        complete_from,
        True,
        len(found) + archived_matches,
        signed_by,
        tuple(checked),
        tuple((str(read[r[0]][0]), r[1], r[2]) for r in archive_rows if r[0] in read),
        archived_matches,
        first_live,
    )
    statement = done.statement(log.origin)
    others = [f"{c.size} ({where})" for c, _n, where in signed if c is not top]
    if others:
        statement += f"; consistent with the other signed checkpoint(s) of size {', '.join(others)}"
    if not anchors:
        statement += NO_ANCHOR
    if held > cp.size:
        statement += (
            f"; entries [{cp.size}, {held}) are after the last signed checkpoint and NOT "
            "covered: accesses recorded there are not shown"
        )
    if key_source == "log":
        statement += (
            "; checkpoint key taken from the log itself: this proves self-consistency only, "
            "pass the node's published key with --log-key NAME=PEM"
        )
    unchecked_count = archived - archived_matches  # the index equals each archive read
    if unchecked:
        last = archive_rows[-1]
        missing = [r[3] for r in archive_rows if r[0] not in read]
        statement += (
            f"; entries {_ranges(unchecked)} are archived (attested by the log's signed "
            f"log.archive entries, last archive SHA-256 {last[4][:16]}…) and NOT re-checked "
            f"here: the person index counts {unchecked_count} accesses there — pass their "
            f"archive file(s) with --archive to check and list them (recorded as "
            f"{', '.join(missing)})"
        )
    return {
        "origin": log.origin,
        "checkpoint": note,
        "accesses": accesses,
        "completeness": {
            "checkpoint_size": cp.size,
            "complete_from": complete_from,
            "proven_range": [complete_from, cp.size],
            "archived_accesses": archived,
            "archives": [
                {
                    "seq": r[0],
                    "first": r[1],
                    "end": r[2],
                    "file": r[3],
                    "sha256": r[4],
                    "checked": r[0] in read,
                    "given": str(read[r[0]][0]) if r[0] in read else None,
                }
                for r in archive_rows
            ],
            "key_source": key_source,
            "signed_by": signed_by,
            "stored_checkpoint_size": signed[0][0].size,
            "anchors": [{"source": where, "size": c.size} for c, _n, where in signed[1:]],
            "statement": statement,
            "live_from": first_live,
            "checked_ranges": [list(r) for r in checked],
            "unchecked_ranges": [list(r) for r in unchecked],
            "archived_accesses_checked": archived_matches,
            "archived_accesses_unchecked": unchecked_count,
        },
    }


def _index_differs(log: AuditLog, found: set[int], indexed: set[int], where: str) -> IntegrityError:
    hidden, extra = sorted(found - indexed), sorted(indexed - found)
    return IntegrityError(
        f"log {log.origin}: person index tampered{where} — entries naming this person but "
        f"missing from the index: {_few(hidden)}; index rows whose entry does not name "
        f"this person: {_few(extra)}"
    )


def _listed(
    log: AuditLog, idx: int, data: bytes, cp: Checkpoint, archive: Path | None
) -> dict[str, Any]:
    """One access with its inclusion proof, checked against the signed root ``cp``."""
    entry = decode_entry(data)
    leaf = merkle.leaf_hash(data)
    hashes = log.prove(idx, cp.size).hashes  # from the stored tree: checked, not trusted
    try:
        merkle.verify_inclusion(idx, cp.size, leaf, hashes, cp.root)
    except merkle.ProofError as exc:
        source = f" (read from archive {archive})" if archive is not None else ""
        raise IntegrityError(
            f"log {log.origin}: entry {idx}{source} is not proven in the signed tree of size "
            f"{cp.size} by the log's stored hashes: {exc.message}"
        ) from exc
    proof = InclusionProof(idx, cp.size, leaf, cp.root, hashes)
    return {
        "log": log.origin,
        "index": idx,
        "at": entry.get("at"),
        "requester": entry.get("requester"),
        "service": entry.get("service"),
        "purpose": entry.get("purpose"),
        "legal_basis": entry.get("legal_basis"),
        "fields": entry.get("fields", []),
        "outcome": entry.get("outcome"),
        "proof": proof.to_json(),
        "archive": None if archive is None else str(archive),
    }


def _read_archives(
    log: AuditLog,
    cp: Checkpoint,
    rows: list[ArchiveRow],
    files: Sequence[Path],
    key: PublicKey,
    needle: bytes,
    listed: Sequence[int],
) -> dict[int, tuple[Path, list[tuple[int, bytes]]]]:
    """Verify the archive files given for ``log`` and read this person's accesses from them.

    Each file must be the archive the log's proven ``archives`` records name (same seq, range
    and SHA-256), verify offline with the log's key (:func:`read_archive`), and its signed
    checkpoint must be a prefix of ``cp`` (consistency proof from the stored tree, checked
    against both signed roots); the accesses found in it must be exactly the person index's
    rows in its range. Returns, by archive seq, the file and the (index, entry) of each access.
    """
    by_seq = {r[0]: r for r in rows}
    out: dict[int, tuple[Path, list[tuple[int, bytes]]]] = {}
    for path in files:
        hits: list[tuple[int, bytes]] = []

        def visit(idx: int, data: bytes, hits: list[tuple[int, bytes]] = hits) -> None:
            if needle in data:  # decoded once verified: a candidate may not be an access
                hits.append((idx, data))

        got = read_archive(path, log.key_name, key, visit)
        row = by_seq.get(got.seq)
        if row is None:
            raise IntegrityError(
                f"archive {path}: log {log.origin} records no archive {got.seq} (its "
                f"archives: {', '.join(str(r[0]) for r in rows) or 'none'}): not an archive "
                "of this log"
            )
        if (got.first, got.end, got.sha256) != (row[1], row[2], row[4]):
            raise IntegrityError(
                f"archive {path} is not archive {got.seq} of log {log.origin}: entries "
                f"[{got.first}, {got.end}), SHA-256 {got.sha256[:16]}…, but the log's signed "
                f"record says [{row[1]}, {row[2]}), SHA-256 {row[4][:16]}…"
            )
        if got.checkpoint.origin != log.origin:
            raise IntegrityError(
                f"archive {path}: its checkpoint is of log {got.checkpoint.origin!r}, not "
                f"{log.origin!r}"
            )
        if got.seq in out:
            raise InputError(
                f"--archive {out[got.seq][0]} and {path} are both archive {got.seq} of log "
                f"{log.origin}"
            )
        try:
            merkle.verify_consistency(
                got.end, cp.size, got.checkpoint.root, cp.root, log.consistency(got.end, cp.size)
            )
        except merkle.ProofError as exc:
            raise IntegrityError(
                f"archive {path}: its signed checkpoint of size {got.end} is not a prefix of "
                f"log {log.origin}'s checkpoint of size {cp.size} by the log's stored hashes "
                f"({exc.message}): the log's tree was altered"
            ) from exc
        hits = [(i, d) for i, d in hits if _kind_of(log, i, d) == KIND_PERSONAL_DATA_ACCESS]
        indexed = {i for i in listed if got.first <= i < got.end}
        if indexed != {i for i, _d in hits}:
            where = f" in archived entries [{got.first}, {got.end}) read from {path}"
            raise _index_differs(log, {i for i, _d in hits}, indexed, where)
        out[got.seq] = (path, hits)
    return out


def _few(items: list[int]) -> str:
    if not items:
        return "none"
    shown = ", ".join(str(i) for i in items[:8])
    return f"[{shown}{', …' if len(items) > 8 else ''}] ({len(items)})"


def access_history(
    logs: list[AuditLog],
    person_id: str,
    key: bytes,
    public_keys: dict[str, PublicKey] | None = None,
    anchors: dict[str, list[tuple[str, str]]] | None = None,
    archives: Sequence[Path] = (),
) -> dict[str, Any]:
    """Merge the histories of several node logs, newest access first.

    ``public_keys`` and ``anchors`` (see :func:`history_in_log`) are keyed by log key name;
    ``archives`` (files of any of the logs) are matched to their log by the origin they name."""
    keys, kept = public_keys or {}, anchors or {}
    names = {lg.key_name for lg in logs}
    for option, given in (("--log-key", keys), ("--checkpoint", kept)):
        unused = sorted(set(given) - names)
        if unused:  # else a log whose key name was changed is checked with the key it carries
            raise IntegrityError(
                f"{option} {unused[0]}: no log given is signed under that name (the logs "
                f"name {', '.join(sorted(names))}): its key name was changed, or the name is "
                "wrong"
            )
    origins = [(path, archive_origin(path)) for path in archives]  # bad input first: exit 2
    files: dict[str, list[Path]] = {lg.origin: [] for lg in logs}
    for path, origin in origins:
        if origin not in files:
            raise IntegrityError(
                f"archive {path} is of log {origin!r}, not of any log given "
                f"({', '.join(sorted(files))})"
            )
        files[origin].append(path)
    per_log = [
        history_in_log(
            lg,
            person_id,
            key,
            keys.get(lg.key_name),
            kept.get(lg.key_name, []),
            files[lg.origin],
        )
        for lg in logs
    ]
    accesses = sorted(
        (a for h in per_log for a in h["accesses"]),
        key=lambda a: (a["at"] or "", a["log"], a["index"]),
        reverse=True,
    )
    return {
        "person": person_ref(person_hash(person_id, key)),
        "person_key_id": person_key_id(key),
        "accesses": accesses,
        "logs": [{k: v for k, v in h.items() if k != "accesses"} for h in per_log],
    }
