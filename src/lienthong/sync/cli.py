"""``lienthong sync``: run pipelines, watch them, inspect the quarantine, serve the hub."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from lienthong.cli.output import console, emit_json, error_line
from lienthong.errors import InputError, KeyStoreError, LienthongError, NotFound, TerminalError
from lienthong.sync.agency import RunReport
from lienthong.sync.pipeline import load_pipeline
from lienthong.sync.runtime import hub_database, open_agency
from lienthong.sync.secrets import check_no_plaintext, resolve_secret
from lienthong.sync.status import pipeline_status

app = typer.Typer(help="Synchronise agency databases into the consolidated database (đồng bộ).",
                  no_args_is_help=True)  # fmt: skip
quarantine_app = typer.Typer(help="Inspect and re-submit quarantined rows.", no_args_is_help=True)
hub_app = typer.Typer(help="The national hub (consolidated database).", no_args_is_help=True)
keys_app = typer.Typer(help="Key material of a sync deployment.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(hub_app, name="hub")
app.add_typer(keys_app, name="keys")
schema_app = typer.Typer(help="Source schema drift.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")

JSON = typer.Option(False, "--json", help="Print one JSON object.")


@app.command("run")
def run(
    pipeline: Path = typer.Argument(..., help="pipeline.toml or .yaml"),
    follow: bool = typer.Option(False, "--follow", help="Keep synchronising until interrupted."),
    interval: float = typer.Option(0.5, help="Seconds between polls in --follow mode."),
    as_json: bool = JSON,
) -> None:
    """Synchronise every table of PIPELINE once (or continuously with --follow).

    With --follow and stdout not a terminal, one line per pass that moved rows (and one every
    minute while idle); SIGTERM or Ctrl-C ends after the current pass with the summary.

    A table that fails (drift, its source unreachable, a damaged drop) does not stop the
    others: one error line each, exit 2 (bad input) or 1; --follow retries it after a
    pause that doubles up to 60 s.
    """
    spec = load_pipeline(pipeline)
    started = time.perf_counter()
    live = not as_json and console.is_terminal
    bar = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=console, disable=not live, transient=True,
    )  # fmt: skip
    task = bar.add_task("starting", total=None)

    def progress(table: str, r: RunReport) -> None:
        rate = r.extracted / max(1e-9, time.perf_counter() - started)
        bar.update(task, description=(
            f"{table}: {r.extracted:,} rows read · {rate:,.0f} rows/s · "
            f"{r.quarantined:,} quarantined · lag {agency.outbox.pending_count()} batches"
        ))  # fmt: skip

    # checked before the progress display starts: a refusal is one line, nothing before it
    agency = open_agency(spec, progress=progress)
    try:
        with bar:
            if follow:
                report = _follow(agency, interval, log=not as_json and not live)
            else:
                report = agency.run()
    except TerminalError as exc:
        _remember_refusal(agency, exc)
        raise
    finally:
        agency.close(hub=True)
    out = report.to_dict() | {"elapsed_s": round(time.perf_counter() - started, 3)}
    if as_json:
        emit_json(out)
    else:
        console.print(Text(_summary(report, out["elapsed_s"])), soft_wrap=True)
        for w in report.warnings:
            console.print(Text("warning: ", style="yellow").append(w, style=""), soft_wrap=True)
    # a failed table did not stop the others: each is named, the exit code is the worst
    for name, failure in report.failures.items():
        text = failure.message
        error_line(text if name in text else f"table {name}: {text}")
    code = max(report.exit_code, 1 if report.error else 0)
    if code:
        raise typer.Exit(code)


def _summary(r: RunReport, elapsed: float | None = None) -> str:
    """``read N = applied A + quarantined Q``, or, while batches wait for the hub, what was
    read from the source beside what the hub acknowledged."""
    took = f" in {elapsed} s" if elapsed is not None else ""
    if not r.pending_batches and r.extracted <= r.read:
        line = f"read {r.read:,} = applied {r.applied:,} + quarantined {r.quarantined:,}{took}"
    else:
        line = (
            f"read {r.extracted:,} from the source{took}; acknowledged by the hub "
            f"{r.read:,} = applied {r.applied:,} + quarantined {r.quarantined:,}; "
            f"{r.pending_batches:,} batches waiting for the hub"
        )
    failed = "".join(f"; table {name} failed: {exc.message}" for name, exc in r.failures.items())
    return line + (f": {r.error}" if r.error else "") + failed


def _follow(agency: Any, interval: float, log: bool) -> RunReport:
    """Passes until SIGTERM/SIGINT; ``log``: one line per pass that moved rows."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    total = RunReport()
    last_line = time.monotonic()
    last_failing: dict[str, str] = {}
    try:
        while not stop.is_set():
            try:
                r = agency.run(pause_failed=True)
            except KeyboardInterrupt:
                r, stop_now = agency.report, True
            else:
                stop_now = False
            for k in ("read", "applied", "quarantined", "batches", "extracted"):
                setattr(total, k, getattr(total, k) + getattr(r, k))
            total.pending_batches, total.error = r.pending_batches, r.error
            total.warnings, total.failures = r.warnings, r.failures
            now = time.monotonic()
            # a table failing the same way pass after pass is a line a minute, not a pass
            failing = {name: exc.message for name, exc in r.failures.items()}
            changed = failing != last_failing
            last_failing = failing
            if log and (r.extracted or r.read or r.error or changed or now - last_line >= 60):
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                console.print(Text(f"{stamp} pass: {_summary(r)}"), soft_wrap=True)
                last_line = now
            if stop_now:
                break
            try:
                stop.wait(interval if not r.error else min(5.0, interval * 10))
            except KeyboardInterrupt:
                break
    finally:
        signal.signal(signal.SIGTERM, previous)
    return total


