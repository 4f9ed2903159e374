"""``python -m lienthong.sync …``: the sync commands as a process of their own.

Same commands and exit codes as ``lienthong sync …``; used for long-running agency and hub
processes so that they load only what synchronisation needs.
"""

from __future__ import annotations

import sys

import click

from lienthong.cli.output import fail
from lienthong.errors import LienthongError
from lienthong.sync.cli import app


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        result = app(args=args, prog_name="lienthong sync", standalone_mode=False)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        fail(exc.format_message(), 2)
    except LienthongError as exc:
        fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    raise SystemExit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
