"""Key material of a sync deployment, kept in the trust layer's encrypted key store.

Layout of a key directory (``lienthong sync keys init DIR``): ``<label>.key.pem`` signing keys
(passphrase-encrypted PKCS#8, via :class:`lienthong.trust.keystore.FileKeyStore`),
``<label>.pub.pem`` their public halves, ``<label>.recipient.json`` the hub's public
key-agreement keys, and ``<label>-x25519.kem.pem`` / ``<label>-mlkem.kem.pem`` their private
halves, encrypted with the same passphrase. No private key is ever written in plaintext.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from lienthong.errors import ConfigError, KeyStoreError
from lienthong.sync.cipher import RecipientKeys, RecipientPublic
from lienthong.trust.keys import PublicKey, public_key_from_pem, public_key_to_pem
from lienthong.trust.keystore import FileKeyStore
from lienthong.trust.secrets import resolve_secret


def _write_private(path: Path, key: Any, passphrase: bytes) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def init_keys(directory: Path, passphrase_ref: Any, source_label: str = "agency") -> dict[str, str]:
    """Create an agency signing key and the hub's signing and recipient keys in ``directory``."""
    store = FileKeyStore(directory, passphrase_ref)
    out: dict[str, str] = {}
    for label in (source_label, "hub"):
        signer = store.generate(label)
        pub = directory / f"{label}.pub.pem"
        pub.write_bytes(public_key_to_pem(signer.public_key()))
        out[label] = str(pub)
    rk = RecipientKeys.generate()
    secret = resolve_secret(passphrase_ref, what="key store passphrase")
    _write_private(directory / "hub-x25519.kem.pem", rk.x25519, secret)
    _write_private(directory / "hub-mlkem.kem.pem", rk.mlkem, secret)
    recipient = directory / "hub.recipient.json"
    recipient.write_bytes(orjson.dumps(rk.public().to_dict(), option=orjson.OPT_INDENT_2))
    out["recipient"] = str(recipient)
    return out


def load_recipient_keys(directory: Path, passphrase_ref: Any, label: str = "hub") -> RecipientKeys:
    """The hub's private key-agreement keys (decrypted in memory only)."""
    secret = resolve_secret(passphrase_ref, what="key store passphrase")
    keys: list[Any] = []
    for kind in ("x25519", "mlkem"):
        path = directory / f"{label}-{kind}.kem.pem"
        try:
            keys.append(serialization.load_pem_private_key(path.read_bytes(), secret))
        except OSError as exc:
            raise KeyStoreError(f"cannot read {path}: {exc.strerror}") from exc
        except (ValueError, TypeError) as exc:
            raise KeyStoreError(f"cannot decrypt {path}: wrong passphrase or damaged") from exc
    if not isinstance(keys[0], x25519.X25519PrivateKey) or not isinstance(
        keys[1], mlkem.MLKEM768PrivateKey
    ):
        raise KeyStoreError(f"{directory}: recipient keys of the wrong type")
    return RecipientKeys(keys[0], keys[1])


def load_public(path: Path) -> PublicKey:
    try:
        return public_key_from_pem(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read public key {path}: {exc.strerror}") from exc


def load_recipient_public(path: Path) -> RecipientPublic:
    try:
        return RecipientPublic.from_dict(orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read hub recipient key {path}: {exc}") from exc
