"""Demo step ``synth``: a small federation's source data, and what the validators find in it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from lienthong.synth.checks import check_sqlite_source
from lienthong.synth.config import SynthConfig
from lienthong.synth.generator import generate


def sample_citizens(truth: Path, n: int) -> list[dict[str, str]]:
    """The first ``n`` true citizens of a ground-truth folder, with dictionary field names."""
    out: list[dict[str, str]] = []
    with (truth / "citizens.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if len(out) == n:
                break
            out.append(
                {
                    "personal_id": row["citizen_id"],
                    "full_name": row["full_name"],
                    "date_of_birth": row["birth_date"],
                    "sex": row["sex"],
                }
            )
    return out


def run(ctx: Any) -> dict[str, Any]:
    """Generate ``ctx.citizens`` citizens into ``ctx.workdir / "sources"`` and validate them.

    Leaves ``ctx.state["sources"]`` ({source: SQLite path}), ``ctx.state["exports"]``,
    ``ctx.state["truth"]`` (the ground-truth folder) and ``ctx.state["citizens"]`` (the first
    100 true citizens as dicts: personal_id, full_name, date_of_birth, sex) for later steps.
    """
    report = generate(SynthConfig(citizens=ctx.citizens, seed=ctx.seed), ctx.workdir / "sources")
    ctx.say(
        f"synth: {report['citizens']:,} synthetic citizens (seed {report['seed']}) in "
        f"{len(report['sources'])} agency sources, {report['links']:,} records, "
        f"{sum(report['defects'].values()):,} labelled defects"
    )
    sources: dict[str, Any] = {}
    for name, info in report["sources"].items():
        found = check_sqlite_source(Path(info["path"]), name)
        top = ", ".join(f"{code} {n}" for code, n in list(found["reasons"].items())[:3])
        ctx.say(
            f"  {name:<10} {found['rows']:>7,} rows, {found['invalid']:>5,} invalid"
            + (f" ({top})" if top else "")
        )
        sources[name] = {
            "title": info["title"],
            "rows": found["rows"],
            "path": info["path"],
            "exports": info["exports"],
            "invalid": found["invalid"],
            "reasons": found["reasons"],
            "tables": {t: r["rows"] for t, r in found["tables"].items()},
        }
    ctx.state["sources"] = {name: s["path"] for name, s in sources.items()}
    ctx.state["exports"] = {name: s["exports"] for name, s in sources.items() if s["exports"]}
    ctx.state["truth"] = report["truth"]
    ctx.state["citizens"] = sample_citizens(Path(report["truth"]), 100)
    ctx.say(f"  ground truth (true citizens, record links, defects): {report['truth']}")
    return {
        "citizens": report["citizens"],
        "seed": report["seed"],
        "sources": sources,
        "links": report["links"],
        "defects": report["defects"],
        "truth": report["truth"],
    }
