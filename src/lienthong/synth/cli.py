"""``lienthong synth`` command (placeholder until the generator lands)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Generate synthetic citizens and agency source databases.")


@app.callback(invoke_without_command=True)
def synth() -> None:
    """Generate synthetic citizens and agency source databases."""
