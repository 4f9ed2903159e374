"""``lienthong demo`` command.

The human summary is one short block per step (synth, trust, exchange, …): one line per
fact, nested objects flattened to dotted keys, small objects on one line, and every path in
full on its own line (never wrapped), so it can be copied. ``--json`` prints the same result
as one JSON object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from lienthong.cli.output import console, emit_json
from lienthong.demo import DemoContext, run_demo

app = typer.Typer()

_INLINE_ITEMS = 8  # a mapping of at most this many short scalars is printed on one line
_INLINE_WIDTH = 90


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _text(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _looks_like_path(value: Any) -> bool:
    return isinstance(value, str) and (value.startswith("/") or "://" in value)


def _inline(mapping: dict[str, Any]) -> str | None:
    """``k v, k v`` for a small mapping of short scalars (no paths), else None."""
    if not mapping or len(mapping) > _INLINE_ITEMS:
        return None
    texts = [_text(v) for v in mapping.values()]
    if not all(_scalar(v) and not _looks_like_path(v) for v in mapping.values()):
        return None
    if any("," in t for t in texts):  # "k v, k v" would be ambiguous
        return None
    line = ", ".join(f"{k} {t}" for k, t in zip(mapping, texts, strict=True))
    return line if len(line) <= _INLINE_WIDTH and "\n" not in line else None


def summary_lines(value: Any, key: str = "", indent: int = 2) -> list[str]:
    """The readable lines for one value of the demo result (pure; tested)."""
    pad = " " * indent
    label = f"{key}: " if key else ""
    if _scalar(value):
        text = _text(value)
        if "\n" in text:  # e.g. a signed checkpoint note: keep its lines, indented
            return [f"{pad}{key}:"] + [f"{pad}    {line}" for line in text.splitlines()]
        return [f"{pad}{label}{text}"]
    if isinstance(value, dict):
        inline = _inline(value)
        if inline is not None:
            return [f"{pad}{label}{inline}"]
        lines: list[str] = []
        for k, v in value.items():
            lines += summary_lines(v, f"{key}.{k}" if key else str(k), indent)
        return lines
    if isinstance(value, list | tuple):
        if not value:
            return [f"{pad}{label}(none)"]
        if all(_scalar(v) for v in value):
            joined = " → " if key.startswith("route") else ", "
            line = joined.join(_text(v) for v in value)
            if len(line) <= _INLINE_WIDTH and not any(_looks_like_path(v) for v in value):
                return [f"{pad}{label}{line}"]
            return [f"{pad}{key}:"] + [f"{pad}  - {_text(v)}" for v in value]
        lines = []
        for i, v in enumerate(value):
            lines += summary_lines(v, f"{key}[{i}]", indent)
        return lines
    return [f"{pad}{label}{value}"]


def print_summary(result: dict[str, Any]) -> None:
    for step, value in result.items():
        console.rule(str(step))
        for line in summary_lines(value):
            console.print(line, highlight=False, markup=False, soft_wrap=True)


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
        print_summary(result)
