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


def load_node(directory: Path) -> NodeSettings:
    """Read ``node.json`` (or take the defaults when it is absent)."""
    path = directory / "node.json"
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return NodeSettings(directory)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"{path}: unsupported schema version (expected {SCHEMA_VERSION})")
    unknown = set(data) - KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    base = NodeSettings(directory)
    try:
        return NodeSettings(
            directory,
            identity=data.get("identity"),
            keystore=dict(data.get("keystore") or base.keystore),
            certificates={
                str(k): str(v) for k, v in (data.get("certificates") or base.certificates).items()
            },
            status={str(k): str(v) for k, v in (data.get("status") or {}).items()},
            status_grace_hours=int(data.get("status_grace_hours", 24)),
            globalconf=str(data.get("globalconf") or "globalconf"),
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: malformed field: {exc}") from exc
