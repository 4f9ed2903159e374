"""Issue 6 checker's review: pipelines and source data of our own, through the CLI.

Each test is one defect found by running `lienthong sync run` / `reconcile` on synthetic
sources the way an agency's data really looks (NULL keys, repeated keys, legacy encodings, a
state directory that does not exist yet).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from crashtools import PASS_ENV
from test_sync_cli import cli

PG = "host=127.0.0.1 port=5432 dbname=test user=postgres"


def _pipeline(tmp: Path, *, source: list[str], table: list[str], state: str = "state.db") -> Path:
    lines = [
        'source_id = "CHK.REVIEW"', f'state = "{state}"', "",
        "[source]", *source, "",
        "[hub]", 'database = "hub.db"', "",
        "[keys]",
        f'store = {{ type = "file", dir = "keys", passphrase = {{ "$env" = "{PASS_ENV}" }} }}',
        'hub_public = "keys/hub.pub.pem"', 'hub_recipient = "keys/hub.recipient.json"', "",
        "[[tables]]", *table, 'entity = "Person"', 'entity_schema = "free"',
        'classification = "PERSONAL"', "",
        "[tables.fields]", 'ma = "ma"', 'ten = "ten"',
    ]  # fmt: skip
    path = tmp / "p.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Path:
    monkeypatch.setenv(PASS_ENV, "checker-review-passphrase")
    monkeypatch.chdir(tmp_path)
    assert cli(capsys, "sync", "keys", "init", "keys", "--passphrase-env", PASS_ENV)[0] == 0
    return tmp_path


def _sqlite_people(path: Path, rows: list[tuple[Any, ...]], ddl: str = "ma TEXT, ten TEXT") -> None:
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE people ({ddl})")
    db.executemany("INSERT INTO people VALUES (?, ?)", rows)
    db.commit()
    db.close()


def _hub_keys(tmp: Path) -> list[str]:
    db = sqlite3.connect(tmp / "hub.db")
    try:
        return sorted(str(r[0]) for r in db.execute("SELECT source_key FROM c_person"))
    finally:
        db.close()


SQLITE = ['kind = "sqlite"', 'path = "src.db"']


def test_sqlite_rows_after_a_page_of_null_keys_are_read(workdir: Path, capsys: Any) -> None:
    """3 NULL keys then 10 keyed rows, pages of 2: the keyset continued from "after NULL",
    which compares with nothing, so 2 rows were read and the 10 keyed rows never (and
    reconcile, reading the same way, said the hub matched)."""
    rows = [(None, f"null {i}") for i in range(3)] + [(f"K{i:02d}", "x") for i in range(10)]
    _sqlite_people(workdir / "src.db", rows)
    _pipeline(workdir, source=SQLITE, table=['name = "people"', 'key = ["ma"]', "batch_size = 2"])
    code, out, err = cli(capsys, "sync", "run", "p.toml")
    assert code == 0, err
    assert "read 13 = applied 10 + quarantined 3" in out
    assert _hub_keys(workdir) == [f"K{i:02d}" for i in range(10)]
    code, out, _ = cli(capsys, "sync", "quarantine", "list", "--pipeline", "p.toml", "--json")
    assert out.count("key: empty source key") == 3
    code, out, _ = cli(capsys, "sync", "reconcile", "p.toml")
    assert code == 0 and "source 13 rows (10 valid, 3 invalid, 0 deleted)" in out, out
    # a second pass neither loses nor re-sends anything
    code, out, _ = cli(capsys, "sync", "run", "p.toml")
    assert code == 0 and "read 0 = applied 0 + quarantined 0" in out, out


def test_postgresql_null_keys_are_quarantined_not_skipped(workdir: Path, capsys: Any) -> None:
    """PostgreSQL sorts NULL last: rows with a NULL key were never read (nothing quarantined,
    read = applied + quarantined over the other rows only, reconcile 'matches')."""
    schema = "lt_chk_review_nullkey"
    with psycopg.connect(PG, autocommit=True) as db:
        db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(f"CREATE TABLE {schema}.people (ma text, ten text)")
        db.execute(f"INSERT INTO {schema}.people SELECT 'K' || g, 'x' FROM generate_series(1, 5) g")
        db.execute(f"INSERT INTO {schema}.people VALUES (NULL, 'a'), (NULL, 'b')")
    try:
        workdir.joinpath("dsn").write_text(PG)
        source = ['kind = "postgres"', 'dsn = { "$file" = "dsn" }']
        table = [f'name = "{schema}.people"', 'key = ["ma"]', "batch_size = 2"]
        _pipeline(workdir, source=source, table=table)
        code, out, err = cli(capsys, "sync", "run", "p.toml")
        assert code == 0, err
        assert "read 7 = applied 5 + quarantined 2" in out, out
        code, out, _ = cli(capsys, "sync", "reconcile", "p.toml")
        assert code == 0 and "source 7 rows (5 valid, 2 invalid, 0 deleted)" in out, out
    finally:
        with psycopg.connect(PG, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_key_that_is_not_unique_is_refused_before_anything_is_written(
    workdir: Path, capsys: Any
) -> None:
    """A legacy table without a primary key holding one key 5 times, pages of 2: keyset
    reading (`WHERE key > 'DUP'`) skipped 4 of them silently — read 3 of 7 rows, and
    reconcile (same reading) said the hub matched."""
    rows = [("A", "a"), *[("DUP", f"v{i}") for i in range(5)], ("Z", "z")]
    _sqlite_people(workdir / "src.db", rows)
    _pipeline(workdir, source=SQLITE, table=['name = "people"', 'key = ["ma"]', "batch_size = 2"])
    code, out, err = cli(capsys, "sync", "run", "p.toml")
    assert code == 2 and out == "", out
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "key (ma) of source table people is not unique" in err and "'DUP'" in err, err
    assert not (workdir / "state.db").exists() and not (workdir / "hub.db").exists()


def test_a_unique_key_without_an_index_still_runs(workdir: Path, capsys: Any) -> None:
    """No primary key or unique index, but the values are unique: the run goes on (the
    check looks at the data when the catalog says nothing)."""
    _sqlite_people(workdir / "src.db", [(f"K{i}", "x") for i in range(7)])
    _pipeline(workdir, source=SQLITE, table=['name = "people"', 'key = ["ma"]', "batch_size = 2"])
    code, out, err = cli(capsys, "sync", "run", "p.toml")
    assert code == 0 and "read 7 = applied 7 + quarantined 0" in out, (out, err)


def test_a_csv_drop_that_is_not_utf8_is_one_line_exit_2(workdir: Path, capsys: Any) -> None:
    """A Windows-1258 / Latin-1 export: 'unexpected UnicodeDecodeError …' exit 1, and an
    empty hub.db was left behind."""
    drop = workdir / "drop"
    drop.mkdir()
    drop.joinpath("a.csv").write_bytes(b"ma,ten\nK1,An\nK2,Nguy\xe3n\n")
    source = ['kind = "files"', 'path = "drop"']
    _pipeline(workdir, source=source, table=['name = "a"', 'file = "a.csv"', 'key = ["ma"]'])
    code, out, err = cli(capsys, "sync", "run", "p.toml")
    assert code == 2 and out == "", out
    assert err.count("\n") == 1 and "unexpected" not in err, err
    assert "a.csv: not UTF-8" in err and "line 3" in err, err
    assert not (workdir / "state.db").exists() and not (workdir / "hub.db").exists()


def test_the_state_directory_is_created(workdir: Path, capsys: Any) -> None:
    """`state = "state/bhxh.db"` (as in docs/sync.md) failed on a first run with 'sync state
    state/bhxh.db: unable to open database file', exit 1."""
    _sqlite_people(workdir / "src.db", [("K1", "x")], ddl="ma TEXT PRIMARY KEY, ten TEXT")
    table = ['name = "people"', 'key = ["ma"]']
    _pipeline(workdir, source=SQLITE, table=table, state="state/people.db")
    code, out, err = cli(capsys, "sync", "run", "p.toml")
    assert code == 0 and "read 1 = applied 1 + quarantined 0" in out, (out, err)
    assert (workdir / "state" / "people.db").exists()
