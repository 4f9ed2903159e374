"""The signed (and, from PERSONAL up, encrypted) change-batch format and the hub's signed ack.

Wire format of a batch (all integers big-endian)::

    b"LTSB1" | u32 len(header) | header | u16 len(sig) | sig | body

``header`` is canonical JSON (UTF-8, sorted keys, no spaces) holding the source id, batch
sequence number, table, entity, classification, counts, the source position after the batch
and ``body`` = {sha256, length, compression, encryption}. ``sig`` is the source's
:class:`~lienthong.trust.keys.Signer` signature over ``b"LTSB1-SIG\\n" + header``. ``body`` is
zstd-compressed (``zlib`` is still read) msgpack ``{"u": [[key, pos, json]...],
"d": [[key, pos]...], "q": [[key, pos, raw_json, [reason...]]...], "r": [quarantine id...]}``,
then, when
encrypted, AES-256-GCM under a key from X25519 + ML-KEM-768 (hybrid, HKDF-SHA-256) agreed
with the hub's recipient keys; the AEAD's associated data binds source, sequence, table and
entity. The header's SHA-256 identifies the batch;
the hub's ack is ``u32 len(json) | json | sig`` signed over ``b"LTSA1-SIG\\n" + json``.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
import zstandard

from lienthong.classification import Level
from lienthong.errors import IntegrityError, SignatureError
from lienthong.sync.cipher import RecipientPublic, open_body, seal_body
from lienthong.sync.mapping import Mapped
from lienthong.trust.keys import PublicKey, Signer, verify_signature

MAGIC = b"LTSB1"
SIG_CONTEXT = b"LTSB1-SIG\n"
ACK_CONTEXT = b"LTSA1-SIG\n"
# zstd level 1: 3x faster than zlib level 1 at a 30 % smaller body (docs/sync.md, "Where the
# time goes"); batches written by earlier versions (zlib) are still read
COMPRESSION = "zstd"
MAX_PLAIN_BYTES = 512 * 1024 * 1024  # a body that decompresses beyond this is refused
_ZSTD_LEVEL = 1


def canonical(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class Batch:
    """A verified, decrypted batch as the hub sees it."""

    header: dict[str, Any]
    header_sha256: str
    upserts: list[tuple[str, str, bytes]]
    deletes: list[tuple[str, str]]
    quarantine: list[tuple[str, str, bytes, list[str]]]
    resolves: list[int]

    @property
    def source(self) -> str:
        return str(self.header["source"])

    @property
    def seq(self) -> int:
        return int(self.header["seq"])


class _Body(msgspec.Struct):
    u: list[tuple[str, str, bytes]]
    d: list[tuple[str, str]]
    q: list[tuple[str, str, bytes, list[str]]]
    r: list[int] = []


_BODY = msgspec.msgpack.Decoder(_Body)


def _binding(header: dict[str, Any]) -> bytes:
    return canonical({k: header[k] for k in ("source", "seq", "table", "entity")})


def build_batch(
    *,
    source: str,
    seq: int,
    table: str,
    entity: str,
    level: Level,
    position: dict[str, Any],
    mapped: Mapped,
    created_at: str,
    signer: Signer,
    recipient: RecipientPublic | None,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """Serialise, compress, (encrypt) and sign one batch; return the envelope bytes.

    ``extra``: more signed header fields (the state's ``epoch``, ``rebase`` on its first batch).
    """
    plain = msgspec.msgpack.encode(
        {"u": mapped.upserts, "d": mapped.deletes, "q": mapped.quarantine, "r": mapped.resolves}
    )
    body = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(plain)
    header: dict[str, Any] = {
        "v": 1, "source": source, "seq": seq, "table": table, "entity": entity,
        "classification": level.name, "position": position, "created_at": created_at,
        "counts": {"upserts": len(mapped.upserts), "deletes": len(mapped.deletes),
                   "quarantined": len(mapped.quarantine), "read": mapped.read}
                  | ({"superseded": mapped.superseded} if mapped.superseded else {}),
        "alg": signer.algorithm.value,
    }  # fmt: skip
    if extra:
        header.update(extra)
    encryption = None
    if level >= Level.PERSONAL:
        if recipient is None:
            raise IntegrityError(f"{level.name} batches must be encrypted: no hub recipient key")
        body, encryption = seal_body(recipient, body, _binding(header))
    header["body"] = {
        "sha256": hashlib.sha256(body).hexdigest(), "length": len(body),
        "compression": COMPRESSION, "encryption": encryption,
    }  # fmt: skip
    head = canonical(header)
    sig = signer.sign(SIG_CONTEXT + head)
    return b"".join(
        [MAGIC, struct.pack(">I", len(head)), head, struct.pack(">H", len(sig)), sig, body]
    )


def parse_header(envelope: bytes) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """Split an envelope into (header, header bytes, signature, body); no checks beyond framing."""
    try:
        if envelope[:5] != MAGIC:
            raise ValueError("bad magic")
        (hlen,) = struct.unpack_from(">I", envelope, 5)
        head = envelope[9 : 9 + hlen]
        (slen,) = struct.unpack_from(">H", envelope, 9 + hlen)
        sig = envelope[11 + hlen : 11 + hlen + slen]
        body = envelope[11 + hlen + slen :]
        header = orjson.loads(head)
        if not isinstance(header, dict) or len(sig) != slen or len(head) != hlen:
            raise ValueError("truncated")
    except (ValueError, struct.error, orjson.JSONDecodeError) as exc:
        raise IntegrityError("malformed sync batch", code="malformed_batch") from exc
    return header, head, sig, body


def open_batch(
    envelope: bytes,
    source_keys: dict[str, PublicKey],
    recipient_keys: Any | None,
) -> Batch:
    """Verify signature, body hash and AEAD; return the batch. Raises Trust/IntegrityError."""
    header, head, sig, body = parse_header(envelope)
    key = source_keys.get(str(header.get("source")))
    if key is None:
        raise SignatureError("batch from an unknown source", source=header.get("source"))
    verify_signature(key, sig, SIG_CONTEXT + head)
    meta = header["body"]
    if len(body) != meta["length"] or hashlib.sha256(body).hexdigest() != meta["sha256"]:
        raise IntegrityError("batch body does not match its signed hash", code="body_hash")
    if meta["encryption"] is not None:
        if recipient_keys is None:
            raise IntegrityError("encrypted batch but this hub has no decryption keys")
        body = open_body(recipient_keys, meta["encryption"], body, _binding(header))
    plain = decompress(str(meta.get("compression")), body)
    try:  # the body as this module writes it, typed in one C pass
        typed = _BODY.decode(plain)
        return Batch(header, hashlib.sha256(head).hexdigest(), typed.u, typed.d, typed.q, typed.r)
    except msgspec.DecodeError:
        pass  # other spellings of the same content (e.g. integer keys): the lenient path
    try:
        doc = msgspec.msgpack.decode(plain)
        upserts = [(str(k), str(p), bytes(d)) for k, p, d in doc["u"]]
        deletes = [(str(k), str(p)) for k, p in doc["d"]]
        quarantine = [(str(k), str(p), bytes(r), [str(x) for x in rs]) for k, p, r, rs in doc["q"]]
        resolves = [int(i) for i in doc.get("r", [])]
    except (msgspec.DecodeError, KeyError, ValueError, TypeError) as exc:
        raise IntegrityError("batch body cannot be decoded", code="malformed_batch") from exc
    return Batch(header, hashlib.sha256(head).hexdigest(), upserts, deletes, quarantine, resolves)


def decompress(method: str, body: bytes) -> bytes:
    """The plain body of a batch; IntegrityError for an unknown method, damaged data or a
    body that would decompress beyond :data:`MAX_PLAIN_BYTES` (nothing is allocated past it)."""
    try:
        if method == "zstd":
            size = zstandard.frame_content_size(body)  # -1: not in the frame header
            if size > MAX_PLAIN_BYTES:
                raise _too_large()
            if size >= 0:
                out = zstandard.ZstdDecompressor().decompress(body)
            else:  # a streamed frame: read at most one byte past the limit
                with zstandard.ZstdDecompressor().stream_reader(body) as reader:
                    out = reader.read(MAX_PLAIN_BYTES + 1)
                if len(out) > MAX_PLAIN_BYTES:
                    raise _too_large()
        elif method == "zlib":
            d = zlib.decompressobj()
            out = d.decompress(body, MAX_PLAIN_BYTES)
            if d.unconsumed_tail:
                raise _too_large()
            if not d.eof:
                raise zlib.error("truncated stream")
        else:
            raise IntegrityError(
                f"batch body compression {method!r} is not supported (zstd, zlib)",
                code="malformed_batch",
            )
    except (zlib.error, zstandard.ZstdError) as exc:
        raise IntegrityError("batch body cannot be decoded", code="malformed_batch") from exc
    return out


def _too_large() -> IntegrityError:
    return IntegrityError(
        f"batch body decompresses beyond {MAX_PLAIN_BYTES} bytes", code="malformed_batch"
    )


def build_ack(signer: Signer, fields: dict[str, Any]) -> bytes:
    """The hub's signed acknowledgement of one batch."""
    doc = canonical({"v": 1, **fields})
    sig = signer.sign(ACK_CONTEXT + doc)
    return struct.pack(">I", len(doc)) + doc + sig


def verify_ack(ack: bytes, hub_key: PublicKey, source: str, seq: int, batch: str) -> dict[str, Any]:
    """Check the hub's signature and that the ack is for this exact batch; return its fields."""
    try:
        (n,) = struct.unpack_from(">I", ack, 0)
        doc, sig = ack[4 : 4 + n], ack[4 + n :]
        fields = orjson.loads(doc)
    except (struct.error, orjson.JSONDecodeError) as exc:
        raise SignatureError("malformed acknowledgement") from exc
    verify_signature(hub_key, sig, ACK_CONTEXT + doc)
    if (fields.get("source"), fields.get("seq"), fields.get("batch")) != (source, seq, batch):
        raise SignatureError("acknowledgement is for another batch", seq=seq)
    return dict(fields)
