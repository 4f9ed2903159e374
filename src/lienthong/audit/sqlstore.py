"""SQL implementation of :class:`~lienthong.audit.store.LogStore` for SQLite and PostgreSQL.

The shared queries live in :class:`SqlStore`; the two backends differ only in how they
connect, take the writer lock and bulk-load rows. Every public method translates driver
errors into :class:`~lienthong.errors.BackendError` at this boundary.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from lienthong.audit.store import Dialect, LeafRow, TileRow
from lienthong.errors import BackendError, InputError, IntegrityError

T = TypeVar("T")
MMAP_BYTES = 2147418112  # SQLite's default compile-time maximum
SQLITE = Dialect("sqlite", "?", "BLOB", "INTEGER", without_rowid=" WITHOUT ROWID")
POSTGRES = Dialect("postgresql", "%s", "BYTEA", "BIGINT")


class SqlStore:
    """Queries shared by both backends over a DB-API connection ``conn``."""

    dialect: Dialect
    location: str

    def __init__(self, conn: Any, errors: tuple[type[BaseException], ...]) -> None:
        self.conn = conn
        self._errors = errors
        self._lock = threading.RLock()

    # -- plumbing ---------------------------------------------------------------------------
    def _run(self, fn: Callable[[Any], T], *, commit: bool = False) -> T:
        with self._lock:
            try:
                cur = self.conn.cursor()
                try:
                    result = fn(cur)
                finally:
                    cur.close()
                if commit:
                    self.conn.commit()
                elif self.dialect.name == "postgresql":
                    self.conn.rollback()  # end the read transaction: no idle-in-transaction
                return result
            except self._errors as exc:
                raise BackendError(f"audit store {self.location}: {exc}") from exc

    def _q(self, sql: str) -> str:
        return self.dialect.sql(sql)

    def create_schema(self) -> None:
        def go(cur: Any) -> None:
            for stmt in self.dialect.schema():
                cur.execute(stmt)

        self._run(go, commit=True)

    # -- reads ------------------------------------------------------------------------------
    def size(self) -> int:
        return self._run(lambda cur: _size(cur))

    def get_meta(self, key: str) -> str | None:
        def go(cur: Any) -> str | None:
            cur.execute(self._q("SELECT value FROM meta WHERE key = ?"), (key,))
            row = cur.fetchone()
            return None if row is None else str(row[0])

        return self._run(go)

    def set_meta(self, key: str, value: str) -> None:
        def go(cur: Any) -> None:
            cur.execute(self._q("DELETE FROM meta WHERE key = ?"), (key,))
            cur.execute(self._q("INSERT INTO meta (key, value) VALUES (?, ?)"), (key, value))

        self._run(go, commit=True)

    def get_tiles(self, keys: list[int]) -> dict[int, bytes]:
        return self._run(lambda cur: fetch_tiles(cur, self.dialect, keys))

    def tiles_in(self, first_key: int, end_key: int) -> list[TileRow]:
        sql = self._q("SELECT id, hashes FROM tiles WHERE id >= ? AND id < ? ORDER BY id")
        rows = self._run(functools.partial(_fetchall_at, sql=sql, params=(first_key, end_key)))
        return [(int(k), _blob(h, "tiles.hashes")) for k, h in rows]

    def leaves(self, start: int, end: int, chunk: int = 65536) -> Iterator[list[LeafRow]]:
        sql = self._q("SELECT idx, kind, data FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx")
        for lo in range(start, end, chunk):
            hi = min(lo + chunk, end)
            rows = self._run(functools.partial(_fetchall_at, sql=sql, params=(lo, hi)))
            yield [(int(i), str(k), _as_bytes(d)) for i, k, d in rows]

    def person_indexes(self, person: bytes) -> list[int]:
        sql = self._q("SELECT idx FROM persons WHERE person = ? ORDER BY idx")
        rows = self._run(lambda cur: _fetchall(cur, sql, (person,)))
        return [_int(r[0], "persons.idx") for r in rows]

    def checkpoints(self) -> list[tuple[int, str]]:
        rows = self._run(
            lambda cur: _fetchall(cur, "SELECT size, note FROM checkpoints ORDER BY size", ())
        )
        return [(_int(s, "checkpoints.size"), str(n)) for s, n in rows]

    def cosignatures(self, size: int) -> list[tuple[str, str]]:
        sql = self._q("SELECT name, line FROM cosignatures WHERE size = ? ORDER BY name")
        return [(str(n), str(li)) for n, li in self._run(lambda cur: _fetchall(cur, sql, (size,)))]

    def stamps(self) -> dict[int, tuple[bytes, str]]:
        rows = self._run(
            lambda cur: _fetchall(cur, "SELECT size, token, stamped_at FROM stamps", ())
        )
        return {_int(s, "stamps.size"): (_blob(t, "stamps.token"), str(a)) for s, t, a in rows}

    def archives(self) -> list[tuple[int, int, int, str, str]]:
        rows = self._run(
            lambda cur: _fetchall(
                cur, "SELECT seq, first, last, path, sha256 FROM archives ORDER BY seq", ()
            )
        )
        return [
            (
                _int(a, "archives.seq"),
                _int(b, "archives.first"),
                _int(c, "archives.last"),
                str(d),
                str(e),
            )
            for a, b, c, d, e in rows
        ]

    def min_index(self) -> int | None:
        """Smallest entry index stored (negative = rows inserted before the log's start)."""
        rows = self._run(lambda cur: _fetchall(cur, "SELECT MIN(idx) FROM leaves", ()))
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def last_tile(self, level: int) -> tuple[int, int] | None:
        """``(key, hash count)`` of the last stored tile of ``level``, or None."""
        sql = self._q(
            "SELECT id, hashes FROM tiles WHERE id >= ? AND id < ? ORDER BY id DESC LIMIT 1"
        )
        params = (level << 48, (level + 1) << 48)
        rows = self._run(functools.partial(_fetchall_at, sql=sql, params=params))
        return None if not rows else (int(rows[0][0]), len(_blob(rows[0][1], "tiles.hashes")) // 32)

    def person_rows(self, start: int) -> list[tuple[bytes, int]]:
        """Person-index rows of entries ``idx >= start`` and of impossible (negative) indexes."""
        sql = self._q("SELECT person, idx FROM persons WHERE idx >= ? OR idx < 0")
        rows = self._run(functools.partial(_fetchall_at, sql=sql, params=(start,)))
        return [(_blob(p, "persons.person"), _int(i, "persons.idx")) for p, i in rows]

    def missing_tables(self) -> list[str]:
        """Tables of the layout that are absent (a damaged or truncated log)."""
        names = [stmt.split()[5] for stmt in self.dialect.schema()]
        missing = []
        for name in names:
            probe = f"SELECT 1 FROM {name} LIMIT 1"
            try:
                self._run(functools.partial(_fetchall_at, sql=probe, params=()))
            except BackendError:
                missing.append(name)
                if self.dialect.name == "postgresql":
                    self.conn.rollback()
        return missing

    # -- small writes -----------------------------------------------------------------------
    def _insert(self, sql: str, params: tuple[Any, ...]) -> None:
        self._run(lambda cur: cur.execute(self._q(sql), params), commit=True)

    def add_checkpoint(self, size: int, note: str, created: str) -> None:
        def go(cur: Any) -> None:
            cur.execute(self._q("SELECT note FROM checkpoints WHERE size = ?"), (size,))
            row = cur.fetchone()
            if row is None:
                cur.execute(
                    self._q("INSERT INTO checkpoints (size, note, created) VALUES (?, ?, ?)"),
                    (size, note, created),
                )

        self._run(go, commit=True)

    def add_cosignature(self, size: int, name: str, line: str) -> None:
        def go(cur: Any) -> None:
            cur.execute(
                self._q("DELETE FROM cosignatures WHERE size = ? AND name = ?"), (size, name)
            )
            cur.execute(
                self._q("INSERT INTO cosignatures (size, name, line) VALUES (?, ?, ?)"),
                (size, name, line),
            )

        self._run(go, commit=True)

    def add_stamp(self, size: int, token: bytes, stamped_at: str) -> None:
        self._insert(
            "INSERT INTO stamps (size, token, stamped_at) VALUES (?, ?, ?)",
            (size, token, stamped_at),
        )

    def add_archive(self, seq: int, first: int, last: int, path: str, sha256: str) -> None:
        self._insert(
            "INSERT INTO archives (seq, first, last, path, sha256) VALUES (?, ?, ?, ?, ?)",
            (seq, first, last, path, sha256),
        )

    def prune(self, first: int, last: int) -> int:
        sql = self._q("UPDATE leaves SET data = NULL WHERE idx >= ? AND idx < ?")
        return self._run(lambda cur: _rowcount(cur, sql, (first, last)), commit=True)

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _as_bytes(value: Any) -> bytes | None:
    """Entry bytes as stored; a value of another SQL type (tampering) still compares."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return str(value).encode()


def _int(value: Any, column: str) -> int:
    """An integer read back; SQLite keeps any type in any column, so another is tampering."""
    if type(value) is not int:
        raise IntegrityError(f"audit store: {column} holds {value!r}, not an integer (tampered)")
    return value


def _blob(value: Any, column: str) -> bytes:
    """Bytes read back (``bytes(n)`` of a stored number would be n zero bytes)."""
    if not isinstance(value, bytes | memoryview | bytearray):
        raise IntegrityError(
            f"audit store: {column} holds a {type(value).__name__}, not bytes (tampered)"
        )
    return bytes(value)


def _rowcount(cur: Any, sql: str, params: tuple[Any, ...]) -> int:
    cur.execute(sql, params)
    return int(cur.rowcount or 0)


def _fetchall_at(cur: Any, *, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return _fetchall(cur, sql, params)


def _fetchall(cur: Any, sql: str, params: tuple[Any, ...]) -> list[Any]:
    cur.execute(sql, params)
    return list(cur.fetchall())


def _size(cur: Any) -> int:
    cur.execute("SELECT MAX(idx) FROM leaves")
    row = cur.fetchone()
    return 0 if row is None or row[0] is None else int(row[0]) + 1


def fetch_tiles(cur: Any, dialect: Dialect, keys: list[int]) -> dict[int, bytes]:
    """Tiles by key, in one query."""
    if not keys:
        return {}
    marks = ",".join([dialect.param] * len(keys))
    cur.execute(f"SELECT id, hashes FROM tiles WHERE id IN ({marks})", keys)
    return {int(k): _blob(h, "tiles.hashes") for k, h in cur.fetchall()}


class _SqliteWriter:
    def __init__(self, cur: sqlite3.Cursor) -> None:
        self.cur = cur
        self.size = _size(cur)

    def get_tiles(self, keys: list[int]) -> dict[int, bytes]:
        return fetch_tiles(self.cur, SQLITE, keys)

    def insert(
        self,
        leaves: Sequence[LeafRow],
        tiles: Sequence[TileRow],
        persons: Sequence[tuple[bytes, int]],
    ) -> None:
        self.cur.executemany("INSERT INTO leaves (idx, kind, data) VALUES (?, ?, ?)", leaves)
        self.cur.executemany("INSERT OR REPLACE INTO tiles (id, hashes) VALUES (?, ?)", tiles)
        if persons:
            self.cur.executemany("INSERT INTO persons (person, idx) VALUES (?, ?)", persons)


def read_only_uri(path: Path) -> str:
    """A URI that opens ``path`` without writing anything, not even ``-wal``/``-shm`` files.

    With a ``-wal`` file present (a writer has the log open, or crashed), ``mode=ro`` reads the
    committed WAL content through the existing ``-shm``. Without one, no connection has it open
    and every committed entry is in the main file: ``immutable=1`` reads it without locks, so
    a copy in a read-only directory, owned by someone else, can be verified.
    """
    quoted = urllib.parse.quote(str(path.absolute()))
    wal = Path(str(path) + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return f"file:{quoted}?mode=ro"
    return f"file:{quoted}?mode=ro&immutable=1"


def _require_log_file(path: Path) -> None:
    """Refuse (without touching it) a path that is not an existing audit log."""
    if not path.is_file():
        raise InputError(f"no audit log at {path}")
    try:
        with contextlib.closing(sqlite3.connect(read_only_uri(path), uri=True)) as conn:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as exc:
        if "mode=ro&" not in read_only_uri(path) and not os.access(path.parent, os.W_OK):
            raise InputError(
                f"cannot read {path} where it is: its {path.name}-wal file holds entries not yet "
                "in the main file and the directory is read-only; copy the log with its -wal "
                "file into a writable directory"
            ) from exc
        raise InputError(f"{path} is not an audit log: {exc}") from exc
    core = {"meta", "leaves", "tiles"}
    if "meta" in names and len(core & names) < 3:  # an audit log, damaged: integrity failure
        raise IntegrityError(
            f"{path}: the audit log's {', '.join(sorted(core - names))} table(s) are missing "
            "(deleted)",
            kind="deleted",
            index=0,
        )
    if not core <= names:
        raise InputError(
            f"{path} is not an audit log (no audit tables; a log copied without its -wal file "
            "loses what was not yet checkpointed into the main file)"
        )


DURABILITY = {"power": "FULL", "process": "NORMAL"}
WAL_SAFETY_PAGES = 16384  # checkpoints left to a background thread: commits step in at 64 MiB


class SqliteStore(SqlStore):
    """SQLite in WAL mode with ``synchronous=FULL``: a committed batch survives a crash.

    ``durability="process"`` (opt-in) uses ``synchronous=NORMAL`` instead: a commit writes the
    WAL without waiting for ``fsync``, so a committed batch survives the process being killed
    (it is in the kernel's page cache) but not a power loss or kernel crash until the next
    :meth:`sync` (callers run one every few milliseconds)."""

    dialect = SQLITE

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        durability: str = "power",
        readonly: bool = False,
    ) -> None:
        self.location = str(path)
        self._background: sqlite3.Connection | None = None  # see checkpoint_wal
        if durability not in DURABILITY:
            raise InputError(f"durability must be one of {sorted(DURABILITY)}, not {durability!r}")
        self.durability = durability
        self.readonly = readonly
        if not create or readonly:
            _require_log_file(Path(path))
        try:
            if readonly:  # nothing is written: no WAL switch, no schema, no -wal/-shm files
                conn = sqlite3.connect(
                    read_only_uri(Path(path)),
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=30.0,
                )
            else:
                conn = sqlite3.connect(
                    str(path), isolation_level=None, check_same_thread=False, timeout=30.0
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={DURABILITY[durability]}")
            # proofs read ~log2(n) tiles at random: memory-mapped reads avoid a syscall each
            conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: the upper tree stays in memory
        except sqlite3.Error as exc:
            raise InputError(f"cannot open audit log {path}: {exc}") from exc
        super().__init__(conn, (sqlite3.Error,))
        if not readonly:
            self.create_schema()

    def close(self) -> None:
        """Close; a writer first copies the WAL into the main file and empties it, so the
        ``.auditlog`` file alone holds the whole log (it can be handed to an auditor)."""
        with self._lock:
            if self._background is not None:
                self._background.close()
                self._background = None
            if not self.readonly:
                with contextlib.suppress(sqlite3.Error):  # busy: another process has it open
                    self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.close()

    def offload_checkpoints(self) -> None:
        """Leave WAL checkpoints to :meth:`checkpoint_wal`, run by a background thread.

        By default SQLite checkpoints in the committing thread once the WAL holds 1,000
        pages, and a checkpoint syncs the WAL and the database file: measured 2–12 ms (up to
        64 ms) pauses every ≈ 185 single-entry commits, on the event loop of a gateway whose
        durability promises that a commit does not wait for the disk. Commits still
        checkpoint themselves past 64 MiB of WAL, should the background thread stop."""
        with self._lock:
            self.conn.execute(f"PRAGMA wal_autocheckpoint={WAL_SAFETY_PAGES}")

    def checkpoint_wal(self) -> None:
        """Copy the committed WAL frames into the database file on a connection of the
        calling (background) thread: ``PASSIVE`` never waits for the writer nor blocks it;
        SQLite syncs the WAL before and the database file after, as on commit."""
        try:
            if self._background is None:
                self._background = sqlite3.connect(
                    self.location, isolation_level=None, check_same_thread=False, timeout=0
                )
                self._background.execute(f"PRAGMA synchronous={DURABILITY[self.durability]}")
            self._background.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            raise BackendError(f"audit store {self.location}: checkpoint failed: {exc}") from exc

    def _run(self, fn: Callable[[Any], T], *, commit: bool = False) -> T:
        if not commit:
            return super()._run(fn)

        def in_tx(cur: Any) -> T:
            cur.execute("BEGIN IMMEDIATE")
            try:
                result = fn(cur)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            return result

        return super()._run(in_tx)

    def sync(self) -> None:
        """Make every committed transaction durable against power loss: ``fdatasync`` the WAL,
        where commits land. The database file needs nothing here: SQLite writes it only when
        checkpointing, and with ``synchronous=NORMAL`` syncs it after every checkpoint (and
        the WAL before one), so one data sync of the WAL per call is enough. A no-op cost
        under ``durability="power"``, where each commit already synced."""
        sync_wal(self.location)

    @contextmanager
    def writer(self) -> Iterator[_SqliteWriter]:
        with self._lock:
            try:
                cur = self.conn.cursor()
                cur.execute("BEGIN IMMEDIATE")  # the cross-process writer lock
                try:
                    yield _SqliteWriter(cur)
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                raise BackendError(f"audit store {self.location}: {exc}") from exc


def sync_wal(database: str) -> None:
    """``fdatasync`` the WAL file of SQLite ``database`` (nothing to do when there is none:
    not written yet, or removed at close after a full checkpoint, which synced it)."""
    name = database + "-wal"
    try:
        fd = os.open(name, os.O_RDONLY)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BackendError(f"cannot sync {name}: {exc.strerror or exc}") from exc
    try:
        os.fdatasync(fd)
    except OSError as exc:
        raise BackendError(f"cannot sync {name}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
