"""Help text laid out once for the whole command tree.

typer (0.29) prints a docstring's single line breaks as they are in the source: in a group's
command list always, and in a command's own ``--help`` after the first paragraph. A docstring
wrapped at the source's line length then prints as ragged lines cut at the wrong places. Each
paragraph is joined into one line here, so the terminal wraps it to its width; a paragraph
marked ``\\b`` (click's "keep as written") is left alone.
"""

from __future__ import annotations

import inspect

import typer
import typer.main


def reflow(text: str) -> str:
    """``text`` with each paragraph's lines joined by single spaces."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
        for p in paragraphs
    )


def reflow_tree(app: typer.Typer) -> None:
    """:func:`reflow` the help of every command and group under ``app``, in place."""
    for command in app.registered_commands:
        text = command.help or inspect.getdoc(command.callback) or ""
        if text:
            command.help = reflow(text)
    for group in app.registered_groups:
        text = typer.main.solve_typer_info_help(group)
        if text:
            group.help = reflow(text)
        if group.typer_instance is not None:
            reflow_tree(group.typer_instance)
