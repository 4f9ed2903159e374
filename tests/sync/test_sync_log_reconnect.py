"""Log-based capture under ``--follow`` survives its source ending the agency's connections.

A PostgreSQL logical slot and a MariaDB row binlog, each followed by ``agency.follow`` in a
thread. The source server ends every connection of the agency (``pg_terminate_backend`` /
``KILL``) — once while the follower waits between passes, once while it reads a large
transaction from the log (the slot's peek, the binlog dump thread) — and rows are inserted,
updated and deleted meanwhile. The follower keeps running, reports the table's error, opens
new connections after the pause and the consolidated database ends equal to the source: no
change lost, none read twice (the batches' ``read`` counts every change exactly once).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pymysql
import pytest
from synctools import Keys, Rig, make_rig

from lienthong.errors import BackendError, LienthongError

WAIT_S = 30.0  # bounded wait for the follower to catch up


def _hub(tmp: Path) -> tuple[dict[str, str], int]:
    """The consolidated rows (key → name) and the changes the acknowledged batches read."""
    db = sqlite3.connect(f"file:{tmp / 'hub.db'}?mode=ro", uri=True)
    try:
        rows = {str(k): orjson.loads(v)["name"] for k, v in db.execute(
            "SELECT source_key, data FROM c_person")}  # fmt: skip
        (read,) = db.execute("SELECT coalesce(sum(read), 0) FROM sync_batches").fetchone()
        return rows, int(read)
    except sqlite3.OperationalError:  # not created yet
        return {}, 0
    finally:
        db.close()


class Follower:
    """``agency.follow`` in a thread; records the errors the passes reported and any
    exception that ended the thread."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.stop = threading.Event()
        self.escaped: BaseException | None = None
        self.failures: list[LienthongError] = []
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        try:
            self.rig.agency.follow(self.stop, 0.05)
        except BaseException as exc:  # any escape is the failure under test
            self.escaped = exc

    def wait_until(self, tmp: Path, want: Callable[[], dict[str, str]], reads: int) -> None:
        """Wait (bounded) until the consolidated rows are ``want()`` and ``reads`` changes
        were acknowledged, noting the tables' errors the passes report meanwhile."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and self.thread.is_alive():
            seen = self.rig.agency.report.failures.copy().values()  # (the follower's pass)
            self.failures += [e for e in seen if e not in self.failures]
            if _hub(tmp) == (want(), reads):
                break
            time.sleep(0.05)
        assert self.escaped is None, repr(self.escaped)
        assert self.thread.is_alive()
        assert _hub(tmp) == (want(), reads)

    def killed_between_passes(
        self,
        tmp: Path,
        want: Callable[[], dict[str, str]],
        kill: Callable[[], int],
        write: Callable[[], None],
    ) -> None:
        """Once the 50 source rows are in: the follower's idle connections are ended, 10
        inserts, 10 updates and 10 deletes written; one failing pass, then the next opens new
        connections (all of them) and every change arrives."""
        self.wait_until(tmp, want, 50)
        assert kill() >= 1
        write()
        self.wait_until(tmp, want, 80)
        assert [type(e) for e in self.failures] == [BackendError], self.failures
        self.failures.clear()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=WAIT_S)
        try:
            assert not self.thread.is_alive()
        finally:
            self.rig.close()


def _kill_while_reading(write: Callable[[], None], kill_if_reading: Callable[[], int]) -> int:
    """``write`` a large transaction, then poll until ``kill_if_reading`` finds the follower
    reading the log and ends the agency's connections (bounded); how many it ended."""
    write()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        ended = kill_if_reading()
        if ended:
            return ended
    return 0


# PostgreSQL: a logical replication slot


@pytest.fixture
def pg_source(pg_logical_dsn: str) -> Iterator[str]:
    with psycopg.connect(pg_logical_dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS people_rc")
        c.execute("CREATE TABLE people_rc (id BIGINT PRIMARY KEY, name TEXT)")
        c.execute("INSERT INTO people_rc SELECT i, 'Người ' || i FROM generate_series(1, 50) i")
    yield pg_logical_dsn
    with psycopg.connect(pg_logical_dsn, autocommit=True) as c:
        c.execute("DROP TABLE people_rc")
        c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                  "WHERE slot_name = 'lt_rc'")  # fmt: skip


