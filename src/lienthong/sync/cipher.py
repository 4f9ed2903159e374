"""Batch body encryption to the hub: X25519 + ML-KEM-768 → HKDF-SHA-256 → AES-256-GCM.

Both key agreements feed one HKDF so the body stays confidential unless *both* are broken
(classical today, post-quantum tomorrow). Only vetted primitives from ``cryptography``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lienthong.errors import InputError, IntegrityError

SUITE = "X25519-MLKEM768-A256GCM"
_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class RecipientPublic:
    x25519: x25519.X25519PublicKey
    mlkem: mlkem.MLKEM768PublicKey

    def to_dict(self) -> dict[str, str]:
        return {
            "suite": SUITE,
            "x25519": _b64(self.x25519.public_bytes(*_RAW)),
            "mlkem768": _b64(self.mlkem.public_bytes(*_RAW)),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> RecipientPublic:
        try:
            return cls(
                x25519.X25519PublicKey.from_public_bytes(base64.b64decode(doc["x25519"])),
                mlkem.MLKEM768PublicKey.from_public_bytes(base64.b64decode(doc["mlkem768"])),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError("not a hub recipient key (x25519 + mlkem768)") from exc


@dataclass(frozen=True)
class RecipientKeys:
    """The hub's private key-agreement keys."""

    x25519: x25519.X25519PrivateKey
    mlkem: mlkem.MLKEM768PrivateKey

    @classmethod
    def generate(cls) -> RecipientKeys:
        return cls(x25519.X25519PrivateKey.generate(), mlkem.MLKEM768PrivateKey.generate())

    def public(self) -> RecipientPublic:
        return RecipientPublic(self.x25519.public_key(), self.mlkem.public_key())


def _key(k_x: bytes, k_m: bytes, epk: bytes, ct: bytes, aad: bytes) -> bytes:
    salt = hashlib.sha256(b"LTSB1-KEY" + epk + ct + aad).digest()
    return HKDF(hashes.SHA256(), 32, salt=salt, info=b"lienthong sync batch").derive(k_m + k_x)


def seal_body(recipient: RecipientPublic, body: bytes, aad: bytes) -> tuple[bytes, dict[str, str]]:
    """Encrypt ``body``; return (ciphertext, public parameters for the signed header)."""
    eph = x25519.X25519PrivateKey.generate()
    epk = eph.public_key().public_bytes(*_RAW)
    k_m, ct = recipient.mlkem.encapsulate()
    key = _key(eph.exchange(recipient.x25519), k_m, epk, ct, aad)
    nonce = os.urandom(12)
    params = {"suite": SUITE, "epk": _b64(epk), "ct": _b64(ct), "nonce": _b64(nonce)}
    return AESGCM(key).encrypt(nonce, body, aad), params


def open_body(keys: RecipientKeys, params: dict[str, str], body: bytes, aad: bytes) -> bytes:
    """Decrypt a sealed body; raise :class:`IntegrityError` on any mismatch."""
    try:
        if params.get("suite") != SUITE:
            raise ValueError("suite")
        epk, ct = base64.b64decode(params["epk"]), base64.b64decode(params["ct"])
        k_x = keys.x25519.exchange(x25519.X25519PublicKey.from_public_bytes(epk))
        key = _key(k_x, keys.mlkem.decapsulate(ct), epk, ct, aad)
        return AESGCM(key).decrypt(base64.b64decode(params["nonce"]), body, aad)
    except (InvalidTag, KeyError, ValueError, TypeError) as exc:
        raise IntegrityError("batch body does not decrypt", code="decrypt") from exc
