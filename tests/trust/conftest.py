"""Fixtures for trust tests: CAs in temporary directories, passphrase via environment."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.hsm import Pkcs11KeyStore
from lienthong.trust.keys import Algorithm
from lienthong.trust.keystore import open_keystore
from lienthong.trust.softhsm import SoftHsmToken, init_softhsm_token, softhsm_module

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
PASS_ENV = "LT_TEST_CA_PASSPHRASE"
IN_CI = os.environ.get("CI", "").lower() == "true"


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


@pytest.fixture(scope="session")
def hsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    if softhsm_module() is None:
        if IN_CI:
            pytest.fail("SoftHSM2 is missing (CI=true: HSM tests must run)")
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    token = init_softhsm_token(
        tmp_path_factory.mktemp("hsm"),
        label="lt-test",
        pin="5678",
        so_pin="1234",
        pin_env="LT_TEST_HSM_PIN",
    )
    yield token


@pytest.fixture
def hsm(hsm_token: SoftHsmToken) -> Iterator[Pkcs11KeyStore]:
    store = open_keystore(hsm_token.spec())
    assert isinstance(store, Pkcs11KeyStore)
    yield store
    store.close()