@pytest.mark.postgres
def test_logical_slot_follow_reopens_after_the_source_ends_its_connections(
    pg_source: str, tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agency's backends (its table connection and the connection that peeks at the slot
    and advances it, found by application_name) ended: one pass fails, the next opens both
    anew. Until 2026-12-07 the pass after the first failure still met the dead slot
    connection (`logical replication slot lt_rc: terminating connection due to administrator
    command`): two failing passes and pauses (1 s, then 2 s) before the changes arrived."""
    dsn, app = pg_source, "lt_logical_rc"
    monkeypatch.setenv("LT_TEST_LOGICAL_DSN", f"{dsn}?application_name={app}")
    doc = {
        "source_id": "BHXH.HN",
        "source": {"kind": "postgres", "dsn": {"$env": "LT_TEST_LOGICAL_DSN"}},
        "tables": [{"name": "people_rc", "key": ["id"], "entity": "person",
                    "entity_schema": "free", "logical_slot": "lt_rc", "batch_size": 20,
                    "classification": "INTERNAL"}],
    }  # fmt: skip

    def sql(*statements: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            for s in statements:
                c.execute(s)

    def source() -> dict[str, str]:
        with psycopg.connect(dsn) as c:
            return {str(i): n for i, n in c.execute("SELECT id, name FROM people_rc")}

    def kill() -> int:
        with psycopg.connect(dsn, autocommit=True) as c:
            row = c.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = %s", (app,)).fetchone()  # fmt: skip
        return int(row[0]) if row else 0

    def kill_if_peeking() -> int:  # every backend of the agency, while one reads the slot
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
            "application_name = %(app)s AND EXISTS (SELECT FROM pg_stat_activity WHERE "
            "application_name = %(app)s AND state = 'active' AND query LIKE '%%peek_changes%%')",
            {"app": app},
        ).fetchone()
        return int(row[0]) if row else 0

    admin = psycopg.connect(dsn, autocommit=True)
    follower = Follower(make_rig(tmp_path, keys, doc))
    try:
        follower.killed_between_passes(tmp_path, source, kill, lambda: sql(
            "INSERT INTO people_rc SELECT i, 'Mới ' || i FROM generate_series(51, 60) i",
            "UPDATE people_rc SET name = 'Đổi' WHERE id <= 10",
            "DELETE FROM people_rc WHERE id BETWEEN 11 AND 20"))  # fmt: skip
        # 2. while it peeks at the slot, after a large transaction
        ended = _kill_while_reading(lambda: sql(
            "UPDATE people_rc SET name = 'Lần hai' WHERE id > 20",
            "INSERT INTO people_rc SELECT i, 'Lô ' || i FROM generate_series(1001, 6000) i",
            "DELETE FROM people_rc WHERE id BETWEEN 21 AND 30",
        ), kill_if_peeking)  # fmt: skip
        assert ended >= 1
        follower.wait_until(tmp_path, source, 80 + 40 + 5000 + 10)
        assert [type(e) for e in follower.failures] == [BackendError], follower.failures
    finally:
        try:
            follower.close()
        finally:
            admin.close()


# MariaDB: the row binlog


@pytest.fixture
def maria_source(mariadb_binlog_params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The table, and a user of the agency's own (its connections are the ones killed)."""
    run = _maria(mariadb_binlog_params)
    run("DROP TABLE IF EXISTS people_rc", "DROP USER IF EXISTS lt_rc",
        "CREATE TABLE people_rc (id BIGINT PRIMARY KEY, name VARCHAR(4000))",
        "INSERT INTO people_rc SELECT seq, CONCAT('Người ', seq) FROM seq_1_to_50",
        "CREATE USER lt_rc@'%'",
        "GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO lt_rc@'%'")  # fmt: skip
    yield mariadb_binlog_params
    run("DROP TABLE people_rc", "DROP USER lt_rc")


