"""Backend differences of the consolidated database, as data (SQLite embedded, PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson

from lienthong.errors import ConfigError

_ENTITY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,40}$")


def entity_ident(entity: str) -> str:
    """Table-name stem of a dictionary entity: ``HealthInsuranceCard`` → ``health_insurance_card``.

    Entity names become table names, so only a strict allow-list passes.
    """
    if not _ENTITY.match(entity):
        raise ConfigError(f"invalid entity name {entity!r}: letters, digits and _")
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", entity).lower()


@dataclass(frozen=True)
class HubDialect:
    name: str
    placeholder: str
    json_type: str
    ts_type: str
    id_type: str
    # SQL true when the JSON document {new} differs from {old}: PostgreSQL compares jsonb
    # values; SQLite stores text, so two texts that differ are compared as JSON by
    # lt_same_json (keys in another order — rows stored before the keys came in jsonb's
    # order — are no change and get no history version)
    changed_sql: str
    temp_suffix: str
    begin: str  # statement opening a write transaction ("" = driver begins implicitly)
    lock: str  # row-lock suffix for the per-source sequence row
    bulk_load: Callable[[Any, str, Sequence[str], Sequence[Sequence[Any]]], None]
    # DDL (with {e} for the entity) of the triggers that move a replaced or deleted current
    # row into history; only rows that really change fire them, inserts cost nothing extra
    history_ddl: tuple[str, ...]
    # COPY straight into the current table when every key of a batch is new (PostgreSQL)
    copy_upserts: Callable[..., Any] | None = None
    # type of the key columns (source, source_key) of the entity tables: compared byte by
    # byte, so index inserts and look-ups do not go through the locale's collation
    key_type: str = "TEXT"

    def sql(self, text: str) -> str:
        """Write SQL with ``?`` placeholders; convert to this backend's style."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


def same_json(old: str | bytes | None, new: str | bytes | None) -> bool:
    """Whether two stored JSON texts hold the same document (objects compared without
    regard to key order); text that is no JSON compares as text."""
    if old == new:
        return True
    if old is None or new is None:
        return False
    try:
        return bool(orjson.loads(old) == orjson.loads(new))
    except orjson.JSONDecodeError:
        return False


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: Any) -> str:
    return value.decode() if type(value) is bytes else str(value)


def copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    text = value if type(value) is str else _text(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_COPY_ESCAPES)
    return text


