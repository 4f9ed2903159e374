"""A minimal gateway config for the config tests."""

from __future__ import annotations

from typing import Any

# Enough for load_config (it reads no other file); `check` and `serve` would then need the
# files it names, which do not exist.
MINIMAL: dict[str, Any] = {
    "node": "A",
    "role": "agency",
    "peer": {"port": 1},
    "internal": {"port": 2},
    "tls": {"cert": "c", "key": "k", "roots": "r"},
    "directory": "d",
    "state_dir": "s",
    "passphrase": {"$env": "X"},
}
