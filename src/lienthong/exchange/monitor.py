"""Operational monitoring (giám sát vận hành): one record per exchange per node, in SQLite.

Records are buffered and written in batches by :meth:`MonitorStore.flush` (called by the
gateway every half second and at shutdown) so the hot path never waits on the disk; records
older than ``limits.monitor_keep_days`` are deleted by :meth:`MonitorStore.prune`, a bounded
number per call, so the database does not grow without end and no call waits long.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 4
# Step-by-step migrations: MIGRATIONS[n] takes a database at version n to n + 1.
MIGRATIONS = {
    1: ["ALTER TABLE monitor_record ADD COLUMN hop_ms"],
    2: ["CREATE INDEX IF NOT EXISTS monitor_record_ts ON monitor_record (ts)"],
    3: ["ALTER TABLE monitor_record ADD COLUMN reason"],
}
PRUNE_ROWS = 2000  # at most this many records deleted per prune call (a few ms)
MAX_PENDING = 100_000  # records kept in memory while the database cannot be written
# the filters of query(): column -> SQL test
_FILTERS = {
    "message_id": "message_id = ?",
    "client": "client = ?",
    "service": "service = ?",
    "result": "result = ?",
    "error_code": "error_code = ?",
    "until": "ts < ?",
}


@dataclass
class MonitorRecord:
    ts: float
    node: str
    role: str  # client | relay | provider
    message_id: str
    client: str
    service: str
    method: str
    level: str
    status: int
    result: str  # ok | refused
    error_code: str | None
    request_bytes: int
    response_bytes: int
    total_ms: float
    upstream_ms: float
    hops: int
    hop_ms: str | None = None  # "NDXP=3.1,BCA-GW=1.2,service=0.4": time to answer, per hop
    reason: str | None = None  # a refusal's local reason, as its security entry has it


_COLUMNS = [f.name for f in fields(MonitorRecord)]


class MonitorStore:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self._pending: list[tuple[Any, ...]] = []
        self.write_error: str | None = None  # the last flush's database error, until one works
        if readonly:  # a reader (the CLI) next to the running gateway: never writes
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS monitor_record (seq INTEGER PRIMARY KEY, "
            + ", ".join(_COLUMNS)
            + ")"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        self._migrate()
        self._db.execute(MIGRATIONS[2][0])  # a new database starts at the latest version
        self._db.commit()

    def _version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or not str(row[0]).isdigit():  # a damaged database, not a crash
            found = "missing" if row is None else repr(row[0])
            raise sqlite3.DatabaseError(f"schema version {found}, not a number")
        return int(row[0])

    def _migrate(self) -> None:
        current = self._version()
        while current < SCHEMA_VERSION:
            for statement in MIGRATIONS[current]:
                self._db.execute(statement)
            current += 1
            self._db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(current),)
            )

    def add(self, record: MonitorRecord) -> None:
        self._pending.append(tuple(getattr(record, c) for c in _COLUMNS))

    def flush(self) -> int:
        """Write the pending records; on a database error (disk full, locked) they stay
        pending — at most ``MAX_PENDING``, the oldest dropped beyond — and the error is
        raised for the caller to report."""
        if not self._pending:
            return 0
        rows, self._pending = self._pending, []
        marks = ", ".join("?" for _ in _COLUMNS)
        try:
            self._db.executemany(
                f"INSERT INTO monitor_record ({', '.join(_COLUMNS)}) VALUES ({marks})", rows
            )
            self._db.commit()
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.rollback()
            self._pending = (rows + self._pending)[-MAX_PENDING:]
            self.write_error = str(exc)
            raise
        self.write_error = None
        return len(rows)

    def prune(self, before: float, limit: int = PRUNE_ROWS) -> int:
        """Delete up to ``limit`` records older than ``before`` (oldest first); the number
        deleted — ``limit`` means more may be left for the next call."""
        cur = self._db.execute(
            "DELETE FROM monitor_record WHERE seq IN (SELECT seq FROM monitor_record "
            "WHERE ts < ? ORDER BY ts LIMIT ?)",
            (before, limit),
        )
        self._db.commit()
        return cur.rowcount

    def query(
        self, *, since: float = 0.0, limit: int = 100, **filters: str | float | None
    ) -> list[dict[str, Any]]:
        """Most recent records first, from ``since`` (epoch seconds) on; ``filters`` (each
        when not None): ``message_id``, ``client``, ``service``, ``result``, ``error_code``
        (equal) and ``until`` (before that time)."""
        where, args = _where(since, filters)
        # a reader opened on an older schema (the gateway not restarted since an upgrade):
        # the columns it lacks read as None
        have = {r[1] for r in self._db.execute("PRAGMA table_info(monitor_record)")}
        columns = [c for c in _COLUMNS if c in have]
        sql = f"SELECT {', '.join(columns)} FROM monitor_record WHERE {where}"
        sql += " ORDER BY seq DESC LIMIT ?"
        rows = self._db.execute(sql, [*args, limit])
        absent = dict.fromkeys(c for c in _COLUMNS if c not in have)
        return [absent | dict(zip(columns, row, strict=True)) for row in rows]

    def summary(self, *, since: float = 0.0, **filters: str | float | None) -> list[dict[str, Any]]:
        """Per service, result and error code of the records ``query`` would select (no
        limit): the number of exchanges, the 50th and 95th percentiles (nearest rank) and the
        largest total time in milliseconds, and the bytes carried — busiest first."""
        where, args = _where(since, filters)
        groups = self._db.execute(
            "SELECT service, result, error_code, count(*), max(total_ms), "
            f"sum(request_bytes), sum(response_bytes) FROM monitor_record WHERE {where} "
            "GROUP BY service, result, error_code ORDER BY count(*) DESC, service",
            args,
        ).fetchall()
        # both percentiles of every group in one sorted pass: the nearest rank of p over n
        # values is ceil(p * n), in integers (n + 1) / 2 and (95 n + 99) / 100
        ranked: dict[tuple[Any, ...], dict[str, float]] = {}
        for service, result, code, rank, total, n in self._db.execute(
            "SELECT * FROM (SELECT service, result, error_code, row_number() OVER (PARTITION "
            "BY service, result, error_code ORDER BY total_ms) AS rank, total_ms, count(*) "
            "OVER (PARTITION BY service, result, error_code) AS n FROM monitor_record WHERE "
            f"{where}) WHERE rank IN ((n + 1) / 2, (95 * n + 99) / 100)",
            args,
        ):
            at = ranked.setdefault((service, result, code), {})
            if rank == (n + 1) // 2:
                at["p50_ms"] = float(total)
            if rank == (95 * n + 99) // 100:
                at["p95_ms"] = float(total)
        return [
            {"service": service, "result": result, "error_code": code, "count": count}
            | ranked[(service, result, code)]
            | {"max_ms": float(slowest), "request_bytes": sent, "response_bytes": received}
            for service, result, code, count, slowest, sent, received in groups
        ]

    def ping(self) -> None:
        self._db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # already reported; the close goes on
            self.flush()
        self._db.close()


def _where(since: float, filters: dict[str, str | float | None]) -> tuple[str, list[Any]]:
    """The SQL condition and arguments of ``since`` and the given ``_FILTERS``."""
    where = "ts >= ?"
    args: list[Any] = [since]
    for name, value in filters.items():
        if value is not None:
            where += f" AND {_FILTERS[name]}"
            args.append(value)
    return where, args


def open_readonly(path: Path) -> MonitorStore:
    from lienthong.errors import BackendError, NotFound

    if not path.exists():
        raise NotFound(f"no monitoring database at {path}")
    try:
        store = MonitorStore(path, readonly=True)
        version = store._version()
    except sqlite3.Error as exc:
        raise BackendError(f"cannot read the monitoring database {path}: {exc}") from exc
    if version > SCHEMA_VERSION:
        raise BackendError(
            f"monitoring database {path} has schema {version}, newer than this version "
            f"reads ({SCHEMA_VERSION}): upgrade lienthong"
        )
    return store
