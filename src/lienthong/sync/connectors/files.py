"""File drops: CSV (UTF-8 with or without BOM), Excel .xlsx, JSON Lines and Parquet.

A file drop is read as a snapshot in chunks; the position is the file's SHA-256 and the number
of data rows already read, so a crash resumes at the next row, and a *new* drop (different
digest) is read again from its first row (the hub ignores rows that did not change). Each row's
source position is ``file:row`` (row 1 = first data row; for CSV/XLSX the header is row 0).

Schema (for drift): the columns (a JSON Lines drop: every key of every line, in first-seen
order) and their types. Parquet declares them (Arrow type names); for the others they are the
kinds of the values seen in the whole drop: ``string``, ``number``, ``boolean``, ``date``,
``datetime``, ``time``, ``object``, ``array`` (CSV, all text, by the look of each value:
``number``, ``date``, ``datetime`` or ``string``), joined by ``|`` when mixed, ``empty`` when
the column holds no value.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import itertools
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from lienthong.errors import BackendError, ConfigError, InputError
from lienthong.sync.model import Chunk, Position, source_key

FORMATS = ("csv", "xlsx", "jsonl", "parquet")
EMPTY = "empty"  # a column without any value: its type is not known


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _csv_rows(path: Path) -> Iterator[list[Any]]:
    # utf-8-sig strips a BOM when present and reads plain UTF-8 otherwise
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            yield from csv.reader(f)
    except UnicodeDecodeError as exc:  # a legacy export (Windows-1258, TCVN3, Latin-1 …)
        raise _not_utf8(path, exc) from None


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> InputError:
    """Where the first byte that is not UTF-8 is (line, byte): the decoder reads in blocks,
    so the reader's own line count would be off."""
    with path.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                byte = line[bad.start]
                return InputError(
                    f"{path.name}: not UTF-8 (line {lineno}, byte 0x{byte:02x}): save the file "
                    "as UTF-8 (with or without BOM) and drop it again",
                    code="not_utf8",
                )
    return InputError(f"{path.name}: not UTF-8 ({exc.reason})", code="not_utf8")


def _unreadable(path: Path, what: str, exc: BaseException) -> InputError:
    """A damaged or half-copied drop (a truncated workbook, a Parquet file without its
    footer): one line, exit 2 — the next run reads it again once it is whole."""
    return InputError(
        f"{path.name}: not a readable {what} ({type(exc).__name__}: {exc}); is it still being "
        "copied, or damaged? Drop it again",
        code="unreadable_file",
    )


def _xlsx_rows(path: Path) -> Iterator[list[Any]]:
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, EOFError) as exc:
        raise _unreadable(path, "Excel .xlsx workbook", exc) from None
    try:
        for row in wb.worksheets[0].iter_rows(values_only=True):
            yield list(row)
    except (zipfile.BadZipFile, KeyError, EOFError, OSError) as exc:  # a damaged sheet part
        raise _unreadable(path, "Excel .xlsx workbook", exc) from None
    finally:
        wb.close()


