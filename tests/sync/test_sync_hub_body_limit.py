"""The hub's HTTP endpoint refuses an oversized batch without holding it in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from crashtools import free_port
from synctools import Keys

from lienthong.sync.hub import server
from lienthong.sync.hub.dialect import connect_hub
from lienthong.sync.hub.store import HubStore
from lienthong.sync.transport import BATCH_PATH


@pytest.fixture
def url(tmp_path: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(server, "MAX_BATCH", 1 << 20)
    store = HubStore(*connect_hub(str(tmp_path / "hub.db")))
    with server.HubThread(keys.hub_for(store), free_port()) as hub:
        yield f"http://127.0.0.1:{hub.port}{BATCH_PATH}"
    store.close()


def test_declared_length_above_the_limit_is_refused(url: str) -> None:
    answer = httpx.post(url, content=b"x" * ((1 << 20) + 1), trust_env=False)
    assert answer.status_code == 413 and answer.json() == {"error": "too_large"}


def test_streamed_body_above_the_limit_is_cut_off(url: str) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(64):
            yield b"y" * 65536

    try:
        answer = httpx.post(url, content=chunks(), trust_env=False)
    except httpx.WriteError:  # the hub answered and closed while the client was still writing
        return
    assert answer.status_code == 413 and answer.json() == {"error": "too_large"}


def test_a_body_within_the_limit_reaches_the_hub(url: str) -> None:
    answer = httpx.post(url, content=b"LTSB1" + b"z" * 1000, trust_env=False)
    assert answer.status_code == 400 and answer.json() == {"error": "malformed_batch"}
