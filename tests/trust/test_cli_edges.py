"""``lienthong ca`` edges: nothing half-written, one precise line with exit 2 for a bad path,
revocation seen by ``ca verify`` and ``ca status``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lienthong.cli.main import main

from .conftest import PASS_ENV


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err and "unexpected" not in err


@pytest.fixture
def pki(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """A CA and one agency CSR (signing) in tmp_path."""
    ca, keys, csr = tmp_path / "ca", tmp_path / "keys", tmp_path / "a.csr"
    secret = ("--passphrase", f"env:{PASS_ENV}")
    assert run(capsys, "ca", "init", "--dir", str(ca), *secret)[0] == 0
    assert run(capsys, "ca", "keygen", "--keystore-dir", str(keys), "--label", "s", *secret)[0] == 0
    code, _, err = run(
        capsys,
        "ca",
        "csr",
        "--keystore-dir",
        str(keys),
        "--label",
        "s",
        "--identity",
        "VN/GOV/G01.BCA",
        "--out",
        str(csr),
        *secret,
    )
    assert code == 0, err
    return {"ca": ca, "keys": keys, "csr": csr}


def _issued(ca: Path) -> int:
    return len(json.loads((ca / "index.json").read_text())["certs"])


def test_issue_into_missing_directory_records_nothing(
    pki: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _issued(pki["ca"])
    issue = ["ca", "issue", "--dir", str(pki["ca"]), "--csr", str(pki["csr"])]
    code, _, err = run(
        capsys, *issue, "--profile", "signing", "--out", str(tmp_path / "no" / "x.pem")
    )
    assert code == 2 and one_line(err)
    assert f"directory {tmp_path / 'no'} does not exist" in err
    assert _issued(pki["ca"]) == before  # nothing recorded: no half-write
    code, _, err = run(capsys, *issue, "--profile", "signing", "--out", str(tmp_path))
    assert code == 2 and "is a directory" in err and _issued(pki["ca"]) == before
    code, _, err = run(capsys, *issue, "--profile", "signing", "--out", str(tmp_path / "x.pem"))
    assert code == 0 and _issued(pki["ca"]) == before + 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x.pem")]  # no temp left


def test_bad_output_paths_are_one_line_exit_2(
    pki: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = ("--passphrase", f"env:{PASS_ENV}")
    missing = tmp_path / "missing"
    code, _, err = run(
        capsys,
        "ca",
        "csr",
        "--keystore-dir",
        str(pki["keys"]),
        "--label",
        "s",
        "--identity",
        "VN/GOV/G01.BCA",
        "--out",
        str(missing / "x.csr"),
        *secret,
    )
    assert code == 2 and one_line(err) and "does not exist" in err
    code, _, err = run(
        capsys,
        "ca",
        "timestamp",
        "--dir",
        str(pki["ca"]),
        "--file",
        str(pki["csr"]),
        "--out",
        str(missing / "x.tst"),
    )
    assert code == 2 and one_line(err) and "does not exist" in err
    code, _, err = run(
        capsys, "ca", "keygen", "--keystore-dir", str(pki["csr"]), "--label", "k", *secret
    )
    assert code == 2 and one_line(err) and "is a file, not a directory" in err


def test_short_passphrase_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PASS_ENV, "short")
    code, _, err = run(
        capsys, "ca", "init", "--dir", str(tmp_path / "c"), "--passphrase", f"env:{PASS_ENV}"
    )
    assert code == 2 and one_line(err) and "use at least 12" in err


def test_revocation_seen_by_verify_and_status(
    pki: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca, cert = pki["ca"], tmp_path / "a.pem"
    issue = ["ca", "issue", "--dir", str(ca), "--csr", str(pki["csr"]), "--profile", "signing"]
    code, out, _ = run(capsys, *issue, "--out", str(cert), "--json")
    serial = json.loads(out)["serial"]
    lone_bundle = tmp_path / "bundle.pem"  # no crl.pem beside it
    lone_bundle.write_bytes((ca / "bundle.pem").read_bytes())
    code, out, _ = run(capsys, "ca", "verify", "--cert", str(cert), "--bundle", str(lone_bundle))
    assert code == 0 and "chain only: revocation not checked" in out
    code, out, _ = run(capsys, "ca", "status", "--dir", str(ca), "--cert", str(cert))
    assert code == 0 and out.startswith("good")
    # revoking without the CA passphrase changes nothing (no "revoked" without a CRL)
    monkeypatch.delenv(PASS_ENV)
    code, _, err = run(capsys, "ca", "revoke", "--dir", str(ca), serial)
    assert code == 2 and "not set" in err
    index = json.loads((ca / "index.json").read_text())
    assert index["certs"][serial]["status"] == "good"
    monkeypatch.setenv(PASS_ENV, "correct horse battery staple")
    assert run(capsys, "ca", "revoke", "--dir", str(ca), serial)[0] == 0
    bundle = str(ca / "bundle.pem")
    code, _, err = run(capsys, "ca", "verify", "--cert", str(cert), "--bundle", bundle)
    assert code == 1 and "revoked" in err and one_line(err)
    code, _, err = run(
        capsys,
        "ca",
        "verify",
        "--cert",
        str(cert),
        "--bundle",
        str(lone_bundle),
        "--crl",
        str(ca / "crl.pem"),
    )
    assert code == 1 and "revoked" in err
    code, out, _ = run(capsys, "ca", "status", "--dir", str(ca), "--cert", str(cert))
    assert code == 1 and out.startswith("revoked")
