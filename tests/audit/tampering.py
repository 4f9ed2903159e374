"""What an insider with write access to a SQLite audit log does, for the attack tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def cut_tail(path: Path, shorter: Path, size: int) -> None:
    """Roll the log at ``path`` back to its first ``size`` entries: the later entries, their
    person-index rows and the checkpoints above ``size`` deleted, and the tiles replaced by
    those of ``shorter`` (a log of the same first ``size`` entries) — the log alone is
    self-consistent again."""
    with sqlite3.connect(path) as db:
        db.execute("ATTACH ? AS s", (str(shorter),))
        db.execute("DELETE FROM leaves WHERE idx >= ?", (size,))
        db.execute("DELETE FROM persons WHERE idx >= ?", (size,))
        db.execute("DELETE FROM checkpoints WHERE size > ?", (size,))
        db.execute("DELETE FROM tiles")
        db.execute("INSERT INTO tiles SELECT * FROM s.tiles")
