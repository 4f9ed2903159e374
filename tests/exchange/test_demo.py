from __future__ import annotations

from pathlib import Path

from lienthong.demo import DemoContext
from lienthong.exchange.demo import run


def test_demo_step(tmp_path: Path) -> None:
    result = run(DemoContext(workdir=tmp_path))
    assert result["calls_ok"] == 4
    assert result["calls_refused"] == {
        "LT.ACCESS_DENIED": 1,
        "LT.CLEARANCE": 1,
        "LT.BAD_SIGNATURE": 1,
    }
    assert result["mat_end_to_end"] is True and result["gateway_healthy"] is True
