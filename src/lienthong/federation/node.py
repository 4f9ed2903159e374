"""A node's settings file (``<node-dir>/node.json``): where its keys, certificates, status
service and global configuration live. Every field is optional; defaults follow the layout
of ``docs/onboarding.md``::

    {"schema_version": 1,
     "identity": "VN/GOV/000.00.00.G01/DAN-CU",           # member or subsystem
     "keystore": {"type": "file", "dir": "keys",
                  "passphrase": {"$env": "LIENTHONG_KEY_PASSPHRASE"}},
     "certificates": {"signing": "signing.pem", "tls": "tls.pem"},   # key label -> PEM
     "status": {"url": "http://127.0.0.1:8650"},            # or {"ca_dir": "../ca"}
     "status_grace_hours": 24,
     "globalconf": "globalconf"}

Secrets are references only (``$env``/``$file``), never values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lienthong.errors import ConfigError
from lienthong.federation.store import write_atomic

SCHEMA_VERSION = 1
DEFAULT_PASSPHRASE_ENV = "LIENTHONG_KEY_PASSPHRASE"
KEYS = {
    "schema_version",
    "identity",
    "keystore",
    "certificates",
    "status",
    "status_grace_hours",
    "globalconf",
}


@dataclass(frozen=True)
class NodeSettings:
    directory: Path
    identity: str | None = None
    keystore: dict[str, Any] = field(
        default_factory=lambda: {
            "type": "file",
            "dir": "keys",
            "passphrase": {"$env": DEFAULT_PASSPHRASE_ENV},
        }
    )
    certificates: dict[str, str] = field(
        default_factory=lambda: {"signing": "signing.pem", "tls": "tls.pem"}
    )
    status: dict[str, str] = field(default_factory=dict)
    status_grace_hours: int = 24
    globalconf: str = "globalconf"

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.directory / p

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "identity": self.identity,
            "keystore": self.keystore,
            "certificates": self.certificates,
            "status": self.status,
            "status_grace_hours": self.status_grace_hours,
            "globalconf": self.globalconf,
        }

    def save(self) -> Path:
        target = self.directory / "node.json"
        write_atomic(target, json.dumps(self.to_dict(), indent=2).encode())
        return target


MAX_GRACE_HOURS = 8760  # a year: beyond that a revoked certificate would never be noticed


def _object(path: Path, data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {key} must be a JSON object, got {type(value).__name__}")
    return value


def _text(path: Path, data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}: {key} must be a string, got {type(value).__name__}")
    return value


def _strings(path: Path, key: str, value: dict[str, Any]) -> dict[str, str]:
    for k, v in value.items():
        if not isinstance(v, str) or not v:
            raise ConfigError(
                f"{path}: {key}.{k} must be a non-empty string, got {type(v).__name__}"
            )
    return {str(k): v for k, v in value.items()}


def _grace(path: Path, data: dict[str, Any]) -> int:
    value = data.get("status_grace_hours", 24)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{path}: status_grace_hours must be a number of hours, got {type(value).__name__}"
        )
    if not 0 <= value <= MAX_GRACE_HOURS or value != int(value):
        raise ConfigError(
            f"{path}: status_grace_hours must be a whole number of hours from 0 to "
            f"{MAX_GRACE_HOURS}, got {value!r}"
        )
    return int(value)


def load_node(directory: Path) -> NodeSettings:
    """Read ``node.json`` (or take the defaults when it is absent); every field type-checked."""
    path = directory / "node.json"
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return NodeSettings(directory)
    except OSError as exc:
        raise ConfigError(f"{path} is unreadable: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"{path}: unsupported schema version (expected {SCHEMA_VERSION})")
    unknown = set(data) - KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    base = NodeSettings(directory)
    certificates = _object(path, data, "certificates")
    status = _object(path, data, "status")
    if status is not None and not status.keys() <= {"url", "ca_dir"}:
        extra = ", ".join(sorted(set(status) - {"url", "ca_dir"}))
        raise ConfigError(f"{path}: status has unknown keys {extra} (use url or ca_dir)")
    keystore = _object(path, data, "keystore")
    if keystore is not None and keystore.get("type") not in ("file", "pkcs11"):
        raise ConfigError(
            f'{path}: keystore.type must be "file" or "pkcs11", got {keystore.get("type")!r}'
        )
    return NodeSettings(
        directory,
        identity=_text(path, data, "identity"),
        keystore=dict(keystore or base.keystore),
        certificates=_strings(path, "certificates", certificates or base.certificates),
        status=_strings(path, "status", status or {}),
        status_grace_hours=_grace(path, data),
        globalconf=_text(path, data, "globalconf") or "globalconf",
    )
