"""Archiving and retention (lưu trữ): signed, chained, compressed segments of the log.

An archive ``<origin-slug>-<seq>.ltar.xz`` is xz-compressed UTF-8 text:

- line 1, a JSON header: ``format``, ``origin``, ``seq``, ``first``, ``end`` (entries
  ``[first, end)``), ``prev_sha256`` (hex SHA-256 of the previous archive file, or null — the
  hash chain, like X-Road's ``linkinginfo``), ``left`` (the hashes of the complete subtrees of
  ``[0, first)``, largest first, hex) and ``checkpoint`` (a signed note of size ``end``);
- then one canonical entry per line.

Beside it, ``….ltar.xz.sig`` is a signed note (same key and format as checkpoints) whose text
is ``lienthong-audit-archive/1``, origin, seq, first, end, base64 SHA-256 of the archive file,
base64 ``prev_sha256`` (or ``-``).

Offline verification: signature of the ``.sig`` note; file hash; ``left`` + the re-hashed
entries rebuild exactly the root of the checkpoint, whose signature is checked; consecutive
archives chain by ``prev_sha256`` and by ``end``/``first``. Pruning then drops the entry bytes
from the live store but keeps every leaf and subtree hash, so proofs for newer entries and
whole-log verification keep working.
"""

from __future__ import annotations

import base64
import hashlib
import json
import lzma
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from lienthong.audit import merkle
from lienthong.audit.checkpoint import Checkpoint, sign_text, verify_note, verify_text
from lienthong.audit.entries import admin_entry
from lienthong.audit.log import AuditLog
from lienthong.errors import InputError, IntegrityError
from lienthong.trust.keys import PublicKey

FORMAT = "lienthong-audit-archive/1"
ARCHIVE_ACTION = "log.archive"
_ATTEST_MARK = b'"action":"log.archive"'


def _slug(origin: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in origin)


def _sig_text(origin: str, seq: int, first: int, end: int, digest: bytes, prev: str | None) -> str:
    prev_b64 = base64.b64encode(bytes.fromhex(prev)).decode() if prev else "-"
    return (
        f"{FORMAT}\n{origin}\n{seq}\n{first}\n{end}\n"
        f"{base64.b64encode(digest).decode()}\n{prev_b64}\n"
    )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def archive_segment(
    log: AuditLog, out_dir: Path, end: int, *, now: datetime, prune: bool = True
) -> Path:
    """Export entries ``[first, end)`` after the last archive; prune them if ``prune``."""
    if log.signer is None:
        raise InputError("archiving needs the log's signing key")
    done = log.store.archives()
    seq, first = (done[-1][0] + 1, done[-1][2]) if done else (1, 0)
    prev = done[-1][4] if done else None
    size = log.size()
    if end > size:
        raise InputError(f"--upto {end} is beyond the log's {size} entries")
    if end <= first:
        raise InputError(
            f"nothing to archive before {end}: entries [0, {first}) are archived already "
            f"(the next segment starts at {first})"
        )
    note = log.checkpoint(now=now, size=end)
    left = merkle.resolve_ranges(_left_ranges(first), log.hashes)
    header = {
        "format": FORMAT,
        "origin": log.origin,
        "seq": seq,
        "first": first,
        "end": end,
        "prev_sha256": prev,
        "left": [h.hex() for h in left],
        "checkpoint": note,
    }
    lines = [json.dumps(header, sort_keys=True).encode()]
    for rows in log.store.leaves(first, end):
        for idx, _k, data in rows:
            if data is None:
                raise IntegrityError(f"entry {idx} was pruned but never archived")
            lines.append(data)
    blob = lzma.compress(b"\n".join(lines) + b"\n", preset=6)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{_slug(log.origin)}-{seq:06d}.ltar.xz"
    digest = hashlib.sha256(blob).digest()
    text = _sig_text(log.origin, seq, first, end, digest, prev)
    sig_note = text + "\n" + sign_text(text, log.key_name, log.signer)
    _write_atomic(path, blob)
    _write_atomic(path.with_name(path.name + ".sig"), sig_note.encode())
    # the archive is recorded *in the log* and covered by a signed checkpoint before anything
    # is pruned: verify and access-history accept a pruned prefix only if it is so attested
    log.append_one(
        admin_entry(
            at=now,
            actor="audit",
            action=ARCHIVE_ACTION,
            target=path.name,
            detail={
                "seq": seq,
                "first": first,
                "end": end,
                "sha256": digest.hex(),
                "prev_sha256": prev,
                # every archive so far, this one included: the latest live record attests them all
                "archives": [[a[0], a[1], a[2], a[4]] for a in done]
                + [[seq, first, end, digest.hex()]],
            },
        )
    )
    log.checkpoint(now=now)
    log.store.add_archive(seq, first, end, str(path), digest.hex())
    if prune:
        log.store.prune(first, end)
    return path


