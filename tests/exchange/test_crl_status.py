"""The CRL status is read from the event loop (certificate checks, /health) and from worker
threads (the federation view's reload, a certificate renewal's check) at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from lienthong.exchange.certs import CrlStatus


def test_a_look_while_another_thread_reads_a_changed_file_waits_for_its_verdict(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Thread A finds the CRL file changed and reads it; thread B, looking meanwhile, saw the
    file as already read and answered from the state before it (here: ``unusable`` still None
    for a file that is garbage). B now waits for A's verdict."""
    path = tmp_path / "crl.pem"
    path.write_bytes(b"not a CRL")
    status = CrlStatus(path, [])
    reports: list[str] = []
    status.report = reports.append
    load = status._load

    def slow_load() -> None:
        time.sleep(0.3)  # a large CRL, or a slow disk
        load()

    monkeypatch.setattr(status, "_load", slow_load)
    seen: dict[str, Any] = {}
    first = threading.Thread(target=lambda: seen.setdefault("a", status.health(time.time())))
    first.start()
    time.sleep(0.1)  # A is inside the read
    seen["b"] = status.health(time.time())
    first.join()
    assert seen["a"]["unusable"] == seen["b"]["unusable"] == "CRL file is not a PEM CRL"
    assert reports == ["CRL file is not a PEM CRL"]  # told once
