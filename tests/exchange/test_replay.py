from __future__ import annotations

import pytest

from lienthong.exchange.protocol import Refused
from lienthong.exchange.replay import ReplayWindow


def test_replay_and_freshness() -> None:
    w = ReplayWindow(window_s=60, max_entries=100)
    w.check_and_record("a", 1000.0, 1000.0)
    with pytest.raises(Refused, match="already seen"):
        w.check_and_record("a", 1000.0, 1001.0)
    with pytest.raises(Refused, match="freshness"):
        w.check_and_record("b", 900.0, 1000.0)
    with pytest.raises(Refused, match="freshness"):
        w.check_and_record("c", 1100.0, 1000.0)


def test_memory_is_bounded_and_forgotten_keys_cannot_replay() -> None:
    w = ReplayWindow(window_s=1000, max_entries=10)
    for i in range(50):
        w.check_and_record(f"k{i}", 1000.0 + i, 1000.0 + i)
    assert len(w) == 10
    with pytest.raises(Refused):
        w.check_and_record("k0", 1000.0, 1050.0)


def test_expired_entries_are_dropped() -> None:
    w = ReplayWindow(window_s=10, max_entries=100)
    w.check_and_record("a", 0.0, 0.0)
    w.check_and_record("b", 100.0, 100.0)
    assert len(w) == 1


def test_nothing_signed_before_the_process_start_is_accepted() -> None:
    """Seen keys are in memory only: after a restart, a request signed before it (even inside
    the window) is refused, so a replay cannot slip through the forgotten keys."""
    w = ReplayWindow(window_s=300, max_entries=100, start=1000.0)
    with pytest.raises(Refused, match="process start") as refused:
        w.check_and_record("a", 999.0, 1001.0)
    assert refused.value.details["maybe_served"] is True  # the gateway refuses it unsigned
    w.check_and_record("b", 1000.5, 1001.0)
