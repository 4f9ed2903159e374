"""``lienthong demo`` command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.pretty import Pretty

from lienthong.cli.output import console, emit_json
from lienthong.demo import DemoContext, run_demo

app = typer.Typer()


@app.command()
def demo(
    workdir: Path = typer.Option(
        Path("demo-work"), "--workdir", help="Directory for every file the demo writes."
    ),
    seed: int = typer.Option(
        1, "--seed", help="Seed of the synthetic data (same seed, same data)."
    ),
    citizens: int = typer.Option(
        2000, "--citizens", min=10, max=200_000, help="Synthetic citizens to generate."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
) -> None:
    """Run the end-to-end story on the embedded default (SQLite, local processes)."""
    say = (lambda _m: None) if json_out else (lambda m: console.print(m, highlight=False))
    ctx = DemoContext(workdir=workdir.resolve(), seed=seed, citizens=citizens, say=say)
    result = run_demo(ctx)
    if json_out:
        emit_json(result)
    else:
        console.rule("summary")
        console.print(Pretty(result))
