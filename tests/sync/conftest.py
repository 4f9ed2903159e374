"""Fixtures of the sync tests."""

from __future__ import annotations

import pytest
from synctools import Keys, new_keys


@pytest.fixture(scope="session")
def keys() -> Keys:
    return new_keys()
