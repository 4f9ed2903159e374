"""Federation CLI edges: version caps at publish and fetch, certificate ownership, bad paths —
each one precise line with exit 2 and nothing written."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from lienthong.errors import ConfigError
from lienthong.federation.confverify import parse_payload
from lienthong.federation.globalconf import FORMAT, MAX_VERSION

from .clihelp import OPERATOR, cli, ok

PUBLISH = (
    "federation",
    "publish",
    "f.yaml",
    "--ca-dir",
    "ca",
    "--key",
    "op/signing.key.pem",
    "--cert",
    "op.pem",
    "--passphrase",
    "env:LIENTHONG_CA_PASSPHRASE",
)


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err and "unexpected" not in err


def _enrol(capsys: pytest.CaptureFixture[str], keys: str, identity: str, out: str) -> None:
    ok(capsys, "ca", "keygen", "--keystore-dir", keys, "--label", "signing")
    csr = f"{out}.csr"
    ok(capsys, "ca", "csr", "--keystore-dir", keys, "--label", "signing", "--identity", identity,
       "--out", csr)  # fmt: skip
    ok(capsys, "ca", "issue", "--dir", "ca", "--csr", csr, "--profile", "signing", "--out", out)


@pytest.fixture
def operator(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIENTHONG_CA_PASSPHRASE", "synthetic CA passphrase")
    ok(capsys, "ca", "init", "--dir", "ca")
    ok(capsys, "federation", "init", "f.yaml")
    _enrol(capsys, "op", OPERATOR, "op.pem")
    return tmp_path


def test_publish_versions_are_capped_and_contiguous(
    operator: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, *PUBLISH, "--out", "v.json", "--version", "9" * 26)
    assert code == 2 and one_line(err) and not (operator / "v.json").exists()
    ok(capsys, *PUBLISH, "--out", "v1.json")
    # another output file: the last published version is remembered beside the CA
    code, _, err = cli(capsys, *PUBLISH, "--out", "v5.json", "--version", "5")
    assert code == 2 and one_line(err)
    assert "skips versions after the last published version 1" in err
    assert "--allow-version-jump" in err and not (operator / "v5.json").exists()
    out = ok(capsys, *PUBLISH, "--out", "v2.json", "--json")
    assert json.loads(out)["version"] == 2
    out = ok(capsys, *PUBLISH, "--out", "v5.json", "--version", "5", "--allow-version-jump")
    assert "version 5" in out


def test_publish_and_fetch_bad_paths_and_durations(
    operator: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, *PUBLISH, "--out", "f.yaml/gc.json")
    assert code == 2 and one_line(err) and "f.yaml/gc.json" in err
    code, _, err = cli(capsys, *PUBLISH, "--out", "x.json", "--valid-for", "999999999d")
    assert code == 2 and one_line(err) and "longer than the maximum 366d" in err
    assert not (operator / "x.json").exists()
    ok(capsys, *PUBLISH, "--out", "gc.json")
    fetch = ["federation", "fetch", "--from", "gc.json", "--anchor", "ca/bundle.pem"]
    code, _, err = cli(capsys, *fetch, "--operator", OPERATOR, "--to", "f.yaml")
    assert code == 2 and one_line(err) and "--to f.yaml is a file" in err
    code, _, err = cli(capsys, "federation", "show", "/nonexistent/gc.json")
    assert code == 2 and one_line(err) and "/nonexistent/gc.json: no such file" in err


def test_fetch_refuses_absurd_versions() -> None:
    payload = {"format": FORMAT, "version": MAX_VERSION + 1}
    with pytest.raises(ConfigError, match="above the maximum 9007199254740991"):
        parse_payload(json.dumps(payload).encode())


def test_cert_add_refuses_another_owner_and_a_reused_fingerprint(
    operator: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "federation", "member", "add", "f.yaml", "--code", "000.00.00.G01", "--name", "A")
    ok(capsys, "federation", "member", "add", "f.yaml", "--code", "000.00.00.G02", "--name", "B")
    _enrol(capsys, "g01", "VN/GOV/000.00.00.G01", "g01.pem")
    add = ["federation", "cert", "add", "f.yaml", "--usage", "signing"]
    before = (operator / "f.yaml").read_bytes()
    code, _, err = cli(capsys, *add, "--owner", "GOV/000.00.00.G01", "--cert", "/nonexistent")
    assert code == 2 and one_line(err) and "cannot read --cert /nonexistent" in err
    code, _, err = cli(capsys, *add, "--owner", "GOV/000.00.00.G02", "--cert", "g01.pem")
    assert code == 2 and one_line(err)
    assert "is for VN/GOV/000.00.00.G01, not for VN/GOV/000.00.00.G02" in err
    assert (operator / "f.yaml").read_bytes() == before
    ok(capsys, *add, "--owner", "GOV/000.00.00.G01", "--cert", "g01.pem")
    code, _, err = cli(capsys, *add, "--owner", "GOV/000.00.00.G02", "--cert", "g01.pem")
    assert code == 2 and "already registered for VN/GOV/000.00.00.G01" in err
    # a file edited by hand: validate reports both problems
    doc = yaml.safe_load((operator / "f.yaml").read_text())
    g01 = next(m for m in doc["members"] if m["code"] == "000.00.00.G01")
    g02 = next(m for m in doc["members"] if m["code"] == "000.00.00.G02")
    g02["certificates"] = [dict(g01["certificates"][0])]
    (operator / "f.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    code, _, err = cli(capsys, "federation", "validate", "f.yaml")
    assert code == 2
    assert "is for VN/GOV/000.00.00.G01, not for its registered owner VN/GOV/000.00.00.G02" in err
    assert "is registered 2 times" in err


def test_serve_refuses_bad_documents_and_addresses(
    operator: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "federation", "serve", "/nonexistent/gc.json")
    assert code == 2 and one_line(err) and "cannot serve /nonexistent/gc.json" in err
    code, _, err = cli(capsys, "federation", "serve", "f.yaml")
    assert code == 2 and one_line(err) and "not a published global configuration" in err
    ok(capsys, *PUBLISH, "--out", "gc.json")
    tampered = (operator / "gc.json").read_text().replace('"signature":"', '"signature":"AAAA')
    (operator / "bad.json").write_text(tampered)
    code, _, err = cli(capsys, "federation", "serve", "bad.json")
    assert code == 2 and one_line(err) and "signature" in err
    code, _, err = cli(capsys, "federation", "serve", "gc.json", "--host", "256.1.1.1")
    assert code == 2 and one_line(err) and err.startswith("error: cannot listen on 256.1.1.1:8700")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        code, _, err = cli(capsys, "federation", "serve", "gc.json", "--port", port)
        assert code == 2 and one_line(err) and f"cannot listen on 127.0.0.1:{port}" in err
        code, _, err = cli(capsys, "ca", "serve", "--dir", "ca", "--port", port)
        assert code == 2 and one_line(err) and f"cannot listen on 127.0.0.1:{port}" in err
    code, _, err = cli(capsys, "ca", "serve", "--dir", "ca", "--host", "256.1.1.1")
    assert code == 2 and one_line(err) and "cannot listen on 256.1.1.1:8650" in err


def test_registry_input_checks(operator: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "federation", "member", "add", "f.yaml", "--code", "000.00.00.G01", "--name", "A")
    sub = ["federation", "subsystem", "add", "f.yaml", "--member", "GOV/000.00.00.G01"]
    sub += ["--name", "S", "--security-level", "2", "--clearance", "PUBLIC"]
    before = (operator / "f.yaml").read_bytes()
    for bad in ("not a url", "ftp://gw:21", "https://gw:99999"):
        code, _, err = cli(capsys, *sub, "--code", "S", "--gateway", bad)
        assert code == 2 and one_line(err) and "gateways[0]" in err, err
    assert (operator / "f.yaml").read_bytes() == before
    ok(capsys, *sub, "--code", "S", "--gateway", "https://gw.example.vn:8443")
    svc = ["federation", "service", "add", "f.yaml", "--subsystem", "GOV/000.00.00.G01/S"]
    svc += ["--code", "lookup", "--level", "PUBLIC"]
    code, _, err = cli(capsys, *svc, "--openapi", "a.yaml", "--json-schema", "b.json")
    assert code == 2 and one_line(err) and "not both" in err
    ok(capsys, *svc, "--openapi", "a.yaml")
    access = ["federation", "access", "add", "f.yaml", "--service", "GOV/000.00.00.G01/S/lookup"]
    ok(capsys, *access, "--client", "GOV/000.00.00.G01/S")
    code, _, err = cli(capsys, *access, "--client", "GOV/000.00.00.G01/S")
    assert code == 2 and one_line(err) and "duplicate of access[0]" in err


def test_validate_messages_name_the_file_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.yaml").write_text("a: [\n")
    (tmp_path / "empty.yaml").write_text("")
    code, _, err = cli(capsys, "federation", "validate", str(tmp_path / "bad.yaml"))
    assert code == 2 and err.count("bad.yaml") == 1 and "line 2" in err
    code, _, err = cli(capsys, "federation", "validate", str(tmp_path / "empty.yaml"))
    assert code == 2 and "NoneType" not in err and "got nothing" in err


def test_missing_references_are_bad_input(
    operator: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "federation", "subsystem", "add", "f.yaml", "--member",
                       "GOV/000.00.00.G99", "--code", "S", "--name", "S", "--security-level",
                       "2", "--clearance", "PUBLIC")  # fmt: skip
    assert code == 2 and one_line(err) and "member VN/GOV/000.00.00.G99 is not in" in err
    publish = [a if a != "op/signing.key.pem" else "/nonexistent/x.key.pem" for a in PUBLISH]
    code, _, err = cli(capsys, *publish, "--out", "gc.json")
    assert code == 2 and one_line(err) and "no such key file" in err
    code, _, err = cli(capsys, "ca", "list", "--dir", "/nonexistent")
    assert code == 2 and one_line(err) and "no CA in /nonexistent" in err
    code, _, err = cli(capsys, "ca", "verify", "--cert", "op.pem", "--bundle", "f.yaml")
    assert code == 2 and one_line(err) and "https://" not in err
    code, _, err = cli(capsys, "federation", "fetch", "--to", "newgc", "--from", "gc.json")
    assert code == 1 and one_line(err) and err.count("gc.json") == 0 and "anchor.json" in err
