"""The gateway process lifts its soft open-files limit to the hard one at start: each
connection is a descriptor and the listeners' connection caps are half of that limit, so a
distribution's default soft 1,024 would cap a provider at 256 connections from its parent
platform."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong.exchange.processes import Running
from lienthong.exchange.server import raise_open_files_limit
from lienthong.exchange.testbed import build_testbed, demo_spec


@pytest.fixture
def low_soft_limit() -> Iterator[int]:
    """This process's soft limit lowered below the hard one (children inherit it), restored
    afterwards; yields the lowered limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256 if hard == resource.RLIM_INFINITY else min(256, hard // 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        yield low
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _open_files_limits(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError("no 'Max open files' line")


def test_a_gateway_started_with_a_low_soft_limit_lifts_it(
    low_soft_limit: int, tmp_path: Path
) -> None:
    tb = build_testbed(tmp_path / "tb", demo_spec(direct=True))
    with Running(tb) as procs:
        procs.start_gateway("BCA-GW")
        soft, hard = _open_files_limits(procs.procs["BCA-GW"].pid)
    assert soft == hard
    assert hard == "unlimited" or int(hard) > low_soft_limit


def test_raise_open_files_limit_returns_the_limit_in_force(low_soft_limit: int) -> None:
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == low_soft_limit
    soft = raise_open_files_limit()
    assert soft == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert soft > low_soft_limit
