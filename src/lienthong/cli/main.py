"""Root of the ``lienthong`` CLI and the one edge handler that turns errors into exit codes.

Exit codes: 0 success, 1 failure, 2 bad usage or input. Users see one line, never a
traceback, unless ``--debug`` is given.
"""

from __future__ import annotations

import sys

import click
import typer

from lienthong import __version__
from lienthong.audit.cli import app as audit_app
from lienthong.cli.demo import app as demo_app
from lienthong.cli.helptext import reflow_tree
from lienthong.cli.output import fail
from lienthong.dictionary.cli import app as dictionary_app
from lienthong.errors import INPUT_OS_ERRORS, LienthongError
from lienthong.exchange.cli import app as gateway_app
from lienthong.federation.cli import app as federation_app
from lienthong.federation.doctor import app as doctor_app
from lienthong.sync.cli import app as sync_app
from lienthong.synth.cli import app as synth_app
from lienthong.trust.cli import app as ca_app

app = typer.Typer(
    name="lienthong",
    help="lienthong — secure interconnection (liên thông) and synchronisation (đồng bộ) "
    "of government information systems and databases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_debug = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lienthong {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks on errors (accepted anywhere on the line)."
    ),
) -> None:
    """lienthong command line."""
    global _debug
    _debug = _debug or debug


# Capability sub-commands: one import above and one add_typer line each.
app.add_typer(demo_app)
app.add_typer(synth_app)
app.add_typer(audit_app, name="audit")
app.add_typer(dictionary_app, name="dictionary")
app.add_typer(ca_app, name="ca")
app.add_typer(federation_app, name="federation")
app.add_typer(doctor_app)
app.add_typer(gateway_app, name="gateway")
app.add_typer(sync_app, name="sync")
reflow_tree(app)  # docstrings wrapped in the source print as paragraphs, not ragged lines


def _usage_message(exc: Exception) -> str:
    """One line for a usage error, naming the command it concerns when known."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None and ctx.command_path else ""
    return where + " ".join(message.split())


def _split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """Remove ``--debug`` wherever it appears (before a ``--`` terminator).

    ``--debug`` is accepted anywhere on the command line, before or after the sub-command, so
    that adding it never turns a usage error into something else.
    """
    out: list[str] = []
    debug = False
    for i, arg in enumerate(argv):
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg == "--debug":
            debug = True
            continue
        out.append(arg)
    return out, debug


def _os_error_message(exc: OSError) -> str:
    """One line naming the path(s) and the system's reason, e.g. ``x.pem: No such file``."""
    reason = exc.strerror or str(exc)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    if not paths:
        return reason
    return f"{' → '.join(paths)}: {reason}"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map every error to one line and an exit code."""
    global _debug
    args, debug = _split_debug(list(argv if argv is not None else sys.argv[1:]))
    _debug = debug
    try:
        result = app(args=args, prog_name="lienthong", standalone_mode=False)
    except (typer.Exit, click.exceptions.Exit) as exc:
        raise SystemExit(exc.exit_code) from None
    except (typer.Abort, click.exceptions.Abort):
        fail("aborted", 1)
    except (typer.TyperException, click.ClickException) as exc:  # usage: unknown option, bad value
        # A usage error is never a traceback, with or without --debug.
        fail(_usage_message(exc), getattr(exc, "exit_code", 2))
    except LienthongError as exc:
        if debug:
            raise
        fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except INPUT_OS_ERRORS as exc:  # a path given by the user does not fit: bad input
        if debug:
            raise
        fail(_os_error_message(exc), 2)
    except OverflowError as exc:  # a number too large for a date, duration or integer
        if debug:
            raise
        fail(f"value out of range: {exc}", 2)
    except OSError as exc:  # the file system or network failed
        if debug:
            raise
        fail(_os_error_message(exc), 1)
    except Exception as exc:  # the last line of defence: one line, not a traceback
        if debug:
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for details)", 1)
    raise SystemExit(result if isinstance(result, int) else 0)
