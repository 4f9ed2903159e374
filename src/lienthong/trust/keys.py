"""Signing keys behind one interface, whatever holds them (memory, encrypted file, HSM).

Algorithms: ``ECDSA-P256`` (default; signatures are DER over SHA-256) and ``ML-DSA-65``
(post-quantum, FIPS 204). Every component that signs takes a :class:`Signer`; every component
that verifies calls :func:`verify_signature` with a public key, so HSM-held keys and file keys
are interchangeable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa

from lienthong.errors import InputError, SignatureError

PublicKey = ec.EllipticCurvePublicKey | mldsa.MLDSA65PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | mldsa.MLDSA65PrivateKey


class Algorithm(enum.StrEnum):
    ECDSA_P256 = "ECDSA-P256"
    ML_DSA_65 = "ML-DSA-65"

    @classmethod
    def parse(cls, value: str) -> Algorithm:
        norm = value.strip().upper().replace("_", "-")
        aliases = {
            "ECDSA": cls.ECDSA_P256,
            "P256": cls.ECDSA_P256,
            "P-256": cls.ECDSA_P256,
            "ECDSA-P256": cls.ECDSA_P256,
            "MLDSA65": cls.ML_DSA_65,
            "ML-DSA": cls.ML_DSA_65,
            "ML-DSA-65": cls.ML_DSA_65,
            "MLDSA-65": cls.ML_DSA_65,
        }
        if norm not in aliases:
            names = ", ".join(a.value for a in cls)
            raise InputError(f"unknown signature algorithm {value!r}: use one of {names}")
        return aliases[norm]


@runtime_checkable
class Signer(Protocol):
    """Something that signs with a private key it may never reveal (e.g. inside an HSM)."""

    @property
    def algorithm(self) -> Algorithm: ...

    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (ECDSA-P256: DER signature over SHA-256 of ``data``)."""
        ...


def algorithm_of(key: PublicKey | PrivateKey) -> Algorithm:
    """The :class:`Algorithm` of a key; InputError for other curves or key types."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise InputError(f"unsupported curve {key.curve.name}: only P-256 is allowed")
        return Algorithm.ECDSA_P256
    if isinstance(key, mldsa.MLDSA65PublicKey | mldsa.MLDSA65PrivateKey):
        return Algorithm.ML_DSA_65
    raise InputError(f"unsupported key type {type(key).__name__}")


def generate_private_key(algorithm: Algorithm = Algorithm.ECDSA_P256) -> PrivateKey:
    """A fresh in-memory private key (store it with a KeyStore, never in plaintext)."""
    if algorithm is Algorithm.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return mldsa.MLDSA65PrivateKey.generate()


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())  # immutable: one for every call (≈ 1 µs each)


@dataclass(frozen=True)
class SoftwareSigner:
    """A signer over a private key held in process memory (loaded from an encrypted file)."""

    private_key: PrivateKey

    @property
    def algorithm(self) -> Algorithm:
        return algorithm_of(self.private_key)

    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return self.private_key.sign(data, _ECDSA_SHA256)
        return self.private_key.sign(data)


def verify_signature(public_key: PublicKey, signature: bytes, data: bytes) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is valid for ``data``."""
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, _ECDSA_SHA256)
        elif isinstance(public_key, mldsa.MLDSA65PublicKey):
            public_key.verify(signature, data)
        else:
            raise SignatureError(f"unsupported public key type {type(public_key).__name__}")
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify") from exc


def public_key_to_pem(public_key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_from_pem(data: bytes) -> PublicKey:
    """Parse a SubjectPublicKeyInfo PEM (P-256 or ML-DSA-65 only; InputError otherwise)."""
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise InputError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | mldsa.MLDSA65PublicKey):
        raise InputError(f"unsupported public key type {type(key).__name__}")
    algorithm_of(key)  # rejects curves other than P-256 with a clear error
    return key
