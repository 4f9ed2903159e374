"""End-to-end encryption: hybrid KEM round trip, streaming records, tamper and truncation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.errors import IntegrityError
from lienthong.exchange import e2e

KEYS = e2e.RecipientKeys.generate()
SUITE = e2e.suite_named("X25519-MLKEM768-AES256GCM")


def _pair() -> tuple[e2e.StreamSealer, e2e.StreamOpener]:
    secret, params = SUITE.encapsulate(KEYS.public(), b"msg-1")
    assert SUITE.decapsulate(KEYS, params, b"msg-1") == secret
    return SUITE.sealer(secret, "req"), SUITE.opener(secret, "req")


def test_context_binds_the_secret() -> None:
    secret, params = SUITE.encapsulate(KEYS.public(), b"msg-1")
    assert SUITE.decapsulate(KEYS, params, b"msg-2") != secret


def test_other_recipient_cannot_decrypt() -> None:
    secret, params = SUITE.encapsulate(KEYS.public(), b"m")
    other = e2e.RecipientKeys.generate()
    assert SUITE.decapsulate(other, params, b"m") != secret


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=3 * e2e.CHUNK + 7))
def test_round_trip_bytes(data: bytes) -> None:
    sealer, opener = _pair()
    assert e2e.open_bytes(opener, e2e.seal_bytes(sealer, data)) == data


def test_streaming_round_trip_with_odd_pieces() -> None:
    data = bytes(range(256)) * 1000

    async def source() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 7777):
            yield data[i : i + 7777]

    async def run() -> bytes:
        sealer, opener = _pair()
        sealed = [c async for c in e2e.seal_stream(source(), sealer)]
        wire = b"".join(sealed)

        async def pieces() -> AsyncIterator[bytes]:
            for i in range(0, len(wire), 1000):
                yield wire[i : i + 1000]

        return b"".join([c async for c in e2e.open_stream(pieces(), opener)])

    assert asyncio.run(run()) == data


def test_truncation_is_detected() -> None:
    sealer, opener = _pair()
    wire = e2e.seal_bytes(sealer, b"x" * (2 * e2e.CHUNK + 5))
    first_record = 4 + e2e.CHUNK + 16
    opener.feed(wire[: 2 * first_record])
    with pytest.raises(IntegrityError, match="truncated"):
        opener.close()


def test_flipped_bit_and_reordering_are_detected() -> None:
    sealer, opener = _pair()
    wire = bytearray(e2e.seal_bytes(sealer, b"hello world"))
    wire[10] ^= 1
    with pytest.raises(IntegrityError):
        opener.feed(bytes(wire))
    sealer, opener = _pair()
    a = sealer.seal(b"a" * 10, final=False)
    b = sealer.seal(b"b" * 10, final=True)
    with pytest.raises(IntegrityError):
        opener.feed(b + a)


def test_final_flag_cannot_be_forged() -> None:
    sealer, opener = _pair()
    rec = bytearray(sealer.seal(b"abc", final=False))
    rec[0] |= 0x80  # claim it is the final record
    with pytest.raises(IntegrityError):
        opener.feed(bytes(rec))


def test_unknown_suite() -> None:
    with pytest.raises(Exception, match="unknown cipher suite"):
        e2e.suite_named("ROT13")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_record_parser_never_crashes(garbage: bytes) -> None:
    _, opener = _pair()
    try:
        opener.feed(garbage)
        opener.close()
    except IntegrityError:
        return
    raise AssertionError("random bytes must never authenticate")
