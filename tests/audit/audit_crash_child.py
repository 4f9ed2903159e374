"""Child process of the crash test: appends forever from 3 threads, printing what is acked.

Each line ``ACK <first index> <count> <tag>`` is printed only after ``append`` returned, i.e.
after the commit: every index so printed must survive ``kill -9``.
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime

from lienthong.audit import AuditLog, admin_entry

_print_lock = threading.Lock()


def worker(log: AuditLog, name: str) -> None:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    for j in range(10**9):
        tag = f"{name}-{j}"
        batch = [
            admin_entry(at=at, actor="crash", action="config.change", target=f"{tag}-{k}")
            for k in range(200)
        ]
        indexes = log.append(batch)
        with _print_lock:
            sys.stdout.write(f"ACK {indexes[0]} {len(indexes)} {tag}\n")
            sys.stdout.flush()


def main() -> None:
    log = AuditLog.open(sys.argv[1], origin="crash.example/log")
    for t in range(3):
        threading.Thread(target=worker, args=(log, f"{sys.argv[2]}{t}"), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