def _left_ranges(first: int) -> list[tuple[int, int]]:
    """The complete subtrees of ``[0, first)`` as ranges (largest first)."""
    return [(i << lvl, (i + 1) << lvl) for lvl, i in merkle.subtree_nodes(0, first)]


XZ_MAGIC = b"\xfd7zXZ\x00"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class VerifiedArchive:
    """An archive file that :func:`read_archive` verified."""

    path: Path
    origin: str
    seq: int
    first: int
    end: int
    sha256: str  # of the file, hex
    prev_sha256: str | None
    checkpoint: Checkpoint  # signed by the log's key, of size ``end``

    def to_dict(self) -> dict[str, Any]:
        return {
            "archive": self.path.name,
            "seq": self.seq,
            "first": self.first,
            "end": self.end,
            "verified": True,
        }


def _open_archive(path: Path) -> tuple[bytes, BinaryIO]:
    """Its ``.sig`` bytes and the open file; bad input if either cannot be read or the file is
    not an xz stream at all (not an archive; a damaged xz stream is an integrity failure)."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read archive {path}: {exc}") from exc
    try:
        sig = path.with_name(path.name + ".sig").read_bytes()
        magic = fh.read(len(XZ_MAGIC))
        fh.seek(0)
    except OSError as exc:
        fh.close()
        raise InputError(f"cannot read archive {path}: {exc}") from exc
    if magic != XZ_MAGIC:
        fh.close()
        raise InputError(f"{path} is not a {FORMAT} archive: not an xz file")
    return sig, fh


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A stream that cannot be decompressed or decoded is damaged; a read error is bad input."""
    try:
        yield
    except (lzma.LZMAError, ValueError) as exc:  # xz checks a CRC: altered, or ends early
        raise IntegrityError(f"archive {path} is damaged: {exc}") from exc
    except OSError as exc:
        raise InputError(f"cannot read archive {path}: {exc}") from exc


def _xz_lines(fh: BinaryIO, update: Callable[[bytes], object]) -> Iterator[bytes]:
    """The lines (without ``\\n``) of the xz stream in ``fh``, decompressed as they are read,
    every byte of the file passed to ``update``; :class:`lzma.LZMAError` if the stream is
    damaged or ends early. Bytes after the end of the stream are hashed only (the signed file
    hash covers them)."""
    dec = lzma.LZMADecompressor(lzma.FORMAT_XZ)
    tail = b""
    while not dec.eof:
        chunk = b""
        if dec.needs_input:
            chunk = fh.read(_CHUNK)
            if not chunk:
                raise lzma.LZMAError("the xz stream ends early")
            update(chunk)
        lines = (tail + dec.decompress(chunk, max_length=_CHUNK)).split(b"\n")
        tail = lines.pop()
        yield from lines
    if tail:
        yield tail
    for chunk in iter(lambda: fh.read(_CHUNK), b""):
        update(chunk)


def _header(line: bytes, path: Path) -> tuple[dict[str, Any], list[bytes], str | None]:
    """The archive header of ``line``, its ``left`` hashes and ``prev_sha256``."""
    header = json.loads(line)
    fields = {"origin": str, "seq": int, "first": int, "end": int, "left": list, "checkpoint": str}
    bad = [
        k
        for k, t in fields.items()
        if not isinstance(header, dict) or not isinstance(header.get(k), t)
    ]
    if bad or header.get("format") != FORMAT:
        raise IntegrityError(
            f"archive {path.name}: not a {FORMAT} header "
            f"(bad or missing: {', '.join(bad) or 'format'})"
        )
    prev = header.get("prev_sha256")
    try:
        left = [bytes.fromhex(x) for x in header["left"]]
        if prev is not None and len(bytes.fromhex(prev)) != 32:
            raise ValueError("prev_sha256 is not a SHA-256")
    except (TypeError, ValueError) as exc:
        raise IntegrityError(f"archive {path.name}: malformed header hashes: {exc}") from exc
    return header, left, prev


