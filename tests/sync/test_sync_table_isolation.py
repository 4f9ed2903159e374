"""One failing table does not stop the others (schema drift, a source that went away).

A pipeline with two tables of one source: ``citizens`` and ``citizens_b`` (the same rows
under keys 100,000 higher). A drift in ``citizens`` is that table's error — in the run's
report, in ``sync status`` and on stderr — while ``citizens_b`` keeps synchronising; once the
drift is gone, ``citizens`` catches up and its error is cleared. ``--follow`` tries a failing
table again only after a pause that doubles (1, 2, 4 … 60 s).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from crashtools import PASS_ENV, write_pipeline
from synctools import Keys, citizen_pipeline, end_connections, make_rig, make_sqlite_source
from test_sync_cli import cli

from lienthong.errors import ConfigError
from lienthong.sync.agency import RunReport

COLUMNS = "so_dinh_danh, ho_ten, ngay_sinh, gioi_tinh, quoc_tich, ma_tinh, updated_at, deleted"
DRIFT = "schema drift in source table citizens: column so_dien_thoai added"


def _source(tmp: Path, n: int) -> None:
    make_sqlite_source(tmp / "source.db", n)
    with sqlite3.connect(tmp / "source.db") as db:
        db.execute(f"CREATE TABLE citizens_b AS SELECT id + 100000 AS id, {COLUMNS} FROM citizens")


def _more(tmp: Path, n: int, start: int) -> None:
    """``n`` new rows in both tables (before any drift: the insert names every column)."""
    make_sqlite_source(tmp / "source.db", n, start=start)
    with sqlite3.connect(tmp / "source.db") as db:
        db.execute(
            f"INSERT INTO citizens_b SELECT id + 100000, {COLUMNS} FROM citizens WHERE id >= ?",
            (start,),
        )


def _drift(tmp: Path, on: bool) -> None:
    with sqlite3.connect(tmp / "source.db") as db:
        change = "ADD COLUMN so_dien_thoai TEXT" if on else "DROP COLUMN so_dien_thoai"
        db.execute(f"ALTER TABLE citizens {change}")


def _hub_counts(hub: Path) -> tuple[int, int]:
    """Current rows of (citizens, citizens_b) in the consolidated database."""
    db = sqlite3.connect(hub)
    try:
        a, b = db.execute(
            "SELECT sum(CAST(source_key AS INTEGER) < 100000),"
            " sum(CAST(source_key AS INTEGER) > 100000) FROM c_citizen"
        ).fetchone()
        return int(a or 0), int(b or 0)
    except sqlite3.OperationalError:  # not created yet
        return 0, 0
    finally:
        db.close()


def _two_tables() -> dict[str, Any]:
    doc = citizen_pipeline(cursor="updated_at")
    doc["tables"].append(doc["tables"][0] | {"name": "citizens_b"})
    return doc


def test_a_drifted_table_fails_alone_and_catches_up(tmp_path: Path, keys: Keys) -> None:
    _source(tmp_path, 200)
    rig = make_rig(tmp_path, keys, _two_tables())
    try:
        first = rig.agency.run()
        assert first.failures == {} and first.read == 400
        before = _hub_counts(tmp_path / "hub.db")
        assert before[0] == before[1] > 0
        _more(tmp_path, 100, 201)
        _drift(tmp_path, on=True)

        report = rig.agency.run()
        assert list(report.failures) == ["citizens"]
        assert isinstance(report.failures["citizens"], ConfigError)
        assert report.failures["citizens"].message.startswith(DRIFT)
        assert report.exit_code == 2 and report.error is None
        assert report.read == 100  # citizens_b's new rows only
        during = _hub_counts(tmp_path / "hub.db")
        assert during[0] == before[0] and during[1] > before[1]
        assert DRIFT in str(rig.outbox.last_error("citizens"))
        assert rig.outbox.last_error("citizens_b") is None
        assert report.to_dict()["tables_failed"] == {
            "citizens": {"error": "schema_drift", "message": report.failures["citizens"].message}
        }
        with pytest.raises(ConfigError, match=DRIFT):
            report.raise_failure()

        _drift(tmp_path, on=False)
        healed = rig.agency.run()
        assert healed.failures == {} and healed.exit_code == 0
        assert healed.read == 100  # citizens' rows that waited behind the drift
        assert _hub_counts(tmp_path / "hub.db") == (during[1], during[1])
        assert rig.outbox.last_error("citizens") is None
    finally:
        rig.close()


def test_follow_keeps_the_other_tables_flowing_and_pauses_the_failing_one(
    tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    _source(tmp_path, 100)
    rig = make_rig(tmp_path, keys, _two_tables())
    assert rig.agency.run().read == 200  # both schemas recorded
    _more(tmp_path, 100, 101)
    _drift(tmp_path, on=True)
    schema = rig.agency.connectors["citizens"].schema
    tries: list[float] = []

    def counted_schema() -> dict[str, str]:  # each try of the failing table reads the schema
        tries.append(time.monotonic())
        return schema()

    monkeypatch.setattr(rig.agency.connectors["citizens"], "schema", counted_schema)
    stop = threading.Event()
    result: list[RunReport] = []
    follower = threading.Thread(target=lambda: result.append(rig.agency.follow(stop, 0.02)))
    follower.start()
    try:
        deadline = time.monotonic() + 30
        while _hub_counts(tmp_path / "hub.db")[1] < 196 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _hub_counts(tmp_path / "hub.db") == (98, 196)  # citizens_b flows (2 % invalid)
        started = tries[0]
        time.sleep(3.2)  # ≈ 100 passes of 0.02 s: the drifted table was tried at 0, 1, 3 s
        assert 2 <= len([t for t in tries if t - started < 3.1]) <= 3
        assert DRIFT in str(rig.outbox.last_error("citizens"))
        _drift(tmp_path, on=False)  # the operator fixes the source: it catches up by itself
        while _hub_counts(tmp_path / "hub.db")[0] < 196 and time.monotonic() < deadline + 30:
            time.sleep(0.05)
    finally:
        stop.set()
        follower.join(timeout=30)
    assert _hub_counts(tmp_path / "hub.db") == (196, 196)
    assert result[0].failures == {} and result[0].read == 200
    assert rig.outbox.last_error("citizens") is None
    rig.close()


def test_cli_run_names_the_failed_table_and_reports_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PASS_ENV, "isolation-passphrase")
    monkeypatch.chdir(tmp_path)
    _source(tmp_path, 300)
    path = write_pipeline(tmp_path, 1, 200, database='"hub.db"')
    text = path.read_text()
    table = text[text.index("[[tables]]") :]
    path.write_text(text + "\n" + table.replace('name = "citizens"', 'name = "citizens_b"'))
    assert cli(capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV)[0] == 0
    assert cli(capsys, "sync", "run", "pipeline.toml")[0] == 0
    _more(tmp_path, 150, 301)
    _drift(tmp_path, on=True)

    code, out, err = cli(capsys, "sync", "run", "pipeline.toml", "--json")
    assert code == 2
    report = orjson.loads(out)
    assert report["read"] == 150 == report["applied"] + report["quarantined"]  # citizens_b
    assert list(report["tables_failed"]) == ["citizens"]
    assert report["tables_failed"]["citizens"]["message"].startswith(DRIFT)
    assert err.startswith(f"error: {DRIFT}") and err.count("error: ") == 1

    code, out, _ = cli(capsys, "sync", "status", "pipeline.toml", "--json")
    assert code == 0
    status = orjson.loads(out)["tables"]
    assert DRIFT in status["citizens"]["last_error"] and status["citizens_b"]["last_error"] is None

    _drift(tmp_path, on=False)
    code, out, err = cli(capsys, "sync", "run", "pipeline.toml")
    assert code == 0 and err == ""
    assert out.startswith("read 150 = applied 147 + quarantined 3 in ")  # citizens caught up


@pytest.mark.postgres
def test_follow_survives_its_source_database_dropping_the_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pg_dsn: str
) -> None:
    """The source server ends every connection of the agency (a restart, a failover, an
    administrator's pg_terminate_backend): `sync run --follow` reports the tables' errors,
    reconnects after the pause and delivers the rows written meanwhile — it used to exit 1."""
    import psycopg

    monkeypatch.setenv(PASS_ENV, "isolation-passphrase")
    monkeypatch.chdir(tmp_path)
    schema = f"iso_{tmp_path.name[-20:].lower().replace('-', '_')}"
    app = f"lt_{schema}"
    ddl = "(ma text PRIMARY KEY, ten text, sua_luc timestamptz NOT NULL DEFAULT clock_timestamp())"
    with psycopg.connect(pg_dsn, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        for name, prefix in (("people", "A"), ("people_b", "B")):  # keys of their own
            db.execute(f"CREATE TABLE {schema}.{name} {ddl}")
            db.execute(f"INSERT INTO {schema}.{name} (ma, ten) SELECT '{prefix}' || lpad("
                       "g::text, 3, '0'), 'Lê Văn Tám' FROM generate_series(1, 5) g")  # fmt: skip
    (tmp_path / "dsn").write_text(f"{pg_dsn}?application_name={app}")
    table = ["key = [\"ma\"]", 'cursor = "sua_luc"', 'entity = "Person"',
             'entity_schema = "free"', 'classification = "PERSONAL"', "[tables.fields]",
             'ma = "ma"', 'ten = "ten"', ""]  # fmt: skip
    tables = [
        line
        for name in ("people", "people_b")
        for line in ("[[tables]]", f'name = "{schema}.{name}"', *table)
    ]
    (tmp_path / "p.toml").write_text("\n".join([
        'source_id = "ISO.PG"', 'state = "state.db"', "",
        "[source]", 'kind = "postgres"', 'dsn = { "$file" = "dsn" }', "",
        "[hub]", 'database = "hub.db"', "",
        "[keys]",
        f'store = {{ type = "file", dir = "keys", passphrase = {{ "$env" = "{PASS_ENV}" }} }}',
        'hub_public = "keys/hub.pub.pem"', 'hub_recipient = "keys/hub.recipient.json"', "",
        *tables,
    ]))  # fmt: skip
    assert cli(capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV)[0] == 0

    def hub_rows() -> int:
        db = sqlite3.connect(tmp_path / "hub.db")
        try:
            return int(db.execute("SELECT count(*) FROM c_person").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0
        finally:
            db.close()

    def wait_for(rows: int) -> None:
        deadline = time.monotonic() + 30
        while hub_rows() < rows and time.monotonic() < deadline and follower.poll() is None:
            time.sleep(0.05)

    env = os.environ | {"COLUMNS": "300"}
    follower = subprocess.Popen(
        [sys.executable, "-m", "lienthong.sync", "run", "p.toml", "--follow", "--interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        wait_for(10)
        assert hub_rows() == 10
        assert end_connections(pg_dsn, app) >= 1  # the agency's source connections
        with psycopg.connect(pg_dsn, autocommit=True) as db:
            for name, prefix in (("people", "A"), ("people_b", "B")):
                db.execute(f"INSERT INTO {schema}.{name} (ma, ten) SELECT '{prefix}' || g, "
                           "'Lê Thị Ba' FROM generate_series(100, 104) g")  # fmt: skip
        wait_for(20)
        assert follower.poll() is None, follower.communicate()
        assert hub_rows() == 20
    finally:
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=60)
        with psycopg.connect(pg_dsn, autocommit=True) as db:
            db.execute(f"DROP SCHEMA {schema} CASCADE")
    assert follower.returncode == 0, err
    assert " failed: postgres source " in out, out  # the pass that met the dropped connection
    assert out.strip().splitlines()[-1].startswith("read 20 = applied 20 + quarantined 0 in")
