"""Batch bodies: zstd by default, zlib batches of earlier versions still read, bombs refused."""

from __future__ import annotations

import hashlib
import struct
import zlib

import msgspec
import pytest
import zstandard
from synctools import SOURCE_ID, Keys, new_keys

from lienthong.classification import Level
from lienthong.errors import IntegrityError
from lienthong.sync import envelope as env
from lienthong.sync.envelope import (
    MAGIC,
    SIG_CONTEXT,
    build_batch,
    canonical,
    decompress,
    open_batch,
    parse_header,
)
from lienthong.sync.mapping import Mapped

ROWS = Mapped(
    upserts=[(f"{i:012d}", f"{i:012d}", b'{"full_name":"NGUY\xe1\xbb\x84N V\xc4\x82N AN"}')
             for i in range(1, 301)],
    deletes=[("000000000999", "000000000999")],
    quarantine=[("000000000500", "000000000500", b'{"ngay_sinh":"1990-13-45"}', ["bad date"])],
)  # fmt: skip


def _batch(level: Level = Level.PERSONAL) -> tuple[bytes, Keys]:
    keys = new_keys()
    envelope = build_batch(
        source=SOURCE_ID, seq=1, table="citizens", entity="citizen", level=level,
        position={"key": "000000000999"}, mapped=ROWS, created_at="2026-12-07T04:00:00+00:00",
        signer=keys.agency, recipient=keys.recipient.public(),
    )  # fmt: skip
    return envelope, keys


def _legacy(keys: Keys, plain: bytes, compression: str, body: bytes) -> bytes:
    """An unencrypted batch written as the documented format says (docs/sync.md), with
    the given compression name and compressed body."""
    header = {
        "v": 1, "source": SOURCE_ID, "seq": 1, "table": "citizens", "entity": "citizen",
        "classification": "PUBLIC", "position": {"key": "x"},
        "created_at": "2026-12-07T04:00:00+00:00",
        "counts": {"upserts": 300, "deletes": 1, "quarantined": 1, "read": 302},
        "alg": keys.agency.algorithm.value,
        "body": {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body),
                 "compression": compression, "encryption": None},
    }  # fmt: skip
    head = canonical(header)
    sig = keys.agency.sign(SIG_CONTEXT + head)
    return b"".join([MAGIC, struct.pack(">I", len(head)), head, struct.pack(">H", len(sig)),
                     sig, body])  # fmt: skip


def _plain() -> bytes:
    return msgspec.msgpack.encode(
        {"u": ROWS.upserts, "d": ROWS.deletes, "q": ROWS.quarantine, "r": []}
    )


def test_new_batches_are_zstd_and_open_to_the_same_rows() -> None:
    envelope, keys = _batch()
    header = parse_header(envelope)[0]
    assert header["body"]["compression"] == "zstd"
    batch = open_batch(envelope, {SOURCE_ID: keys.agency.public_key()}, keys.recipient)
    assert batch.upserts == ROWS.upserts
    assert batch.deletes == ROWS.deletes
    assert batch.quarantine == ROWS.quarantine


def test_zlib_batches_of_earlier_versions_are_still_read() -> None:
    _, keys = _batch()
    plain = _plain()
    legacy = _legacy(keys, plain, "zlib", zlib.compress(plain, 1))
    batch = open_batch(legacy, {SOURCE_ID: keys.agency.public_key()}, None)
    assert batch.upserts == ROWS.upserts and batch.quarantine == ROWS.quarantine


@pytest.mark.parametrize("method", ["lz4", "none", ""])
def test_unknown_compression_is_refused_by_name(method: str) -> None:
    _, keys = _batch()
    plain = _plain()
    envelope = _legacy(keys, plain, method, plain)
    with pytest.raises(IntegrityError, match=f"compression '{method}' is not supported"):
        open_batch(envelope, {SOURCE_ID: keys.agency.public_key()}, None)


@pytest.mark.parametrize("method", ["zstd", "zlib"])
def test_damaged_body_is_a_clear_error(method: str) -> None:
    good = (
        zstandard.ZstdCompressor().compress(_plain())
        if method == "zstd"
        else zlib.compress(_plain())
    )
    with pytest.raises(IntegrityError, match="cannot be decoded"):
        decompress(method, good[: len(good) // 2])
    with pytest.raises(IntegrityError, match="cannot be decoded"):
        decompress(method, b"\x00garbage" + good)


@pytest.mark.parametrize("method", ["zstd", "zstd-unsized", "zlib"])
def test_decompression_bombs_are_refused(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    monkeypatch.setattr(env, "MAX_PLAIN_BYTES", 1 << 20)
    plain = b"\x00" * (4 << 20)  # 4 MiB of zeros: a few kB compressed
    if method == "zlib":
        body = zlib.compress(plain)
    else:
        body = zstandard.ZstdCompressor(write_content_size=method == "zstd").compress(plain)
    assert len(body) < 64 << 10
    with pytest.raises(IntegrityError, match="decompresses beyond 1048576 bytes"):
        decompress(method.removesuffix("-unsized"), body)
    # at the limit it opens
    small = plain[: 1 << 20]
    z = zlib.compress(small) if method == "zlib" else zstandard.ZstdCompressor().compress(small)
    assert decompress("zlib" if method == "zlib" else "zstd", z) == small
