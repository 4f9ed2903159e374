"""``python -m lienthong.exchange serve --config FILE``: the gateway without the whole CLI.

Gateway processes start through here so that they import only what they need.
"""

from __future__ import annotations

import sys

import click

from lienthong.cli.output import fail
from lienthong.errors import LienthongError
from lienthong.exchange.cli import app


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv if argv is not None else sys.argv[1:], standalone_mode=False)
    except click.ClickException as exc:
        fail(exc.format_message(), 2)
    except LienthongError as exc:
        fail(exc.message, exc.exit_code)


if __name__ == "__main__":
    main()
