"""Request and response bodies: bounded, hashed, in memory when small, spooled when large.

A plaintext body's SHA-256 is signed before it is sent, so the sender must see it whole; above
``memory_limit`` it goes to an unnamed temporary file (never held in memory), and the reader
streams it back from there. Encrypted bodies never need this: they stream record by record.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator
from typing import IO

from lienthong.exchange.protocol import ErrorCode, Refused

READ_CHUNK = 256 * 1024
EMPTY_SHA256 = hashlib.sha256(b"").digest()


class Body:
    """A fully received body: its length, SHA-256 and an iterator over its bytes."""

    def __init__(self, length: int, digest: bytes, memory: bytes | None, spool: IO[bytes] | None):
        self.length = length
        self.digest = digest
        self._memory = memory
        self._spool = spool

    @property
    def in_memory(self) -> bytes | None:
        return self._memory

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._memory is not None:
            if self._memory:
                yield self._memory
            return
        assert self._spool is not None
        self._spool.seek(0)
        while chunk := self._spool.read(READ_CHUNK):
            yield chunk

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


EMPTY = Body(0, EMPTY_SHA256, b"", None)  # a request without a body (no generator chain)


def in_memory(data: bytes) -> Body:
    """A body already received whole (a response of known, bounded length)."""
    return Body(len(data), hashlib.sha256(data).digest(), data, None)


async def paced(source: AsyncIterator[bytes], idle_s: float) -> AsyncIterator[bytes]:
    """Pass ``source`` through, refusing with LT.TIMEOUT when no data comes for ``idle_s`` (a
    sender trickling its body cannot hold a connection for the whole exchange timeout).

    The refusal is a :class:`Refused`, not a bare ``TimeoutError``: when the body is being
    streamed to the next hop or the service, the HTTP client raises the body's own exception
    back to the caller, and a ``TimeoutError`` (an ``OSError``) would read there as a failed
    service connection (``LT.UNAVAILABLE``); a :class:`Refused` keeps the precise code on
    every path."""
    iterator = source.__aiter__()
    received = 0
    while True:
        try:
            async with asyncio.timeout(idle_s):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise Refused(
                ErrorCode.TIMEOUT, "request body idle too long", idle_s=idle_s, received=received
            ) from None
        received += len(chunk)
        yield chunk


async def limited(source: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """Pass ``source`` through, refusing with LT.TOO_LARGE once more than ``limit`` bytes came."""
    total = 0
    async for chunk in source:
        total += len(chunk)
        if total > limit:
            raise Refused(ErrorCode.TOO_LARGE, "body larger than the limit", limit=limit)
        yield chunk


async def read_body(
    source: AsyncIterator[bytes], *, limit: int, memory_limit: int, spool_dir: str | None = None
) -> Body:
    """Receive ``source`` whole (≤ ``limit`` bytes), hashing as it comes."""
    digest = hashlib.sha256()
    parts: list[bytes] = []
    size = 0
    spool: IO[bytes] | None = None
    try:
        async for chunk in limited(source, limit):
            digest.update(chunk)
            size += len(chunk)
            if spool is None and size > memory_limit:
                spool = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 (outlives this block)
                spool.writelines(parts)
                parts = []
            if spool is not None:
                spool.write(chunk)
            else:
                parts.append(chunk)
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    memory = None if spool is not None else b"".join(parts)
    return Body(size, digest.digest(), memory, spool)
