"""Demo step ``sync``: the synthetic agency databases into the consolidated database.

Four declarative pipelines (population, health insurance, education, tax) read the SQLite
sources the ``synth`` step wrote, map their local schemas onto the data dictionary (renames,
split-name joins, code lists, constants), validate every row, and send signed, encrypted
batches through real gateway processes — each agency's own gateway, the national platform
(NDXP), the hub's gateway — to the hub's endpoint in this process, which verifies every batch
before writing ``consolidated.db``. Quarantined rows keep every reason.
"""

from __future__ import annotations

import datetime as dt
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from lienthong.classification import Level
from lienthong.errors import BackendError
from lienthong.exchange.directory import directory_from_json
from lienthong.exchange.processes import Running
from lienthong.exchange.routing import plan_route
from lienthong.exchange.testbed import (
    HUB_NODE,
    SVC_SYNC,
    SYNC_AGENCIES,
    Testbed,
    build_testbed,
    sync_spec,
)
from lienthong.identifiers import ServiceId
from lienthong.ports import free_port
from lienthong.sync.agency import AgencyKeys, AgencySync
from lienthong.sync.cipher import RecipientKeys
from lienthong.sync.connectors import open_connectors
from lienthong.sync.gateway_transport import GatewayTransport
from lienthong.sync.hub.dialect import connect_hub
from lienthong.sync.hub.server import HubThread
from lienthong.sync.hub.service import AuditHook, Hub
from lienthong.sync.hub.store import HubStore
from lienthong.sync.outbox import Outbox
from lienthong.sync.pipeline import pipeline_from_dict
from lienthong.trust.keys import SoftwareSigner, generate_private_key

_LEVELS = {"TH": "tieu_hoc", "THCS": "thcs", "THPT": "thpt", "DH": "dai_hoc"}
_STATUS = {"Đang hoạt động": "hoat_dong", "Ngừng hoạt động": "ngung_hoat_dong"}

# source name (synth) → (source id, tables); field maps follow the dictionary's names
PIPELINES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "population": ("BCA.DC", [
        {"name": "cong_dan", "key": ["so_dinh_danh"], "entity": "Citizen",
         "classification": "SENSITIVE", "fields": {
            "so_dinh_danh": "personal_id", "ho_ten": "full_name", "ngay_sinh": "date_of_birth",
            "gioi_tinh": "sex", "noi_dang_ky_khai_sinh": "birth_registration_commune_code",
            "que_quan": "hometown_commune_code", "thuong_tru_ma_xa": "permanent_commune_code",
            "noi_o_hien_tai_ma_xa": "current_commune_code", "dan_toc": "ethnicity",
            "ton_giao": "religion", "quoc_tich": "nationality", "so_dien_thoai": "phone",
            "so_cmnd": "legacy_id_number"}},
        {"name": "di_bien_dong_cu_tru", "key": ["ma_bien_dong"], "entity": "ResidenceChange",
         "classification": "SENSITIVE", "fields": {
            "ma_bien_dong": {"to": "change_id", "transform": "str"},
            "so_dinh_danh": "personal_id", "loai_bien_dong": "change_type",
            "ngay_hieu_luc": "effective_date", "ma_xa_cu": "from_commune_code",
            "ma_xa_moi": "to_commune_code"}},
    ]),
    "health": ("BHXH.VN", [
        {"name": "the_bhyt", "key": ["ma_the"], "entity": "HealthInsuranceCard",
         "classification": "SENSITIVE", "fields": {
            "ma_the": "card_number", "ma_so_bhxh": "social_insurance_number",
            "ho_ten": "full_name", "ngay_sinh": "date_of_birth", "gioi_tinh": "sex",
            "gia_tri_tu": "valid_from", "gia_tri_den": "valid_to",
            "ma_dkbd": "initial_facility_code", "dia_chi": "address",
            # so_cccd holds 12-digit personal IDs and, for older cards, 9-digit CMND numbers
            "so_cccd": {"to": "personal_id", "transform": "drop_if_length", "format": "9"}},
         "joins": {"cmnd": {"to": "legacy_id_number", "from": ["so_cccd"],
                            "transform": "keep_if_length", "format": "9"}}},
    ]),
    "education": ("BGDDT.CSDL", [
        {"name": "hoc_sinh", "key": ["ma_hoc_sinh"], "entity": "EducationRecord",
         "fields": {
            "ma_hoc_sinh": "student_code", "ma_dinh_danh": "personal_id",
            "ngay_sinh": "date_of_birth", "gioi_tinh": "sex", "ma_truong": "school_code",
            "cap_hoc": {"to": "level", "codes": _LEVELS}},
         "joins": {"ho_ten": {"to": "full_name", "from": ["ho", "dem", "ten"]}}},
    ]),
    "tax": ("BTC.THUE", [
        {"name": "nguoi_nop_thue", "key": ["mst"], "entity": "Taxpayer", "fields": {
            "mst": "tax_code", "ho_ten": "name", "ngay_cap_mst": "registration_date",
            "dia_chi": "address", "so_dien_thoai": "phone",
            "trang_thai": {"to": "status", "codes": _STATUS},
            "taxpayer_type": {"value": "ca_nhan"},
            # so_giay_to: a CCCD (12-digit personal ID) or an old CMND (9 digits)
            "so_giay_to": {"to": "personal_id", "transform": "drop_if_length", "format": "9"}},
         "joins": {"cmnd": {"to": "legacy_id_number", "from": ["so_giay_to"],
                            "transform": "keep_if_length", "format": "9"}}},
        {"name": "doanh_nghiep", "key": ["mst"], "entity": "Taxpayer", "fields": {
            "mst": "tax_code", "ten_doanh_nghiep": "name",
            "so_giay_to_dai_dien": "legal_representative_id",
            "ngay_thanh_lap": "registration_date", "dia_chi_tru_so": "address",
            "taxpayer_type": {"value": "doanh_nghiep"}}},
    ]),
}  # fmt: skip


