"""Listener ports for the demo and the tests: free, and outside the kernel's ephemeral range
(where outgoing connections take their local ports and could take a chosen port first)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lienthong import ports
from lienthong.ports import free_port


def test_free_port_is_bindable_and_outside_the_ephemeral_range() -> None:
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low, high = map(int, ranges.read_text().split()) if ranges.exists() else (0, 0)
    for _ in range(20):
        port = free_port()
        assert not low <= port <= high
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # nothing holds it


def test_free_port_never_hands_out_the_same_port_twice_in_a_row_of_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A testbed asks for all its ports before any process binds one: each must differ, even
    when chance draws the same number again (forced here by a two-port range)."""
    draws = iter([25001, 25001, 25001, 25002, 25001, 25002, 25003])
    monkeypatch.setattr(ports.random, "randrange", lambda _a, _b: next(draws))
    monkeypatch.setattr(ports, "_handed_out", {})
    monkeypatch.setattr(ports, "_ephemeral_low", lambda: 32768)
    assert [free_port(), free_port(), free_port()] == [25001, 25002, 25003]
