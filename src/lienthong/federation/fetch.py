"""Getting the signed configuration document from a file path or an HTTP(S) URL."""

from __future__ import annotations

from pathlib import Path

import httpx

from lienthong.errors import BackendError, NotFound

MAX_BYTES = 32 * 1024 * 1024


def fetch_document(source: str, *, timeout: float = 10.0) -> bytes:
    """The raw bytes at ``source``; BackendError (transient) when it cannot be read."""
    if source.startswith(("http://", "https://")):
        try:
            response = httpx.get(source, timeout=timeout, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot fetch {source}: {exc}") from exc
        if response.status_code != 200:
            raise BackendError(f"cannot fetch {source}: HTTP {response.status_code}")
        if len(response.content) > MAX_BYTES:
            raise BackendError(f"{source}: document larger than {MAX_BYTES} bytes")
        return response.content
    path = Path(source.removeprefix("file://"))
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise NotFound(f"configuration file {path} does not exist") from None
    except OSError as exc:
        raise BackendError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_BYTES:
        raise BackendError(f"{path}: document larger than {MAX_BYTES} bytes")
    return data
