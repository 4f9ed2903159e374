"""Log-based capture from PostgreSQL through a logical replication slot (test_decoding)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from synctools import Keys, consolidated, make_rig

from lienthong.errors import ConfigError
from lienthong.sync.connectors.pg_logical import PgLogicalConnector, parse_change
from lienthong.sync.model import Chunk

pytestmark = pytest.mark.postgres


def test_decoding_lines_are_parsed() -> None:
    line = ("table public.t: UPDATE: id[bigint]:7 name[text]:'O''Brien Nguyễn' "
            "born[date]:'1990-02-03' ok[boolean]:true gone[text]:null")  # fmt: skip
    table, op, values = parse_change(line) or ("", "", {})
    assert (table, op) == ("public.t", "UPDATE")
    assert values["id"] == 7 and values["name"] == "O'Brien Nguyễn"
    assert str(values["born"]) == "1990-02-03" and values["ok"] is True and values["gone"] is None


def test_shared_server_wal_level_is_reported(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as c:
        (level,) = c.execute("SHOW wal_level").fetchone() or ("",)
    conn = PgLogicalConnector(lambda: psycopg.connect(pg_dsn), "t", ["id"], "lt_never")
    if level == "logical":
        pytest.skip("the shared server already has wal_level=logical")
    with pytest.raises(ConfigError, match="wal_level is 'replica'"):
        conn.verify_server()
    conn.close()


@pytest.fixture
def logical(pg_logical_dsn: str) -> Iterator[tuple[str, PgLogicalConnector]]:
    with psycopg.connect(pg_logical_dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS people")
        c.execute("CREATE TABLE people (id BIGINT PRIMARY KEY, name TEXT)")
        c.execute("INSERT INTO people SELECT i, 'Người ' || i FROM generate_series(1, 250) i")
    conn = PgLogicalConnector(lambda: psycopg.connect(pg_logical_dsn), "people", ["id"], "lt_t")
    yield pg_logical_dsn, conn
    conn.drop_slot()  # an abandoned slot would pin WAL forever
    conn.close()


def drain(conn: PgLogicalConnector, position: dict | None) -> tuple[list[Chunk], dict | None]:
    chunks = list(conn.read(position, 100))
    return chunks, (chunks[-1].position if chunks else position)


def test_snapshot_then_stream_with_tombstones_and_resume(
    logical: tuple[str, PgLogicalConnector],
) -> None:
    dsn, conn = logical
    chunks, pos = drain(conn, None)
    assert [r[0] for c in chunks for r in c.rows] == list(range(1, 251))
    assert pos is not None and pos["phase"] == "stream"  # snapshot complete
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE people SET name = 'Đổi' WHERE id = 5")
        c.execute("DELETE FROM people WHERE id = 6")
        c.execute("INSERT INTO people VALUES (251, 'Mới')")
        c.execute("CREATE TABLE other (x int)")
        c.execute("INSERT INTO other VALUES (1)")  # another table: skipped, slot still moves
    chunks, pos2 = drain(conn, pos)
    rows = [r for c in chunks for r in c.rows]
    assert rows == [(5, "Đổi"), (251, "Mới")]
    assert [d for c in chunks for d in c.deletes] == [(6,)]
    assert pos2 is not None and pos2["phase"] == "stream"
    assert drain(conn, pos2)[0] == []  # resumes after the last commit: nothing twice
    conn.heartbeat()
    assert drain(conn, pos2)[0] == []
    with psycopg.connect(dsn) as c:
        slot_lsn, current = c.execute(
            "SELECT confirmed_flush_lsn, pg_current_wal_lsn() FROM pg_replication_slots "
            "WHERE slot_name = 'lt_t'"
        ).fetchone() or (None, None)
    assert slot_lsn is not None and current is not None
    assert conn.pending(pos2) == 0


def test_pipeline_with_logical_slot_end_to_end(
    logical: tuple[str, PgLogicalConnector], tmp_path: Path, keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    dsn, conn = logical
    conn.drop_slot()  # the pipeline creates its own
    monkeypatch.setenv("LT_TEST_LOGICAL_DSN", dsn)
    doc = {
        "source_id": "BHXH.HN",
        "source": {"kind": "postgres", "dsn": {"$env": "LT_TEST_LOGICAL_DSN"}},
        "tables": [{"name": "people", "key": ["id"], "entity": "person", "entity_schema": "free",
                    "logical_slot": "lt_t",
                    "batch_size": 100, "classification": "INTERNAL"}],
    }  # fmt: skip
    rig = make_rig(tmp_path, keys, doc)
    try:
        assert rig.agency.run().read == 250
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("UPDATE people SET name = 'Đổi' WHERE id < 11")
            c.execute("DELETE FROM people WHERE id BETWEEN 11 AND 20")
        report = rig.agency.run()
        assert (report.read, report.applied) == (20, 20)
        rows = consolidated(rig.store, "person")
        assert len(rows) == 240 and rows["3"]["name"] == "Đổi"
        with psycopg.connect(dsn) as c:
            source = {str(i): n for i, n in c.execute("SELECT id, name FROM people")}
        assert {k: v["name"] for k, v in rows.items()} == source
    finally:
        rig.close()


def test_changes_of_one_key_in_a_chunk_reconcile_end_to_end(
    logical: tuple[str, PgLogicalConnector], tmp_path: Path, keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Several changes of one key in one stream chunk: the hub holds the source's state, and
    the changes superseded within the chunk are counted (read = applied + quarantined)."""
    dsn, conn = logical
    conn.drop_slot()
    monkeypatch.setenv("LT_TEST_LOGICAL_DSN", dsn)
    doc = {
        "source_id": "BHXH.HN",
        "source": {"kind": "postgres", "dsn": {"$env": "LT_TEST_LOGICAL_DSN"}},
        "tables": [{"name": "people", "key": ["id"], "entity": "person", "entity_schema": "free",
                    "logical_slot": "lt_t", "batch_size": 100, "classification": "INTERNAL"}],
    }  # fmt: skip
    rig = make_rig(tmp_path, keys, doc)
    try:
        assert rig.agency.run().read == 250
        with psycopg.connect(dsn) as c:  # one transaction
            c.execute("DELETE FROM people WHERE id = 3")
            c.execute("INSERT INTO people VALUES (3, 'Trở lại')")
            c.execute("UPDATE people SET name = 'Một' WHERE id = 4")
            c.execute("UPDATE people SET name = 'Hai' WHERE id = 4")
            c.execute("INSERT INTO people VALUES (400, 'Tạm')")
            c.execute("DELETE FROM people WHERE id = 400")
        report = rig.agency.run()
        assert (report.read, report.applied, report.quarantined) == (6, 6, 0)
        rows = consolidated(rig.store, "person")
        assert rows["3"]["name"] == "Trở lại" and rows["4"]["name"] == "Hai" and "400" not in rows
        (read, applied) = rig.store.conn.execute(
            "SELECT sum(read), sum(applied) FROM sync_batches"
        ).fetchone()
        assert (read, applied) == (256, 256)
        status = rig.agency.outbox.totals("people")
        assert (status["read"], status["applied"]) == (256, 256)
    finally:
        rig.close()


