"""Operational monitoring (giám sát vận hành): one record per exchange per node, in SQLite.

Records are buffered and written in batches by :meth:`MonitorStore.flush` (called by the
gateway every half second and at shutdown) so the hot path never waits on the disk.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
# Step-by-step migrations: MIGRATIONS[n] takes a database at version n to n + 1.
MIGRATIONS = {1: ["ALTER TABLE monitor_record ADD COLUMN hop_ms"]}


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
    result: str  # ok | refused | failed
    error_code: str | None
    request_bytes: int
    response_bytes: int
    total_ms: float
    upstream_ms: float
    hops: int
    hop_ms: str | None = None  # "NDXP=3.1,BCA-GW=1.2,service=0.4": time to answer, per hop


_COLUMNS = [f.name for f in fields(MonitorRecord)]


class MonitorStore:
    def __init__(self, path: Path) -> None:
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
        self._db.commit()
        self._pending: list[tuple[Any, ...]] = []

    def _migrate(self) -> None:
        (version,) = self._db.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
        current = int(version)
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
        if not self._pending:
            return 0
        rows, self._pending = self._pending, []
        marks = ", ".join("?" for _ in _COLUMNS)
        self._db.executemany(
            f"INSERT INTO monitor_record ({', '.join(_COLUMNS)}) VALUES ({marks})", rows
        )
        self._db.commit()
        return len(rows)

    def query(
        self, *, since: float = 0.0, limit: int = 100, error_code: str | None = None
    ) -> list[dict[str, Any]]:
        """Most recent records first."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM monitor_record WHERE ts >= ?"
        args: list[Any] = [since]
        if error_code is not None:
            sql += " AND error_code = ?"
            args.append(error_code)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        return [dict(zip(_COLUMNS, row, strict=True)) for row in self._db.execute(sql, args)]

    def ping(self) -> None:
        self._db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self.flush()
        self._db.close()


def open_readonly(path: Path) -> MonitorStore:
    if not path.exists():
        from lienthong.errors import NotFound

        raise NotFound(f"no monitoring database at {path}")
    return MonitorStore(path)
