"""``lienthong synth``: generate synthetic citizens and agency source databases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import typer
from rich.table import Table as RichTable

from lienthong.cli.output import console, emit_json
from lienthong.errors import InputError
from lienthong.synth.config import DEFECT_TYPES, DefectRates, SynthConfig, parse_rate_overrides
from lienthong.synth.generator import ServerTarget, generate

app = typer.Typer(
    help="Generate synthetic citizens and agency source databases (deterministic by --seed).",
    add_completion=False,
)


def _as_of(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--as-of {value!r} is not a date (yyyy-mm-dd)") from None


def _server(pg: str | None, mariadb: str | None, prefix: str) -> ServerTarget | None:
    if pg and mariadb:
        raise InputError("give either --pg or --mariadb, not both")
    if pg:
        from lienthong.synth.writers.postgres import PostgresTarget

        return PostgresTarget(pg, prefix)
    if mariadb:
        from lienthong.synth.writers.mariadb import MariaDbTarget

        return MariaDbTarget.from_url(mariadb, prefix)
    return None


@app.command()
def synth(
    citizens: int = typer.Option(2000, "--citizens", help="Number of true citizens."),
    seed: int = typer.Option(1, "--seed", help="Seed: the same seed gives the same bytes."),
    out_arg: str = typer.Option("synth-out", "--out", help="Output directory."),
    defect_rate: float | None = typer.Option(
        None, "--defect-rate", help="Rate of every defect type (default: a realistic profile)."
    ),
    defect: list[str] | None = typer.Option(
        None, "--defect", help=f"Override one rate, TYPE=RATE; types: {', '.join(DEFECT_TYPES)}."
    ),
    as_of: str = typer.Option("2026-01-01", "--as-of", help="Reference date (yyyy-mm-dd)."),
    pg: str | None = typer.Option(
        None, "--pg", help="Write the sources to PostgreSQL (DSN) instead of SQLite files."
    ),
    mariadb: str | None = typer.Option(
        None, "--mariadb", help="Write the sources to MariaDB (mysql://user:pw@host:port/db)."
    ),
    prefix: str = typer.Option("synth_", "--prefix", help="Table-name prefix on database servers."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Generate synthetic citizens and agency source databases (deterministic by --seed).

    Writes the population, health-insurance, education and tax sources and OUT/truth/."""
    rates = DefectRates() if defect_rate is None else DefectRates.uniform(defect_rate)
    rates = rates.with_overrides(parse_rate_overrides(defect or []))
    if not out_arg.strip():
        raise InputError("--out is empty: give an output directory, e.g. --out synth-out")
    out = Path(out_arg)
    cfg = SynthConfig(citizens=citizens, seed=seed, as_of=_as_of(as_of), rates=rates)
    report = generate(cfg, out, _server(pg, mariadb, prefix))
    if json_out:
        emit_json(report)
    else:
        _print(report)


def _print(report: dict[str, Any]) -> None:
    table = RichTable(title=f"{report['citizens']:,} citizens, seed {report['seed']}")
    for col in ("source", "backend", "rows", "tables", "where"):
        table.add_column(col)
    for name, s in report["sources"].items():
        tables = ", ".join(f"{t} {n:,}" for t, n in s["tables"].items())
        table.add_row(name, s["backend"], f"{s['rows']:,}", tables, s["path"])
    console.print(table)
    defects = ", ".join(f"{k} {v:,}" for k, v in report["defects"].items())
    console.print(f"defects: {defects}", highlight=False)
    console.print(
        f"truth: {report['truth']}  ({report['elapsed_s']} s, "
        f"{report['citizens_per_s']:,} citizens/s)",
        highlight=False,
    )
