"""End-to-end encryption of bodies to the provider subsystem, by pluggable cipher suite.

Default suite ``X25519-MLKEM768-AES256GCM``: a hybrid key agreement (X25519 ephemeral-static
plus ML-KEM-768 encapsulation to the provider subsystem's keys), combined with HKDF-SHA-256 into
one message secret; each direction derives its own AES-256-GCM key from it. Relays only see
ciphertext. A national cơ yếu cipher module replaces the suite by registering another
:class:`Suite` under its own name and naming it in the federation policy table.

Streaming record format (so 1 GB never sits in memory): the plaintext is cut into chunks of at
most 64 KiB; each record is a 4-byte big-endian header — bit 31 set on the final record, bits
0–30 the ciphertext length — followed by AES-GCM(key, nonce = 96-bit big-endian record counter,
aad = b"LT1" + final-flag byte). A missing final record (truncation), reordering or any
changed byte fails authentication.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lienthong.errors import InputError, IntegrityError

CHUNK = 64 * 1024
_FINAL = 0x8000_0000
_MAX_RECORD = CHUNK + 16


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (ValueError, TypeError) as exc:
        raise InputError("bad base64url value") from exc


# raw public key sizes of the key agreement (X25519 + ML-KEM-768), as published per subsystem
KEM_PUBLIC_SIZES = {"x25519": 32, "mlkem768": 1184}


def kem_public_problems(keys: dict[str, str]) -> list[tuple[str | None, int | None]]:
    """What keeps published key-agreement public keys from being used: ``(None, None)`` when
    the names are not exactly those of :data:`KEM_PUBLIC_SIZES`, else ``(name, size)`` per
    key that is not base64/base64url (size None) or not its raw size; [] when usable. The
    federation registry and the gateway's directory both check with it; callers word it."""
    if set(keys) != set(KEM_PUBLIC_SIZES):
        return [(None, None)]
    out: list[tuple[str | None, int | None]] = []
    for name, size in KEM_PUBLIC_SIZES.items():
        try:
            got = len(b64d(str(keys[name])))
        except InputError:
            out.append((name, None))
            continue
        if got != size:
            out.append((name, got))
    return out


@dataclass(frozen=True)
class RecipientKeys:
    """A provider subsystem's key-agreement private keys (never leave its gateway)."""

    x25519: x25519.X25519PrivateKey
    mlkem: mlkem.MLKEM768PrivateKey

    @classmethod
    def generate(cls) -> RecipientKeys:
        return cls(x25519.X25519PrivateKey.generate(), mlkem.MLKEM768PrivateKey.generate())

    def public(self) -> dict[str, str]:
        """The public half as published in the federation directory."""
        x = self.x25519.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        m = self.mlkem.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {"x25519": b64e(x), "mlkem768": b64e(m)}


class Suite(Protocol):
    """A key agreement + stream cipher combination, selected by name per classification level."""

    name: str

    def encapsulate(
        self, recipient_public: dict[str, str], context: bytes
    ) -> tuple[bytes, dict[str, str]]:
        """Return (message secret, public parameters to put in the signed claims)."""
        ...

    def decapsulate(self, keys: RecipientKeys, params: dict[str, str], context: bytes) -> bytes:
        """Recover the message secret from the parameters (raise IntegrityError if bad)."""
        ...

    def sealer(self, secret: bytes, direction: str) -> StreamSealer: ...

    def opener(self, secret: bytes, direction: str) -> StreamOpener: ...


def _derive(secret: bytes, label: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=label.encode()).derive(secret)


@functools.lru_cache(maxsize=1024)
def _recipient(
    x25519_b64: str, mlkem_b64: str
) -> tuple[x25519.X25519PublicKey, mlkem.MLKEM768PublicKey]:
    """A recipient's parsed public keys (from the directory: parsed once, not per message)."""
    return (
        x25519.X25519PublicKey.from_public_bytes(b64d(x25519_b64)),
        mlkem.MLKEM768PublicKey.from_public_bytes(b64d(mlkem_b64)),
    )


class HybridSuite:
    """X25519 + ML-KEM-768 → HKDF-SHA-256 → AES-256-GCM (streaming records)."""

    name = "X25519-MLKEM768-AES256GCM"

    def encapsulate(
        self, recipient_public: dict[str, str], context: bytes
    ) -> tuple[bytes, dict[str, str]]:
        try:
            peer_x, peer_m = _recipient(recipient_public["x25519"], recipient_public["mlkem768"])
        except (KeyError, ValueError) as exc:
            raise InputError("recipient has no valid X25519/ML-KEM-768 public key") from exc
        eph = x25519.X25519PrivateKey.generate()
        eph_pub = eph.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        k_x = eph.exchange(peer_x)
        k_m, ct = peer_m.encapsulate()
        params = {"epk": b64e(eph_pub), "ct": b64e(ct)}
        return self._combine(k_m, k_x, eph_pub, ct, context), params

    def decapsulate(self, keys: RecipientKeys, params: dict[str, str], context: bytes) -> bytes:
        try:
            eph_pub = b64d(params["epk"])
            ct = b64d(params["ct"])
            k_x = keys.x25519.exchange(x25519.X25519PublicKey.from_public_bytes(eph_pub))
            k_m = keys.mlkem.decapsulate(ct)
        except (KeyError, ValueError, InputError) as exc:
            raise IntegrityError("bad key-agreement parameters") from exc
        return self._combine(k_m, k_x, eph_pub, ct, context)

    @staticmethod
    def _combine(k_m: bytes, k_x: bytes, eph_pub: bytes, ct: bytes, context: bytes) -> bytes:
        # Both shared secrets go into one HKDF; salt binds the transcript and the message.
        salt = hashlib.sha256(b"LT-HYBRID-1" + eph_pub + ct + context).digest()
        return HKDF(hashes.SHA256(), 32, salt=salt, info=b"lt-e2e-secret").derive(k_m + k_x)

    def sealer(self, secret: bytes, direction: str) -> StreamSealer:
        return StreamSealer(AESGCM(_derive(secret, "lt-e2e-" + direction)))

    def opener(self, secret: bytes, direction: str) -> StreamOpener:
        return StreamOpener(AESGCM(_derive(secret, "lt-e2e-" + direction)))