def archive_origin(path: Path) -> str:
    """The log an archive file says it is of (read from its header, not yet verified)."""
    sig, fh = _open_archive(path)
    with fh, _reading(path):
        sig.decode()
        header, _left, _prev = _header(next(_xz_lines(fh, len), b""), path)
    return str(header["origin"])


def read_archive(
    path: Path,
    key_name: str,
    key: PublicKey,
    visit: Callable[[int, bytes], object] | None = None,
) -> VerifiedArchive:
    """Verify one archive file offline, reading it once, as a stream.

    ``visit(index, entry bytes)`` is called for each entry as it is read — before the file's
    signature can be checked (its hash is known at its end): what it gathers counts only if
    this returns."""
    sig_bytes, fh = _open_archive(path)
    digest = hashlib.sha256()
    frontier, count = merkle.Frontier(), 0
    with fh, _reading(path):
        sig_note = sig_bytes.decode()
        lines = _xz_lines(fh, digest.update)
        try:
            header, left, prev = _header(next(lines, b""), path)
        except IntegrityError:
            for _line in lines:  # the whole stream first: a damaged one is named as such
                pass
            raise
        first = header["first"]
        nodes = merkle.subtree_nodes(0, first)
        fits = len(left) == len(nodes) and first >= 0
        if fits:
            for h, (level, _i) in zip(left, nodes, strict=True):
                frontier.push_complete(h, level)
        for data in lines:
            if not data:
                continue
            frontier.push(merkle.leaf_hash(data))
            if visit is not None:
                visit(first + count, data)
            count += 1
    text = sig_note.partition("\n\n")[0] + "\n"
    expect = _sig_text(header["origin"], header["seq"], first, header["end"], digest.digest(), prev)
    if text != expect:
        raise IntegrityError(f"archive {path.name} does not match its signed description")
    verify_text(sig_note, key_name, key)
    cp = verify_note(header["checkpoint"], key_name, key)
    if cp.size != header["end"] or count != header["end"] - first:
        raise IntegrityError(
            f"archive {path.name} holds {count} entries, header says [{first}, {header['end']})"
        )
    if not fits:
        raise IntegrityError(f"archive {path.name}: its left hashes do not fit its first entry")
    if frontier.root() != cp.root:
        raise IntegrityError(f"archive {path.name}: entries do not rebuild the signed root")
    return VerifiedArchive(
        path, header["origin"], header["seq"], first, header["end"], digest.hexdigest(), prev, cp
    )


def verify_archive(path: Path, key_name: str, key: PublicKey) -> dict[str, Any]:
    """Verify one archive file offline (see :func:`read_archive`)."""
    return read_archive(path, key_name, key).to_dict()


def verify_archives(paths: list[Path], key_name: str, key: PublicKey) -> list[dict[str, Any]]:
    """Verify a chain of archives in order (each linked to the one before)."""
    out: list[dict[str, Any]] = []
    before: VerifiedArchive | None = None
    for p in sorted(paths):
        done = read_archive(p, key_name, key)
        if before is not None and (done.prev_sha256 != before.sha256 or done.first != before.end):
            raise IntegrityError(f"archive {p.name} does not link to {before.path.name}")
        out.append(done.to_dict())
        before = done
    return out


ArchiveRow = tuple[int, int, int, str, str]  # seq, first, end, path, sha256 (hex)


class ArchiveUnproven(IntegrityError):
    """The archives table claims a pruned prefix that the log itself does not attest."""

    code = "log_inconsistent"


