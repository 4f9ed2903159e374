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
# the ports this process handed out lately: a testbed asks for several before any child binds
# one, and "free now" would give the same port twice (seen: a gateway and the sync hub of the
# demo on one port, "address already in use"); bounded, the oldest are long bound or released
_RECENT = 1024
_handed_out: dict[int, None] = {}


def _remember(port: int) -> int:
    _handed_out[port] = None
    if len(_handed_out) > _RECENT:
        del _handed_out[next(iter(_handed_out))]
    return port


def _ephemeral_low() -> int | None:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_port() -> int:
    """A port nothing listens on now, outside the ephemeral range where there is one, and
    none of the last ones this process handed out."""
    low = _ephemeral_low()
    if low is not None and low - _LOWEST > 1000:
        for _ in range(200):
            port = random.randrange(_LOWEST, low)
            if port in _handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return _remember(port)
    for _ in range(200):  # elsewhere: what the kernel offers
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            return _remember(port)
    raise OSError("no free TCP port on 127.0.0.1")
