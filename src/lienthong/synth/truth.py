"""The ground-truth folder (``DIR/truth/``): who every record really is, and what was broken.

- ``citizens.csv`` — the true citizens, one row each (``citizen_id`` is the personal ID);
- ``links.csv`` — ``source,table,key,citizen_id``: every row of every source and its citizen;
- ``defects.csv`` — ``source,table,key,field,defect,original,injected``: every injected defect
  (``original`` is the value in the source's own conventions, ``injected`` what was written;
  a *duplicate* has field ``*``, the original row's key and the copy's key);
- ``manifest.json`` — settings, row counts, defect counts and the SHA-256 of every file.

CSV files are UTF-8 with ``\\n`` line ends, header first; empty field = no value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

from lienthong.errors import InputError
from lienthong.synth.dates import DateTexts
from lienthong.synth.geography import Geography
from lienthong.synth.model import DEFECT_FIELDS, LINK_FIELDS, Defect, Source
from lienthong.synth.people import Citizens
from lienthong.synth.writers.files import write_csv

CITIZEN_FIELDS = (
    "citizen_id", "full_name", "family_name", "middle_name", "given_name", "birth_date", "sex",
    "birth_registration_province", "birth_registration_commune", "hometown_commune",
    "permanent_commune", "permanent_address", "current_commune", "current_address",
    "previous_commune", "ethnicity", "religion", "nationality", "phone", "cmnd",
)  # fmt: skip


def _citizen_rows(c: Citizens, geo: Geography, dates: DateTexts) -> Iterator[tuple[Any, ...]]:
    p, address = c.places, geo.address
    iso = dates.iso_of(c.birth)
    for i in range(len(c)):
        yield (
            c.personal_id[i], c.full_name[i], c.family[i], c.middle[i], c.given[i], iso[i],
            c.sex[i], c.birth_province[i], p.birth_commune[i], p.hometown[i], p.permanent[i],
            f"{p.permanent_detail[i]}, {address(p.permanent[i])}", p.current[i],
            f"{p.current_detail[i]}, {address(p.current[i])}", p.previous[i], c.ethnicity[i],
            c.religion[i], c.nationality[i], c.phone[i], c.cmnd[i],
        )  # fmt: skip


def _link_rows(sources: list[Source]) -> Iterator[tuple[str, str, Any, str]]:
    for source in sources:
        for table in source.tables:
            yield from zip(
                repeat(source.name), repeat(table.name), table.data[table.key], table.citizens
            )


def write_truth(
    folder: Path, citizens: Citizens, sources: list[Source], defects: list[Defect],
    geo: Geography, dates: DateTexts,
) -> list[Path]:  # fmt: skip
    """Write the three CSV files into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "citizens.csv", folder / "links.csv", folder / "defects.csv"]
    write_csv(paths[0], CITIZEN_FIELDS, _citizen_rows(citizens, geo, dates), crlf=False)
    write_csv(paths[1], LINK_FIELDS, _link_rows(sources), crlf=False)
    write_csv(
        paths[2],
        DEFECT_FIELDS,
        ((d.source, d.table, d.key, d.field, d.defect, d.original, d.injected) for d in defects),
        crlf=False,
    )
    return paths


def read_truth_csv(folder: Path, name: str) -> Iterator[dict[str, str]]:
    """Rows of ``citizens.csv``, ``links.csv`` or ``defects.csv`` as dicts (streamed)."""
    if name not in ("citizens.csv", "links.csv", "defects.csv"):
        raise InputError(f"{name!r} is not a ground-truth file")
    path = folder / name
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            yield from csv.DictReader(fh)
    except FileNotFoundError as exc:
        raise InputError(f"{path} not found: is {folder} a synth truth folder?") from exc


def link_index(folder: Path) -> dict[tuple[str, str, str], str]:
    """``(source, table, key) → citizen_id`` for every source row (for resolution scoring)."""
    return {
        (r["source"], r["table"], r["key"]): r["citizen_id"]
        for r in read_truth_csv(folder, "links.csv")
    }