def audit_hook(log: Any, target: str) -> AuditHook:
    """Append one ``sync.batch`` entry per applied batch to an :class:`AuditLog`."""
    from lienthong.audit.entries import sync_batch_entry

    def append(summary: dict[str, Any]) -> None:
        log.append_one(
            sync_batch_entry(
                at=dt.datetime.now(dt.UTC),
                pipeline=str(summary["table"]),
                source=str(summary["source"]),
                target=target,
                batch_id=f"{summary['source']}#{summary['seq']}",
                rows=int(summary["read"]),
                checksum=str(summary["batch"]),
                applied=int(summary["applied"]),
                quarantined=int(summary["quarantined"]),
            )
        )

    return append


# source name (synth) → the agency gateway its sync subsystem calls
GATEWAYS = {"population": "BCA-GW", "health": "BHXH-GW", "education": "BGDDT-GW",
            "tax": "BTC-GW"}  # fmt: skip
LEVEL = "SENSITIVE"  # the hub's sync service: the highest classification of the tables
PURPOSE = "dong-bo-csdl-tong-hop"
LEGAL_BASIS = "Cong dien 103/CD-TTg; Luat Giao dich dien tu 2023, Dieu 42"


@dataclass
class _Federation:
    """The gateways of the sync step: agencies, the national platform, the hub's gateway."""

    testbed: Testbed
    running: Running
    routes: dict[str, list[str]]
    level: str
    encrypted: bool


def _start_federation(ctx: Any, work: Path, hub_port: int, agencies: tuple[str, ...]) -> Any:
    """Build the sync federation (own CA, keys, directory) and start its gateway processes."""
    fed_dir = work / "federation"
    if fed_dir.exists():
        shutil.rmtree(fed_dir)  # a fresh CA and keys every run
    tb = build_testbed(fed_dir, sync_spec(f"http://127.0.0.1:{hub_port}/sync/v1",
                                          agencies=agencies, level=LEVEL))  # fmt: skip
    directory = directory_from_json(tb.directory_path.read_bytes())
    level = directory.services[ServiceId.parse(SVC_SYNC)]
    routes = {a: plan_route(directory, a, HUB_NODE) for a in agencies}
    running = Running(tb)
    ctx.say(
        f"sync: starting {len(tb.spec.nodes)} gateways ({', '.join(agencies)}, national "
        f"platform NDXP, hub gateway {HUB_NODE}); service {SVC_SYNC} at {level.name}"
    )
    try:  # the processes start side by side (each waits for its own ports)
        with ThreadPoolExecutor(len(tb.spec.nodes)) as pool:
            list(pool.map(running.start_gateway, ["NDXP", HUB_NODE, *agencies]))
    except BaseException:
        _stop(running)
        raise
    return _Federation(tb, running, routes, level.name, directory.policy[level].encrypt)


def _stop(running: Running) -> None:
    """Stop every gateway (SIGTERM, by pid), side by side."""
    names = list(running.procs)
    with ThreadPoolExecutor(max(1, len(names))) as pool:
        list(pool.map(running.stop, names))