def _replay(chunks: list[Chunk]) -> tuple[dict[int, str], list[tuple[int, str | None]]]:
    """Apply chunks in order to a model of the consolidated table; return it and the
    sequence of (key, value) writes (None: deleted)."""
    model: dict[int, str] = {}
    writes: list[tuple[int, str | None]] = []
    for c in chunks:
        for key, name in c.rows:
            if model.get(key) != name:
                model[key] = name
                writes.append((key, name))
        for (key,) in c.deletes:
            if model.pop(key, None) is not None:
                writes.append((key, None))
    return model, writes


@pytest.mark.parametrize(("key_type", "restart"), [("bigint", False), ("text", False),
                                                  ("bigint", True)])  # fmt: skip
def test_changes_during_the_snapshot_are_neither_lost_nor_replayed(
    pg_logical_dsn: str, key_type: str, restart: bool
) -> None:
    """Changes made between snapshot pages, to rows already read and to rows not read yet:
    the stream applies exactly those the pages did not see, so no row goes back in time."""
    with psycopg.connect(pg_logical_dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS people")
        c.execute(f"CREATE TABLE people (id {key_type} PRIMARY KEY, name TEXT)")
        c.execute("INSERT INTO people SELECT i, 'Người ' || i FROM generate_series(1, 250) i")
    conn = PgLogicalConnector(lambda: psycopg.connect(pg_logical_dsn), "people", ["id"], "lt_s")
    cast = int if key_type == "bigint" else str
    try:
        chunks: list[Chunk] = []
        reading = conn.read(None, 100)
        for n, chunk in enumerate(reading):
            chunks.append(chunk)
            if n == 0 and restart:  # the agency dies after page 1: a new process resumes
                reading.close()
                conn.close()
                conn = PgLogicalConnector(
                    lambda: psycopg.connect(pg_logical_dsn), "people", ["id"], "lt_s"
                )
            if n == 0:  # page 1 is read; pages 2 and 3 are not
                with psycopg.connect(pg_logical_dsn, autocommit=True) as c:
                    first = chunk.rows[-1][0]
                    c.execute("UPDATE people SET name = 'đọc rồi, đổi' WHERE id = %s", (first,))
                    c.execute(
                        "UPDATE people SET name = 'chưa đọc, đổi' WHERE id = %s", (cast(240),)
                    )
                    c.execute("DELETE FROM people WHERE id = %s", (chunk.rows[0][0],))
                    c.execute("DELETE FROM people WHERE id = %s", (cast(245),))
                    c.execute("INSERT INTO people VALUES (%s, 'mới')", (cast(999),))
                    c.execute("UPDATE people SET name = 'lần 1' WHERE id = %s", (cast(230),))
                    c.execute("UPDATE people SET name = 'lần 2' WHERE id = %s", (cast(230),))
            if n == 0 and restart:
                break
            if chunk.position["phase"] == "stream" and not chunk.rows and not chunk.deletes:
                stream_start = len(chunks)
        if restart:
            for chunk in conn.read(chunks[0].position, 100):
                chunks.append(chunk)
                if chunk.position["phase"] == "stream" and not chunk.rows and not chunk.deletes:
                    stream_start = len(chunks)
        stream = chunks[stream_start:]
        model, writes = _replay(chunks)
        with psycopg.connect(pg_logical_dsn) as c:
            source = dict(c.execute("SELECT id, name FROM people").fetchall())
        assert model == source
        if key_type == "text":
            # text keys (collation order ≠ Python order): the changes made during the
            # snapshot are replayed — the state is right, the history has them twice
            assert "seen" not in chunks[0].position
            return
        # every change the pages had seen was skipped by the stream; the others came once
        streamed = sorted((r[0], r[1]) for ch in stream for r in ch.rows)
        assert streamed == [(first, "đọc rồi, đổi")]
        assert [d for ch in stream for d in ch.deletes] == [(chunks[0].rows[0][0],)]
        assert len(writes) == len(set(writes))  # no version written twice
        assert conn.read(chunks[-1].position, 100) is not None
    finally:
        conn.drop_slot()
        conn.close()


def _table(dsn: str, ddl: str, *rows_sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS t")
        c.execute(ddl)
        for sql in rows_sql:
            c.execute(sql)


def _model(chunks: list[Chunk], key: int = 0) -> dict[Any, tuple[Any, ...]]:
    model: dict[Any, tuple[Any, ...]] = {}
    for c in chunks:
        for r in c.rows:
            model[r[key]] = tuple(r)
        for d in c.deletes:
            model.pop(d[0], None)
    return model


def _source(dsn: str, key: int = 0) -> dict[Any, tuple[Any, ...]]:
    with psycopg.connect(dsn) as c:
        return {r[key]: tuple(r) for r in c.execute("SELECT * FROM t").fetchall()}


def _stream_after_snapshot(dsn: str, key: list[str], *changes: str) -> list[Chunk]:
    conn = PgLogicalConnector(lambda: psycopg.connect(dsn), "t", key, "lt_edge")
    try:
        chunks = list(conn.read(None, 100))
        with psycopg.connect(dsn, autocommit=True) as c:
            for sql in changes:
                c.execute(sql)
        return chunks + list(conn.read(chunks[-1].position, 100))
    finally:
        conn.drop_slot()
        conn.close()


def test_an_update_of_the_key_deletes_the_old_key(pg_logical_dsn: str) -> None:
    _table(pg_logical_dsn, "CREATE TABLE t (id int PRIMARY KEY, name text)",
           "INSERT INTO t SELECT i, 'n' || i FROM generate_series(1, 5) i")  # fmt: skip
    chunks = _stream_after_snapshot(pg_logical_dsn, ["id"], "UPDATE t SET id = 1000 WHERE id = 5")
    assert _model(chunks) == _source(pg_logical_dsn)  # 5 gone, 1000 there
    assert [d for c in chunks for d in c.deletes] == [(5,)]


def test_an_unchanged_toasted_value_is_read_again_not_stored_as_a_marker(
    pg_logical_dsn: str,
) -> None:
    big = "x" * 300_000  # TOASTed (compressed out of line); an UPDATE of another column
    _table(pg_logical_dsn, "CREATE TABLE t (id int PRIMARY KEY, note text, big text)",
           f"INSERT INTO t VALUES (1, 'a', repeat('x', {len(big)}))")  # fmt: skip
    with psycopg.connect(pg_logical_dsn, autocommit=True) as c:
        c.execute("ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL")  # no inline compression
        c.execute("UPDATE t SET big = repeat('y', 300000)")
    chunks = _stream_after_snapshot(pg_logical_dsn, ["id"], "UPDATE t SET note = 'b' WHERE id = 1")
    streamed = [r for c in chunks[2:] for r in c.rows]
    assert streamed == [(1, "b", "y" * 300_000)]
    assert _model(chunks) == _source(pg_logical_dsn)


def test_a_key_outside_the_replica_identity_is_refused_clearly(pg_logical_dsn: str) -> None:
    """A DELETE carries only the replica identity: a pipeline keyed on another column could
    not tombstone the row — refused with what to do, before a slot is created."""
    _table(pg_logical_dsn, "CREATE TABLE t (id int PRIMARY KEY, code int NOT NULL UNIQUE)",
           "INSERT INTO t SELECT i, 100 + i FROM generate_series(1, 5) i")  # fmt: skip
    conn = PgLogicalConnector(lambda: psycopg.connect(pg_logical_dsn), "t", ["code"], "lt_edge")
    try:
        with pytest.raises(ConfigError, match=r"key \(code\) is not in the table's replica "
                           r"identity \(id\).*REPLICA IDENTITY FULL"):  # fmt: skip
            next(iter(conn.read(None, 2)))
        with psycopg.connect(pg_logical_dsn, autocommit=True) as c:
            c.execute("ALTER TABLE t REPLICA IDENTITY FULL")
            assert c.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)
        chunks = list(conn.read(None, 2))  # with FULL, deletes carry every column
        with psycopg.connect(pg_logical_dsn, autocommit=True) as c:
            c.execute("DELETE FROM t WHERE id = 1")
        chunks += list(conn.read(chunks[-1].position, 100))
    finally:
        conn.drop_slot()
        conn.close()
    assert [d for c in chunks for d in c.deletes] == [(101,)]


def test_a_key_the_pages_cannot_place_is_applied_not_a_crash(pg_logical_dsn: str) -> None:
    """A key of a domain over integer: the log names its type by the domain, so the stream's
    value is text while the pages' are integers — such a change is applied (at worst
    replayed), never a failure on every run."""
    with psycopg.connect(pg_logical_dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS t")
        c.execute("DROP DOMAIN IF EXISTS d_int")
        c.execute("CREATE DOMAIN d_int AS integer")
    _table(pg_logical_dsn, "CREATE TABLE t (id d_int PRIMARY KEY, v text)",
           "INSERT INTO t SELECT i, 'n' || i FROM generate_series(1, 5) i")  # fmt: skip
    conn = PgLogicalConnector(lambda: psycopg.connect(pg_logical_dsn), "t", ["id"], "lt_edge")
    chunks: list[Chunk] = []
    try:
        for n, chunk in enumerate(conn.read(None, 2)):
            chunks.append(chunk)
            if n == 0:  # during the snapshot: the stream meets it before the snapshot's end
                with psycopg.connect(pg_logical_dsn, autocommit=True) as c:
                    c.execute("UPDATE t SET v = 'đổi' WHERE id = 1")
    finally:
        conn.drop_slot()
        conn.close()
    assert "seen" in chunks[0].position
    assert ("1", "đổi") in [r for c in chunks for r in c.rows]


def test_merged_key_ranges_keep_the_older_snapshot() -> None:
    from lienthong.sync.connectors.base import merge_ranges

    seen = [[[10], "1:5:"], [[20], "1:6:"], [[30], "1:7:"], [[40], "1:8:"], [[50], "1:9:"]]
    assert merge_ranges(seen) == [[[20], "1:5:"], [[40], "1:7:"], [[50], "1:9:"]]
