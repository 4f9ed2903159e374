"""Verifying a signed global configuration: structure, every signature, every signer chain,
signer identity, format and freshness. Pure: ``now`` and the trusted roots are passed in.

Errors are precise (``SignatureError`` for an unsigned/tampered document or a bad signature,
``CertificateError`` for a signer that does not chain to the federation root or is not the
expected operator, ``ConfigError`` for an expired, not-yet-valid or malformed payload).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, utils

from lienthong.errors import CertificateError, ConfigError, InputError, SignatureError
from lienthong.federation.globalconf import (
    FORMAT,
    JWS_ALG,
    MAX_VERSION,
    TYP,
    GlobalConfiguration,
    b64url_decode,
)
from lienthong.federation.loader import registry_from_dict
from lienthong.trust.identity import Identity, identity_of
from lienthong.trust.keys import algorithm_of, verify_signature
from lienthong.trust.x509 import Usage, verify_chain

_ALG_OF = {v: k for k, v in JWS_ALG.items()}
CLOCK_SKEW = dt.timedelta(minutes=5)


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureError(f"configuration {what} is not JSON: {exc}") from exc


def _envelope(document: bytes) -> tuple[str, list[dict[str, Any]]]:
    doc = _json(document, "document")
    if not isinstance(doc, dict) or "format" in doc:
        raise SignatureError(
            "configuration is not signed (expected a JWS with 'payload' and "
            "'signatures', got a bare document)"
        )
    sigs = doc.get("signatures")
    if not isinstance(doc.get("payload"), str) or not isinstance(sigs, list) or not sigs:
        raise SignatureError("configuration is not signed (no JWS payload or no signatures)")
    if not all(
        isinstance(s, dict)
        and isinstance(s.get("protected"), str)
        and isinstance(s.get("signature"), str)
        for s in sigs
    ):
        raise SignatureError("configuration JWS has a malformed signature entry")
    return doc["payload"], sigs


def _chain(header: dict[str, Any]) -> list[x509.Certificate]:
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise CertificateError("configuration signature has no x5c certificate chain")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c]
    except (binascii.Error, ValueError, TypeError) as exc:
        raise CertificateError(f"configuration x5c holds a malformed certificate: {exc}") from exc


def _verify_one(
    entry: dict[str, Any],
    encoded_payload: str,
    *,
    roots: Sequence[x509.Certificate],
    now: dt.datetime,
    operator: Identity | None,
) -> tuple[str, Identity]:
    header = _json(b64url_decode(entry["protected"], "protected header"), "protected header")
    if not isinstance(header, dict) or header.get("typ") != TYP:
        raise SignatureError(f"configuration signature header typ is not {TYP!r}")
    alg = header.get("alg")
    if alg not in _ALG_OF:
        raise SignatureError(
            f"configuration signature algorithm {alg!r} is not allowed (use {', '.join(_ALG_OF)})"
        )
    chain = _chain(header)
    leaf = chain[0]
    verify_chain(leaf, intermediates=chain[1:], roots=roots, now=now, usage=Usage.SIGNING)
    identity = identity_of(leaf)
    if operator is not None and identity != operator:
        raise CertificateError(
            f"configuration is signed by {identity}, not by the federation operator {operator}",
            code="wrong_signer",
        )
    key = leaf.public_key()
    raw = b64url_decode(entry["signature"], "signature")
    if not isinstance(key, ec.EllipticCurvePublicKey | mldsa.MLDSA65PublicKey) or (
        _ALG_OF[alg] is not algorithm_of(key)
    ):
        raise SignatureError(f"configuration signature {alg} does not match the signer's key")
    if isinstance(key, ec.EllipticCurvePublicKey):
        if len(raw) != 64:
            raise SignatureError(
                f"configuration ES256 signature by {identity} is malformed (must be 64 bytes)"
            )
        raw = utils.encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    signing_input = f"{entry['protected']}.{encoded_payload}".encode("ascii")
    try:
        verify_signature(key, raw, signing_input)
    except SignatureError as exc:
        raise SignatureError(
            f"configuration signature ({alg}) by {identity} does not verify: "
            "the document was altered or signed by another key"
        ) from exc
    return alg, identity


def verify_configuration(
    document: bytes,
    *,
    roots: Sequence[x509.Certificate],
    now: dt.datetime,
    operator: Identity | None = None,
    require: Sequence[str] = ("ES256",),
) -> GlobalConfiguration:
    """Verify a signed configuration and return it; raise a TrustError or ConfigError.

    Every signature must verify with a certificate that chains to ``roots`` for signing at
    ``now`` (and belongs to ``operator`` when given); the algorithms in ``require`` must all be
    present. The payload must not be expired or issued in the future (beyond 5 minutes of
    clock skew).
    """
    encoded, entries = _envelope(document)
    done = [_verify_one(e, encoded, roots=roots, now=now, operator=operator) for e in entries]
    missing = set(require) - {alg for alg, _ in done}
    if missing:
        raise SignatureError(
            f"configuration lacks a required {', '.join(sorted(missing))} signature"
        )
    payload = b64url_decode(encoded, "payload")
    config = parse_payload(payload, signed_by=tuple(sorted({str(i) for _, i in done})))
    if now >= config.expires_at:
        raise ConfigError(
            f"configuration version {config.version} expired at "
            f"{config.expires_at:%Y-%m-%d %H:%M:%SZ}",
            code="config_expired",
        )
    if config.issued_at > now + CLOCK_SKEW:
        raise ConfigError(
            f"configuration version {config.version} is issued in the future "
            f"({config.issued_at:%Y-%m-%d %H:%M:%SZ}); check the clock",
            code="config_not_yet_valid",
        )
    return config


def _timestamp(value: Any, what: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise ConfigError(f"configuration {what} {value!r} is not YYYY-MM-DDTHH:MM:SSZ") from exc


def parse_payload(payload: bytes, *, signed_by: tuple[str, ...] = ()) -> GlobalConfiguration:
    """Decode the (already authenticated) payload into a GlobalConfiguration."""
    data = _json(payload, "payload")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"configuration payload is not in format {FORMAT!r}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"configuration version {version!r} is not a positive integer")
    if version > MAX_VERSION:
        raise ConfigError(
            f"configuration version {version} is above the maximum {MAX_VERSION} (2^53-1): "
            "refused as absurd"
        )
    anchors = data.get("trust_anchors")
    if not isinstance(anchors, list) or not all(isinstance(a, str) for a in anchors):
        raise ConfigError("configuration trust_anchors must be a list of PEM certificates")
    try:
        registry = registry_from_dict(data.get("registry"), source="configuration registry")
    except InputError as exc:
        raise ConfigError(exc.message) from exc
    if registry.instance != data.get("instance"):
        raise ConfigError("configuration instance differs from its registry's instance")
    return GlobalConfiguration(
        version=version,
        issued_at=_timestamp(data.get("issued_at"), "issued_at"),
        expires_at=_timestamp(data.get("expires_at"), "expires_at"),
        instance=registry.instance,
        trust_anchors=tuple(anchors),
        registry=registry,
        digest=hashlib.sha256(payload).hexdigest(),
        signed_by=signed_by,
    )
