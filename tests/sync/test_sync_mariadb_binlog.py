"""MariaDB log-based capture (row binlog) on a private binlog-enabled instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from synctools import Keys, consolidated, make_rig

from lienthong.errors import ConfigError
from lienthong.sync.connectors.mariadb_binlog import MariaDbBinlogConnector
from lienthong.sync.model import Chunk

pytestmark = pytest.mark.mariadb


def run_sql(params: dict[str, object], *statements: str) -> None:
    conn = pymysql.connect(**params, autocommit=True)
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    conn.close()


def test_shared_server_without_binlog_is_reported(mariadb_params: dict[str, object]) -> None:
    conn = MariaDbBinlogConnector(dict(mariadb_params), "t", ["id"])
    try:
        conn.verify_server()
    except ConfigError as exc:
        assert "log_bin=OFF" in exc.message
    else:
        pytest.skip("the shared server already has a row binlog")


@pytest.fixture
def binlog(mariadb_binlog_params: dict[str, object]) -> Iterator[MariaDbBinlogConnector]:
    run_sql(
        mariadb_binlog_params, "DROP TABLE IF EXISTS people",
        "CREATE TABLE people (id BIGINT PRIMARY KEY, name VARCHAR(50))",
        "INSERT INTO people SELECT seq, CONCAT('Người ', seq) FROM seq_1_to_250",
    )  # fmt: skip
    conn = MariaDbBinlogConnector(dict(mariadb_binlog_params), "people", ["id"], server_id=77)
    yield conn
    conn.close()


def drain(conn: MariaDbBinlogConnector, pos: dict | None) -> tuple[list[Chunk], dict | None]:
    chunks = list(conn.read(pos, 100))
    return chunks, (chunks[-1].position if chunks else pos)


def test_snapshot_then_binlog_stream(
    binlog: MariaDbBinlogConnector, mariadb_binlog_params: dict[str, object]
) -> None:
    chunks, pos = drain(binlog, None)
    assert [r[0] for c in chunks for r in c.rows] == list(range(1, 251))
    assert pos is not None and pos["phase"] == "stream"
    run_sql(
        mariadb_binlog_params,
        "UPDATE people SET name = 'Đổi' WHERE id = 5",
        "DELETE FROM people WHERE id = 6",
        "INSERT INTO people VALUES (251, 'Mới')",
        "CREATE TABLE other (x INT PRIMARY KEY)",
        "INSERT INTO other VALUES (1)",
    )
    chunks, pos2 = drain(binlog, pos)
    assert [r for c in chunks for r in c.rows] == [(5, "Đổi"), (251, "Mới")]
    assert [d for c in chunks for d in c.deletes] == [(6,)]
    again, _ = drain(binlog, pos2)
    assert [r for c in again for r in c.rows] == []  # resumes after the last commit
    assert binlog.pending(pos2) == 0


def test_pipeline_with_binlog_end_to_end(
    binlog: MariaDbBinlogConnector, mariadb_binlog_params: dict[str, object], tmp_path: Path,
    keys: Keys, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    p = mariadb_binlog_params
    monkeypatch.setenv("LT_TEST_BINLOG_DSN", f"mysql://root@127.0.0.1:{p['port']}/{p['database']}")
    doc = {
        "source_id": "BHXH.HN",
        "source": {"kind": "mariadb", "dsn": {"$env": "LT_TEST_BINLOG_DSN"}},
        "tables": [{"name": "people", "key": ["id"], "entity": "person", "entity_schema": "free",
                    "batch_size": 100,
                    "binlog_server_id": 78, "classification": "INTERNAL"}],
    }  # fmt: skip
    rig = make_rig(tmp_path, keys, doc)
    try:
        assert rig.agency.run().read == 250
        run_sql(p, "UPDATE people SET name = 'Đổi' WHERE id < 11",
                "DELETE FROM people WHERE id BETWEEN 11 AND 20")  # fmt: skip
        report = rig.agency.run()
        assert (report.read, report.applied) == (20, 20)
        rows = consolidated(rig.store, "person")
        conn = pymysql.connect(**p)
        with conn.cursor() as cur:
            cur.execute("SELECT id, name FROM people")
            source = {str(i): n for i, n in cur.fetchall()}
        conn.close()
        assert {k: v["name"] for k, v in rows.items()} == source
    finally:
        rig.close()


def test_changes_of_one_key_in_a_chunk_keep_their_order(
    binlog: MariaDbBinlogConnector, mariadb_binlog_params: dict[str, object]
) -> None:
    """A key deleted and inserted again (and one inserted then deleted) within one chunk:
    the chunk carries the last change of each key, the others count as superseded."""
    _chunks, pos = drain(binlog, None)
    run_sql(
        mariadb_binlog_params,
        "DELETE FROM people WHERE id = 7",
        "INSERT INTO people VALUES (7, 'Trở lại')",
        "INSERT INTO people VALUES (300, 'Tạm')",
        "UPDATE people SET name = 'Một' WHERE id = 8",
        "UPDATE people SET name = 'Hai' WHERE id = 8",
        "DELETE FROM people WHERE id = 300",
    )
    chunks, _ = drain(binlog, pos)
    assert [r for c in chunks for r in c.rows] == [(7, "Trở lại"), (8, "Hai")]
    assert [d for c in chunks for d in c.deletes] == [(300,)]
    assert sum(c.superseded for c in chunks) == 3 and sum(c.read for c in chunks) == 6


def test_changes_during_the_snapshot_are_neither_lost_nor_replayed(
    binlog: MariaDbBinlogConnector, mariadb_binlog_params: dict[str, object]
) -> None:
    """Changes made between snapshot pages, to rows already read and to rows not read yet:
    the stream applies exactly those the pages did not see."""
    chunks: list[Chunk] = []
    start = 0
    for n, chunk in enumerate(binlog.read(None, 100)):
        chunks.append(chunk)
        if n == 0:  # page 1 is read (ids 1–100); pages 2 and 3 are not
            run_sql(
                mariadb_binlog_params,
                "UPDATE people SET name = 'đọc rồi, đổi' WHERE id = 100",
                "UPDATE people SET name = 'chưa đọc, đổi' WHERE id = 240",
                "DELETE FROM people WHERE id = 1",
                "DELETE FROM people WHERE id = 245",
                "INSERT INTO people VALUES (999, 'mới')",
                "UPDATE people SET name = 'lần 1' WHERE id = 230",
                "UPDATE people SET name = 'lần 2' WHERE id = 230",
            )
        if chunk.position["phase"] == "stream" and not chunk.rows and not chunk.deletes:
            start = len(chunks)
    stream = chunks[start:]
    assert sorted(r for c in stream for r in c.rows) == [(100, "đọc rồi, đổi")]
    assert [d for c in stream for d in c.deletes] == [(1,)]
    model: dict[int, str] = {}
    for c in chunks:
        model.update(dict(c.rows))
        for (key,) in c.deletes:
            model.pop(key, None)
    conn = pymysql.connect(**mariadb_binlog_params)
    with conn.cursor() as cur:
        cur.execute("SELECT id, name FROM people")
        source = dict(cur.fetchall())
    conn.close()
    assert model == source


def test_an_update_of_the_key_deletes_the_old_key(
    binlog: MariaDbBinlogConnector, mariadb_binlog_params: dict[str, object]
) -> None:
    _chunks, pos = drain(binlog, None)
    run_sql(mariadb_binlog_params, "UPDATE people SET id = 1000 WHERE id = 5")
    chunks, _ = drain(binlog, pos)
    assert [r for c in chunks for r in c.rows] == [(1000, "Người 5")]
    assert [d for c in chunks for d in c.deletes] == [(5,)]


def test_binlog_coordinates_order_past_file_number_999999() -> None:
    from lienthong.sync.connectors.mariadb_binlog import _coord

    files = ["binlog.000002", "binlog.999999", "binlog.1000000"]
    coords = [_coord({"file": f, "pos": 4}) for f in files]
    assert coords == sorted(coords)
    assert _coord({"file": "binlog.000002", "pos": 900}) > _coord(
        {"file": "binlog.000002", "pos": 4}
    )
