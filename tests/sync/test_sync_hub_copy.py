"""PostgreSQL hub: COPY straight into the current table gives what the merge gives.

The same batches (new keys, a mix of new and changed keys, keys and JSON that need COPY
escaping, a duplicate key in one batch) applied once with the direct COPY and once with the
staging merge only: the current tables, the history and the batch records are equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from lienthong.sync.envelope import Batch
from lienthong.sync.hub.dialect import POSTGRES, HubDialect
from lienthong.sync.hub.store import HubStore

pytestmark = pytest.mark.postgres


@pytest.fixture
def schemas(pg_dsn: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    base = tmp_path.name[-16:].lower().replace("-", "_")
    names = (f"copy_{base}", f"merge_{base}")
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            admin.execute(f'CREATE SCHEMA "{name}"')
    copy_url, merge_url = (f"{pg_dsn}?options=-csearch_path%3D{n}" for n in names)
    yield copy_url, merge_url


def _batch(seq: int, upserts: list[tuple[str, dict[str, Any]]]) -> Batch:
    rows = [(k, f"pos:{k}", orjson.dumps(doc)) for k, doc in upserts]
    header = {"source": "S", "seq": seq, "table": "t", "entity": "Citizen",
              "position": {"after": seq}, "counts": {"upserts": len(rows), "deletes": 0,
              "quarantined": 0, "read": len(rows)}}  # fmt: skip
    return Batch(header, f"h{seq}", rows, [], [], [])


BATCHES = [
    _batch(1, [(str(i), {"n": i, "name": "Trần Thị Bình"}) for i in range(1, 60)]),
    _batch(2, [(str(i), {"n": i * (2 if i < 65 else 1)}) for i in range(50, 80)]),  # mixed
    _batch(3, [(str(i), {"n": i}) for i in range(80, 90)]),  # new, just after a merge
    _batch(
        4,
        [
            ("tab\there", {"q": 'a "quote" \\ and\nnewline'}),
            ("100%", {"p": "%s"}),
            ("dup", {"v": 1}),
            ("dup", {"v": 2}),
        ],
    ),
    _batch(5, [(str(i), {"n": -i}) for i in range(1, 5)]),
]


# binary COPY computes the timestamps itself: offsets, fractions and a text fallback
NOWS = [
    "2026-01-01T00:00:00+00:00",
    "2026-01-02T07:30:00.123456+07:00",
    "2026-01-03T00:00:00.5-03:00",
    "2026-01-04 00:00:00+00",
    "2026-01-05T00:00:00Z",
]


def _apply(
    url: str,
    dialect: HubDialect,
    batches: list[Batch] = BATCHES,
    nows: list[str] = NOWS,
    prepare: bool = False,
) -> dict[str, list[tuple[Any, ...]]]:
    conn = psycopg.connect(url)
    store = HubStore(conn, dialect)
    for batch, now in zip(batches, nows, strict=True):
        store.apply(batch, now, store.prepare(batch) if prepare else None)
    out = {
        table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
        for table in ("c_citizen", "sync_batches")
    }
    out["h_citizen"] = conn.execute(
        "SELECT source, source_key, data, position, batch_seq, valid_from, valid_to, ended_by"
        " FROM h_citizen ORDER BY source_key, valid_from"
    ).fetchall()
    conn.close()
    return out


def test_direct_copy_equals_merge(schemas: tuple[str, str]) -> None:
    copied = _apply(schemas[0], POSTGRES)
    merged = _apply(schemas[1], dataclasses.replace(POSTGRES, copy_upserts=None))
    assert copied == merged
    assert len(copied["c_citizen"]) == 89 + 3 and len(copied["h_citizen"]) == 10 + 4
    current = {r[1]: r[2] for r in copied["c_citizen"]}
    assert current["tab\there"] == {"q": 'a "quote" \\ and\nnewline'}
    assert current["dup"] == {"v": 2} and current["100%"] == {"p": "%s"}


def test_direct_copy_of_new_keys_at_any_clock(schemas: tuple[str, str]) -> None:
    batches = [_batch(n, [(f"{n}-{i}", {"n": i, "t": "tab\there"}) for i in range(20)])
               for n in range(1, 6)]  # fmt: skip
    copied = _apply(schemas[0], POSTGRES, batches)
    merged = _apply(schemas[1], dataclasses.replace(POSTGRES, copy_upserts=None), batches)
    assert copied == merged
    stamps = {r[1].split("-")[0]: r[5] for r in copied["c_citizen"]}
    assert len(set(stamps.values())) == 5  # five clocks, each kept exactly


def test_direct_copy_with_percent_signs_in_keys_json_and_binary_fields(
    schemas: tuple[str, str],
) -> None:
    # the binary rows are written through a %-template: '%' in a key or a document, and
    # 0x25 bytes in the binary batch number (37 = 0x25) or clock, must come out unchanged
    batches = [_batch(n, [(f"{n}%s", {"p": "100% %s %d", "n": n}), (f"k{n}%%", {"n": n})])
               for n in range(1, 41)]  # fmt: skip
    nows = [f"2026-01-01T00:00:{n % 60:02d}.{0x25 * n:06d}+00:00" for n in range(1, 41)]
    copied = _apply(schemas[0], POSTGRES, batches, nows)
    merged = _apply(schemas[1], dataclasses.replace(POSTGRES, copy_upserts=None), batches, nows)
    assert copied == merged
    current = {r[1]: (r[2], r[4]) for r in copied["c_citizen"]}
    assert current["37%s"] == ({"p": "100% %s %d", "n": 37}, 37)
    assert current["k37%%"] == ({"n": 37}, 37) and len(current) == 80


def test_rows_prepared_before_the_turn_give_the_same_tables(schemas: tuple[str, str]) -> None:
    """Hub.receive builds a batch's COPY rows before its turn (Prepared): the same current
    table, history and batch records as building them in apply, with the merge too."""
    prepared = _apply(schemas[0], POSTGRES, prepare=True)
    plain = _apply(schemas[1], POSTGRES)
    assert prepared == plain
    assert len(prepared["c_citizen"]) == 89 + 3 and len(prepared["h_citizen"]) == 10 + 4


def _key_collations(url: str) -> set[tuple[str, str, str | None]]:
    with psycopg.connect(url) as conn:
        return set(
            conn.execute(
                "SELECT table_name, column_name, collation_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND column_name IN ('source', 'source_key')"
                " AND table_name IN ('c_citizen', 'h_citizen')"
            ).fetchall()
        )


def test_entity_keys_compare_byte_by_byte(schemas: tuple[str, str]) -> None:
    """The key columns of the entity tables use the "C" collation: index inserts and look-ups
    compare bytes, not the database locale's collation rules (≈ 1 µs less per applied row)."""
    _apply(schemas[0], POSTGRES)
    assert _key_collations(schemas[0]) == {
        (t, c, "C") for t in ("c_citizen", "h_citizen") for c in ("source", "source_key")
    }


def test_tables_created_with_the_locale_collation_keep_working(schemas: tuple[str, str]) -> None:
    """A consolidated database created before the "C" key columns (the database's default
    collation) is used as it is: the same tables after the same batches, COPY and merge."""
    old, new = schemas
    store = HubStore(psycopg.connect(old), dataclasses.replace(POSTGRES, key_type="TEXT"))
    store.ensure_entity("Citizen")
    store.close()
    assert {row[2] for row in _key_collations(old)} == {None}
    assert _apply(old, POSTGRES) == _apply(new, POSTGRES)
