"""File adapters: CSV (RFC 4180) and Excel exports, byte-identical for the same content.

Excel files are zip archives whose entries carry a modification time and whose
``docProps/core.xml`` records when the workbook was saved; both are pinned to the run's
reference date so that the same seed gives the same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lienthong.errors import BackendError
from lienthong.synth.model import Table

_W3CDTF = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)")


def write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], *, crlf: bool = True
) -> None:
    """UTF-8 CSV, minimal quoting, empty field for None."""
    try:
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\r\n" if crlf else "\n")
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise BackendError(f"cannot write {path}: {exc}") from exc


def write_table_csv(path: Path, table: Table) -> None:
    write_csv(path, [c.name for c in table.columns], table.rows())


def write_table_xlsx(path: Path, table: Table, as_of: dt.date) -> None:
    """One worksheet named after the table; numbers stay numbers, codes stay text."""
    from openpyxl import Workbook

    stamp = dt.datetime(as_of.year, as_of.month, as_of.day)
    wb = Workbook(write_only=True)
    wb.properties.creator = "lienthong synth"
    wb.properties.created = stamp
    ws = wb.create_sheet(table.name)
    ws.append([c.name for c in table.columns])
    for row in table.rows():
        ws.append(list(row))
    raw = path.with_name(path.name + ".raw")
    try:
        wb.save(raw)
        _pin_zip(raw, path, stamp)
    except OSError as exc:
        raise BackendError(f"cannot write {path}: {exc}") from exc
    finally:
        raw.unlink(missing_ok=True)


def _pin_zip(src: Path, dst: Path, stamp: dt.datetime) -> None:
    """Copy a zip archive with every entry time, and the workbook's saved-at time, fixed."""
    when = stamp.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "docProps/core.xml":
                data = _W3CDTF.sub(rb"\g<1>" + when + rb"\g<2>", data)
            info = zipfile.ZipInfo(item.filename, date_time=stamp.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zout.writestr(info, data)