def run(ctx: Any) -> dict[str, Any]:
    """Synchronise ``ctx.state["sources"]`` into ``ctx.workdir / "consolidated.db"``.

    Every batch travels from the agency's own gateway through the national platform to the
    hub's gateway and the hub's endpoint (this process), which verifies it before applying.
    """
    sources: dict[str, str] = {
        name: path for name, path in ctx.state.get("sources", {}).items() if name in PIPELINES
    }
    work = Path(ctx.workdir) / "sync"
    work.mkdir(parents=True, exist_ok=True)
    hub_key, recipient = SoftwareSigner(generate_private_key()), RecipientKeys.generate()
    conn, dialect = connect_hub(str(Path(ctx.workdir) / "consolidated.db"))
    store = HubStore(conn, dialect)
    audit = ctx.state.get("audit")
    hub = Hub(
        store,
        hub_key,
        {},
        recipient,
        audit=audit_hook(audit, "consolidated.db") if audit is not None else None,
    )
    clients: dict[str, str] = {}  # source id → the only subsystem its batches may come from
    hub_port = free_port()
    server = HubThread(hub, hub_port, clients, Level.parse(LEVEL)).start()
    totals = {"read": 0, "applied": 0, "quarantined": 0, "batches": 0}
    per_source: dict[str, Any] = {}
    fed: _Federation | None = None
    try:
        fed = _start_federation(ctx, work, hub_port, tuple(GATEWAYS[n] for n in sources))
        for name, path in sources.items():
            source_id, tables = PIPELINES[name]
            node = GATEWAYS[name]
            client = SYNC_AGENCIES[node][1]
            agency_key = SoftwareSigner(generate_private_key())
            hub.sources[source_id] = agency_key.public_key()
            clients[source_id] = client
            pipeline = pipeline_from_dict(
                {
                    "source_id": source_id,
                    "source": {"kind": "sqlite", "path": str(path)},
                    "tables": [{**t, "batch_size": 2000} for t in tables],
                    "transport": {
                        "kind": "gateway",
                        "url": fed.testbed.internal_url(node),
                        "service": SVC_SYNC,
                        "client": client,
                        "purpose": PURPOSE,
                        "legal_basis": LEGAL_BASIS,
                    },
                }
            )
            assert pipeline.transport is not None
            agency = AgencySync(
                pipeline,
                open_connectors(pipeline),
                Outbox(work / f"{name}.db"),
                GatewayTransport(pipeline.transport),
                AgencyKeys(agency_key, hub_key.public_key(), recipient.public()),
            )
            try:
                report = agency.run()
            finally:
                agency.close()
            report.raise_failure()  # the demo's synthetic sources must all synchronise
            if report.error:
                raise BackendError(f"sync {name}: {report.error}")
            per_source[name] = {
                "source_id": source_id,
                "read": report.read,
                "applied": report.applied,
                "quarantined": report.quarantined,
                "batches": report.batches,
                "client": client,
                "route": fed.routes[node],
            }
            for k in totals:
                totals[k] += getattr(report, k)
            ctx.say(
                f"  sync {name:<10} {report.read:>7,} read = {report.applied:,} applied + "
                f"{report.quarantined:,} quarantined  ({' → '.join(fed.routes[node])} → hub)"
            )
        reasons = _top_reasons(store)
    finally:
        if fed is not None:
            _stop(fed.running)
        server.stop()
        store.close()
    ctx.say(
        f"sync: {totals['read']:,} rows into the consolidated database through the gateways "
        f"({totals['batches']} signed batches, {fed.level if fed else '?'} service, "
        f"end-to-end encrypted); {totals['quarantined']:,} quarantined"
    )
    return {
        **{k: v for k, v in totals.items() if k != "batches"},
        "reconciled": totals["read"] == totals["applied"] + totals["quarantined"],
        "sources": per_source,
        "transport": "gateway",
        "gateway": {
            "service": SVC_SYNC,
            "level": fed.level if fed else None,
            "end_to_end_encrypted": fed.encrypted if fed else None,
            "route": [*fed.routes[GATEWAYS[next(iter(sources))]], "hub"] if fed and sources else [],
            "calls": totals["batches"],
            "hub_endpoint": server.url,
        },
        "top_reasons": reasons,
        "consolidated": str(Path(ctx.workdir) / "consolidated.db"),
    }


def _top_reasons(store: HubStore, n: int = 5) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (reasons,) in store.conn.execute("SELECT reasons FROM sync_quarantine"):
        for text in orjson.loads(reasons):
            code = ": ".join(text.split(": ")[:2])
            counts[code] = counts.get(code, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:n])
