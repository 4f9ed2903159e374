"""Helpers of the sync tests: keys, small source databases, a hub and an agency."""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from lienthong.sync.agency import AgencyKeys, AgencySync
from lienthong.sync.cipher import RecipientKeys
from lienthong.sync.connectors import open_connectors
from lienthong.sync.hub.service import Hub
from lienthong.sync.hub.store import HubStore, open_store
from lienthong.sync.outbox import Outbox
from lienthong.sync.pipeline import Pipeline, pipeline_from_dict
from lienthong.sync.transport import DirectTransport, Transport
from lienthong.trust.keys import SoftwareSigner, generate_private_key
from lienthong.validate import make_personal_id

SOURCE_ID = "BHXH.HN"


@dataclass
class Keys:
    agency: SoftwareSigner
    hub: SoftwareSigner
    recipient: RecipientKeys

    def agency_keys(self) -> AgencyKeys:
        return AgencyKeys(self.agency, self.hub.public_key(), self.recipient.public())

    def hub_for(self, store: HubStore) -> Hub:
        return Hub(store, self.hub, {SOURCE_ID: self.agency.public_key()}, self.recipient)


def new_keys() -> Keys:
    return Keys(
        SoftwareSigner(generate_private_key()),
        SoftwareSigner(generate_private_key()),
        RecipientKeys.generate(),
    )


GIVEN = ("AN", "BÌNH", "CHI", "DŨNG", "GIANG", "HẢI", "KHÁNH", "LINH")
COLUMNS = "id, so_dinh_danh, ho_ten, ngay_sinh, gioi_tinh, quoc_tich, ma_tinh, updated_at, deleted"
DDL = (
    "CREATE TABLE IF NOT EXISTS citizens (id INTEGER PRIMARY KEY, so_dinh_danh TEXT,"
    " ho_ten TEXT, ngay_sinh TEXT, gioi_tinh TEXT, quoc_tich TEXT, ma_tinh TEXT,"
    " updated_at TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0)"
)


def citizen_row(i: int, version: int = 0) -> tuple[Any, ...]:
    """A synthetic citizen; every 50th has an impossible birth date (a defect to quarantine)."""
    born = dt.date(1950 + i % 60, 1 + i % 12, 1 + i % 28)
    sex = "Nam" if i % 2 else "Nữ"
    pid = make_personal_id("001", sex, born, i)
    day = "31/02/1990" if i % 50 == 7 else born.strftime("%d/%m/%Y")
    name = f"NGUYỄN VĂN {GIVEN[i % 8]}" if i % 2 else f"TRẦN THỊ {GIVEN[i % 8]}"
    stamp = f"2024-01-01T00:00:00.{version:06d}"
    return (i, pid, name, day, sex, "VN", "01" if i % 3 else "79", stamp, 0)


def make_sqlite_source(path: Path, n: int, start: int = 1) -> None:
    db = sqlite3.connect(path)
    db.execute(DDL)
    db.executemany(
        "INSERT INTO citizens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [citizen_row(i) for i in range(start, start + n)],
    )
    db.commit()
    db.close()


def citizen_pipeline(kind: str = "sqlite", path: str = "source.db", **table: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "citizens", "key": ["id"], "entity": "Citizen", "batch_size": 500,
        "extra_fields": ["province_code"],
        "fields": {
            "so_dinh_danh": "personal_id",
            "ho_ten": {"to": "full_name", "transform": "name", "required": True},
            "ngay_sinh": {"to": "date_of_birth", "transform": "date", "format": "%d/%m/%Y"},
            "gioi_tinh": "sex",
            "quoc_tich": "nationality",
            "ma_tinh": {"to": "province_code", "transform": "legacy_province"},
        },
    }  # fmt: skip
    spec.update(table)
    source: dict[str, Any] = {"kind": kind, "path": path}
    return {"source_id": SOURCE_ID, "source": source, "tables": [spec], "state": "state.db"}


@dataclass
class Rig:
    pipeline: Pipeline
    outbox: Outbox
    store: HubStore
    hub: Hub
    agency: AgencySync

    def close(self) -> None:
        self.agency.close()
        self.store.close()


def make_rig(tmp: Path, keys: Keys, doc: dict[str, Any], hub_url: str | None = None,
             transport: Transport | None = None) -> Rig:  # fmt: skip
    pipeline = pipeline_from_dict(doc, base_dir=tmp)
    store = open_store(hub_url or str(tmp / "hub.db"))
    hub = keys.hub_for(store)
    outbox = Outbox(tmp / pipeline.state)
    agency = AgencySync(
        pipeline, open_connectors(pipeline), outbox, transport or DirectTransport(hub),
        keys.agency_keys(),
    )  # fmt: skip
    return Rig(pipeline, outbox, store, hub, agency)


def consolidated(store: HubStore, entity: str = "citizen") -> dict[str, dict[str, Any]]:
    rows = store.conn.execute(f"SELECT source_key, data FROM c_{entity}").fetchall()
    return {str(k): orjson.loads(v) if isinstance(v, str) else v for k, v in rows}


def quarantine_count(store: HubStore) -> int:
    return int(store.conn.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0])


def end_connections(dsn: str, application_name: str) -> int:
    """End every PostgreSQL connection opened with ``application_name`` (what a server
    restart, a failover or an administrator does to them); return how many there were."""
    import psycopg  # PostgreSQL tests only

    with psycopg.connect(dsn, autocommit=True) as db:
        row = db.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0
