"""Key stores behind one interface: encrypted PKCS#8 files and PKCS#11 tokens (see ``hsm``).

A key store holds private keys under a *label* and hands out :class:`~lienthong.trust.keys.Signer`
objects; with an HSM the private key never leaves the token. Which store to use is described by
a small JSON-able spec (the passphrase or PIN is a secret *reference*, never the secret)::

    {"type": "file", "dir": "keys", "passphrase": {"$env": "LIENTHONG_CA_PASSPHRASE"}}
    {"type": "pkcs11", "module": "/usr/lib/softhsm/libsofthsm2.so", "token": "lienthong",
     "pin": {"$env": "LIENTHONG_HSM_PIN"}}
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa

from lienthong.errors import InputError, KeyStoreError, NotFound
from lienthong.trust.keys import (
    Algorithm,
    PrivateKey,
    PublicKey,
    Signer,
    SoftwareSigner,
    algorithm_of,
    generate_private_key,
)
from lienthong.trust.secrets import parse_secret_ref, resolve_secret

MIN_PASSPHRASE = 12
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate_label(label: str) -> str:
    """Return ``label`` if it is a safe key label (also used as a file name), else raise."""
    if not _LABEL.fullmatch(label):
        raise InputError(f"key label {label!r} must be 1-64 characters of [A-Za-z0-9._-]")
    return label


@runtime_checkable
class KeyStore(Protocol):
    """Somewhere private keys live; callers only ever get signers and public keys."""

    def generate(self, label: str, algorithm: Algorithm = Algorithm.ECDSA_P256) -> Signer:
        """Create a new key pair under ``label`` (refuse to overwrite) and return its signer."""
        ...

    def signer(self, label: str) -> Signer:
        """Return a signer for the existing key ``label`` (raise NotFound if absent)."""
        ...

    def public_key(self, label: str) -> PublicKey:
        """Return the public key of ``label``."""
        ...

    def labels(self) -> list[str]:
        """List the labels of the keys held."""
        ...

    def describe(self) -> dict[str, Any]:
        """A JSON-able spec from which :func:`open_keystore` reopens this store."""
        ...


class FileKeyStore:
    """Private keys as passphrase-encrypted PKCS#8 PEM files (``<label>.key.pem``, mode 0600).

    Unencrypted private keys are refused both on write and on read.
    """

    def __init__(self, directory: Path | str, passphrase_ref: Any) -> None:
        self.directory = Path(directory)
        self.passphrase_ref = parse_secret_ref(passphrase_ref, what="key store passphrase")
        self._cache: dict[str, SoftwareSigner] = {}

    def _passphrase(self) -> bytes:
        return resolve_secret(self.passphrase_ref, what="key store passphrase")

    def _path(self, label: str) -> Path:
        return self.directory / f"{validate_label(label)}.key.pem"

    def import_key(self, label: str, private_key: PrivateKey) -> Signer:
        """Store an existing private key (encrypted) under ``label``."""
        path = self._path(label)
        if self.directory.exists() and not self.directory.is_dir():
            raise InputError(f"key store {self.directory} is a file, not a directory")
        if path.exists():
            raise InputError(f"key {label!r} already exists in {self.directory}")
        algorithm_of(private_key)
        passphrase = self._passphrase()
        if len(passphrase) < MIN_PASSPHRASE:
            # PKCS#8 PBES2 here uses PBKDF2 with 2048 iterations: the passphrase must carry
            # the strength, so short ones are refused before any key is written.
            raise InputError(
                f"key store passphrase is {len(passphrase)} characters: use at least "
                f"{MIN_PASSPHRASE} (a long random passphrase)"
            )
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        tmp.replace(path)
        signer = SoftwareSigner(private_key)
        self._cache[label] = signer
        return signer

    def generate(self, label: str, algorithm: Algorithm = Algorithm.ECDSA_P256) -> Signer:
        return self.import_key(label, generate_private_key(algorithm))

    def signer(self, label: str) -> Signer:
        if label in self._cache:
            return self._cache[label]
        path = self._path(label)
        try:
            pem = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"no key {label!r} in {self.directory}") from exc
        except OSError as exc:
            raise KeyStoreError(f"cannot read key file {path}: {exc.strerror}") from exc
        if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in pem:
            raise KeyStoreError(f"{path} is not an encrypted PKCS#8 key: refusing plaintext keys")
        try:
            key = serialization.load_pem_private_key(pem, self._passphrase())
        except ValueError as exc:
            raise KeyStoreError(f"cannot decrypt {path}: wrong passphrase or damaged file") from exc
        except TypeError as exc:
            raise KeyStoreError(f"{path}: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | mldsa.MLDSA65PrivateKey):
            raise KeyStoreError(f"{path}: unsupported key type {type(key).__name__}")
        algorithm_of(key)  # rejects curves other than P-256
        signer = SoftwareSigner(key)
        self._cache[label] = signer
        return signer

    def public_key(self, label: str) -> PublicKey:
        return self.signer(label).public_key()

    def labels(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name.removesuffix(".key.pem") for p in self.directory.glob("*.key.pem"))

    def describe(self) -> dict[str, Any]:
        return {"type": "file", "dir": str(self.directory), "passphrase": self.passphrase_ref}


def open_keystore(spec: dict[str, Any], *, base: Path | None = None) -> KeyStore:
    """Open the key store described by ``spec`` (relative paths resolved against ``base``)."""
    if not isinstance(spec, dict):
        raise InputError(f"key store spec must be an object, got {spec!r}")
    kind = spec.get("type")
    if kind == "file":
        directory = Path(str(spec.get("dir", "keys")))
        if base is not None and not directory.is_absolute():
            directory = base / directory
        return FileKeyStore(directory, spec.get("passphrase"))
    if kind == "pkcs11":
        from lienthong.trust.hsm import Pkcs11KeyStore

        return Pkcs11KeyStore(
            module=str(spec.get("module", "")),
            token=str(spec.get("token", "")),
            pin_ref=spec.get("pin"),
        )
    raise InputError(f"unknown key store type {kind!r}: use 'file' or 'pkcs11'")