def _remember_refusal(agency: Any, exc: TerminalError) -> None:
    """A refusal retrying cannot fix (e.g. a gateway's LT.ACCESS_DENIED): the batches stay in
    the outbox; put the reason where ``sync status`` shows it, on the first waiting batch."""
    for item in agency.outbox.pending(1):
        agency.outbox.set_field(item.tbl, "last_error", exc.message, agency.now())


@schema_app.command("accept")
def schema_accept(
    pipeline: Path = typer.Argument(..., help="pipeline.toml or .yaml"),
    table: str | None = typer.Option(None, "--table", help="Only this table (default: all)."),
    as_json: bool = JSON,
) -> None:
    """Accept the current source schema after a drift (update the mapping first)."""
    from lienthong.sync.drift import accept_schema

    done = accept_schema(load_pipeline(pipeline), table)
    if as_json:
        emit_json({"tables": done})
        return
    for t in done:
        what = f"accepted ({t['accepted']})" if t["accepted"] else "no drift"
        console.print(Text(f"{t['table']}: {what}"), soft_wrap=True)


@app.command("status")
def status(pipeline: Path = typer.Argument(...), as_json: bool = JSON) -> None:
    """Per table: position, lag in seconds and rows, applied, quarantined, last error."""
    doc = pipeline_status(load_pipeline(pipeline))
    if as_json:
        emit_json(doc)
        return
    table = Table("table", "position", "lag s", "lag rows", "applied", "quarantined", "last error")
    for name, t in doc["tables"].items():
        lag_rows = "unknown" if t["lag_rows"] is None else f"{t['lag_rows']:,}"
        lag_s = "unknown" if t["lag_seconds"] is None else str(t["lag_seconds"])
        where = "never run" if t["never_run"] else _position(t["position"])
        table.add_row(Text(name), Text(where), lag_s, lag_rows, f"{t['applied']:,}",
                      f"{t['quarantined']:,}", Text(t["last_error"] or ""))  # fmt: skip
    console.print(table)


