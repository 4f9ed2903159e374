"""Signed checkpoints (điểm kiểm tra có ký) in the C2SP signed-note / tlog-checkpoint format.

A checkpoint note text is three lines — origin, decimal tree size, base64 root hash — each
ending in a newline. Signature lines follow one blank line: ``— <name> <base64(keyID ‖ sig)>``.

Key IDs (C2SP signed-note ``SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]`` family):

- ECDSA-P256 — signature type ``0x02`` as C2SP assigns for ECDSA: key ID is
  ``SHA-256(SPKI DER)[:4]``; the signature is DER ECDSA over SHA-256 of the note text.
- ML-DSA-65 — no C2SP type exists yet, so type ``0xff`` followed by the identifier
  ``"lienthong/ML-DSA-65"``: key ID = ``SHA-256(name ‖ 0x0A ‖ 0xff ‖ "lienthong/ML-DSA-65" ‖
  SPKI DER)[:4]``; the signature is FIPS 204 ML-DSA-65 over the note text (empty context).

Witness co-signatures follow c2sp.org/tlog-cosignature with our algorithms: the signed
message is ``"cosignature/v1\\ntime <unix seconds>\\n" ‖ note text``, the line is
``— <witness name> base64(keyID ‖ uint64-BE time ‖ sig)``, key ID = ``SHA-256(name ‖ 0x0A ‖
0xff ‖ "lienthong/cosignature/v1/<algorithm>" ‖ SPKI DER)[:4]``.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from lienthong.errors import InputError, SignatureError
from lienthong.trust.keys import Algorithm, PublicKey, Signer, algorithm_of, verify_signature

DASH = "\u2014"
COSIGNATURE_PREFIX = b"cosignature/v1\ntime "


@dataclass(frozen=True)
class Checkpoint:
    """The signed statement "the log ``origin`` has ``size`` entries with root ``root``"."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        """The note text that is signed (three lines, each newline-terminated)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(name: str, key: PublicKey) -> bytes:
    """The 4-byte signed-note key ID of a checkpoint-signing key (see module docstring)."""
    if algorithm_of(key) is Algorithm.ECDSA_P256:
        return hashlib.sha256(_spki(key)).digest()[:4]
    ident = b"\xfflienthong/" + algorithm_of(key).value.encode()
    return hashlib.sha256(name.encode() + b"\n" + ident + _spki(key)).digest()[:4]


def cosigner_key_id(name: str, key: PublicKey) -> bytes:
    """The 4-byte key ID of a witness co-signing key."""
    ident = b"\xfflienthong/cosignature/v1/" + algorithm_of(key).value.encode()
    return hashlib.sha256(name.encode() + b"\n" + ident + _spki(key)).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise InputError(f"key name {name!r} must be non-empty, without spaces or '+'")


def sign_text(text: str, name: str, signer: Signer) -> str:
    """A signed-note signature line by ``name`` over any note ``text`` (newline-terminated)."""
    _check_name(name)
    sig = signer.sign(text.encode())
    blob = key_id(name, signer.public_key()) + sig
    return f"{DASH} {name} {base64.b64encode(blob).decode()}\n"


def sign_line(cp: Checkpoint, name: str, signer: Signer) -> str:
    """The log's own signature line over ``cp``."""
    return sign_text(cp.text(), name, signer)


def verify_text(note: str, name: str, key: PublicKey) -> str:
    """Verify the signature by (``name``, ``key``) on any signed note; return its text."""
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise InputError("signed note has no blank line before its signatures")
    text += "\n"
    kid = key_id(name, key)
    found = False
    for line in sigs.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or parts[1] != name:
            continue
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except ValueError as exc:  # binascii.Error, or non-ASCII text
            raise SignatureError(f"signature of {name} is not base64") from exc
        if blob[:4] == kid:
            verify_signature(key, blob[4:], text.encode())
            found = True
    if not found:
        raise SignatureError(f"note carries no signature by {name}")
    return text


def cosign_line(cp: Checkpoint, name: str, signer: Signer, at_unix: int) -> str:
    """A witness co-signature line over ``cp`` made at ``at_unix`` (seconds)."""
    _check_name(name)
    msg = COSIGNATURE_PREFIX + str(at_unix).encode() + b"\n" + cp.text().encode()
    blob = cosigner_key_id(name, signer.public_key()) + struct.pack(">Q", at_unix)
    return f"{DASH} {name} {base64.b64encode(blob + signer.sign(msg)).decode()}\n"


def to_note(cp: Checkpoint, lines: list[str]) -> str:
    """The full signed note: text, blank line, signature lines."""
    return cp.text() + "\n" + "".join(lines)


def parse_note(note: str) -> tuple[Checkpoint, list[tuple[str, bytes]]]:
    """Split a signed note into its checkpoint and ``(name, base64-decoded blob)`` signatures."""
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise InputError("checkpoint note has no blank line before its signatures")
    lines = text.split("\n")
    if len(lines) < 3:
        raise InputError("checkpoint text needs origin, size and root lines")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    # ASCII digits only (str.isdigit() accepts "²", "١٢"…), no leading zero: one text per size
    if not (size_s.isascii() and size_s.isdigit()) or (size_s[0] == "0" and size_s != "0"):
        raise InputError(f"checkpoint size {size_s!r} is not a decimal number")
    try:
        root = base64.b64decode(root_s, validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise InputError(f"checkpoint root is not base64: {exc}") from exc
    if len(root) != 32:
        raise InputError("checkpoint root hash must be 32 bytes")
    out: list[tuple[str, bytes]] = []
    for line in sigs.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise InputError(f"malformed signature line {line[:40]!r}")
        try:
            out.append((parts[1], base64.b64decode(parts[2], validate=True)))
        except ValueError as exc:  # binascii.Error, or non-ASCII text
            raise InputError(f"signature of {parts[1]} is not base64") from exc
    return Checkpoint(origin, int(size_s), root), out


def verify_note(note: str, name: str, key: PublicKey) -> Checkpoint:
    """Verify the log signature by (``name``, ``key``) on ``note``; return its checkpoint."""
    cp, _sigs = parse_note(note)
    try:
        verify_text(note, name, key)
    except SignatureError as exc:
        raise SignatureError(f"checkpoint {cp.size}: {exc}") from exc
    return cp


def verify_cosignature(cp: Checkpoint, line: str, name: str, key: PublicKey) -> int:
    """Verify one witness co-signature line; return its time (unix seconds)."""
    parts = line.strip().split(" ")
    if len(parts) != 3 or parts[0] != DASH or parts[1] != name:
        raise SignatureError(f"malformed co-signature line from {name}")
    try:
        blob = base64.b64decode(parts[2], validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise SignatureError(f"co-signature of {name} is not base64") from exc
    if len(blob) < 12 or blob[:4] != cosigner_key_id(name, key):
        raise SignatureError(f"co-signature of {name} is from an unknown key")
    (at_unix,) = struct.unpack(">Q", blob[4:12])
    msg = COSIGNATURE_PREFIX + str(at_unix).encode() + b"\n" + cp.text().encode()
    try:
        verify_signature(key, blob[12:], msg)
    except SignatureError as exc:
        raise SignatureError(f"co-signature of {name} on checkpoint {cp.size} is invalid") from exc
    return int(at_unix)
