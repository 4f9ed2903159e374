"""Backend differences of the consolidated database, as data (SQLite embedded, PostgreSQL)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
    distinct: str  # "IS DISTINCT FROM" is spelled "IS NOT" in SQLite
    temp_suffix: str
    begin: str  # statement opening a write transaction ("" = driver begins implicitly)
    lock: str  # row-lock suffix for the per-source sequence row
    bulk_load: Callable[[Any, str, Sequence[str], Sequence[Sequence[Any]]], None]
    # DDL (with {e} for the entity) of the triggers that move a replaced or deleted current
    # row into history; only rows that really change fire them, inserts cost nothing extra
    history_ddl: tuple[str, ...]

    def sql(self, text: str) -> str:
        """Write SQL with ``?`` placeholders; convert to this backend's style."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    text = value if type(value) is str else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_COPY_ESCAPES)
    return text


def _copy_load(
    conn: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    # one COPY text block built with joins: far fewer Python calls than write_row per row
    block = "".join("\t".join(map(_copy_field, row)) + "\n" for row in rows)
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write(block.encode())


def _insert_load(
    conn: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    marks = ", ".join("?" * len(columns))
    conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


_OLD = ("OLD.source, OLD.source_key, OLD.data, OLD.position, OLD.batch_seq, OLD.received_at, "
        "OLD.valid_from")  # fmt: skip
_CLOCK = "(SELECT now FROM sync_clock WHERE id = 1)"
SQLITE = HubDialect(
    "sqlite", "?", "TEXT", "TEXT", "INTEGER PRIMARY KEY", "IS NOT", "", "BEGIN IMMEDIATE", "",
    _insert_load,
    (f"""CREATE TRIGGER IF NOT EXISTS h_{{e}}_update BEFORE UPDATE ON c_{{e}} BEGIN
         INSERT INTO h_{{e}} VALUES ({_OLD}, NEW.valid_from, 'update'); END""",
     f"""CREATE TRIGGER IF NOT EXISTS h_{{e}}_delete BEFORE DELETE ON c_{{e}} BEGIN
         INSERT INTO h_{{e}} VALUES ({_OLD}, {_CLOCK}, 'delete'); END"""),
)  # fmt: skip
POSTGRES = HubDialect(
    "postgres", "%s", "JSONB", "TIMESTAMPTZ", "BIGSERIAL PRIMARY KEY",
    "IS DISTINCT FROM", " ON COMMIT DELETE ROWS", "", " FOR UPDATE", _copy_load,
    (f"""CREATE OR REPLACE FUNCTION h_{{e}}_keep() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           INSERT INTO h_{{e}} VALUES ({_OLD}, CASE WHEN TG_OP = 'UPDATE' THEN NEW.valid_from
             ELSE {_CLOCK} END, lower(TG_OP));
           RETURN CASE WHEN TG_OP = 'UPDATE' THEN NEW ELSE OLD END;
         END $$""",
     """CREATE OR REPLACE TRIGGER h_{e}_keep BEFORE UPDATE OR DELETE ON c_{e}
         FOR EACH ROW EXECUTE FUNCTION h_{e}_keep()"""),
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