def _clip(text: str, limit: int = 200) -> str:
    """A reason as a table cell: at most ``limit`` characters (--json keeps it whole)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _position(position: Any) -> str:
    """A position as people read it: `after 2026-12-07T03:01:00, 001050000547` (no reprs)."""
    if not position:
        return "—"
    if isinstance(position, dict) and "after" in position:
        after = position["after"]
        values = [next(iter(v.values())) if isinstance(v, dict) else v for v in after or []]
        return "after " + ", ".join(map(str, values))
    return orjson.dumps(position).decode()


def _row_position(position: Any) -> str:
    """A quarantined row's position: `file.csv:17`, a key, or in cursor mode its stored
    JSON `{"updated_at": …, "id": 7}` read as `updated_at=…, id=7`."""
    text = str(position)
    if text.startswith("{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        if isinstance(doc, dict):
            return ", ".join(f"{k}={v}" for k, v in doc.items())
    return text


def db_argument(value: str, option: str) -> str:
    """A consolidated-database option: a path or URL without a password, or a reference
    ``env:NAME`` / ``file:PATH`` to a URL that carries one (kept out of ``ps``)."""
    kind, sep, name = value.partition(":")
    if sep and kind in ("env", "file") and name:
        return resolve_secret({f"${kind}": name}, option, Path("."))
    try:
        check_no_plaintext(value, option)
    except InputError as exc:
        raise InputError(
            f"{option}: plaintext password (visible in ps); pass env:NAME or file:PATH naming "
            "the database URL instead"
        ) from exc
    return value


def _hub_db(pipeline: Path | None, hub: str | None) -> str:
    """An existing consolidated database (inspecting one never creates it)."""
    if hub:
        db = db_argument(hub, "--hub")
    elif pipeline is None:
        raise InputError("give --hub DATABASE or --pipeline PIPELINE")
    else:
        db = hub_database(load_pipeline(pipeline))
    if not db.startswith("postgres") and not Path(db).is_file():
        raise InputError(f"no consolidated database at {db}")
    return db


HUB = typer.Option(None, "--hub", help="Consolidated database (as hub serve --db).")
PIPE = typer.Option(None, "--pipeline", help="Take the hub database from this pipeline.")


@quarantine_app.command("list")
def quarantine_list(
    hub: str | None = HUB, pipeline: Path | None = PIPE, limit: int = 50, as_json: bool = JSON
) -> None:
    """List open quarantined rows with their reasons."""
    from lienthong.sync.quarantine import list_quarantine

    rows = list_quarantine(_hub_db(pipeline, hub), limit)
    if as_json:
        emit_json({"quarantine": rows})
        return
    table = Table("id", "source", "table", "key", "position", "reasons")
    for r in rows:
        reasons = "; ".join(map(_clip, r["reasons"]))
        table.add_row(str(r["id"]), Text(r["source"]), Text(r["table"]), Text(r["source_key"]),
                      Text(_row_position(r["position"])), Text(reasons))  # fmt: skip
    console.print(table)


@quarantine_app.command("show")
def quarantine_show(
    entry: int = typer.Argument(...), hub: str | None = HUB, pipeline: Path | None = PIPE,
    as_json: bool = JSON,
) -> None:  # fmt: skip
    """Show one quarantined row: the raw source values and every reason."""
    from lienthong.sync.quarantine import get_quarantine

    try:
        doc = get_quarantine(_hub_db(pipeline, hub), entry)
    except NotFound as exc:
        raise InputError(exc.message) from exc
    if as_json:
        emit_json(doc)
    else:
        console.print_json(data=doc)


@quarantine_app.command("resubmit")
def quarantine_resubmit(
    pipeline: Path = typer.Argument(...),
    entry: int = typer.Argument(...),
    set_: list[str] = typer.Option([], "--set", help="COLUMN=VALUE correction (repeatable)."),
    hub: str | None = typer.Option(
        None,
        "--hub",
        help="Consolidated database of a separate hub process (as hub serve --db), to read "
        "the entry from; the corrected row still travels through the pipeline's transport.",
    ),
    as_json: bool = JSON,
) -> None:
    """Correct a quarantined row and send it again (validated like any other row)."""
    from lienthong.sync.quarantine import resubmit

    corrections: dict[str, Any] = {}
    for item in set_:
        col, sep, value = item.partition("=")
        if not sep or not col:
            raise InputError(f"--set {item!r}: expected COLUMN=VALUE")
        corrections[col.strip()] = value
    spec = load_pipeline(pipeline)
    report = resubmit(spec, entry, corrections, hub=_hub_db(None, hub) if hub else None)
    if as_json:
        emit_json(report)
    else:
        console.print(Text(f"quarantine entry {entry} re-submitted: {report}"))


@app.command("reconcile")
def reconcile(
    pipeline: Path = typer.Argument(..., help="pipeline.toml or .yaml"),
    table: str | None = typer.Option(None, "--table", help="Only this table (default: all)."),
    examples: int = typer.Option(10, "--examples", help="Example keys per kind of difference."),
    repair: bool = typer.Option(
        False, "--repair", help="Send the differences as batches of the pipeline, then check again."
    ),
    hub: str | None = typer.Option(
        None, "--hub", help="Consolidated database of a separate hub process (as hub serve --db)."
    ),
    as_json: bool = JSON,
) -> None:
    """Compare the source with the consolidated database: missing, extra, different rows and
    invalid rows without an open quarantine entry; exit 1 when anything differs."""
    from lienthong.sync.reconcile import describe
    from lienthong.sync.reconcile import reconcile as run_reconcile

    spec = load_pipeline(pipeline)
    db = _hub_db(None, hub) if hub else None
    doc = run_reconcile(spec, table=table, examples=examples, repair=repair, hub=db)
    if as_json:
        emit_json(doc)
    else:
        for line in describe(doc):
            console.print(Text(line), soft_wrap=True)
    if not doc["matches"] or (doc["repair"] and doc["repair"]["error"]):
        raise typer.Exit(1)


@hub_app.command("serve")
def hub_serve(
    db: str = typer.Option(
        ...,
        "--db",
        help="Consolidated database: SQLite path, PG URL without a password, or env:NAME / "
        "file:PATH naming the URL.",
    ),
    keys: Path = typer.Option(..., "--keys", help="Key directory (sync keys init)."),
    passphrase_env: str = typer.Option(..., "--passphrase-env", help="Env var of the passphrase."),
    source: list[str] = typer.Option([], "--source", help="SOURCE_ID=public.pem (repeatable)."),
    client: list[str] = typer.Option(
        [],
        "--client",
        help="SOURCE_ID=SUBSYSTEM: accept that source's batches only through the gateways, "
        "from this calling subsystem (repeatable).",
    ),
    max_level: str | None = typer.Option(
        None,
        "--max-level",
        help="Refuse batches classified above this level (the sync service's level, e.g. "
        "SENSITIVE).",
    ),
    port: int = typer.Option(8765, "--port"),
) -> None:
    """Serve the hub on 127.0.0.1:PORT until interrupted.

    Behind the hub's gateway: its services map the sync service to http://127.0.0.1:PORT/sync/v1.
    """
    from lienthong.classification import Level
    from lienthong.cli.listen import check_listen
    from lienthong.identifiers import SubsystemId
    from lienthong.sync.hub.server import serve
    from lienthong.sync.hub.service import Hub
    from lienthong.sync.hub.store import open_store
    from lienthong.sync.keys import load_public, load_recipient_keys
    from lienthong.trust.keystore import FileKeyStore

    ref = {"$env": passphrase_env}
    if not 1 <= port <= 65535:
        raise InputError(f"--port {port}: a TCP port between 1 and 65535")
    sources = {}
    for item in source:
        sid, sep, pem = item.partition("=")
        if not sep:
            raise InputError(f"--source {item!r}: expected SOURCE_ID=public.pem")
        sources[sid] = load_public(Path(pem))
    clients = {}
    for item in client:
        sid, sep, subsystem = item.partition("=")
        if not sep or not sid:
            raise InputError(
                f"--client {item!r}: expected SOURCE_ID=INSTANCE/CLASS/MEMBER/SUBSYSTEM"
            )
        try:
            clients[sid] = str(SubsystemId.parse(subsystem))
        except InputError as exc:
            raise InputError(f"--client {item!r}: {exc.message}") from exc
        if sid not in sources:
            raise InputError(f"--client {item!r}: no --source {sid}=PEM for this source")
    try:
        ceiling = Level.parse(max_level) if max_level is not None else None
    except InputError as exc:
        raise InputError(f"--max-level: {exc.message}") from exc
    database = db_argument(db, "--db")
    # everything that can be wrong is checked before the database is created or opened
    try:
        signer, recipient = FileKeyStore(keys, ref).signer("hub"), load_recipient_keys(keys, ref)
    except KeyStoreError as exc:  # a wrong passphrase is bad input: exit 2, nothing created
        raise InputError(exc.message) from exc
    check_listen("127.0.0.1", port)
    hub = Hub(open_store(database), signer, sources, recipient)
    serve(hub, port=port, clients=clients, max_level=ceiling)


@keys_app.command("init")
def keys_init(
    directory: Path = typer.Argument(...),
    passphrase_env: str = typer.Option(..., "--passphrase-env"),
    label: str = typer.Option("agency", help="Label of the agency signing key."),
    as_json: bool = JSON,
) -> None:
    """Create an agency signing key and the hub's signing and recipient keys (encrypted)."""
    from lienthong.sync.keys import init_keys

    try:
        out = init_keys(directory, {"$env": passphrase_env}, label)
    except FileExistsError as exc:
        raise InputError(f"{exc.filename} already exists: refusing to overwrite keys") from exc
    if as_json:
        emit_json(out)
    else:
        for name, value in out.items():
            console.print(Text(f"{name}: {value}"), soft_wrap=True)


__all__ = ["LienthongError", "app"]
