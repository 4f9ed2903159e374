"""Connectors against real servers and real files: resumable chunks, cursors, tombstones."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pymysql
import pytest

from lienthong.errors import ConfigError
from lienthong.sync.connectors.files import FileConnector
from lienthong.sync.connectors.sql import MARIADB, POSTGRES, SQLITE, SqlTableConnector
from lienthong.sync.model import Chunk

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
DDL = {
    "sqlite": "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT NOT NULL,"
    " deleted INTEGER NOT NULL DEFAULT 0)",
    "postgres": "CREATE TABLE {t} (id BIGINT PRIMARY KEY, name TEXT,"
    " updated_at TIMESTAMPTZ NOT NULL, deleted BOOLEAN NOT NULL DEFAULT false)",
    "mariadb": "CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(100),"
    " updated_at DATETIME(6) NOT NULL, deleted BOOLEAN NOT NULL DEFAULT false)",
}


class Source:
    """One real table in one backend, written through its own driver."""

    def __init__(self, kind: str, connect: Callable[[], Any]) -> None:
        self.kind, self.connect = kind, connect
        self.table = f"people_{uuid.uuid4().hex[:8]}"
        self.mark = "?" if kind == "sqlite" else "%s"
        self.exec(DDL[kind].format(t=self.table))

    def exec(self, sql: str, rows: list[tuple[Any, ...]] | None = None) -> None:
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.executemany(sql, rows) if rows is not None else cur.execute(sql)
            conn.commit()
        finally:
            conn.close()

    def stamp(self, seconds: int) -> Any:
        t = T0 + dt.timedelta(seconds=seconds)
        return {"sqlite": t.isoformat(), "postgres": t, "mariadb": t.replace(tzinfo=None)}[
            self.kind
        ]

    def insert(self, ids: range, second: int = 0) -> None:
        m = self.mark
        self.exec(
            f"INSERT INTO {self.table} (id, name, updated_at) VALUES ({m}, {m}, {m})",
            [(i, f"Người {i}", self.stamp(second)) for i in ids],
        )

    def update(self, i: int, second: int, deleted: bool = False) -> None:
        m = self.mark
        self.exec(
            f"UPDATE {self.table} SET name = {m}, updated_at = {m}, deleted = {m} WHERE id = {m}",
            [(f"Đổi {i}", self.stamp(second), deleted, i)],
        )

    def connector(self, cursor: str | None = None) -> SqlTableConnector:
        dialect = {"sqlite": SQLITE, "postgres": POSTGRES, "mariadb": MARIADB}[self.kind]
        deleted = "deleted" if cursor else None
        return SqlTableConnector(self.connect, dialect, self.table, ["id"], cursor, deleted)


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
            pytest.param("mariadb", marks=pytest.mark.mariadb)]
)  # fmt: skip
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Source]:
    if request.param == "sqlite":
        path = tmp_path / "src.db"
        yield Source("sqlite", lambda: sqlite3.connect(path))
    elif request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        yield Source("postgres", lambda: psycopg.connect(dsn))
    else:
        params = request.getfixturevalue("mariadb_params")
        yield Source("mariadb", lambda: pymysql.connect(**params))


def ids(chunks: list[Chunk]) -> list[int]:
    return [int(r[0]) for c in chunks for r in c.rows]


def test_snapshot_resumes_after_last_finished_chunk(source: Source) -> None:
    source.insert(range(1, 1001))
    conn = source.connector()
    assert set(conn.schema()) == {"id", "name", "updated_at", "deleted"}
    first = []
    for chunk in conn.read(None, 300):  # "crash" after two chunks
        first.append(chunk)
        if len(first) == 2:
            break
    rest = list(conn.read(first[-1].position, 300))
    assert ids(first) + ids(rest) == list(range(1, 1001))
    assert conn.pending(first[-1].position) == 400
    conn.close()


def test_cursor_mode_sees_updates_ties_and_tombstones(source: Source) -> None:
    source.insert(range(1, 501), second=1)  # 500 rows share one updated_at: ties by key
    conn = source.connector(cursor="updated_at")
    chunks = list(conn.read(None, 64))
    assert ids(chunks) == list(range(1, 501))
    pos = chunks[-1].position
    assert list(conn.read(pos, 64)) == []
    source.update(10, second=5)
    source.update(20, second=6, deleted=True)
    source.insert(range(501, 503), second=7)
    later = list(conn.read(pos, 64))
    assert ids(later) == [10, 501, 502]  # rows that left the tie window are not sent again
    assert [d for c in later for d in c.deletes] == [(20,)]
    assert later[0].rows[0][1] == "Đổi 10"
    assert list(conn.read(later[-1].position, 64)) == []
    conn.close()


def test_cursor_mode_late_tie_is_not_lost(source: Source) -> None:
    """QA2 #1: a row whose cursor equals the checkpoint's but arrives later is read."""
    source.insert(range(1, 4), second=1)
    conn = source.connector(cursor="updated_at")
    pos = list(conn.read(None, 2))[-1].position
    source.update(2, second=60)
    pos = list(conn.read(pos, 2))[-1].position  # checkpoint: (second 60, id 2)
    assert conn.pending(pos) == 0 and list(conn.read(pos, 2)) == []
    source.update(1, second=60)  # the same cursor value, a key below the checkpoint's
    assert conn.pending(pos) > 0  # status does not claim "in sync"
    late = list(conn.read(pos, 2))
    assert [r[1] for c in late for r in c.rows if r[0] == 1] == ["Đổi 1"]
    final = late[-1].position
    assert conn.pending(final) == 0 and list(conn.read(final, 2)) == []
    conn.close()


