"""The ``synth`` demo step: sources in the work directory, validator findings, shared state."""

from __future__ import annotations

from pathlib import Path

from lienthong.demo import DemoContext
from lienthong.synth.demo import run


def test_demo_step(tmp_path: Path) -> None:
    said: list[str] = []
    ctx = DemoContext(workdir=tmp_path, seed=1, citizens=600, say=said.append)
    result = run(ctx)
    assert result["citizens"] == 600
    assert set(result["sources"]) == {"population", "health", "education", "tax"}
    population = result["sources"]["population"]
    assert population["invalid"] == 0 and population["rows"] >= 600
    health = result["sources"]["health"]
    assert health["invalid"] > 0 and sum(health["reasons"].values()) >= health["invalid"]
    for name, path in ctx.state["sources"].items():
        assert Path(path).is_file() and Path(path).parent == tmp_path / "sources", name
    assert Path(ctx.state["truth"], "links.csv").is_file()
    assert Path(result["truth"]) == tmp_path / "sources" / "truth"
    assert any("population" in line for line in said)


def test_demo_shares_a_sample_of_true_citizens(tmp_path: Path) -> None:
    ctx = DemoContext(workdir=tmp_path, seed=2, citizens=150)
    run(ctx)
    people = ctx.state["citizens"]
    assert len(people) == 100
    assert all(len(p["personal_id"]) == 12 and p["full_name"] for p in people)
