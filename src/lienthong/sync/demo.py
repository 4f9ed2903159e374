"""Demo step ``sync``: the synthetic agency databases into the consolidated database.

Four declarative pipelines (population, health insurance, education, tax) read the SQLite
sources the ``synth`` step wrote, map their local schemas onto the data dictionary (renames,
split-name joins, code lists, constants), validate every row, and send signed, encrypted
batches to an in-process hub writing ``consolidated.db``. Quarantined rows keep every reason.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson

from lienthong.sync.agency import AgencyKeys, AgencySync
from lienthong.sync.cipher import RecipientKeys
from lienthong.sync.connectors import open_connectors
from lienthong.sync.hub.dialect import connect_hub
from lienthong.sync.hub.service import AuditHook, Hub
from lienthong.sync.hub.store import HubStore
from lienthong.sync.outbox import Outbox
from lienthong.sync.pipeline import pipeline_from_dict
from lienthong.sync.transport import DirectTransport
from lienthong.trust.keys import SoftwareSigner, generate_private_key

_LEVELS = {"TH": "tieu_hoc", "THCS": "thcs", "THPT": "thpt", "DH": "dai_hoc"}
_STATUS = {"Đang hoạt động": "hoat_dong", "Ngừng hoạt động": "ngung_hoat_dong"}

# source name (synth) → (source id, tables); field maps follow the dictionary's names
PIPELINES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "population": ("BCA.DC", [
        {"name": "cong_dan", "key": ["so_dinh_danh"], "entity": "Citizen", "fields": {
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
        {"name": "the_bhyt", "key": ["ma_the"], "entity": "HealthInsuranceCard", "fields": {
            "ma_the": "card_number", "ma_so_bhxh": "social_insurance_number",
            "ho_ten": "full_name", "ngay_sinh": "date_of_birth", "gioi_tinh": "sex",
            "gia_tri_tu": "valid_from", "gia_tri_den": "valid_to",
            "ma_dkbd": "initial_facility_code", "dia_chi": "address"}},
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
            "taxpayer_type": {"value": "ca_nhan"}}},
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


def run(ctx: Any) -> dict[str, Any]:
    """Synchronise ``ctx.state["sources"]`` into ``ctx.workdir / "consolidated.db"``."""
    sources: dict[str, str] = ctx.state.get("sources", {})
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
    totals = {"read": 0, "applied": 0, "quarantined": 0}
    per_source: dict[str, Any] = {}
    try:
        for name, path in sources.items():
            if name not in PIPELINES:
                continue
            source_id, tables = PIPELINES[name]
            agency_key = SoftwareSigner(generate_private_key())
            hub.sources[source_id] = agency_key.public_key()
            pipeline = pipeline_from_dict(
                {
                    "source_id": source_id,
                    "source": {"kind": "sqlite", "path": str(path)},
                    "tables": [{**t, "batch_size": 2000} for t in tables],
                }
            )
            agency = AgencySync(
                pipeline,
                open_connectors(pipeline),
                Outbox(work / f"{name}.db"),
                DirectTransport(hub),
                AgencyKeys(agency_key, hub_key.public_key(), recipient.public()),
            )
            try:
                report = agency.run()
            finally:
                agency.close()
            per_source[name] = {
                "source_id": source_id,
                "read": report.read,
                "applied": report.applied,
                "quarantined": report.quarantined,
            }
            for k in totals:
                totals[k] += getattr(report, k)
            ctx.say(
                f"  sync {name:<10} {report.read:>7,} read = {report.applied:,} applied + "
                f"{report.quarantined:,} quarantined"
            )
        reasons = _top_reasons(store)
    finally:
        store.close()
    ctx.say(
        f"sync: {totals['read']:,} rows into the consolidated database (direct transport, "
        f"signed + encrypted batches); {totals['quarantined']:,} quarantined"
    )
    return {
        **totals,
        "reconciled": totals["read"] == totals["applied"] + totals["quarantined"],
        "sources": per_source,
        "transport": "direct",
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
