"""Listener ports for the demo and the tests: free, and outside the kernel's ephemeral range
(where outgoing connections take their local ports and could take a chosen port first)."""

from __future__ import annotations

import socket
from pathlib import Path

from lienthong.ports import free_port


def test_free_port_is_bindable_and_outside_the_ephemeral_range() -> None:
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low, high = map(int, ranges.read_text().split()) if ranges.exists() else (0, 0)
    for _ in range(20):
        port = free_port()
        assert not low <= port <= high
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # nothing holds it
