"""File drops: CSV (UTF-8 with or without BOM), Excel .xlsx, JSON Lines and Parquet.

A file drop is read as a snapshot in chunks; the position is the file's SHA-256 and the number
of data rows already read, so a crash resumes at the next row, and a *new* drop (different
digest) is read again from its first row (the hub ignores rows that did not change). Each row's
source position is ``file:row`` (row 1 = first data row; for CSV/XLSX the header is row 0).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from lienthong.errors import BackendError, ConfigError, InputError
from lienthong.sync.model import Chunk, Position, source_key

FORMATS = ("csv", "xlsx", "jsonl", "parquet")


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _csv_rows(path: Path) -> Iterator[list[Any]]:
    # utf-8-sig strips a BOM when present and reads plain UTF-8 otherwise
    with path.open(encoding="utf-8-sig", newline="") as f:
        yield from csv.reader(f)


def _xlsx_rows(path: Path) -> Iterator[list[Any]]:
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        for row in wb.worksheets[0].iter_rows(values_only=True):
            yield list(row)
    finally:
        wb.close()


def _jsonl_rows(path: Path) -> Iterator[list[Any]]:
    header: list[str] | None = None
    with path.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{path.name}:{lineno}: not JSON: {exc}") from exc
            if not isinstance(obj, dict):
                raise InputError(f"{path.name}:{lineno}: a JSON object per line is required")
            if header is None:
                header = list(obj)
                yield header
            yield [obj.get(c) for c in header]


def _parquet_rows(path: Path) -> Iterator[list[Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    yield list(pf.schema_arrow.names)
    for batch in pf.iter_batches(batch_size=65536):
        cols = [c.to_pylist() for c in batch.columns]
        yield from (list(r) for r in zip(*cols, strict=True))


@dataclass
class FileChunk(Chunk):
    """A chunk of a file drop; ``duplicates``: row index in the chunk → data row number of
    the first row of the file with the same key (the mapper quarantines the later ones)."""

    duplicates: dict[int, int] = field(default_factory=dict)


_READERS = {"csv": _csv_rows, "xlsx": _xlsx_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}


@dataclass
class FileConnector:
    """A file drop read in chunks of ``size`` rows."""

    path: Path
    key: list[str]
    format: str = ""

    def __post_init__(self) -> None:
        self.format = self.format or self.path.suffix.lstrip(".").lower().replace("ndjson", "jsonl")
        if self.format not in FORMATS:
            raise ConfigError(f"{self.path}: unknown file format {self.format!r} ({FORMATS})")
        self.name = self.path.name

    def _rows(self) -> Iterator[list[Any]]:
        if not self.path.is_file():
            raise BackendError(f"file drop {self.path} does not exist")
        return _READERS[self.format](self.path)

    def schema(self) -> dict[str, str]:
        header = next(self._rows(), None)
        if not header:
            raise InputError(f"{self.path}: empty file, no header row")
        return {str(c).strip(): "text" for c in header if c is not None}

    def read(self, position: Position | None, size: int) -> Iterator[Chunk]:
        digest = file_digest(self.path)
        done = position["row"] if position and position.get("sha256") == digest else 0
        rows = self._rows()
        columns = [str(c).strip() for c in next(rows)]
        missing = [k for k in self.key if k not in columns]
        if missing:
            raise InputError(f"{self.path.name}: key column(s) {missing} not in the header")
        width = len(columns)
        idx = [columns.index(k) for k in self.key]
        # a key seen earlier in the file (keys of rows read before a resume included): the
        # first occurrence wins, the later ones are quarantined as duplicates (not last-wins)
        seen: dict[str, int] = {}
        for n, skipped in enumerate(itertools.islice(rows, done), 1):
            k = source_key([_fit(skipped, width)[i] for i in idx])
            if k:
                seen.setdefault(k, n)
        name = self.path.name
        while True:
            page = [_fit(r, width) for r in itertools.islice(rows, size)]
            if not page:
                return
            start = done
            done += len(page)
            dups: dict[int, int] = {}
            for j, r in enumerate(page):
                k = source_key([r[i] for i in idx])
                if k:
                    first = seen.setdefault(k, start + j + 1)
                    if first != start + j + 1:
                        dups[j] = first
            yield FileChunk(
                columns,
                page,
                {"sha256": digest, "row": done},
                locate=_locator(name, start),
                duplicates=dups,
            )

    def pending(self, position: Position | None) -> int:
        total = sum(1 for _ in self._rows()) - 1
        if position and position.get("sha256") == file_digest(self.path):
            return max(0, total - int(position["row"]))
        return total

    def close(self) -> None:
        pass


def _locator(name: str, start: int) -> Callable[[int], str]:
    return lambda i: f"{name}:{start + i + 1}"


def _fit(row: list[Any], width: int) -> tuple[Any, ...]:
    """Pad short rows with None and keep long ones (the mapper reports extra cells)."""
    if len(row) < width:
        row = [*row, *([None] * (width - len(row)))]
    return tuple(None if v == "" else v for v in row)
