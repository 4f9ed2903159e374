"""Composition root of a pipeline run: choose the adapters a pipeline file names.

``[hub] url = "http://127.0.0.1:8765"`` sends batches to a hub process over HTTP;
``[hub] database = "consolidated.db"`` (or a PostgreSQL URL reference) runs the hub in-process
(the embedded default); ``[transport] kind = "gateway"`` sends them through the agency's own
exchange gateway to the hub's sync service. ``[keys]`` names the key store (trust layer) and
the public files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lienthong.errors import ConfigError
from lienthong.sync.agency import AgencyKeys, AgencySync, Progress
from lienthong.sync.connectors import open_connectors
from lienthong.sync.gateway_transport import GatewayTransport
from lienthong.sync.hub.service import Hub
from lienthong.sync.hub.store import open_store
from lienthong.sync.keys import load_public, load_recipient_keys, load_recipient_public
from lienthong.sync.outbox import Outbox
from lienthong.sync.pipeline import Pipeline, TableSpec
from lienthong.sync.secrets import check_no_plaintext, is_reference, resolve_secret
from lienthong.sync.transport import DirectTransport, HttpTransport, Transport
from lienthong.trust.keystore import open_keystore


def hub_database(pipeline: Pipeline) -> str:
    """The consolidated database a pipeline's in-process hub writes to."""
    db = pipeline.hub.get("database")
    if db is None:
        raise ConfigError("pipeline has no [hub] database (its hub is a separate process)")
    if is_reference(db):
        return resolve_secret(db, "hub.database", pipeline.base_dir)
    check_no_plaintext(str(db), "hub.database")
    return str(db if str(db).startswith("postgres") else pipeline.base_dir / str(db))


def _path(pipeline: Pipeline, name: str) -> Path:
    value = pipeline.keys.get(name)
    if not isinstance(value, str):
        raise ConfigError(f"keys.{name}: required (a file path)")
    return pipeline.base_dir / value


def _store(pipeline: Pipeline) -> Any:
    spec = pipeline.keys.get("store")
    if not isinstance(spec, dict):
        raise ConfigError(
            'keys.store: required, e.g. {type = "file", dir = "keys", passphrase = …}'
        )
    return open_keystore(spec, base=pipeline.base_dir)


def agency_keys(pipeline: Pipeline) -> AgencyKeys:
    store = _store(pipeline)
    return AgencyKeys(
        store.signer(str(pipeline.keys.get("signer", "agency"))),
        load_public(_path(pipeline, "hub_public")),
        load_recipient_public(_path(pipeline, "hub_recipient")),
    )


def local_hub(pipeline: Pipeline, keys: AgencyKeys) -> Hub:
    """An in-process hub for ``[hub] database`` pipelines (same key store)."""
    store = _store(pipeline)
    spec = pipeline.keys["store"]
    directory = pipeline.base_dir / str(spec.get("dir", "keys"))
    hub_store = open_store(hub_database(pipeline))
    recipient = load_recipient_keys(directory, spec.get("passphrase"))
    signer = store.signer(str(pipeline.keys.get("hub_signer", "hub")))
    return Hub(hub_store, signer, {pipeline.source_id: keys.signer.public_key()},
               recipient)  # fmt: skip


def check_sources(
    pipeline: Pipeline, connectors: dict[str, Any], tables: list[TableSpec] | None = None
) -> None:
    """Every table's source exists and has the columns the pipeline names (key, cursor,
    deleted column, mapped columns), and a SQL table's key is unique: checked before any
    state or hub file is created."""
    for spec in tables if tables is not None else pipeline.tables:
        columns = connectors[spec.name].schema()
        needed = [*spec.key, *filter(None, [spec.cursor, spec.deleted_column])]
        needed += [s for f in spec.fields for s in f.sources]
        missing = list(dict.fromkeys(c for c in needed if c not in columns))
        if missing:
            shown = ", ".join(list(columns)[:20]) + (", …" if len(columns) > 20 else "")
            raise ConfigError(
                f"table {spec.name}: the source has no column {', '.join(map(repr, missing))} "
                f"(it has: {shown}); if the source dropped it, update the mapping and run "
                f"`lienthong sync schema accept PIPELINE --table {spec.name}`"
            )
        check_key = getattr(connectors[spec.name], "check_key", None)
        if check_key is not None:  # SQL tables: keyset reading needs a unique key
            check_key()


def open_agency(pipeline: Pipeline, progress: Progress | None = None) -> AgencySync:
    """Build the agency side of ``pipeline`` with the adapters its file names.

    Keys, sources and their columns are checked first: a bad pipeline leaves no state file."""
    keys = agency_keys(pipeline)
    connectors = open_connectors(pipeline)
    try:
        check_sources(pipeline, connectors)
    except BaseException:
        for c in connectors.values():
            c.close()
        raise
    transport: Transport
    if pipeline.transport is not None:
        transport = GatewayTransport(pipeline.transport)
    elif "url" in pipeline.hub:
        transport = HttpTransport(str(pipeline.hub["url"]))
    elif "database" in pipeline.hub:
        transport = DirectTransport(local_hub(pipeline, keys))
    else:
        raise ConfigError("pipeline has no [hub] (url or database) and no [transport]")
    outbox = Outbox(pipeline.base_dir / pipeline.state)
    return AgencySync(pipeline, connectors, outbox, transport, keys,
                      progress=progress)  # fmt: skip