def _jsonl_objects(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    raise InputError(
                        f"{path.name}:{lineno}: not UTF-8 (byte 0x{line[bad.start]:02x}): save "
                        "the file as UTF-8 and drop it again",
                        code="not_utf8",
                    ) from None
                raise InputError(f"{path.name}:{lineno}: not JSON: {exc}") from exc
            if not isinstance(obj, dict):
                raise InputError(f"{path.name}:{lineno}: a JSON object per line is required")
            yield obj


def _jsonl_rows(path: Path, header: list[str]) -> Iterator[list[Any]]:
    """The header (every key of the drop), then each object's values in that order (a key a
    line lacks is None): a key that only later lines carry is a column, not dropped."""
    yield header
    for obj in _jsonl_objects(path):
        yield [obj.get(c) for c in header]


def _parquet_file(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, "Parquet file", exc) from None


def _parquet_rows(path: Path) -> Iterator[list[Any]]:
    import pyarrow as pa

    pf = _parquet_file(path)
    yield list(pf.schema_arrow.names)
    try:
        for batch in pf.iter_batches(batch_size=65536):
            cols = [c.to_pylist() for c in batch.columns]
            yield from (list(r) for r in zip(*cols, strict=True))
    except (pa.ArrowException, OSError) as exc:  # a damaged row group
        raise _unreadable(path, "Parquet file", exc) from None


@dataclass
class FileChunk(Chunk):
    """A chunk of a file drop; ``duplicates``: row index in the chunk → data row number of
    the first row of the file with the same key (the mapper quarantines the later ones)."""

    duplicates: dict[int, int] = field(default_factory=dict)


_READERS = {"csv": _csv_rows, "xlsx": _xlsx_rows, "parquet": _parquet_rows}
_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{4}/\d{2}/\d{2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{4}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")


_KIND_OF_TYPE: dict[type, str] = {
    bool: "boolean", int: "number", float: "number", decimal.Decimal: "number",
    dt.datetime: "datetime", dt.date: "date", dt.time: "time", dict: "object", list: "array",
}  # fmt: skip
_NINES = bytes.maketrans(b"0123456789", b"9" * 10)
_BLOCK = 65536


def value_kinds(col: Sequence[Any]) -> set[str]:
    """The types of a column of typed values (Excel cells, JSON values); None and "" are
    no value. Computed per distinct type, not per value."""
    kinds = set()
    for t in set(map(type, col)):
        if t is str:
            if "" not in col or any(v for v in col if type(v) is str):
                kinds.add("string")
        elif t is not type(None):
            kinds.add(_KIND_OF_TYPE.get(t, "string"))
    return kinds


def text_kind(value: str) -> str | None:
    """The type a CSV value looks like (CSV declares none): a text starting with a letter
    is a string at once; digits are a number, a date or a date-time; "" is no value."""
    text = value.strip()
    if not text:
        return None
    if not (text[0].isdigit() or text[0] in "+-.,"):
        return "string"
    if _NUMBER.fullmatch(text):
        return "number"  # also yyyymmdd: eight digits read as a number
    if _DATE.fullmatch(text):
        return "date"
    if _DATETIME.fullmatch(text):
        return "datetime"
    return "string"


def text_kinds(col: Sequence[str]) -> set[str]:
    """The types of a CSV column: each distinct shape (every digit read as 9) looked at once;
    the shapes come from one C-level translate of the joined distinct values."""
    distinct = set(col)
    distinct.discard("")
    joined = "\x00".join(distinct)
    if joined.count("\x00") == len(distinct) - 1:  # no value holds a NUL
        shapes = set(joined.encode().translate(_NINES).decode().split("\x00"))
    else:
        shapes = distinct
    return {k for k in map(text_kind, shapes) if k is not None}


def _kinds_schema(header: list[Any], rows: Iterator[list[Any]], csv_text: bool) -> dict[str, str]:
    """Column → the types of its values (``a|b`` when mixed, ``empty`` when none)."""
    names = [None if c is None else str(c).strip() for c in header]
    seen: list[set[str]] = [set() for _ in names]
    kinds, fill = (text_kinds, "") if csv_text else (value_kinds, None)
    while block := list(itertools.islice(rows, _BLOCK)):
        for found, col in zip(seen, itertools.zip_longest(*block, fillvalue=fill), strict=False):
            found |= kinds(col)
    return {n: "|".join(sorted(f)) or EMPTY for n, f in zip(names, seen, strict=True) if n}


def _arrow_type(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):
        return EMPTY
    return str(t).replace("large_", "")


def profile(path: Path, fmt: str) -> dict[str, str]:
    """The drop's columns and their types (see the module docstring)."""
    if fmt == "parquet":
        return {f.name: _arrow_type(f.type) for f in _parquet_file(path).schema_arrow}
    if fmt == "jsonl":
        seen: dict[str, set[str]] = {}
        objects = _jsonl_objects(path)
        while block := list(itertools.islice(objects, _BLOCK)):
            for c in dict.fromkeys(itertools.chain.from_iterable(block)):
                found = seen.setdefault(c, set())
                found |= value_kinds(list(map(operator.methodcaller("get", c), block)))
        return {c: "|".join(sorted(f)) or EMPTY for c, f in seen.items()}
    rows = _READERS[fmt](path)
    header = next(rows, None)
    if not header:
        return {}
    _check_header(path, header)
    return _kinds_schema(header, rows, csv_text=fmt == "csv")


def _check_header(path: Path, header: list[Any]) -> None:
    """A column named twice: which of the two values a row means is a guess (the first was
    taken, the second dropped in silence)."""
    names = [None if c is None else str(c).strip() for c in header]
    for name in dict.fromkeys(n for n in names if n):
        where = [i + 1 for i, n in enumerate(names) if n == name]
        if len(where) > 1:
            raise InputError(
                f"{path.name}: column {name!r} appears {len(where)} times in the header "
                f"(columns {', '.join(map(str, where))}); rename one and drop the file again",
                code="duplicate_column",
            )


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
        self._profile: tuple[tuple[int, int, int], dict[str, str]] | None = None

    def _rows(self) -> Iterator[list[Any]]:
        if not self.path.is_file():
            raise BackendError(f"file drop {self.path} does not exist")
        if self.format == "jsonl":
            return _jsonl_rows(self.path, list(self.schema()))
        return _READERS[self.format](self.path)

    def schema(self) -> dict[str, str]:
        """Columns and types of the drop as it is now (one scan per version of the file)."""
        if not self.path.is_file():
            raise BackendError(f"file drop {self.path} does not exist")
        st = self.path.stat()
        version = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._profile is None or self._profile[0] != version:
            self._profile = (version, profile(self.path, self.format))
        if not self._profile[1]:
            raise InputError(f"{self.path}: empty file, no header row")
        return dict(self._profile[1])

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
