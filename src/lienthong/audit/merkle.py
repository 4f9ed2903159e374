"""RFC 6962 / RFC 9162 Merkle-tree maths: hashing, proof shapes and proof verification.

Pure functions only (stdlib ``hashlib``). Storage-independent: proof *generation* is expressed
as the list of tree ranges ``[start, end)`` whose hashes make the proof, and each range as the
complete subtrees ``(level, index)`` that a store can look up directly — so a proof costs
O(log n) point reads whatever the backend. See ``docs/audit.md`` for the algorithm in prose.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from lienthong.errors import IntegrityError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256

Range = tuple[int, int]
NodeId = tuple[int, int]  # (level, index): the complete subtree of leaves [index·2^level, …)


class ProofError(IntegrityError):
    """A Merkle proof does not verify (wrong hashes, sizes or root)."""

    code = "bad_proof"


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 ‖ data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right)."""
    return _sha256(b"\x01" + left + right).digest()


def leaf_hashes(items: Iterable[bytes]) -> list[bytes]:
    """Leaf hashes of many entries (a tight loop: this is the append hot path)."""
    return [_sha256(b"\x00" + d).digest() for d in items]


def parent_level(hashes: Sequence[bytes]) -> list[bytes]:
    """Hashes of the complete pairs ``(h[0],h[1]), (h[2],h[3]), …`` (odd tail ignored)."""
    return [
        _sha256(b"\x01" + a + b).digest() for a, b in zip(hashes[0::2], hashes[1::2], strict=False)
    ]


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash of a left-aligned range from its complete subtrees, largest first."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = _sha256(b"\x01" + h + acc).digest()
    return acc


def subtree_nodes(start: int, end: int) -> list[NodeId]:
    """Decompose ``[start, end)`` into aligned complete subtrees, largest first."""
    out: list[NodeId] = []
    while start < end:
        size = 1 << ((end - start).bit_length() - 1)
        while start % size:
            size >>= 1
        level = size.bit_length() - 1
        out.append((level, start >> level))
        start += size
    return out


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """Ranges whose hashes form the RFC 9162 §2.1.3.1 inclusion proof, in audit-path order."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    out: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    out.reverse()
    return out


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """Ranges whose hashes form the RFC 9162 §2.1.4.1 consistency proof, in proof order."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    out: list[Range] = []
    start, end, m, complete = 0, new_size, old_size, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                out.append((start, end))
            break
        k = _split(n)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
            m -= k
            complete = False
    out.reverse()
    return out


def resolve_ranges(
    ranges: Sequence[Range], lookup: Callable[[list[NodeId]], dict[NodeId, bytes]]
) -> list[bytes]:
    """Hash every range with ONE batched ``lookup`` of the complete subtrees it needs."""
    parts = [subtree_nodes(s, e) for s, e in ranges]
    wanted = sorted({n for p in parts for n in p})
    found = lookup(wanted) if wanted else {}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise IntegrityError(f"log store lacks tree node(s) {missing[:3]}: store is damaged")
    return [fold_right([found[n] for n in p]) for p in parts]


def root_from_subtrees(size: int, lookup: Callable[[list[NodeId]], dict[NodeId, bytes]]) -> bytes:
    """Root hash of the tree of ``size`` leaves from stored complete subtrees."""
    if size == 0:
        return EMPTY_ROOT
    return resolve_ranges([(0, size)], lookup)[0]


def _check_hash(h: bytes, what: str) -> None:
    if len(h) != HASH_SIZE:
        raise ProofError(f"{what} is {len(h)} bytes, expected {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root implied by an inclusion proof (raises if malformed)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash(p, "proof hash")
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows leaf ``index`` in the tree ``root``."""
    _check_hash(root, "root hash")
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(
            f"inclusion proof for leaf {index} does not lead to the root of tree size {size}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: raise :class:`ProofError` unless tree ``old`` is a prefix of ``new``."""
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    if not 0 <= old_size <= new_size:
        raise ProofError(f"tree size went backwards: {old_size} -> {new_size}")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ProofError(f"two different roots for the same tree size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    for p in proof:
        _check_hash(p, "proof hash")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # old tree is a complete subtree: its root starts the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root or sr != new_root:
        raise ProofError(
            f"tree of size {new_size} is not an extension of the tree of size "
            f"{old_size}: the histories differ (fork)"
        )


class Frontier:
    """Streaming root computation (a compact range from 0): push leaf hashes, ask roots."""

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self._stack: list[bytes] = []  # complete subtree roots, largest first
        self.size = 0

    def push(self, h: bytes) -> None:
        """Append one leaf hash."""
        stack = self._stack
        n = self.size
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self.size += 1

    def push_complete(self, h: bytes, level: int) -> None:
        """Append a complete subtree of 2^level leaves (size must be aligned to it)."""
        if self.size % (1 << level):
            raise ValueError("subtree is not aligned with the frontier")
        stack = self._stack
        n = self.size >> level
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self.size += 1 << level

    def root(self) -> bytes:
        """Root hash of the leaves pushed so far."""
        return fold_right(self._stack) if self._stack else EMPTY_ROOT


def siblings_needed(start: int, count: int) -> list[NodeId]:
    """Stored left siblings needed to hash the subtrees completed by appending ``count``."""
    out: list[NodeId] = []
    end = start + count
    level = 0
    while (end >> level) > (start >> level):
        s = start >> level
        if s & 1:
            out.append((level, s - 1))
        level += 1
    return out


def completed_runs(
    start: int, hashes: list[bytes], siblings: dict[NodeId, bytes]
) -> list[tuple[int, int, list[bytes]]]:
    """The complete subtrees that appending ``hashes`` at ``start`` completes, per level:
    ``(level ≥ 1, first index, hashes)``; ``siblings`` holds :func:`siblings_needed`."""
    out: list[tuple[int, int, list[bytes]]] = []
    level, first, cur = 0, start, hashes
    while cur:
        if first & 1:
            cur = [siblings[(level, first - 1)], *cur]
            first -= 1
        parents = parent_level(cur)
        if not parents:
            break
        level += 1
        first >>= 1
        out.append((level, first, parents))
        cur = parents
    return out
