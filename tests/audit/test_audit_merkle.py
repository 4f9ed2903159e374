"""RFC 6962 Merkle maths against published vectors and a naive recursive oracle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_reference import consistency, mth, path
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.audit import merkle
from lienthong.audit.merkle import ProofError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962_8leaf.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]


def lookup_for(leaves: list[bytes]):
    def lookup(ids):
        return {(lvl, i): mth(leaves[i << lvl : (i + 1) << lvl]) for lvl, i in ids}

    return lookup


def test_roots_match_published_vectors() -> None:
    frontier = merkle.Frontier()
    for k, leaf in enumerate(LEAVES):
        frontier.push(merkle.leaf_hash(leaf))
        assert frontier.root() == ROOTS[k]
        assert merkle.root_from_subtrees(k + 1, lookup_for(LEAVES)) == ROOTS[k]
    assert merkle.EMPTY_ROOT.hex() == VECTORS["empty_root"]


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['leaf']}/{c['size']}")
def test_inclusion_vectors(case: dict) -> None:
    index, size = case["leaf"] - 1, case["size"]
    expected = [bytes.fromhex(h) for h in case["proof"]]
    got = merkle.resolve_ranges(merkle.inclusion_ranges(index, size), lookup_for(LEAVES[:size]))
    assert got == expected
    leaf = merkle.leaf_hash(LEAVES[index])
    merkle.verify_inclusion(index, size, leaf, expected, ROOTS[size - 1])
    for bad in (expected[:-1], [*expected, ROOTS[0]], [ROOTS[0], *expected]):
        if bad != expected:
            with pytest.raises(ProofError):
                merkle.verify_inclusion(index, size, leaf, bad, ROOTS[size - 1])
    for i, h in enumerate(expected):
        flipped = [*expected]
        flipped[i] = bytes([h[0] ^ 8]) + h[1:]
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, leaf, flipped, ROOTS[size - 1])


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['size1']}-{c['size2']}")
def test_consistency_vectors(case: dict) -> None:
    m, n = case["size1"], case["size2"]
    expected = [bytes.fromhex(h) for h in case["proof"]]
    got = merkle.resolve_ranges(merkle.consistency_ranges(m, n), lookup_for(LEAVES[:n]))
    assert got == expected
    merkle.verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], expected)
    if expected:
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, ROOTS[n - 1], ROOTS[m - 1], expected)
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, ROOTS[m - 1], ROOTS[n - 1], expected[:-1])


def test_rejects_bad_sizes_and_hash_lengths() -> None:
    with pytest.raises(ProofError):
        merkle.verify_inclusion(1, 1, ROOTS[0], [], ROOTS[0])
    with pytest.raises(ProofError):
        merkle.verify_inclusion(0, 1, b"short", [], ROOTS[0])
    with pytest.raises(ProofError):
        merkle.verify_consistency(2, 1, ROOTS[1], ROOTS[0], [])
    with pytest.raises(ProofError):
        merkle.verify_consistency(1, 1, ROOTS[0], ROOTS[1], [])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70))
def test_every_index_and_size_pair_proves(leaves: list[bytes]) -> None:
    lookup = lookup_for(leaves)
    roots = [mth(leaves[:k]) for k in range(len(leaves) + 1)]
    for size in range(1, len(leaves) + 1):
        for index in range(size):
            proof = merkle.resolve_ranges(merkle.inclusion_ranges(index, size), lookup)
            assert proof == path(index, leaves[:size])
            merkle.verify_inclusion(
                index, size, merkle.leaf_hash(leaves[index]), proof, roots[size]
            )
        for old in range(size + 1):
            cproof = merkle.resolve_ranges(merkle.consistency_ranges(old, size), lookup)
            assert cproof == consistency(old, leaves[:size])
            merkle.verify_consistency(old, size, roots[old], roots[size], cproof)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 300), st.integers(1, 300))
def test_incremental_nodes_equal_full_tree(start: int, count: int) -> None:
    leaves = [i.to_bytes(2, "big") for i in range(start + count)]
    lookup = lookup_for(leaves)
    hashes = merkle.leaf_hashes(leaves[start:])
    siblings = lookup(merkle.siblings_needed(start, count))
    got = [
        (lvl, first + k, h)
        for lvl, first, run in merkle.completed_runs(start, hashes, siblings)
        for k, h in enumerate(run)
    ]
    expected = {
        (lvl, i)
        for lvl in range(1, 10)
        for i in range((start + count) >> lvl)
        if ((i + 1) << lvl) > start
    }
    assert {(lvl, i) for lvl, i, _h in got} == expected
    for lvl, i, h in got:
        assert h == mth(leaves[i << lvl : (i + 1) << lvl])
