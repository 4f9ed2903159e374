"""A deliberately naive, recursive RFC 6962 implementation used as the oracle in tests."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime


def mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n <= 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def consistency(m: int, leaves: list[bytes]) -> list[bytes]:
    if m in (0, len(leaves)):
        return []
    return subproof(m, leaves, True)


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PERSON_KEY = b"federation-person-key-for-tests-0001"


def admin_entries(n: int, tag: str = "t") -> list:
    """``n`` small administrative entries with distinct content."""
    from lienthong.audit import admin_entry

    return [
        admin_entry(at=NOW, actor="ops", action="config.change", target=f"{tag}{i}")
        for i in range(n)
    ]


def audit_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``lienthong audit ARGS`` in a fresh process with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "lienthong", "audit", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
