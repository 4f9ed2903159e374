"""A free TCP port on 127.0.0.1 for a listener started a moment later (demo, tests, benches).

A port the kernel hands out for ``bind(0)`` comes from its ephemeral range, the same range it
uses for the local side of outgoing connections: between choosing the port and the child
process binding it, any client connection of the machine may take it ("address already in
use"). So the port is chosen *below* the ephemeral range (Linux:
``/proc/sys/net/ipv4/ip_local_port_range``), where only listeners live, and checked free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 20000  # below: well-known services' territory


def _ephemeral_low() -> int | None:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_port() -> int:
    """A port nothing listens on now, outside the ephemeral range where there is one."""
    low = _ephemeral_low()
    if low is not None and low - _LOWEST > 1000:
        for _ in range(200):
            port = random.randrange(_LOWEST, low)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:  # elsewhere: what the kernel offers
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