def _copy_load(
    conn: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    # one COPY text block built with joins: far fewer Python calls than write_row per row
    if columns == ("source_key", "position", "data"):
        fast = copy_upsert_block(rows, b"%s\t%s\t%s\n")
        if fast is not None:
            _copy_bytes(conn, f"COPY {table} (source_key, data, position) FROM STDIN", fast)
            return
    block = "".join("\t".join(map(copy_field, row)) + "\n" for row in rows)
    _copy_bytes(conn, f"COPY {table} ({', '.join(columns)}) FROM STDIN", block.encode())


def _copy_bytes(conn: Any, sql: str, block: bytes) -> None:
    with conn.cursor().copy(sql) as copy:
        copy.write(block)


_SPECIAL = ("\\", "\t", "\n", "\r")
_SPECIAL_BYTES = tuple(ch.encode() for ch in _SPECIAL)


def _plain_text(texts: Sequence[str]) -> bool:
    """True when no text needs COPY escaping (four memchr-speed scans of the joined texts)."""
    joined = "".join(texts)
    return not any(ch in joined for ch in _SPECIAL)


def _plain_bytes(blobs: Sequence[bytes]) -> bool:
    joined = b"".join(blobs)
    return not any(ch in joined for ch in _SPECIAL_BYTES)


def copy_upsert_block(rows: Sequence[Sequence[Any]], template: bytes) -> bytes | None:
    """COPY text lines of (key, position, json) rows through a bytes %-template with three
    ``%s`` (key, json, position), built with one C-level pass; None when a value needs
    escaping (the caller then uses the per-field path)."""
    keys = list(map(itemgetter(0), rows))
    positions = list(map(itemgetter(1), rows))
    jsons = list(map(itemgetter(2), rows))
    if not (_plain_text(keys) and _plain_bytes(jsons)):
        return None
    key_bytes = "\n".join(keys).encode().split(b"\n")
    if positions == keys:
        pos_bytes = key_bytes
    elif _plain_text(positions):
        pos_bytes = "\n".join(positions).encode().split(b"\n")
    else:
        return None
    return b"".join(map(template.__mod__, zip(key_bytes, jsons, pos_bytes, strict=True)))


_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_ISO_AWARE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")
_I32 = struct.Struct(">i")
_JSONB_HEAD = struct.Struct(">ib")  # length of version + text, jsonb version 1
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
_BINARY_TRAILER = b"\xff\xff"


def copy_binary_current(
    rows: Sequence[tuple[str, str, bytes]], source: str, seq: int, now: str
) -> bytes | None:
    """Binary COPY data of complete current-table rows (source, source_key, data as jsonb,
    position, batch_seq, received_at = valid_from = ``now``): PostgreSQL parses no number,
    timestamp or escape. None when ``now`` is not an ISO time with an offset or a value
    holds NUL (the caller then uses the text format)."""
    prefixes = binary_rows(rows, source)
    return None if prefixes is None else binary_block(prefixes, seq, now)


def binary_rows(rows: Sequence[tuple[str, str, bytes]], source: str) -> list[bytes] | None:
    """The part of each binary COPY row that does not depend on the batch number or the
    clock (field count, source, key, data, position) — the costly part, which the hub builds
    before the batch's turn to apply (:func:`binary_block` adds the rest); None when a value
    holds NUL."""
    keys = list(map(itemgetter(0), rows))
    positions = list(map(itemgetter(1), rows))
    jsons = list(map(itemgetter(2), rows))
    joined = "\x00".join(keys)
    if joined.count("\x00") != len(keys) - 1 or "\x00" in source:
        return None
    key_bytes = joined.encode().split(b"\x00")
    if positions == keys:
        pos_bytes = key_bytes
    else:
        joined = "\x00".join(positions)
        if joined.count("\x00") != len(positions) - 1:
            return None
        pos_bytes = joined.encode().split(b"\x00")
    src = source.encode()
    head = b"\x00\x07" + _I32.pack(len(src)) + src  # 7 fields, then the source
    # length prefixes packed once per distinct length; one %-template per row ('%' doubled:
    # the head is binary)
    key_lens = list(map(_packer(_I32.pack), map(len, key_bytes)))
    pos_lens = (
        key_lens if pos_bytes is key_bytes else list(map(_packer(_I32.pack), map(len, pos_bytes)))
    )
    json_heads = list(map(_packer(_jsonb_head), map(len, jsons)))
    template = head.replace(b"%", b"%%") + b"%s%s%s%s%s%s"
    fields = zip(key_lens, key_bytes, json_heads, jsons, pos_lens, pos_bytes, strict=True)
    return list(map(template.__mod__, fields))


def binary_block(prefixes: list[bytes], seq: int, now: str) -> bytes | None:
    """The binary COPY data of rows from :func:`binary_rows`, each ended by the batch number
    and ``now`` twice (received_at, valid_from); None when ``now`` is not an ISO time with
    an offset."""
    if not _ISO_AWARE.fullmatch(now):
        return None
    try:
        micros = (dt.datetime.fromisoformat(now) - _PG_EPOCH) // dt.timedelta(microseconds=1)
    except ValueError:
        return None
    stamp = struct.pack(">iq", 8, micros)
    tail = struct.pack(">iq", 8, seq) + stamp + stamp
    body = tail.join(prefixes) + tail if prefixes else b""
    return _BINARY_HEADER + body + _BINARY_TRAILER


def _jsonb_head(n: int) -> bytes:
    return _JSONB_HEAD.pack(n + 1, 1)  # field length (version byte + text), version 1


def _packer(pack: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """``pack`` memoised for the few distinct lengths of a column."""
    memo: dict[int, bytes] = {}

    def packed(n: int) -> bytes:
        out = memo.get(n)
        if out is None:
            out = memo[n] = pack(n)
        return out

    return packed


def copy_escape(value: str) -> bytes:
    """One COPY text field (escaped, ``%`` doubled for a %-template)."""
    return copy_field(value).encode().replace(b"%", b"%%")


def _copy_current(conn: Any, table: str, block: bytes, binary: bool = False) -> Any:
    """COPY a block of complete current-table rows; on a key that already exists, roll back
    to before it and return None (the caller merges instead)."""
    conn.execute("SAVEPOINT lt_copy")
    try:
        with conn.cursor().copy(
            f"COPY {table} (source, source_key, data, position, batch_seq, received_at, "
            f"valid_from) FROM STDIN{' (FORMAT BINARY)' if binary else ''}"
        ) as copy:
            copy.write(block)
    except Exception as exc:
        if getattr(exc, "sqlstate", None) != "23505":  # unique_violation
            raise
        conn.execute("ROLLBACK TO SAVEPOINT lt_copy")
        return None
    conn.execute("RELEASE SAVEPOINT lt_copy")
    return True


def _insert_load(
    conn: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    if rows and any(type(v) is bytes for v in rows[0]):  # JSON bodies as bytes: TEXT here
        rows = [tuple(v.decode() if type(v) is bytes else v for v in row) for row in rows]
    marks = ", ".join("?" * len(columns))
    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


_OLD = ("OLD.source, OLD.source_key, OLD.data, OLD.position, OLD.batch_seq, OLD.received_at, "
        "OLD.valid_from")  # fmt: skip
_CLOCK = "(SELECT now FROM sync_clock WHERE id = 1)"
SQLITE = HubDialect(
    "sqlite", "?", "TEXT", "TEXT", "INTEGER PRIMARY KEY",
    "{old} IS NOT {new} AND NOT lt_same_json({old}, {new})", "", "BEGIN IMMEDIATE", "",
    _insert_load,
    (f"""CREATE TRIGGER IF NOT EXISTS h_{{e}}_update BEFORE UPDATE ON c_{{e}} BEGIN
         INSERT INTO h_{{e}} VALUES ({_OLD}, NEW.valid_from, 'update'); END""",
     f"""CREATE TRIGGER IF NOT EXISTS h_{{e}}_delete BEFORE DELETE ON c_{{e}} BEGIN
         INSERT INTO h_{{e}} VALUES ({_OLD}, {_CLOCK}, 'delete'); END"""),
)  # fmt: skip
POSTGRES = HubDialect(
    "postgres", "%s", "JSONB", "TIMESTAMPTZ", "BIGSERIAL PRIMARY KEY",
    "{old} IS DISTINCT FROM {new}", " ON COMMIT DELETE ROWS", "", " FOR UPDATE", _copy_load,
    (f"""CREATE OR REPLACE FUNCTION h_{{e}}_keep() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           INSERT INTO h_{{e}} VALUES ({_OLD}, CASE WHEN TG_OP = 'UPDATE' THEN NEW.valid_from
             ELSE {_CLOCK} END, lower(TG_OP));
           RETURN CASE WHEN TG_OP = 'UPDATE' THEN NEW ELSE OLD END;
         END $$""",
     """CREATE OR REPLACE TRIGGER h_{e}_keep BEFORE UPDATE OR DELETE ON c_{e}
         FOR EACH ROW EXECUTE FUNCTION h_{e}_keep()"""),
    _copy_current,
    'TEXT COLLATE "C"',
)  # fmt: skip


def connect_hub(url: str) -> tuple[Any, HubDialect]:
    """Open the consolidated database: a PostgreSQL URL, or a SQLite file path."""
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        try:
            return psycopg.connect(url), POSTGRES
        except psycopg.Error as exc:
            from lienthong.errors import BackendError

            raise BackendError(f"cannot open consolidated database: {exc}") from exc
    path = url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives process kill -9
    return conn, SQLITE
