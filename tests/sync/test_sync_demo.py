"""The demo step on the synthetic agency databases: reconciled, with a non-empty quarantine,
every batch carried by real gateway processes (agency → national platform → hub gateway)."""

from __future__ import annotations

from pathlib import Path

from lienthong.demo import DemoContext
from lienthong.sync.demo import run as sync_step
from lienthong.synth.demo import run as synth_step


def test_demo_step_reconciles(tmp_path: Path) -> None:
    ctx = DemoContext(tmp_path, citizens=600)
    found = synth_step(ctx)
    result = sync_step(ctx)
    assert result["read"] == result["applied"] + result["quarantined"]
    assert result["quarantined"] > 0 and result["reconciled"]
    assert set(result["sources"]) == {"population", "health", "education", "tax"}
    assert result["transport"] == "gateway"
    gateway = result["gateway"]
    assert gateway["route"] == ["BCA-GW", "NDXP", "TTDLQG-GW", "hub"]
    assert gateway["level"] == "SENSITIVE" and gateway["end_to_end_encrypted"] is True
    assert gateway["calls"] == sum(s["batches"] for s in result["sources"].values()) > 0
    assert result["sources"]["tax"]["route"] == ["BTC-GW", "NDXP", "TTDLQG-GW"]
    # one dictionary, one story: what the validators found in each source is exactly what
    # the consolidated database quarantined from it
    for name, source in found["sources"].items():
        assert result["sources"][name]["quarantined"] == source["invalid"], name
