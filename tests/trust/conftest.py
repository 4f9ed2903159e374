"""Fixtures for trust tests: CAs in temporary directories, passphrase via environment."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.keys import Algorithm

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
PASS_ENV = "LT_TEST_CA_PASSPHRASE"


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASS_ENV, "correct horse battery staple")


def file_spec() -> dict[str, object]:
    return {"type": "file", "dir": "keys", "passphrase": {"$env": PASS_ENV}}


def make_ca(path: Path, algorithm: Algorithm, *, intermediate: bool = True) -> CertificateAuthority:
    return CertificateAuthority.init(
        path, keystore_spec=file_spec(), now=NOW, algorithm=algorithm, intermediate=intermediate
    )


@pytest.fixture(params=[Algorithm.ECDSA_P256, Algorithm.ML_DSA_65], ids=["ecdsa", "mldsa"])
def ca(request: pytest.FixtureRequest, tmp_path: Path) -> CertificateAuthority:
    return make_ca(tmp_path / "ca", request.param)


@pytest.fixture
def ecdsa_ca(tmp_path: Path) -> CertificateAuthority:
    return make_ca(tmp_path / "ca", Algorithm.ECDSA_P256)
