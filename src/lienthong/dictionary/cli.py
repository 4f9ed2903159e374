"""``lienthong dictionary``: browse the data dictionary and category lists, check values/files."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import typer

from lienthong.cli.output import console, emit_json
from lienthong.errors import InputError, NotFound

app = typer.Typer(
    help="Shared data dictionary (từ điển dữ liệu dùng chung), category lists and validators.",
    no_args_is_help=True,
)

_JSON = typer.Option(False, "--json", help="Print one JSON document.")


@app.command()
def show(
    entity: str | None = typer.Argument(None, help="Entity name, e.g. Citizen."),
    json: bool = _JSON,
) -> None:
    """List the entities, or the fields of one entity with their rules."""
    from lienthong.dictionary.model import load_dictionary

    d = load_dictionary()
    if entity is not None and entity.lower() not in {n.lower() for n in d.entities}:
        raise InputError(f"no entity {entity!r}: use one of {', '.join(d.entities)}")
    if entity is None:
        rows = [
            {"entity": e.name, "label": e.label, "source": e.source, "fields": len(e.fields)}
            for e in d.entities.values()
        ]
        if json:
            emit_json({"version": d.version, "entities": rows})
            return
        console.print(f"data dictionary version {d.version}")
        for row in rows:
            console.print(f"  {row['entity']:<22} {row['label']:<32} {row['fields']:>3} fields")
        return
    e = d.entity(entity)
    fields = [
        {
            "name": f.name, "label": f.label, "type": f.type, "validator": f.validator,
            "required": f.required, "personal_data": f.personal_data,
            "importance": f.importance, "classification": f.classification.name,
            "source": f.source, "category": f.category,
        }
        for f in e.fields
    ]  # fmt: skip
    if json:
        emit_json({"version": d.version, "entity": e.name, "label": e.label, "fields": fields})
        return
    console.print(f"{e.name} — {e.label} (source: {d.sources[e.source].name}, key: {e.key})")
    for f in fields:
        flag = "*" if f["required"] else " "
        console.print(
            f" {flag}{f['name']:<32} {f['validator']:<22} {f['personal_data']:<9} "
            f"{f['importance']:<9} {f['classification']:<9} {f['label']}",
            highlight=False,
        )


@app.command()
def check(
    validator: str = typer.Argument(..., help="Validator name, e.g. personal_id, tax_code, date."),
    value: str = typer.Argument(..., help="The value to check."),
    json: bool = _JSON,
) -> None:
    """Check one value with one validator and print the normal form and every reason."""
    from lienthong.validate.registry import VALIDATORS

    spec = VALIDATORS.get(validator)
    if spec is None:
        raise InputError(f"unknown validator {validator!r}: use one of {', '.join(VALIDATORS)}")
    result = spec.function(value)
    value_out = result.value
    if dataclasses.is_dataclass(value_out) and not isinstance(value_out, type):
        value_out = dataclasses.asdict(value_out)
    doc = {"ok": result.ok, "value": value_out, "reasons": [r.to_dict() for r in result.reasons]}
    if json:
        emit_json(doc)
    else:
        if result.ok:
            console.print(f"ok: {value_out}", highlight=False)
        else:
            first = next((r for r in result.reasons if r.severity == "error"), None)
            why = first.message if first is not None else "rejected"
            shown = f" (normal form {value_out})" if value_out is not None else ""
            console.print(f"INVALID: {value!r}{shown}: {why}", highlight=False)
        for r in result.reasons:
            console.print(f"  {r.severity}: {r.code} — {r.message}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON Lines file, streamed; a bad line is an InputError with its number."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise InputError(f"{path}:{number}: a record must be a JSON object")
            yield record


def _checker(entity: str, today: str | None) -> Any:
    from lienthong.dictionary.model import load_dictionary
    from lienthong.dictionary.record import RecordValidator

    day = None
    if today is not None:
        try:
            day = dt.date.fromisoformat(today)
        except ValueError:
            raise InputError(f"--today {today!r} is not yyyy-mm-dd") from None
    try:
        return RecordValidator(load_dictionary().entity(entity), today=day)
    except NotFound as exc:
        raise InputError(exc.message) from None


@app.command()
def validate(
    file: Path = typer.Argument(..., help="JSON Lines file, one record per line."),
    entity: str = typer.Option(..., "--entity", "-e", help="Entity name, e.g. Citizen."),
    out: Path | None = typer.Option(None, "--out", help="Write normalised records (JSONL)."),
    today: str | None = typer.Option(None, help="Reject dates after this day (yyyy-mm-dd)."),
    json: bool = _JSON,
) -> None:
    """Validate every record of a file; print counts of records and reasons by code."""
    checker = _checker(entity, today)
    by_code: collections.Counter[str] = collections.Counter()
    records = invalid = 0
    tmp = out.with_name(out.name + ".part") if out is not None else None
    try:
        sink = tmp.open("wb") if tmp is not None else None
    except OSError as exc:
        raise InputError(f"cannot write --out {out}: {exc.strerror}") from exc
    try:
        for record in _records(file):
            values, reasons = checker(record)
            records += 1
            by_code.update(f"{r.field}:{r.code}" for r in reasons)
            invalid += any(r.severity == "error" for r in reasons)
            if sink is not None:
                item = {"record": values, "reasons": [r.to_dict() for r in reasons]}
                sink.write(orjson.dumps(item, default=str) + b"\n")
    except BaseException:
        if sink is not None and tmp is not None:
            sink.close()
            tmp.unlink(missing_ok=True)  # nothing half-written
        raise
    if sink is not None and tmp is not None and out is not None:
        sink.close()
        os.replace(tmp, out)
    summary = {
        "entity": checker.entity.name,
        "records": records,
        "valid": records - invalid,
        "invalid": invalid,
        "reasons": dict(by_code.most_common()),
    }
    if json:
        emit_json(summary)
        return
    console.print(f"{records} records: {records - invalid} valid, {invalid} invalid")
    for code, count in by_code.most_common():
        console.print(f"  {count:>7}  {code}", highlight=False)


_LISTS = ("provinces", "communes", "legacy-provinces", "ethnic-groups", "religions", "sexes",
          "nationalities")  # fmt: skip


@app.command()
def categories(
    name: str = typer.Argument(..., help=f"One of: {', '.join(_LISTS)}."),
    province: str | None = typer.Option(None, help="Communes of this province code only."),
    json: bool = _JSON,
) -> None:
    """Print a category list (danh mục)."""
    from lienthong.dictionary import categories as cat

    rows: list[dict[str, Any]]
    if name == "provinces":
        rows = [{"code": p.code, "name": p.name} for p in cat.provinces()]
    elif name == "communes":
        rows = [
            {"code": c.code, "name": c.name, "province_code": c.province_code}
            for c in cat.communes(province)
        ]
    elif name == "legacy-provinces":
        rows = [
            {"id_code": p.id_code, "name": p.name, "current_province_code": p.current_province_code}
            for p in cat.LEGACY_ID_PROVINCES.values()
        ]
    elif name in ("ethnic-groups", "religions", "sexes"):
        table = {"ethnic-groups": cat.ETHNIC_GROUPS, "religions": cat.RELIGIONS}.get(
            name, cat.SEXES
        )
        rows = [{"code": i.code, "name": i.name} for i in table.values()]
    elif name == "nationalities":
        rows = [
            {"code": c.alpha_2, "alpha_3": c.alpha_3, "name": c.name, "name_vi": c.name_vi}
            for c in cat.NATIONALITIES.values()
        ]
    else:
        raise InputError(f"unknown category list {name!r}: use one of {', '.join(_LISTS)}")
    if json:
        emit_json({"category": name, "items": rows})
        return
    for row in rows:
        console.print("  ".join(str(v) for v in row.values()), highlight=False)


@app.command()
def convert(
    province: str = typer.Option(..., help="Legacy province: code, ID code or name."),
    district: str | None = typer.Option(None, help="Legacy district: code or name."),
    commune: str | None = typer.Option(None, help="Legacy commune: code or name."),
    json: bool = _JSON,
) -> None:
    """Convert a legacy (pre-1 Jul 2025) province/district/commune to current units."""
    from lienthong.dictionary import categories as cat

    try:
        conv = cat.convert_legacy_address(province=province, district=district, commune=commune)
    except NotFound as exc:
        raise InputError(exc.message) from None
    doc = dataclasses.asdict(conv)
    doc["province_name"] = cat.province(conv.province_code).name
    doc["commune_name"] = cat.commune(conv.commune_code).name if conv.commune_code else None
    if json:
        emit_json(doc)
        return
    where = f"{doc['commune_name']}, " if doc["commune_name"] else ""
    note = "" if conv.exact else " (not exact: commune unknown or split)"
    console.print(f"{where}{doc['province_name']}{note}", highlight=False)
