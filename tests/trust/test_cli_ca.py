"""``lienthong ca``: the enrolment flow end to end, and one precise line for bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lienthong.cli.main import main
from lienthong.trust.softhsm import SoftHsmToken

from .conftest import PASS_ENV


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture
def ca_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, out, _ = run(
        capsys,
        "ca",
        "init",
        "--dir",
        str(tmp_path / "ca"),
        "--passphrase",
        f"env:{PASS_ENV}",
        "--json",
    )
    assert code == 0 and json.loads(out)["algorithm"] == "ECDSA-P256"
    return tmp_path / "ca"


def test_enrol_issue_verify_revoke(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agency = ["--keystore-dir", str(tmp_path / "agency"), "--passphrase", f"env:{PASS_ENV}"]
    assert run(capsys, "ca", "keygen", "--label", "gw", *agency)[0] == 0
    csr = tmp_path / "gw.csr"
    code, _, err = run(
        capsys,
        "ca",
        "csr",
        "--label",
        "gw",
        "--identity",
        "VN/GOV/G01.BCA",
        "--cn",
        "gw1",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--out",
        str(csr),
        *agency,
    )
    assert code == 0, err
    code, _, err = run(
        capsys,
        "ca",
        "issue",
        "--dir",
        str(ca_dir),
        "--csr",
        str(csr),
        "--profile",
        "tls",
        "--out",
        str(tmp_path / "no.pem"),
        "--expect-identity",
        "VN/GOV/G02.BTC",
    )
    assert code == 2 and "not the expected VN/GOV/G02.BTC" in err
    assert not (tmp_path / "no.pem").exists()
    cert = tmp_path / "gw.pem"
    code, out, err = run(
        capsys,
        "ca",
        "issue",
        "--dir",
        str(ca_dir),
        "--csr",
        str(csr),
        "--profile",
        "tls",
        "--out",
        str(cert),
        "--json",
    )
    assert code == 0, err
    info = json.loads(out)
    assert info["identity"] == "VN/GOV/G01.BCA"
    bundle = str(ca_dir / "bundle.pem")
    assert (
        subprocess.run(
            ["openssl", "verify", "-CAfile", bundle, str(cert)], capture_output=True, check=False
        ).returncode
        == 0
    )
    assert (
        run(
            capsys, "ca", "verify", "--cert", str(cert), "--bundle", bundle, "--usage", "tls-client"
        )[0]
        == 0
    )
    code, _, err = run(
        capsys, "ca", "verify", "--cert", str(cert), "--bundle", bundle, "--usage", "signing"
    )
    assert code == 1 and "not a signing certificate" in err
    code, out, _ = run(capsys, "ca", "status", "--dir", str(ca_dir), "--cert", str(cert), "--json")
    assert json.loads(out)["status"] == "good"
    assert (
        run(
            capsys,
            "ca",
            "revoke",
            "--dir",
            str(ca_dir),
            info["serial"],
            "--reason",
            "keyCompromise",
        )[0]
        == 0
    )
    code, out, _ = run(capsys, "ca", "status", "--dir", str(ca_dir), "--cert", str(cert), "--json")
    assert json.loads(out)["status"] == "revoked"
    code, out, _ = run(capsys, "ca", "crl", "--dir", str(ca_dir), "--json")
    assert code == 0 and json.loads(out)["revoked"] == 1
    code, out, _ = run(capsys, "ca", "list", "--dir", str(ca_dir), "--json")
    listed = {c["serial"]: c for c in json.loads(out)["certificates"]}
    assert listed[info["serial"]]["status"] == "revoked"
    assert {c["profile"] for c in listed.values()} == {"tls", "ocsp", "tsa"}
    code, out, _ = run(
        capsys, "ca", "list", "--dir", str(ca_dir), "--expiring-within", "400", "--json"
    )
    assert [c["profile"] for c in json.loads(out)["certificates"]] == ["ocsp"]


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"garbage", "not a valid certificate signing request"),
        (b"", "not a valid certificate signing request"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    ca_dir: Path, tmp_path: Path, content: bytes, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csr"
    bad.write_bytes(content)
    code, _, err = run(
        capsys,
        "ca",
        "issue",
        "--dir",
        str(ca_dir),
        "--csr",
        str(bad),
        "--profile",
        "tls",
        "--out",
        str(tmp_path / "x.pem"),
    )
    assert code == 2 and expected in err and len(err.strip().splitlines()) <= 2
    assert "Traceback" not in err and not (tmp_path / "x.pem").exists()


def test_missing_passphrase_and_inline_secret(
    ca_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(
        capsys, "ca", "init", "--dir", str(tmp_path / "c2"), "--passphrase", "hunter2"
    )
    assert code == 2 and "never the secret itself" in err
    assert not (tmp_path / "c2" / "ca.json").exists()
    (tmp_path / "bad.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n"
    )
    code, _, err = run(
        capsys,
        "ca",
        "verify",
        "--cert",
        str(tmp_path / "bad.pem"),
        "--bundle",
        str(ca_dir / "bundle.pem"),
    )
    assert code == 2 and "not a valid X.509 certificate" in err
    monkeypatch.delenv(PASS_ENV)
    code, _, err = run(capsys, "ca", "crl", "--dir", str(ca_dir))
    assert code == 2 and f"{PASS_ENV} is not set" in err
    code, _, err = run(capsys, "ca", "revoke", "--dir", str(ca_dir), "zz")
    assert code == 2 and "not a hexadecimal" in err


@pytest.mark.hsm
def test_agency_keys_in_hsm_via_cli(
    ca_dir: Path, tmp_path: Path, hsm_token: SoftHsmToken, capsys: pytest.CaptureFixture[str]
) -> None:
    hsm = [
        "--pkcs11-module",
        hsm_token.module,
        "--token",
        hsm_token.label,
        "--pin",
        f"env:{hsm_token.pin_env}",
    ]
    code, out, err = run(capsys, "ca", "keygen", "--label", "cli-sign", "--json", *hsm)
    assert code == 0, err
    assert "BEGIN PUBLIC KEY" in json.loads(out)["public_key"]
    csr = tmp_path / "hsm.csr"
    assert (
        run(
            capsys,
            "ca",
            "csr",
            "--label",
            "cli-sign",
            "--identity",
            "VN/GOV/H29.HNI/DVC",
            "--out",
            str(csr),
            *hsm,
        )[0]
        == 0
    )
    cert = tmp_path / "hsm.pem"
    assert (
        run(
            capsys,
            "ca",
            "issue",
            "--dir",
            str(ca_dir),
            "--csr",
            str(csr),
            "--profile",
            "signing",
            "--out",
            str(cert),
        )[0]
        == 0
    )
    code, _, err = run(
        capsys,
        "ca",
        "verify",
        "--cert",
        str(cert),
        "--bundle",
        str(ca_dir / "bundle.pem"),
        "--usage",
        "signing",
    )
    assert code == 0, err
    code, _, err = run(capsys, "ca", "keygen", "--label", "pq", "--algorithm", "ML-DSA-65", *hsm)
    assert code == 1 and "does not support ML-DSA-65" in err
