"""Hash tiles: how tree hashes are laid out in storage (pure).

Every hash of the tree — leaf hashes (level 0) and every complete subtree (level ≥ 1) — is
stored, 256 consecutive hashes of one level per row ("tile", as in Tessera/tlog-tiles):
tile ``(level, t)`` holds the hashes of nodes ``t·256 … t·256+255`` of that level,
concatenated (32 bytes each). Only the right-most tile of a level is partial; an append
rewrites at most one partial tile per level. A proof then reads ~log₂ n hashes from ~log₂ n
tiles, and the store writes ~n/128 hash rows instead of 2n.
"""

from __future__ import annotations

from collections.abc import Callable

from lienthong.audit.merkle import HASH_SIZE, NodeId, completed_runs, siblings_needed
from lienthong.errors import IntegrityError

TILE_WIDTH = 256
TILE_BYTES = TILE_WIDTH * HASH_SIZE
LEVEL_SHIFT = 48

TileId = tuple[int, int]  # (level, tile index)


def tile_key(level: int, tile: int) -> int:
    """Integer primary key of a tile row."""
    return (level << LEVEL_SHIFT) | tile


def tile_of_key(key: int) -> TileId:
    return key >> LEVEL_SHIFT, key & ((1 << LEVEL_SHIFT) - 1)


def hashes_from_tiles(
    ids: list[NodeId], fetch: Callable[[list[int]], dict[int, bytes]]
) -> dict[NodeId, bytes]:
    """Resolve node ids with one ``fetch`` of the tiles holding them."""
    keys = sorted({tile_key(lvl, i // TILE_WIDTH) for lvl, i in ids})
    tiles = fetch(keys) if keys else {}
    out: dict[NodeId, bytes] = {}
    for lvl, i in ids:
        blob = tiles.get(tile_key(lvl, i // TILE_WIDTH))
        off = (i % TILE_WIDTH) * HASH_SIZE
        if blob is not None and len(blob) >= off + HASH_SIZE:
            out[(lvl, i)] = blob[off : off + HASH_SIZE]
    return out


def partial_tiles(start: int, count: int) -> list[int]:
    """Keys of the partial right-edge tiles an append at ``start`` extends."""
    keys = []
    level = 0
    while level == 0 or ((start + count) >> level) > (start >> level):
        s = start >> level
        if s % TILE_WIDTH:
            keys.append(tile_key(level, s // TILE_WIDTH))
        level += 1
    return keys


def append_tiles(
    start: int, leaf_hashes: list[bytes], partial: dict[int, bytes]
) -> list[tuple[int, bytes]]:
    """Tile rows (new or rewritten) after appending ``leaf_hashes`` at ``start``.

    ``partial`` maps :func:`partial_tiles` keys to their stored blobs.
    """
    siblings = hashes_from_tiles(
        siblings_needed(start, len(leaf_hashes)),
        lambda keys: {k: partial[k] for k in keys if k in partial},
    )
    runs = [(0, start, leaf_hashes), *completed_runs(start, leaf_hashes, siblings)]
    rows: list[tuple[int, bytes]] = []
    for level, first, hashes in runs:
        tile, off = divmod(first, TILE_WIDTH)
        head = b""
        if off:
            head = partial.get(tile_key(level, tile), b"")
            if len(head) < off * HASH_SIZE:
                raise IntegrityError(
                    f"hash tile ({level}, {tile}) is shorter than the tree: store is damaged"
                )
            head = head[: off * HASH_SIZE]
        buf = head + b"".join(hashes)
        rows.extend(
            (tile_key(level, tile + j), buf[p : p + TILE_BYTES])
            for j, p in enumerate(range(0, len(buf), TILE_BYTES))
        )
    return rows
