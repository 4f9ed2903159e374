"""The operator side: turn a validated registry into a signed global configuration file."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from lienthong.errors import InputError
from lienthong.federation.globalconf import (
    MAX_VERSION,
    b64url_decode,
    build_payload,
    sign_payload,
)
from lienthong.federation.model import Registry
from lienthong.federation.store import write_atomic
from lienthong.trust.identity import Identity, identity_of, member_of
from lienthong.trust.keys import Signer
from lienthong.trust.x509 import Usage, verify_chain

_DURATION = re.compile(r"(\d+)\s*([dhm])")
MAX_DURATION = dt.timedelta(days=366)  # a configuration, a warning window: at most a year


def parse_duration(text: str) -> dt.timedelta:
    """``7d``, ``36h``, ``90m`` or combinations like ``1d12h``."""
    parts = _DURATION.findall(text.strip().lower())
    if not parts or _DURATION.sub("", text.strip().lower()).strip():
        raise InputError(f"duration {text!r} must look like 7d, 36h or 90m")
    unit = {"d": "days", "h": "hours", "m": "minutes"}
    total = dt.timedelta()
    try:
        for value, u in parts:
            total += dt.timedelta(**{unit[u]: int(value)})
    except OverflowError:
        total = MAX_DURATION + dt.timedelta(days=1)
    if total <= dt.timedelta(0):
        raise InputError(f"duration {text!r} must be positive")
    if total > MAX_DURATION:
        raise InputError(f"duration {text!r} is longer than the maximum {MAX_DURATION.days}d")
    return total


def published_version(path: Path) -> int:
    """Version of an already published document at ``path`` (0 when there is none).

    Read without verification: it is the operator's own output, used only to auto-increment.
    """
    try:
        doc = json.loads(path.read_bytes())
        payload = json.loads(b64url_decode(doc["payload"], "payload"))
        return int(payload["version"])
    except FileNotFoundError:
        return 0
    except (NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        raise InputError(f"cannot use --out {path}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path} is not a published configuration; remove it or use --version"
        ) from exc


def publish(
    registry: Registry,
    *,
    out: Path,
    signers: Sequence[tuple[Signer, Sequence[x509.Certificate]]],
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    now: dt.datetime,
    valid_for: dt.timedelta,
    version: int | None = None,
    allow_version_jump: bool = False,
    record: Path | None = None,
) -> tuple[int, dt.datetime]:
    """Sign ``registry`` and write it to ``out``; return (version, expires_at).

    The last published version is the higher of the one at ``out`` and the one noted in
    ``record`` (a small JSON file the CLI keeps in the CA directory, per instance, updated
    after each publication). ``version`` defaults to it plus one; an explicit version may
    be at most that (``allow_version_jump`` lifts this, never the 2^53-1 cap). Each signer's
    chain is checked before signing, so an operator cannot publish what gateways will refuse.
    """
    previous = max(published_version(out), _recorded_version(record, registry.instance))
    if version is None:
        version = previous + 1
    elif version <= previous:
        raise InputError(
            f"version {version} is not above the published version {previous}; "
            "gateways refuse roll-back"
        )
    elif version > previous + 1 and not allow_version_jump:
        raise InputError(
            f"version {version} skips versions after the last published version {previous}: "
            f"use {previous + 1}, or --allow-version-jump to skip on purpose "
            "(gateways then refuse every version below it)"
        )
    if version > MAX_VERSION:
        raise InputError(f"version {version} is above the maximum {MAX_VERSION} (2^53-1)")
    for signer, chain in signers:
        if not chain:
            raise InputError("each signer needs its certificate")
        if chain[0].public_key() != signer.public_key():
            raise InputError("the operator certificate does not match the operator key")
        verify_chain(chain[0], intermediates=chain[1:], roots=roots, now=now, usage=Usage.SIGNING)
        _check_operator(registry, identity_of(chain[0]))
    anchors = [c.public_bytes(Encoding.PEM).decode() for c in [*roots, *intermediates]]
    expires_at = now + valid_for
    payload = build_payload(
        registry, version=version, issued_at=now, expires_at=expires_at, trust_anchors=anchors
    )
    write_atomic(out, sign_payload(payload, signers))
    if record is not None:
        _record_version(record, registry.instance, version, out, now)
    return version, expires_at.replace(microsecond=0)


def _read_record(record: Path | None) -> dict[str, Any]:
    if record is None:
        return {}
    try:
        data = json.loads(record.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InputError(f"{record} is unreadable: {exc}; repair or remove it") from exc
    if not isinstance(data, dict):
        raise InputError(f"{record} is not a JSON object; repair or remove it")
    return data


def _recorded_version(record: Path | None, instance: str) -> int:
    entry = _read_record(record).get(instance)
    version = entry.get("version") if isinstance(entry, dict) else None
    if isinstance(version, bool) or not isinstance(version, int):
        return 0
    return version


def _record_version(record: Path, instance: str, version: int, out: Path, now: dt.datetime) -> None:
    data = _read_record(record)
    data[instance] = {"version": version, "out": str(out), "published_at": now.isoformat()}
    write_atomic(record, json.dumps(data, indent=2).encode())


def _check_operator(registry: Registry, signer: Identity) -> None:
    """The signer must be the operator the registry names for its national platform."""
    root = next((p for p in registry.platforms if p.parent is None), None)
    if root is not None and root.operator is not None and member_of(signer) != root.operator:
        raise InputError(
            f"the signing certificate is for {signer}, but the registry names "
            f"{root.operator} as operator of {root.code}"
        )


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint (lower-case hex of the DER), as the registry records it."""
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex()


def x5c_of(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
