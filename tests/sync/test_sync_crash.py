"""kill -9 of the agency and the hub at random moments: the result is still exact."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from crashtools import Drill, expected_split


def check_exact(drill: Drill) -> None:
    keys, quarantined, seqs = drill.consolidated()
    valid, bad = expected_split(drill.rows)
    assert keys == valid  # no row lost
    assert sorted(quarantined) == sorted(bad)  # quarantine complete, nothing twice
    assert seqs == list(range(1, len(seqs) + 1))  # every batch applied once, in order


def test_kill9_agency_and_hub_during_sync(tmp_path: Path) -> None:
    drill = Drill(tmp_path, rows=10_000, batch_size=500)
    drill.setup()
    try:
        drill.run(kills=5, grow=4_000)
    finally:
        drill.stop()
    print(drill.summary())
    check_exact(drill)
    assert drill.rows == 30_000
    assert sum(drill.kills.values()) == 5


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LT_SLOW"), reason="200k rows x 10 kills: set LT_SLOW=1")
def test_kill9_200k_rows_10_kills(tmp_path: Path) -> None:
    drill = Drill(tmp_path, rows=100_000, batch_size=2000)
    drill.setup()
    try:
        drill.run(kills=10, timeout=900, grow=10_000)  # 100k + 10 × 10k = 200k rows
    finally:
        drill.stop()
    print(drill.summary())
    check_exact(drill)
    assert drill.rows == 200_000
    assert sum(drill.kills.values()) == 10
