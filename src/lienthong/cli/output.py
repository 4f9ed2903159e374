"""Shared output helpers: one JSON object for machines, rich text for people."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Console
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


def emit_json(obj: Any) -> None:
    """Print ``obj`` as one JSON document on stdout (UTF-8, non-ASCII kept)."""
    sys.stdout.write(
        orjson.dumps(
            obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str
        ).decode()
        + "\n"
    )
    sys.stdout.flush()


def fail(message: str, exit_code: int = 1) -> None:
    """Print one error line on stderr and exit (used by the edge handler only).

    The message is text, never markup: "[hub]" or a user's "[/red]" print as they are.
    """
    error_line(message)
    raise SystemExit(exit_code)


def error_line(message: str) -> None:
    """Print ``error: message`` on stderr (text, never markup) without exiting."""
    line = Text("error:", style="bold red").append(" ").append(message, style="")
    err_console.print(line, highlight=False, soft_wrap=True)
