"""The signed global configuration (cấu hình toàn cục): registry + trust anchors, versioned,
with an expiry, signed by the federation operator as a JWS (RFC 7515, General JSON
Serialization).

Payload: canonical JSON (keys sorted, no insignificant white space, UTF-8; for this data —
strings, integers, booleans — identical to RFC 8785 JCS)::

    {"format": "lienthong-globalconf/1", "instance": "VN", "version": 7,
     "issued_at": "2026-11-23T12:00:00Z", "expires_at": "2026-11-30T12:00:00Z",
     "trust_anchors": [PEM, ...], "registry": {declarative registry}}

Signatures: one ``ES256`` (ECDSA P-256, raw r‖s) and optionally one ``ML-DSA-65``; each
protected header carries ``alg``, ``typ`` and ``x5c`` (the signer's certificate, then its
intermediates). A verifier checks **every** signature and its chain against the federation
root it trusts, and requires at least one ``ES256`` signature.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import utils
from cryptography.hazmat.primitives.serialization import Encoding

from lienthong.errors import InputError, SignatureError
from lienthong.federation.dump import registry_to_dict
from lienthong.federation.model import Registry
from lienthong.trust.keys import Algorithm, Signer

FORMAT = "lienthong-globalconf/1"
# Versions stay exact in every JSON implementation (IEEE double): at most 2^53 - 1.
MAX_VERSION = 2**53 - 1
TYP = "lienthong-globalconf+jws"
JWS_ALG = {Algorithm.ECDSA_P256: "ES256", Algorithm.ML_DSA_65: "ML-DSA-65"}
_DER = Encoding.DER


@dataclass(frozen=True)
class GlobalConfiguration:
    """A verified global configuration. ``digest`` is SHA-256 (hex) of the signed payload."""

    version: int
    issued_at: dt.datetime
    expires_at: dt.datetime
    instance: str
    trust_anchors: tuple[str, ...]
    registry: Registry
    digest: str
    signed_by: tuple[str, ...] = ()

    def roots(self) -> list[x509.Certificate]:
        """The CA certificates members' certificates must chain to."""
        return [x509.load_pem_x509_certificate(pem.encode()) for pem in self.trust_anchors]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise SignatureError(f"configuration {what} is not base64url") from exc


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON: sorted keys, compact separators, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_payload(
    registry: Registry,
    *,
    version: int,
    issued_at: dt.datetime,
    expires_at: dt.datetime,
    trust_anchors: Sequence[str],
) -> bytes:
    """The canonical payload bytes that the operator signs."""
    if version < 1:
        raise InputError(f"configuration version must be a positive integer, got {version}")
    if version > MAX_VERSION:
        raise InputError(
            f"configuration version {version} is above the maximum {MAX_VERSION} (2^53-1)"
        )
    if expires_at <= issued_at:
        raise InputError("configuration must expire after it is issued")
    return canonical_json(
        {
            "format": FORMAT,
            "instance": registry.instance,
            "version": version,
            "issued_at": _iso(issued_at),
            "expires_at": _iso(expires_at),
            "trust_anchors": list(trust_anchors),
            "registry": registry_to_dict(registry),
        }
    )


def sign_payload(
    payload: bytes, signers: Sequence[tuple[Signer, Sequence[x509.Certificate]]]
) -> bytes:
    """JWS General JSON Serialization of ``payload``, one signature per (signer, chain)."""
    if not signers:
        raise InputError("at least one signer is needed")
    encoded = b64url(payload)
    signatures = []
    for signer, chain in signers:
        header = {
            "alg": JWS_ALG[signer.algorithm],
            "typ": TYP,
            "x5c": [base64.b64encode(c.public_bytes(_DER)).decode() for c in chain],
        }
        protected = b64url(canonical_json(header))
        raw = signer.sign(f"{protected}.{encoded}".encode("ascii"))
        if signer.algorithm is Algorithm.ECDSA_P256:
            r, s = utils.decode_dss_signature(raw)  # JWS ES256 wants raw r‖s, not DER
            raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        signatures.append({"protected": protected, "signature": b64url(raw)})
    return canonical_json({"payload": encoded, "signatures": signatures})