def test_cursor_overlap_rechecks_earlier_seconds(source: Source) -> None:
    source.insert(range(1, 3), second=1)
    conn = source.connector(cursor="updated_at")
    conn.overlap_s = 30
    source.update(2, second=20)
    pos = list(conn.read(None, 10))[-1].position
    assert list(conn.read(pos, 10)) == []
    source.update(1, second=5)  # a late commit with an older timestamp, inside the overlap
    assert 1 in ids(list(conn.read(pos, 10)))
    conn.close()


def test_large_tie_window_is_sent_again_whole_when_it_changes(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lienthong.sync.connectors.sql.WINDOW_ROWS", 3)
    source.insert(range(1, 6), second=1)
    conn = source.connector(cursor="updated_at")
    pos = list(conn.read(None, 2))[-1].position
    assert "rows" not in pos["window"] and list(conn.read(pos, 2)) == []
    source.exec(f"INSERT INTO {source.table} (id, name, updated_at) VALUES (0, 'x', "
                f"{source.mark})", [(source.stamp(1),)])  # fmt: skip
    again = list(conn.read(pos, 2))
    assert ids(again) == [0, 1, 2, 3, 4, 5]
    assert list(conn.read(again[-1].position, 2)) == []
    conn.close()


def write_files(tmp: Path, rows: list[dict[str, Any]]) -> dict[str, Path]:
    cols = list(rows[0])
    out = {"csv": tmp / "bom.csv", "csv-plain": tmp / "plain.csv", "xlsx": tmp / "d.xlsx",
           "jsonl": tmp / "d.jsonl", "parquet": tmp / "d.parquet"}  # fmt: skip
    for key, enc in (("csv", "utf-8-sig"), ("csv-plain", "utf-8")):
        with out[key].open("w", encoding=enc, newline="") as f:
            w = csv.DictWriter(f, cols)
            w.writeheader()
            w.writerows(rows)
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(cols)
    for r in rows:
        ws.append(list(r.values()))
    wb.save(out["xlsx"])
    out["jsonl"].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), out["parquet"])
    return out


def test_file_drops_every_format_resumable(tmp_path: Path) -> None:
    rows = [{"so_the": f"HN{i:05d}", "ho_ten": f"TRẦN THỊ {i}"} for i in range(1, 251)]
    for fmt, path in write_files(tmp_path, rows).items():
        conn = FileConnector(path, ["so_the"], "csv" if fmt == "csv-plain" else "")
        assert list(conn.schema()) == ["so_the", "ho_ten"], fmt  # the BOM is not in the name
        first = next(iter(conn.read(None, 100)))
        assert first.locate is not None and first.locate(0) == f"{path.name}:1"
        rest = list(conn.read(first.position, 100))
        got = [r[0] for c in [first, *rest] for r in c.rows]
        assert got == [r["so_the"] for r in rows], fmt
        assert rest[-1].rows[-1][1] == "TRẦN THỊ 250"
        assert conn.pending(first.position) == 150


def test_new_file_drop_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "drop.csv"
    path.write_text("id,x\n1,a\n2,b\n", encoding="utf-8")
    conn = FileConnector(path, ["id"])
    (chunk,) = conn.read(None, 10)
    assert list(conn.read(chunk.position, 10)) == []
    path.write_text("id,x\n1,a\n2,B\n3,c\n", encoding="utf-8")
    assert [r[1] for c in conn.read(chunk.position, 10) for r in c.rows] == ["a", "B", "c"]


@pytest.mark.postgres
def test_schema_qualified_postgres_table(pg_dsn: str) -> None:
    """QA2 #16: `schema.table` names a table outside the search path."""
    schema = f"qa_a_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(f"CREATE TABLE {schema}.nguoi (id BIGINT PRIMARY KEY, ten TEXT)")
        db.execute(f"INSERT INTO {schema}.nguoi VALUES (1, 'An'), (2, 'Bình')")
    try:
        conn = SqlTableConnector(lambda: psycopg.connect(pg_dsn), POSTGRES, f"{schema}.nguoi",
                                 ["id"])  # fmt: skip
        assert list(conn.schema()) == ["id", "ten"]
        assert ids(list(conn.read(None, 10))) == [1, 2] and conn.pending(None) == 2
        conn.close()
    finally:
        with psycopg.connect(pg_dsn) as db:
            db.execute(f"DROP SCHEMA {schema} CASCADE")
    with pytest.raises(ConfigError, match="schema-qualified names need"):
        SqlTableConnector(sqlite3.connect, SQLITE, "main.nguoi", ["id"])
    with pytest.raises(ConfigError, match="invalid SQL identifier"):
        SqlTableConnector(sqlite3.connect, POSTGRES, "a.b;drop", ["id"])
