"""Publishing with the operator key in an HSM (real SoftHSM2) and nodes that require a
post-quantum (ML-DSA-65) signature besides ES256."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lienthong.trust.softhsm import softhsm_module

from .clihelp import OPERATOR, cli, ok

IN_CI = os.environ.get("CI", "").lower() == "true"


def _operator_cert(capsys: pytest.CaptureFixture[str], label: str, algorithm: str) -> None:
    ok(capsys, "ca", "keygen", "--keystore-dir", "op", "--label", label, "--algorithm", algorithm)
    ok(
        capsys,
        "ca",
        "csr",
        "--keystore-dir",
        "op",
        "--label",
        label,
        "--identity",
        OPERATOR,
        "--out",
        f"{label}.csr",
    )
    ok(
        capsys,
        "ca",
        "issue",
        "--dir",
        "ca",
        "--csr",
        f"{label}.csr",
        "--profile",
        "signing",
        "--out",
        f"{label}.pem",
    )


@pytest.fixture
def federation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIENTHONG_CA_PASSPHRASE", "synthetic CA passphrase")
    ok(capsys, "ca", "init", "--dir", "ca")
    ok(capsys, "federation", "init", "f.yaml")
    return tmp_path


def test_nodes_can_require_ml_dsa(federation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _operator_cert(capsys, "signing", "ECDSA-P256")
    _operator_cert(capsys, "pq", "ML-DSA-65")
    publish = (
        "federation",
        "publish",
        "f.yaml",
        "--ca-dir",
        "ca",
        "--key",
        "op/signing.key.pem",
        "--cert",
        "signing.pem",
        "--passphrase",
        "env:LIENTHONG_CA_PASSPHRASE",
    )
    ok(capsys, *publish, "--pq-key", "op/pq.key.pem", "--pq-cert", "pq.pem", "--out", "v1.json")
    fetch = (
        "federation",
        "fetch",
        "--to",
        "gc",
        "--anchor",
        "ca/bundle.pem",
        "--operator",
        OPERATOR,
        "--require-pq",
    )
    ok(capsys, *fetch, "--from", "v1.json")
    ok(capsys, *publish, "--out", "v2.json", "--version", "2")  # ES256 only
    code, _, err = cli(capsys, "federation", "fetch", "--to", "gc", "--from", "v2.json")
    assert code == 1 and "lacks a required ML-DSA-65 signature" in err
    shown = json.loads(ok(capsys, "federation", "show", "gc", "--json"))
    assert shown["version"] == 1 and shown["signed_by"] == [OPERATOR]


def test_publish_with_operator_key_in_softhsm(
    federation: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = softhsm_module()
    if module is None:
        if IN_CI:
            pytest.fail("SoftHSM2 is missing (CI=true: HSM tests must run)")
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    # SoftHSM2 reads SOFTHSM2_CONF once per process: every HSM step runs in its own process
    # with its own configuration, so this test never disturbs other tests' tokens.
    tokens = federation / "tokens"
    tokens.mkdir()
    conf = federation / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = os.environ | {"SOFTHSM2_CONF": str(conf), "LT_FED_HSM_PIN": "246810"}
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "operator",
            "--so-pin",
            "13579",
            "--pin",
            "246810",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    hsm = ("--pkcs11-module", module, "--token", "operator", "--pin", "env:LT_FED_HSM_PIN")

    def lienthong(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "lienthong", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, (args, proc.stderr)
        return proc.stdout

    lienthong("ca", "keygen", "--label", "signing", *hsm)
    lienthong("ca", "csr", "--label", "signing", "--identity", OPERATOR, "--out", "op.csr", *hsm)
    ok(
        capsys,
        "ca",
        "issue",
        "--dir",
        "ca",
        "--csr",
        "op.csr",
        "--profile",
        "signing",
        "--out",
        "op.pem",
    )
    out = lienthong(
        "federation",
        "publish",
        "f.yaml",
        "--ca-dir",
        "ca",
        "--cert",
        "op.pem",
        *hsm,
        "--out",
        "g.json",
        "--json",
    )
    assert json.loads(out)["version"] == 1
    ok(
        capsys,
        "federation",
        "fetch",
        "--to",
        "gc",
        "--from",
        "g.json",
        "--anchor",
        "ca/bundle.pem",
        "--operator",
        OPERATOR,
    )
    assert json.loads(ok(capsys, "federation", "show", "gc", "--json"))["version"] == 1
