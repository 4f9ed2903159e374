"""PKCS#11 key store (hardware security modules; tested with SoftHSM2) via ``python-pkcs11``.

Keys are generated inside the token as non-extractable, sensitive private keys; signing runs on
the token and only the signature comes out. PKCS#11 returns ECDSA signatures as raw ``r || s``;
we convert them to DER so they are interchangeable with file-held keys.

ML-DSA needs PKCS#11 3.2 mechanisms (``CKM_ML_DSA_KEY_PAIR_GEN``/``CKM_ML_DSA``); tokens that
lack them (SoftHSM2 2.6) are detected and reported with :class:`KeyStoreError`.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from lienthong.errors import BackendError, InputError, KeyStoreError, NotFound
from lienthong.trust.keys import Algorithm, PublicKey, Signer
from lienthong.trust.keystore import validate_label
from lienthong.trust.secrets import parse_secret_ref, resolve_secret

_LIBS: dict[str, Any] = {}  # a PKCS#11 module may be initialised once per process


def _lib(module: str) -> Any:
    if module not in _LIBS:
        try:
            _LIBS[module] = pkcs11.lib(module)
        except (RuntimeError, OSError, pkcs11.PKCS11Error) as exc:
            raise BackendError(f"cannot load PKCS#11 module {module}: {exc}") from exc
    return _LIBS[module]


class Pkcs11Signer:
    """A signer whose private key stays inside a PKCS#11 token."""

    def __init__(self, store: Pkcs11KeyStore, label: str, public_key: PublicKey) -> None:
        self._store = store
        self.label = label
        self._public_key = public_key

    @property
    def algorithm(self) -> Algorithm:
        return Algorithm.ECDSA_P256

    def public_key(self) -> PublicKey:
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-256 over SHA-256(data), computed by the token; returns a DER signature."""
        raw = self._store.sign_raw(self.label, hashlib.sha256(data).digest())
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )


class _TokenSession:
    """One logged-in session per (module, token) per process: PKCS#11 login state is shared by
    all sessions of an application, so two stores on one token must share it too."""

    def __init__(self, module: str, token_label: str, pin: str) -> None:
        self.lock = threading.RLock()
        self.users = 0
        try:
            self.token = _lib(module).get_token(token_label=token_label)
        except pkcs11.NoSuchToken as exc:
            raise NotFound(f"no PKCS#11 token labelled {token_label!r}") from exc
        try:
            self.session = self.token.open(user_pin=pin, rw=True)
        except pkcs11.PinIncorrect as exc:
            raise KeyStoreError(f"wrong PIN for token {token_label!r}") from exc
        except pkcs11.PKCS11Error as exc:
            raise BackendError(f"cannot open token {token_label!r}: {exc!r}") from exc


_SESSIONS: dict[tuple[str, str], _TokenSession] = {}
_SESSIONS_LOCK = threading.Lock()


class Pkcs11KeyStore:
    """Keys in a PKCS#11 token, found by label; one logged-in session shared under a lock."""

    def __init__(self, module: str, token: str, pin_ref: Any) -> None:
        if not module or not token:
            raise InputError("a pkcs11 key store needs 'module' (library path) and 'token' (label)")
        self.module = module
        self.token_label = token
        self.pin_ref = parse_secret_ref(pin_ref, what="PKCS#11 user PIN")
        self._shared: _TokenSession | None = None
        self._keys: dict[str, Any] = {}

    @property
    def _lock(self) -> threading.RLock:
        return self._connect().lock

    def _connect(self) -> _TokenSession:
        if self._shared is None:
            key = (self.module, self.token_label)
            with _SESSIONS_LOCK:
                if key not in _SESSIONS:
                    pin = resolve_secret(self.pin_ref, what="PKCS#11 user PIN").decode()
                    _SESSIONS[key] = _TokenSession(self.module, self.token_label, pin)
                self._shared = _SESSIONS[key]
                self._shared.users += 1
        return self._shared

    def _open(self) -> Any:
        return self._connect().session

    def supports(self, algorithm: Algorithm) -> bool:
        """Whether the token can generate and sign with ``algorithm`` keys."""
        with self._lock:
            mechanisms = set(self._connect().token.slot.get_mechanisms())
        if algorithm is Algorithm.ECDSA_P256:
            return Mechanism.EC_KEY_PAIR_GEN in mechanisms and Mechanism.ECDSA in mechanisms
        return Mechanism.ML_DSA_KEY_PAIR_GEN in mechanisms and Mechanism.ML_DSA in mechanisms

    def generate(self, label: str, algorithm: Algorithm = Algorithm.ECDSA_P256) -> Signer:
        validate_label(label)
        if not self.supports(algorithm):
            raise KeyStoreError(
                f"PKCS#11 token {self.token_label!r} does not support {algorithm.value} "
                "(no key-generation/sign mechanism; SoftHSM2 2.6 lacks ML-DSA): "
                "use a token with PKCS#11 3.2 ML-DSA or the file key store"
            )
        with self._lock:
            session = self._open()
            if self._find(session, label, ObjectClass.PRIVATE_KEY) is not None:
                raise InputError(f"key {label!r} already exists in token {self.token_label!r}")
            try:
                params = session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                    local=True,
                )
                params.generate_keypair(
                    store=True,
                    label=label,
                    private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
                )
            except pkcs11.PKCS11Error as exc:
                raise BackendError(f"key generation in token failed: {exc!r}") from exc
        return self.signer(label)

    def _find(self, session: Any, label: str, cls: ObjectClass) -> Any:
        found = list(session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label}))
        return found[0] if found else None

    def _private(self, label: str) -> Any:
        if label not in self._keys:
            key = self._find(self._open(), label, ObjectClass.PRIVATE_KEY)
            if key is None:
                raise NotFound(f"no key {label!r} in token {self.token_label!r}")
            self._keys[label] = key
        return self._keys[label]

    def sign_raw(self, label: str, digest: bytes) -> bytes:
        """Raw ECDSA (``r || s``) over a precomputed digest, inside the token."""
        with self._lock:
            key = self._private(label)
            try:
                return bytes(key.sign(digest, mechanism=Mechanism.ECDSA))
            except pkcs11.PKCS11Error as exc:
                raise BackendError(f"token signing failed for {label!r}: {exc!r}") from exc

    def public_key(self, label: str) -> PublicKey:
        with self._lock:
            pub = self._find(self._open(), validate_label(label), ObjectClass.PUBLIC_KEY)
            if pub is None:
                raise NotFound(f"no key {label!r} in token {self.token_label!r}")
            key = load_der_public_key(encode_ec_public_key(pub))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise KeyStoreError(f"key {label!r} in the token is not an EC key")
        return key

    def signer(self, label: str) -> Signer:
        return Pkcs11Signer(self, label, self.public_key(label))

    def labels(self) -> list[str]:
        with self._lock:
            objs = self._open().get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
            return sorted(str(o.label) for o in objs)

    def describe(self) -> dict[str, Any]:
        return {
            "type": "pkcs11",
            "module": self.module,
            "token": self.token_label,
            "pin": self.pin_ref,
        }

    def close(self) -> None:
        """Release the shared session; the last user logs out (keys stay in the token)."""
        shared, self._shared = self._shared, None
        self._keys.clear()
        if shared is None:
            return
        with _SESSIONS_LOCK:
            shared.users -= 1
            if shared.users == 0:
                _SESSIONS.pop((self.module, self.token_label), None)
                with shared.lock:
                    shared.session.close()


def reload_module(module: str) -> None:
    """Re-initialise a loaded PKCS#11 module so it re-reads its configuration (SoftHSM2 reads
    ``SOFTHSM2_CONF`` at initialisation). Every shared session on it is closed: for tests and
    benchmarks that create tokens on the fly, not for a running gateway."""
    lib = _LIBS.get(module)
    if lib is None:
        return
    with _SESSIONS_LOCK:
        for key in [k for k in _SESSIONS if k[0] == module]:
            shared = _SESSIONS.pop(key)
            with shared.lock:
                shared.session.close()
    try:
        lib.reinitialize()
    except pkcs11.PKCS11Error as exc:
        raise BackendError(f"cannot re-initialise PKCS#11 module {module}: {exc!r}") from exc