def _aad(final: bool) -> bytes:
    return b"LT1\x01" if final else b"LT1\x00"


class StreamSealer:
    """Encrypt a stream into records; call :meth:`seal` per chunk, the last one ``final``."""

    def __init__(self, aead: AESGCM) -> None:
        self._aead = aead
        self._counter = 0
        self._done = False

    def seal(self, chunk: bytes | memoryview, *, final: bool) -> bytes:
        if self._done:
            raise IntegrityError("stream already finished")
        nonce = self._counter.to_bytes(12, "big")
        self._counter += 1
        self._done = final
        ct = self._aead.encrypt(nonce, chunk, _aad(final))
        return struct.pack(">I", len(ct) | (_FINAL if final else 0)) + ct


class StreamOpener:
    """Incremental decryption: feed raw bytes, get authenticated plaintext chunks back."""

    def __init__(self, aead: AESGCM) -> None:
        self._aead = aead
        self._counter = 0
        self._buf = bytearray()
        self.finished = False

    def feed(self, data: bytes) -> list[bytes]:
        """Return every plaintext chunk completed by ``data`` (each already authenticated)."""
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 4:
            if self.finished:
                raise IntegrityError("data after the final record")
            (head,) = struct.unpack_from(">I", self._buf)
            size, final = head & ~_FINAL, bool(head & _FINAL)
            if size < 16 or size > _MAX_RECORD:
                raise IntegrityError("bad record length")
            if len(self._buf) < 4 + size:
                break
            ct = bytes(self._buf[4 : 4 + size])
            del self._buf[: 4 + size]
            try:
                out.append(self._aead.decrypt(self._counter.to_bytes(12, "big"), ct, _aad(final)))
            except InvalidTag as exc:
                raise IntegrityError("record fails authentication") from exc
            self._counter += 1
            self.finished = final
        return out

    def close(self) -> None:
        """Raise unless the final record arrived (a truncated stream is an attack)."""
        if not self.finished or self._buf:
            raise IntegrityError("encrypted stream truncated")


async def seal_stream(
    source: AsyncIterator[bytes],
    sealer: StreamSealer,
    on_bytes: Callable[[int], None] | None = None,
) -> AsyncIterator[bytes]:
    """Seal ``source`` as it comes: each input chunk becomes one or more records of ≤ 64 KiB,
    then an empty final record ends the stream.

    Nothing is held back waiting for more input: a slow sender's data reaches the next hop
    as it arrives, so the next hop's header deadline and idle timeout see real progress
    (holding 64 KiB back would starve the next hop's idle timeout of the bytes that did
    come)."""
    async for data in source:
        if on_bytes is not None:
            on_bytes(len(data))
        if len(data) <= CHUNK:
            if data:
                yield sealer.seal(data, final=False)
            continue
        with memoryview(data) as view:  # no copies of large input chunks
            for start in range(0, len(data), CHUNK):
                yield sealer.seal(view[start : start + CHUNK], final=False)
    yield sealer.seal(b"", final=True)


async def open_stream(source: AsyncIterator[bytes], opener: StreamOpener) -> AsyncIterator[bytes]:
    """Yield authenticated plaintext chunks of ``source``; raise IntegrityError if tampered."""
    async for data in source:
        for chunk in opener.feed(data):
            if chunk:
                yield chunk
    opener.close()


def seal_bytes(sealer: StreamSealer, data: bytes) -> bytes:
    """Seal an in-memory body (small responses, errors) in the same record format."""
    records = [
        sealer.seal(data[i : i + CHUNK], final=False) for i in range(0, len(data) - CHUNK, CHUNK)
    ]
    tail = data[(len(records) * CHUNK) :]
    return b"".join([*records, sealer.seal(tail, final=True)])


def open_bytes(opener: StreamOpener, data: bytes) -> bytes:
    out = b"".join(opener.feed(data))
    opener.close()
    return out


_SUITES: dict[str, Suite] = {}


def register_suite(suite: Suite) -> None:
    """Make ``suite`` selectable by name in the policy table (e.g. a national cipher module)."""
    _SUITES[suite.name] = suite


def suite_named(name: str) -> Suite:
    try:
        return _SUITES[name]
    except KeyError:
        raise InputError(f"unknown cipher suite {name!r}: registered {sorted(_SUITES)}") from None


def describe() -> dict[str, Any]:
    return {"suites": sorted(_SUITES)}


register_suite(HybridSuite())
