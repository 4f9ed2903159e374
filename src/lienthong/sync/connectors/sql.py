"""Database sources (SQLite, PostgreSQL, MariaDB/MySQL) read by keyset pagination.

Two modes, both resumable after a crash at any point because the position after each chunk
is the last (cursor, key) read:

* **snapshot** (no cursor column): ``ORDER BY key``, ``WHERE (key) > (:last)``;
* **cursor**: ``ORDER BY cursor, key``, keyset ``WHERE (cursor, key) > (:c, :k)`` inside a
  pass — the cursor is an ``updated_at`` timestamp or a row version that the source bumps on
  every change. A row can arrive *later* with a cursor value that was already read (a tie at
  second resolution, a late commit): so the position also carries a digest of the rows of the
  *window* — cursor values in ``[c − cursor_overlap_s, c]`` up to ``(c, k)`` — and each pass
  starts by re-reading that window. Unchanged (same digest): nothing is sent again; changed:
  the rows not sent before (known by their short hashes, or the whole window when it is larger
  than WINDOW_ROWS) are sent and the hub leaves identical rows alone (no history). Deletes
  follow the soft-delete convention: a ``deleted_column`` that is true (or a non-null
  timestamp) turns the row into a tombstone.

Backend differences (quoting, placeholders, introspection) live in :class:`SqlDialect`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib
import itertools
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lienthong.errors import BackendError, ConfigError, InputError
from lienthong.sync.model import (
    Chunk,
    Position,
    Unreadable,
    clock_text,
    decode_key,
    encode_key,
    encode_value,
    source_key,
)

# a window of up to this many rows keeps each row's short hash in the position, so a late row
# is sent alone; a larger window keeps only its digest and is sent again whole when it changes
WINDOW_ROWS = 2000

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_identifier(name: str) -> str:
    """Allow-list for table and column names taken from a pipeline file."""
    if not _IDENT.match(name):
        raise ConfigError(f"invalid SQL identifier {name!r}: use letters, digits and _")
    return name


def mariadb_conversions() -> dict[Any, Any]:
    """PyMySQL's decoders, with a ``TIME`` read as PostgreSQL's ``time`` reads
    (:func:`~lienthong.sync.model.clock_text`: ``02:00:00``; it was a timedelta, stored as
    Python's ``2:00:00`` / ``-1 day, 23:00:00``)."""
    converters = importlib.import_module("pymysql.converters")
    field_type = importlib.import_module("pymysql.constants.FIELD_TYPE")

    def time_text(raw: Any) -> Any:
        value = converters.convert_timedelta(raw)
        return clock_text(value) if isinstance(value, dt.timedelta) else value

    conv = dict(converters.conversions)
    conv[field_type.TIME] = time_text
    return conv


# a MariaDB JSON column is a LONGTEXT with this CHECK (its constraint is named after the column)
_JSON_CHECK = re.compile(r"^\s*json_valid\(`((?:[^`]|``)+)`\)\s*$", re.IGNORECASE)
_BIT = re.compile(r"^bit\((\d+)\)")
# MariaDB: every CHECK of the table (a JSON column's is `json_valid(`column`)`)
_MARIADB_CHECKS = (
    "SELECT check_clause FROM information_schema.check_constraints "
    "WHERE constraint_schema = {schema} AND table_name = %s"
)
_ER_BAD_FIELD = 1054  # MySQL's check_constraints has no table_name (its JSON is a type)


def json_decoder(column: str) -> Callable[[Any], Any]:
    """A MariaDB ``JSON`` column's text (PyMySQL's ``str``, the binlog's ``str`` or bytes) as
    the JSON it holds — objects with PostgreSQL ``jsonb``'s key order (shorter keys first,
    then by their UTF-8 bytes), so one document is one consolidated value from both; text
    that is no JSON (a row written with ``check_constraint_checks`` off) is
    :class:`~lienthong.sync.model.Unreadable` (the row goes to the quarantine)."""

    def decode(value: Any) -> Any:
        if value is None:
            return None
        text = bytes(value).decode("utf-8", "replace") if isinstance(value, bytes) else value
        if not isinstance(text, str):
            return value
        try:
            doc = _jsonb_order(json.loads(text))
            if "\\u" in text:  # a lone surrogate escape (json_valid refuses it) has no UTF-8
                json.dumps(doc, ensure_ascii=False).encode()
            return doc
        except ValueError as exc:  # json.JSONDecodeError, UnicodeEncodeError
            return Unreadable(text, f"not valid JSON in the JSON column {column} ({exc})")

    return decode


def _jsonb_order(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return {k: _jsonb_order(value[k]) for k in keys}
    if isinstance(value, list):
        return [_jsonb_order(v) for v in value]
    return value


def bit_decoder(width: int) -> Callable[[Any], Any]:
    """A MariaDB ``BIT(n)`` (PyMySQL's bytes, the binlog's text of digits or int) as the text
    of its ``n`` binary digits, which is how PostgreSQL's ``bit(n)`` arrives (``00101``)."""

    def decode(value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            value = int.from_bytes(value, "big")
        elif isinstance(value, str) and value and set(value) <= {"0", "1"}:
            value = int(value, 2)
        if isinstance(value, int) and not isinstance(value, bool):
            return format(value, f"0{width}b")
        return value

    return decode


@dataclass(frozen=True)
class SqlDialect:
    name: str
    quote_char: str
    placeholder: str
    columns_sql: str  # one placeholder: the table name; returns (column, type)
    # two placeholders: schema (database), table name; None: no schema-qualified names
    qualified_columns_sql: str | None = None

    def quote(self, ident: str) -> str:
        return f"{self.quote_char}{check_identifier(ident)}{self.quote_char}"

    def quote_table(self, name: str) -> str:
        """``table`` or ``schema.table`` (PostgreSQL schema, MariaDB database), each part
        allow-listed and quoted."""
        return ".".join(self.quote(part) for part in name.split(".", 1))

    def params(self, n: int) -> str:
        return ", ".join([self.placeholder] * n)


SQLITE = SqlDialect(
    "sqlite", '"', "?", "SELECT name, lower(type) FROM pragma_table_info(?) ORDER BY cid"
)
POSTGRES = SqlDialect(
    "postgres",
    '"',
    "%s",
    "SELECT column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
    "SELECT column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
)
MARIADB = SqlDialect(
    "mariadb",
    "`",
    "%s",
    "SELECT column_name, lower(column_type) FROM information_schema.columns "
    "WHERE table_schema = database() AND table_name = %s ORDER BY ordinal_position",
    "SELECT column_name, lower(column_type) FROM information_schema.columns "
    "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
)


@dataclass
class SqlTableConnector:
    """A table of a DB-API connection, read in keyset chunks."""

    connect: Callable[[], Any]
    dialect: SqlDialect
    table: str
    key: Sequence[str]
    cursor: str | None = None
    deleted_column: str | None = None
    overlap_s: float = 0.0  # cursor_overlap_s: re-check this many seconds before the position

    def __post_init__(self) -> None:
        self.name = self.table
        self._conn: Any = None
        self._key_checked = False
        self._types: dict[str, str] = {}  # column → type, as schema() read them last
        self._decoders: dict[str, Callable[[Any], Any]] = {}  # MariaDB JSON / BIT columns
        parts = self.table.split(".", 1)
        if len(parts) == 2 and self.dialect.qualified_columns_sql is None:
            raise ConfigError(
                f"table {self.table!r}: schema-qualified names need a postgres or mariadb source"
            )
        for ident in (*parts, *self.key, *filter(None, [self.cursor, self.deleted_column])):
            check_identifier(ident)

    @property
    def conn(self) -> Any:
        if self._conn is None:
            try:
                self._conn = self.connect()
            except InputError:  # a configuration mistake: exit 2 as is
                raise
            except FileNotFoundError as exc:  # no SQLite file at the pipeline's path
                raise ConfigError(f"{self.dialect.name} source: {exc}") from exc
            except Exception as exc:  # driver-specific connection errors
                raise BackendError(f"cannot connect to {self.dialect.name} source: {exc}") from exc
        return self._conn

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            cur = self.conn.cursor()
            cur.execute(sql, tuple(params))
            rows = list(cur.fetchall())
            cur.close()
            # end the read transaction so long runs do not pin old snapshots at the source
            self.conn.commit()
            return rows
        except InputError:
            raise
        except Exception as exc:
            self.close()
            raise BackendError(f"{self.dialect.name} source {self.table}: {exc}") from exc

    def schema(self) -> dict[str, str]:
        if "." in self.table and self.dialect.qualified_columns_sql:
            cols = self._query(self.dialect.qualified_columns_sql, self.table.split(".", 1))
        else:
            cols = self._query(self.dialect.columns_sql, [self.table])
        if not cols:
            raise ConfigError(f"source table {self.table!r} does not exist or has no columns")
        types = {str(name): str(typ) for name, typ in cols}
        if self.dialect is MARIADB and types != self._types:  # once per run (columns changed)
            self._decoders = self._mariadb_decoders(types)
        self._types = types
        return dict(self._types)

    def _mariadb_decoders(self, types: dict[str, str]) -> dict[str, Callable[[Any], Any]]:
        """The MariaDB columns whose driver value is not PostgreSQL's for the same type:
        ``JSON`` (text, decoded) and ``BIT(n)`` (bytes, made digits); key and cursor columns
        keep the driver's value (they are keyset query parameters)."""
        found: dict[str, Callable[[Any], Any]] = {}
        for name, typ in types.items():
            bit = _BIT.match(typ)
            if bit:
                found[name] = bit_decoder(int(bit.group(1)))
            elif typ == "json":  # MySQL's JSON type (PyMySQL returns its text)
                found[name] = json_decoder(name)
        if "longtext" in types.values():  # MariaDB's JSON: a LONGTEXT checked by json_valid
            for (clause,) in self._checks():
                m = _JSON_CHECK.match(str(clause))
                name = m.group(1).replace("``", "`") if m else ""
                if types.get(name) == "longtext":
                    found[name] = json_decoder(name)
        for c in self._order():
            found.pop(c, None)
        return found

    def _checks(self) -> list[tuple[Any, ...]]:
        if "." in self.table:
            schema, table = self.table.split(".", 1)
            sql, params = _MARIADB_CHECKS.format(schema="%s"), [schema, table]
        else:
            sql, params = _MARIADB_CHECKS.format(schema="database()"), [self.table]
        try:
            return self._query(sql, params)
        except BackendError as exc:
            code = (getattr(exc.__cause__, "args", None) or (None,))[0]
            if code == _ER_BAD_FIELD:  # MySQL: no such column
                return []
            raise

    def decode_rows(
        self, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """``rows`` (of ``columns``) with the values of MariaDB's JSON and BIT columns in the
        form PostgreSQL gives for those types; as they are without such columns."""
        if not self._decoders:
            return rows
        conv = [(i, self._decoders[c]) for i, c in enumerate(columns) if c in self._decoders]
        if not conv:
            return rows
        out = []
        for row in rows:
            values = list(row)
            for i, decode in conv:
                values[i] = decode(values[i])
            out.append(tuple(values))
        return out

    def _order(self) -> list[str]:
        return [self.cursor, *self.key] if self.cursor else list(self.key)

    def _where(
        self,
        after: tuple[Any, ...] | None,
        upto: tuple[Any, ...] | None = None,
        lo: Any = None,
    ) -> tuple[str, list[Any]]:
        # NULL cursors never compare greater than anything: leave them out from the first
        # page too, so every page sees the same set (they are reported by null_cursor_rows)
        conds = [f"{self.dialect.quote(self.cursor)} IS NOT NULL"] if self.cursor else []
        if self.cursor and self.zero_date_cursor():  # '0000-00-00', infinity: no date;
            conds.append(self._valid_date(self.cursor))  # reported as null_cursor_rows
        # a NULL key part compares with nothing: a page ending on such a row stopped the
        # keyset there (every later row lost), and PostgreSQL, sorting NULL last, never
        # reached them. Keyset pages leave them out; _null_key_rows reads them
        conds += [f"{self.dialect.quote(k)} IS NOT NULL" for k in self.key]
        cols = ", ".join(self.dialect.quote(c) for c in self._order())
        params: list[Any] = []
        if lo is not None and self.cursor:
            conds.append(f"{self.dialect.quote(self.cursor)} >= {self.dialect.placeholder}")
            params.append(lo)
        if after is not None:
            conds.append(f"({cols}) > ({self.dialect.params(len(after))})")
            params.extend(after)
        if upto is not None:
            conds.append(f"({cols}) <= ({self.dialect.params(len(upto))})")
            params.extend(upto)
        return (f" WHERE {' AND '.join(conds)}" if conds else ""), params

    def _low(self, cursor: Any) -> Any:
        """The lowest cursor value of the re-checked window ending at ``cursor``."""
        if self.overlap_s and isinstance(cursor, dt.datetime | dt.date):
            return cursor - dt.timedelta(seconds=self.overlap_s)
        if self.overlap_s and isinstance(cursor, int | float) and not isinstance(cursor, bool):
            return cursor - self.overlap_s
        if self.overlap_s and isinstance(cursor, str):  # ISO text timestamps (SQLite)
            try:
                at = dt.datetime.fromisoformat(cursor)
            except ValueError:
                return cursor
            return (at - dt.timedelta(seconds=self.overlap_s)).isoformat(sep=cursor[10:11] or "T")
        return cursor

    def _pages(
        self,
        select: str,
        order_sql: str,
        idx: list[int],
        size: int,
        after: tuple[Any, ...] | None,
        upto: tuple[Any, ...] | None = None,
        lo: Any = None,
    ) -> Iterator[list[tuple[Any, ...]]]:
        while True:
            where, params = self._where(after, upto, lo)
            sql = (
                f"SELECT {select} FROM {self.dialect.quote_table(self.table)}{where} "
                f"ORDER BY {order_sql} LIMIT {int(size)}"
            )
            rows = self.decode_rows(list(self._types), self._query(sql, params))
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = tuple(rows[-1][i] for i in idx)

    def read(self, position: Position | None, size: int) -> Iterator[Chunk]:
        columns = list(self.schema())
        order = self._order()
        missing = [c for c in [*order, self.deleted_column or order[0]] if c not in columns]
        if missing:
            raise ConfigError(
                f"source table {self.table!r} has no column {missing[0]!r} "
                f"(columns: {', '.join(columns)})"
            )
        del_idx = columns.index(self.deleted_column) if self.deleted_column else None
        select = ", ".join(self.dialect.quote(c) for c in columns)
        order_sql = ", ".join(self.dialect.quote(c) for c in order)
        after = decode_key(position.get("after")) if position else None
        # rows with a NULL key part (quarantined by the mapper: `key: empty source key`),
        # sent again only when they changed: the position keeps their digest ("nulls")
        nulls = self._null_key_rows(select, del_idx)
        digest = _rows_digest(nulls) if nulls else None
        stored = (position or {}).get("nulls")
        if digest != stored:  # changed, or gone: the whole set goes again and replaces the
            base = dict(position or {})  # open keyless entries at the hub (keyless=True)
            if not nulls:
                base.pop("nulls", None)
                yield Chunk(columns, [], base, keyless=True)
            for i in range(0, len(nulls), size):
                last = i + size >= len(nulls)  # the digest moves with the last of them only
                part = nulls[i : i + size]
                yield Chunk(columns, part, {**base, "nulls": digest} if last else base,
                            locate=self._null_locator(columns, part), keyless=i == 0)  # fmt: skip
        for c in self._read_keyed(columns, position, after, size, select, order_sql, del_idx):
            if digest is not None:
                c.position = {**c.position, "nulls": digest}
            elif "nulls" in c.position:  # the keyless rows are gone (a new dict: it may be shared)
                c.position = {k: v for k, v in c.position.items() if k != "nulls"}
            yield c

    def _null_locator(
        self, columns: list[str], rows: list[tuple[Any, ...]]
    ) -> Callable[[int], str] | None:
        """Snapshot mode: a keyless row's source position names its key (`ma=NULL`, `ma=NULL,
        so=3`) — the key itself is empty, so `quarantine list` showed a blank position. In
        cursor mode the mapper's position (cursor value and key) says more."""
        if self.cursor:
            return None
        idx = [(k, columns.index(k)) for k in self.key]

        def locate(i: int) -> str:
            row = rows[i]
            return ", ".join(f"{k}={'NULL' if row[j] is None else source_key((row[j],))}"
                             for k, j in idx)  # fmt: skip

        return locate

    def _null_key_rows(self, select: str, del_idx: int | None) -> list[tuple[Any, ...]]:
        """The rows whose key has a NULL part (none with a NULL cursor, which cursor mode
        reports apart; none soft-deleted: there is nothing to delete at the hub)."""
        q = self.dialect.quote
        cond = " OR ".join(f"{q(k)} IS NULL" for k in self.key)
        if self.cursor:
            cond = f"({cond}) AND {q(self.cursor)} IS NOT NULL"
        rows = self.decode_rows(list(self._types), self._query(
            f"SELECT {select} FROM {self.dialect.quote_table(self.table)} WHERE {cond}", []
        ))  # fmt: skip
        return [r for r in rows if not r[del_idx]] if del_idx is not None else rows

    def check_key(self) -> None:
        """Refuse a key that is not unique (once per connector): keyset reading continues
        after the last key of a page, so the other rows holding that key were skipped in
        silence. A primary key or unique index on the key columns (or some of them) settles
        it from the catalog; otherwise the data is checked (one aggregate query)."""
        if self._key_checked:
            return
        if not self._unique_in_catalog():
            self._check_unique_data()
        self._check_trimmed_keys()
        self._key_checked = True

    def _check_unique_data(self) -> None:
        q = self.dialect.quote
        cols = ", ".join(q(k) for k in self.key)
        present = " AND ".join(f"{q(k)} IS NOT NULL" for k in self.key)
        rows = self._query(
            f"SELECT {cols}, count(*) FROM {self.dialect.quote_table(self.table)} "
            f"WHERE {present} GROUP BY {cols} HAVING count(*) > 1 LIMIT 1",
            [],
        )
        if rows:
            value = ", ".join(repr(v) for v in rows[0][:-1])
            raise InputError(
                f"the key ({', '.join(self.key)}) of source table {self.table} is not unique: "
                f"{value} is held by {rows[0][-1]} rows; keyset reading needs a unique key "
                "(the table's primary key or unique columns): name one in the pipeline's "
                "key, or remove the duplicates at the source",
                code="key_not_unique",
            )

    def _check_trimmed_keys(self, page: int = 500) -> None:
        """Keys unique at the source that are one consolidated key: that key is
        :func:`source_key` — each part's text without the blanks Python's ``str.strip()``
        removes (CHAR padding, but also NBSP, U+2000–U+200A, U+3000 …: :data:`BLANKS`), the
        parts of a composite key joined by ``|`` — so `'K001'` and `'K001\u00a0'`, or
        `('a|b', 'c')` and `('a', 'b|c')`, would overwrite each other at the hub. One scan
        for text keys with surrounding blanks (or a ``|`` in a part of a composite key), then
        a lookup of their trimmed forms; the consolidated keys are compared in Python, with
        the very function that makes them. A SQLite key column holding values of several
        storage classes (an untyped column: the integer 1 and the text '1' are both '1') has
        every key compared that way."""
        q, table = self.dialect.quote, self.dialect.quote_table(self.table)
        if self.dialect.name == "sqlite" and self._mixed_sqlite_key():
            self._check_all_keys()
            return
        params: list[Any] = []
        if self.dialect.name == "postgres":
            padded = "length({c}::text) <> length(btrim({c}::text, %s))"
            piped = "strpos({c}::text, '|') > 0"
            texts = [k for k in self.key if self._types.get(k) in _PG_TEXT]
            blanks: Any = BLANKS
        elif self.dialect.name == "mariadb":  # TRIM removes spaces only: a PCRE class
            padded = "CONVERT({c} USING utf8mb4) REGEXP %s"
            piped = "LOCATE('|', {c}) > 0"
            texts = [k for k in self.key if self._types.get(k, "").startswith(_MARIADB_TEXT)]
            blanks = f"^[{BLANKS}]|[{BLANKS}]$"
        else:  # SQLite: any column may hold text (one storage class here: checked above)
            padded = "typeof({c}) = 'text' AND length({c}) <> length(trim({c}, ?))"
            piped = "typeof({c}) = 'text' AND instr({c}, '|') > 0"
            texts = list(self.key)
            blanks = BLANKS
        if not texts:
            return
        conds = []
        for k in texts:
            conds.append(f"({padded.format(c=q(k))})")
            params.append(blanks)
            if len(self.key) > 1:
                conds.append(f"({piped.format(c=q(k))})")
        cols = ", ".join(q(k) for k in self.key)
        found = self._query(f"SELECT {cols} FROM {table} WHERE {' OR '.join(conds)}", params)
        if not found:
            return
        by_key: dict[str, tuple[Any, ...]] = {}
        for raw in map(tuple, found):  # two forms of one consolidated key among them
            other = by_key.setdefault(source_key(raw), raw)
            if other != raw:
                self._refuse_trimmed(other, raw)
        trimmed = sorted({tuple(v.strip() if isinstance(v, str) else v for v in raw)
                          for raw in by_key.values()}, key=repr)  # fmt: skip
        for i in range(0, len(trimmed), page):  # the plain form of a padded key (in Python:
            part = trimmed[i : i + page]  # collations may call other forms equal)
            marks = ", ".join(f"({self.dialect.params(len(self.key))})" for _ in part)
            for row in self._query(
                f"SELECT {cols} FROM {table} WHERE ({cols}) IN ({marks})",
                [v for t in part for v in t],
            ):
                twin = by_key.get(source_key(row))
                if twin is not None and tuple(row) != twin:
                    self._refuse_trimmed(tuple(row), twin)

    def _mixed_sqlite_key(self) -> bool:
        """A SQLite key column holding values of more than one storage class (integer,
        real, text, blob): a column without type affinity keeps 1 and '1' apart."""
        q = self.dialect.quote
        counts = ", ".join(f"count(DISTINCT typeof({q(k)}))" for k in self.key)
        present = " AND ".join(f"{q(k)} IS NOT NULL" for k in self.key)
        (row,) = self._query(
            f"SELECT {counts} FROM {self.dialect.quote_table(self.table)} WHERE {present}", []
        )
        return any(n > 1 for n in row)

    def _check_all_keys(self) -> None:
        q = self.dialect.quote
        cols = ", ".join(q(k) for k in self.key)
        present = " AND ".join(f"{q(k)} IS NOT NULL" for k in self.key)
        seen: dict[str, tuple[Any, ...]] = {}
        for raw in self._query(
            f"SELECT {cols} FROM {self.dialect.quote_table(self.table)} WHERE {present}", []
        ):
            other = seen.setdefault(source_key(raw), tuple(raw))
            if other != tuple(raw):
                self._refuse_trimmed(other, tuple(raw))

    def _refuse_trimmed(self, one: tuple[Any, ...], other: tuple[Any, ...]) -> None:
        shown = [", ".join(map(repr, k)) for k in (one, other)]
        kinds = {tuple(type(v) for v in k) for k in (one, other)}
        if len(kinds) > 1:  # an untyped SQLite column: 1 and '1'
            why = (
                "are one consolidated key: values of different types with the same text "
                f"({source_key(one)!r}; the consolidated database keys rows by the text): "
                "one row would overwrite the other; store the key column with one type at "
                "the source (e.g. a TEXT or INTEGER column), merging the two rows"
            )
        elif _stripped(one) != _stripped(other):  # a '|' inside a part of a composite key
            why = (
                f"are one consolidated key ({source_key(one)!r}): the parts of a composite "
                "key are joined by '|' and a part holds one; one row would overwrite the "
                "other; remove the '|' from the key values at the source"
            )
        else:
            why = (
                "are one key once surrounding blanks are removed (the consolidated database "
                "keys rows by the trimmed text; blanks are those of Python's str.strip(): "
                "spaces, tabs, line breaks, NBSP, U+2000–U+200A, U+3000 …): one row would "
                "overwrite the other; trim the keys at the source (merging the two rows)"
            )
        raise InputError(
            f"keys {shown[0]} and {shown[1]} of source table {self.table} {why}",
            code="key_not_unique",
        )

    def _unique_in_catalog(self) -> bool:
        """A primary key or a plain unique index (no expression, no predicate) whose columns
        are all key columns."""
        key, parts = set(self.key), self.table.split(".", 1)
        indexes: list[set[str]] = []
        if self.dialect.name == "sqlite":
            pk = [str(n) for n, p in self._query(
                "SELECT name, pk FROM pragma_table_info(?)", [self.table]) if p]  # fmt: skip
            indexes.append(set(pk) if pk else set())
            for (name,) in self._query(
                'SELECT name FROM pragma_index_list(?) WHERE "unique" = 1 AND partial = 0',
                [self.table],
            ):
                cols = [c for (c,) in self._query("SELECT name FROM pragma_index_info(?)", [name])]
                indexes.append(set() if None in cols else set(map(str, cols)))
        elif self.dialect.name == "postgres":
            for (cols,) in self._query(
                "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a"
                " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indrelid = to_regclass(%s) AND i.indisunique"
                " AND i.indpred IS NULL AND i.indexprs IS NULL GROUP BY i.indexrelid",
                [self.dialect.quote_table(self.table)],
            ):
                indexes.append(set(cols))
        else:
            schema = "%s" if len(parts) == 2 else "database()"
            found: dict[str, set[str]] = {}
            for name, col in self._query(
                "SELECT index_name, column_name FROM information_schema.statistics"
                f" WHERE table_schema = {schema} AND table_name = %s AND non_unique = 0",
                parts,
            ):
                found.setdefault(str(name), set()).add(str(col))
            indexes.extend(found.values())
        return any(cols and cols <= key for cols in indexes)

    def _read_keyed(
        self,
        columns: list[str],
        position: Position | None,
        after: tuple[Any, ...] | None,
        size: int,
        select: str,
        order_sql: str,
        del_idx: int | None,
    ) -> Iterator[Chunk]:
        order = self._order()
        idx = [columns.index(c) for c in order]
        key_idx = [columns.index(c) for c in self.key]

        def chunk(rows: list[tuple[Any, ...]], pos: Position) -> Chunk:
            live, deletes = rows, []
            if del_idx is not None:
                live = [r for r in rows if not r[del_idx]]
                deletes = [tuple(r[i] for i in key_idx) for r in rows if r[del_idx]]
            return Chunk(columns, live, pos, deletes)

        if not self.cursor:
            for rows in self._pages(select, order_sql, idx, size, after):
                after = tuple(rows[-1][i] for i in idx)
                yield chunk(rows, {"after": encode_key(after)})
            return

        # cursor mode: (cursor value, row hash) of the window behind the position
        window = _Window()
        check = max(size, 5000)  # the window is only hashed: larger pages
        resend = fresh = False
        if after is not None:
            lo = self._low(after[0])
            for rows in self._pages(select, order_sql, idx, check, None, after, lo):
                window.extend((r[idx[0]], _row_hash(r)) for r in rows)
            known = position.get("window") if position else None
            resend = not isinstance(known, dict) or window.digest() != known
            if resend and isinstance(known, dict) and isinstance(known.get("rows"), list):
                # the rows of the window already sent are known: send only the others (late
                # ties, rows changed in place); rows that left the window are read further on
                sent = set(known["rows"])
                pos = {"after": encode_key(after)}
                late = [
                    r
                    for rows in self._pages(select, order_sql, idx, size, None, after, lo)
                    for r in rows
                    if _row_hash(r).hex() not in sent
                ]
                for i in range(0, len(late), size):
                    yield chunk(late[i : i + size], pos)
            elif resend:
                # rows arrived (or changed) behind the position: send the window again; until
                # it is all enqueued the position stays without a digest (re-checked on resume)
                pos = {"after": encode_key(after)}
                for rows in self._pages(select, order_sql, idx, size, None, after, lo):
                    yield chunk(rows, pos)
        for rows in self._pages(select, order_sql, idx, size, after):
            after = tuple(rows[-1][i] for i in idx)
            fresh = True
            lo = self._low(after[0])
            # rows come in (cursor, key) order: only the tail at or above the window's lowest
            # cursor value stays in the window, so only it is hashed (hashing every row cost
            # ≈ 40 % of the agency's CPU); the window and its digest are the same as before
            c, start = idx[0], len(rows)
            while start and not rows[start - 1][c] < lo:
                start -= 1
            window.extend((r[c], _row_hash(r)) for r in itertools.islice(rows, start, None))
            window.trim(lo)
            yield chunk(rows, {"after": encode_key(after), "window": window.digest()})
        if resend and not fresh and after is not None:
            # only the window was sent again: record its digest (a position-only chunk)
            yield Chunk(columns, [], {"after": encode_key(after), "window": window.digest()})

    def zero_date_cursor(self) -> bool:
        """A date cursor that may hold values that are no date: MariaDB/MySQL zero dates
        ('0000-00-00 00:00:00', a legacy NOT NULL default, or '1990-02-00'), PostgreSQL
        ±infinity. The drivers return them as text; compared with datetimes they broke every
        run (TypeError). Such rows are left out like NULL cursors and reported."""
        typ = self._types.get(self.cursor or "", "")
        if self.dialect.name == "mariadb":
            return typ.startswith(("date", "timestamp"))
        return self.dialect.name == "postgres" and typ.startswith(("date", "timestamp"))

    def _valid_date(self, column: str) -> str:
        c = self.dialect.quote(column)
        if self.dialect.name == "postgres":
            return f"isfinite({c})"
        return f"MONTH({c}) > 0 AND DAYOFMONTH({c}) > 0"

    def null_cursor_rows(self) -> int:
        """Rows whose cursor is NULL (or no date: a MariaDB zero date, PostgreSQL infinity):
        cursor mode can never read them (reported, not hidden)."""
        if not self.cursor:
            return 0
        table, cursor = self.dialect.quote_table(self.table), self.dialect.quote(self.cursor)
        cond = f"{cursor} IS NULL"
        if self.zero_date_cursor():
            cond += f" OR NOT ({self._valid_date(self.cursor)})"
        return int(self._query(f"SELECT count(*) FROM {table} WHERE {cond}", [])[0][0])

    def pending(self, position: Position | None) -> int:
        """Rows a run would read: after the position, plus the re-checked window when it
        changed (or its digest is unknown) — never 0 while a late row waits behind it."""
        after = decode_key(position.get("after")) if position else None
        columns = list(self.schema())  # first: the column types shape the query
        where, params = self._where(after)
        rows = self._query(
            f"SELECT count(*) FROM {self.dialect.quote_table(self.table)}{where}", params
        )
        unread = int(rows[0][0])
        select = ", ".join(self.dialect.quote(c) for c in columns)
        del_idx = columns.index(self.deleted_column) if self.deleted_column in columns else None
        nulls = self._null_key_rows(select, del_idx)
        if (_rows_digest(nulls) if nulls else None) != (position or {}).get("nulls"):
            unread += len(nulls)
        if self.cursor and after is not None and position is not None:
            idx = [columns.index(c) for c in self._order()]
            order_sql = ", ".join(self.dialect.quote(c) for c in self._order())
            hashes = [
                _row_hash(r)
                for rows in self._pages(select, order_sql, idx, 5000, None, after,
                                        self._low(after[0]))
                for r in rows
            ]  # fmt: skip
            known = position.get("window")
            whole = _Window()
            whole.extend((None, h) for h in hashes)
            if not isinstance(known, dict) or whole.digest() != known:
                sent = set(known.get("rows") or ()) if isinstance(known, dict) else set()
                unread += sum(1 for h in hashes if h.hex() not in sent)
        return unread

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._conn.close()
            self._conn = None


class _Window:
    """(cursor value, short row hash) of the rows behind the position, in (cursor, key)
    order, with a digest kept up to date while rows are only appended."""

    def __init__(self) -> None:
        self.rows: deque[tuple[Any, bytes]] = deque()
        self._sha = hashlib.sha256()
        self._stale = False

    def extend(self, items: Iterable[tuple[Any, bytes]]) -> None:
        for item in items:
            self.rows.append(item)
            if not self._stale:
                self._sha.update(item[1])

    def trim(self, lo: Any) -> None:
        """Forget the rows whose cursor value fell below the window's lowest value."""
        while self.rows and self.rows[0][0] < lo:
            self.rows.popleft()
            self._stale = True

    def digest(self) -> dict[str, Any]:
        """Row count, digest and (up to WINDOW_ROWS) each row's short hash."""
        if self._stale:
            self._sha = hashlib.sha256()
            for _, h in self.rows:
                self._sha.update(h)
            self._stale = False
        out: dict[str, Any] = {"n": len(self.rows), "h": self._sha.hexdigest()[:32]}
        if len(self.rows) <= WINDOW_ROWS:
            out["rows"] = [h.hex() for _, h in self.rows]
        return out


_PG_TEXT = frozenset({"text", "character varying", "character", "USER-DEFINED"})  # citext, enums

# what str.strip() removes (str.isspace()): the blanks the consolidated key loses
BLANKS = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_MARIADB_TEXT = ("varchar", "char", "text", "tinytext", "mediumtext", "longtext")


def _stripped(key: tuple[Any, ...]) -> list[Any]:
    return [v.strip() if isinstance(v, str) else v for v in key]


def _rows_digest(rows: list[tuple[Any, ...]]) -> str:
    """Count and digest of a set of rows (in any order)."""
    h = hashlib.sha256()
    for d in sorted(map(_row_hash, rows)):
        h.update(d)
    return f"{len(rows)}:{h.hexdigest()[:32]}"


def _row_hash(row: tuple[Any, ...]) -> bytes:
    return hashlib.sha256(repr(tuple(encode_value(v) for v in row)).encode()).digest()[:8]