def attestation(kind: str, data: bytes | None) -> dict[str, Any] | None:
    """The detail of a ``log.archive`` admin entry (the log's own record of an archive)."""
    if data is None or kind != "admin" or _ATTEST_MARK not in data:
        return None
    try:
        entry = json.loads(data)
    except ValueError:
        return None
    detail = entry.get("detail") if isinstance(entry, dict) else None
    if entry.get("action") != ARCHIVE_ACTION or not isinstance(detail, dict):
        return None
    return detail


def proven_prefix(
    rows: list[ArchiveRow], attested: dict[int, dict[str, Any]], signed_size: int
) -> int:
    """End of the archived prefix that is *proven*, or raise :class:`ArchiveUnproven`.

    ``attested`` maps entry index → detail of every live ``log.archive`` entry; only those
    below ``signed_size`` (covered by a verified signed checkpoint) count. The archives table
    must be a chain ``seq`` 1, 2, … over ``[0, e1), [e1, e2), …``; its last record must be
    attested by a signed entry (seq, range, archive SHA-256, previous archive SHA-256), and
    every record whose entry is still live must match it; the last record's entry also lists
    every archive so far (``archives``: ``[seq, first, end, sha256]``), which must equal the
    table (entries written before that list: the SHA-256 of an earlier record whose entry was
    itself archived is proven by the ``prev_sha256`` of the next one).
    """
    if not rows:
        return 0
    signed = [d for i, d in sorted(attested.items()) if i < signed_size]
    expect_first, prev_sha = 0, None
    for k, (seq, first, end, _path, sha) in enumerate(rows):
        if seq != k + 1 or first != expect_first or not first < end:
            raise ArchiveUnproven(
                f"archive record {seq} claims entries [{first}, {end}) but the archive chain "
                f"continues at {expect_first}: entries deleted under a forged archive record",
                kind="deleted",
                index=min(first, expect_first),
            )
        mine = [d for d in signed if _matches_range(d, seq, first, end)]
        if mine and not any(_matches(d, sha, prev_sha) for d in mine):
            raise ArchiveUnproven(
                f"archive record {seq} [{first}, {end}) differs from the log's own signed "
                "log.archive entry (SHA-256 or chain)",
                kind="deleted",
                index=first,
            )
        if not mine and k == len(rows) - 1:
            shorter = [
                d["end"]
                for d in signed
                if _matches_range(d, seq, first, None) and isinstance(d.get("end"), int)
            ]
            proven = max((e for e in shorter if first < e < end), default=first)
            raise ArchiveUnproven(
                f"archive record {seq} claims entries [{first}, {end}) were archived, but no "
                "log.archive entry covered by a signed checkpoint attests it: entries "
                f"[{proven}, {end}) deleted",
                kind="deleted",
                index=proven,
            )
        nxt = [d for d in signed if _matches_range(d, seq + 1, end, None)]
        if any(d.get("prev_sha256") not in (None, sha) for d in nxt):
            raise ArchiveUnproven(
                f"archive record {seq}: its SHA-256 is not the one the next archive links to",
                kind="deleted",
                index=first,
            )
        expect_first, prev_sha = end, sha
    last = rows[-1]
    listing = [[r[0], r[1], r[2], r[4]] for r in rows]
    for d in signed:
        attested_list = d.get("archives") if _matches_range(d, *last[:3]) else None
        if attested_list is not None and attested_list != listing:
            raise ArchiveUnproven(
                "the archives table differs from the list of archives in the log's own "
                "signed log.archive entry (an earlier record was changed)",
                kind="deleted",
                index=0,
            )
    return expect_first


def _matches_range(d: dict[str, Any], seq: int, first: int, end: int | None) -> bool:
    if d.get("first") != first or (end is not None and d.get("end") != end):
        return False
    return d.get("seq") in (None, seq)  # entries written before 'seq' was recorded: by range


def _matches(d: dict[str, Any], sha: str, prev_sha: str | None) -> bool:
    return d.get("sha256") == sha and ("prev_sha256" not in d or d["prev_sha256"] == prev_sha)


def check_archive_file(row: ArchiveRow) -> bool | None:
    """True if the archive file is present and hashes to the record, None if absent."""
    path = Path(row[3])
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    return hashlib.sha256(blob).hexdigest() == row[4]