def _maria(params: dict[str, Any]) -> Callable[..., list[tuple[Any, ...]]]:
    def run(*statements: str) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(**params, autocommit=True)
        try:
            with conn.cursor() as cur:
                for s in statements:
                    cur.execute(s)
                return list(cur.fetchall())
        finally:
            conn.close()

    return run


@pytest.mark.mariadb
def test_binlog_follow_reopens_after_the_source_kills_its_connections(
    maria_source: dict[str, Any], tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agency's connections (user lt_rc: the table connection, and during a pass the
    binlog dump thread and mysql-replication's control connection) killed: the next pass
    opens new ones; a dump thread killed while it sends is asked again by mysql-replication
    from the last event read, and no change is lost or read twice."""
    p, run = maria_source, _maria(maria_source)
    monkeypatch.setenv("LT_TEST_BINLOG_DSN", f"mysql://lt_rc@127.0.0.1:{p['port']}/{p['database']}")
    doc = {
        "source_id": "BHXH.HN",
        "source": {"kind": "mariadb", "dsn": {"$env": "LT_TEST_BINLOG_DSN"}},
        "tables": [{"name": "people_rc", "key": ["id"], "entity": "person",
                    "entity_schema": "free", "binlog_server_id": 79, "batch_size": 20,
                    "classification": "INTERNAL"}],
    }  # fmt: skip

    def source() -> dict[str, str]:
        return {str(i): str(n) for i, n in run("SELECT id, name FROM people_rc")}

    def kill() -> int:
        ended = 0
        for (pid,) in run("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'lt_rc'"):
            try:
                run(f"KILL {int(pid)}")
                ended += 1
            except pymysql.err.OperationalError:  # gone meanwhile (ER_NO_SUCH_THREAD)
                pass
        return ended

    def kill_if_dumping() -> int:
        """Every connection of the agency, while its binlog dump thread sends the log (the
        dump thread first); how many dump threads were killed."""
        with admin.cursor() as cur:
            cur.execute("SELECT ID, COMMAND FROM information_schema.PROCESSLIST "
                        "WHERE USER = 'lt_rc'")  # fmt: skip
            found = sorted(cur.fetchall(), key=lambda r: not str(r[1]).startswith("Binlog Dump"))
            if not found or not str(found[0][1]).startswith("Binlog Dump"):
                return 0
            dumps = 0
            for pid, command in found:
                try:
                    cur.execute(f"KILL {int(pid)}")
                    dumps += str(command).startswith("Binlog Dump")
                except pymysql.err.OperationalError:  # gone meanwhile (ER_NO_SUCH_THREAD)
                    pass
            return dumps

    admin = pymysql.connect(**p, autocommit=True)
    follower = Follower(make_rig(tmp_path, keys, doc))
    try:
        follower.killed_between_passes(tmp_path, source, kill, lambda: run(
            "INSERT INTO people_rc SELECT seq, CONCAT('Mới ', seq) FROM seq_51_to_60",
            "UPDATE people_rc SET name = 'Đổi' WHERE id <= 10",
            "DELETE FROM people_rc WHERE id BETWEEN 11 AND 20"))  # fmt: skip
        # 2. while its binlog dump thread sends a large transaction (wide rows: more than the
        # sockets buffer, so the dump thread is still sending while the follower reads)
        ended = _kill_while_reading(lambda: run(
            "UPDATE people_rc SET name = 'Lần hai' WHERE id > 20",
            "INSERT INTO people_rc SELECT seq, CONCAT('Lô ', seq, REPEAT('x', 3000)) "
            "FROM seq_1001_to_4000",
            "DELETE FROM people_rc WHERE id BETWEEN 21 AND 30",
        ), kill_if_dumping)  # fmt: skip
        assert ended >= 1
        follower.wait_until(tmp_path, source, 80 + 40 + 3000 + 10)
        # mysql-replication asks for the stream again by itself (from the last event read);
        # or the pass fails and the next one reopens: never more than one failing pass
        assert len(follower.failures) <= 1, follower.failures
    finally:
        try:
            follower.close()
        finally:
            admin.close()
