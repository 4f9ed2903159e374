"""``python -m lienthong.exchange serve --config FILE``: the gateway without the whole CLI.

Gateway processes start through here so that they import only what they need. Errors are
mapped like the root CLI does: one line, exit 2 for usage and input, 1 for failures.
"""

from __future__ import annotations

import sys

import click
import typer

from lienthong.cli.output import fail
from lienthong.errors import INPUT_OS_ERRORS, LienthongError
from lienthong.exchange.cli import app


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    try:
        app(args=args or ["--help"], standalone_mode=False)
    except (typer.Exit, click.exceptions.Exit) as exc:
        raise SystemExit(exc.exit_code) from None
    except (typer.TyperException, click.ClickException) as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        fail(" ".join(message.split()), 2)
    except LienthongError as exc:
        fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except OSError as exc:  # as lienthong.cli.main: a path that does not fit is bad input
        paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
        where = f"{' → '.join(paths)}: " if paths else ""
        fail(where + (exc.strerror or str(exc)), 2 if isinstance(exc, INPUT_OS_ERRORS) else 1)
    except OverflowError as exc:
        fail(f"value out of range: {exc}", 2)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        fail(f"unexpected {type(exc).__name__}: {exc}", 1)


if __name__ == "__main__":
    main()
