"""The demo step on the synthetic agency databases: reconciled, with a non-empty quarantine."""

from __future__ import annotations

from pathlib import Path

from lienthong.demo import DemoContext
from lienthong.sync.demo import run as sync_step
from lienthong.synth.demo import run as synth_step


def test_demo_step_reconciles(tmp_path: Path) -> None:
    ctx = DemoContext(tmp_path, citizens=600)
    synth_step(ctx)
    result = sync_step(ctx)
    assert result["read"] == result["applied"] + result["quarantined"]
    assert result["quarantined"] > 0 and result["reconciled"]
    assert set(result["sources"]) == {"population", "health", "education", "tax"}
    assert result["transport"] == "direct"
