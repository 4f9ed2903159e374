"""What the generator produces, independent of where it is written.

A :class:`Source` (one agency's database) holds :class:`Table` objects kept column-oriented
while they are built and defects are injected (a column is one Python list: mutating field
``f`` of row ``i`` is ``table.data[f][i] = v``), and turned into row tuples only when written.
Every row carries the true citizen it describes (``Table.citizens``): that is the ground-truth
link. Schemas are data (:class:`Column`), so each backend renders them through its dialect.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

ColumnType = Literal["text", "int"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a source table: name, logical type and the longest value it may hold."""

    name: str
    type: ColumnType = "text"
    size: int = 64
    nullable: bool = True
    doc: str = ""


@dataclass(slots=True)
class Table:
    """One table of a source database, column-oriented.

    ``key`` names the column that identifies a row inside its source (the *source key* of the
    ground truth); ``citizens`` holds, row by row, the personal ID of the true citizen.
    """

    name: str
    columns: tuple[Column, ...]
    key: str
    data: dict[str, list[Any]]
    citizens: list[str]
    doc: str = ""

    def __len__(self) -> int:
        return len(self.citizens)

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Row tuples in column order (what an ``executemany`` wants)."""
        return zip(*(self.data[c.name] for c in self.columns), strict=True)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Export:
    """A file export of one table (the tax authority hands out CSV and Excel files)."""

    table: str
    filename: str
    format: Literal["csv", "xlsx"]


@dataclass(slots=True)
class Source:
    """One agency's source database (cơ sở dữ liệu nguồn) with its own local schema."""

    name: str
    title: str
    tables: list[Table]
    exports: list[Export] = field(default_factory=list)

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)

    @property
    def rows(self) -> int:
        return sum(len(t) for t in self.tables)


@dataclass(frozen=True, slots=True)
class Defect:
    """One injected, labelled defect: which value of which row, and what it was before."""

    source: str
    table: str
    key: str
    field: str
    defect: str
    original: str
    injected: str


DEFECT_FIELDS = ("source", "table", "key", "field", "defect", "original", "injected")
LINK_FIELDS = ("source", "table", "key", "citizen_id")
