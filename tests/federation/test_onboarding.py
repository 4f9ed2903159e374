"""The onboarding flow of docs/onboarding.md, run through the real CLI end to end, with the
configuration served over HTTP by a real ``lienthong federation serve`` process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from lienthong.ports import free_port

from .clihelp import GATEWAY, OPERATOR, cli, ok


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, Callable[[], None]]]:
    """URL, path and a start() for a real ``federation serve`` process, started once the
    document is published (serve refuses a missing document)."""
    published = tmp_path / "published" / "globalconf.json"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lienthong",
                    "federation",
                    "serve",
                    str(published),
                    "--port",
                    str(port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        for _ in range(100):
            try:
                httpx.get(f"{url}/healthz", timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.1)

    try:
        yield f"{url}/globalconf", published, start
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def test_onboarding_flow(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: tuple[str, Path, Callable[[], None]],
) -> None:
    url, published, start_server = server
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIENTHONG_CA_PASSPHRASE", "synthetic CA passphrase")
    monkeypatch.setenv("LIENTHONG_KEY_PASSPHRASE", "synthetic node passphrase")
    keys = ("--passphrase", "env:LIENTHONG_KEY_PASSPHRASE")
    # 1. The operator creates the CA and the registry; registers the ministry.
    ok(capsys, "ca", "init", "--dir", "ca")
    ok(capsys, "federation", "init", "federation.yaml")
    ok(
        capsys,
        "federation",
        "member",
        "add",
        "federation.yaml",
        "--code",
        "000.00.00.G01",
        "--name",
        "Bộ Công an",
        "--platform",
        "NDXP",
    )
    ok(
        capsys,
        "federation",
        "subsystem",
        "add",
        "federation.yaml",
        "--member",
        "GOV/000.00.00.G01",
        "--code",
        "DAN-CU",
        "--name",
        "Cơ sở dữ liệu quốc gia về dân cư",
        "--security-level",
        "4",
        "--clearance",
        "PERSONAL",
        "--gateway",
        "https://127.0.0.1:8443",
    )
    ok(
        capsys,
        "federation",
        "service",
        "add",
        "federation.yaml",
        "--subsystem",
        "GOV/000.00.00.G01/DAN-CU",
        "--code",
        "residence-lookup",
        "--level",
        "PERSONAL",
        "--openapi",
        "contracts/residence.yaml",
    )
    ok(
        capsys,
        "federation",
        "access",
        "add",
        "federation.yaml",
        "--client",
        "GOV/000.00.00.G22/DIEU-HANH",
        "--service",
        "GOV/000.00.00.G01/DAN-CU/residence-lookup",
        "--path",
        "/residence",
    )
    # 2. The operator's own signing key and certificate.
    ok(capsys, "ca", "keygen", "--keystore-dir", "operator/keys", "--label", "signing", *keys)
    ok(
        capsys,
        "ca",
        "csr",
        "--keystore-dir",
        "operator/keys",
        "--label",
        "signing",
        "--identity",
        OPERATOR,
        "--out",
        "operator/signing.csr",
        *keys,
    )
    ok(
        capsys,
        "ca",
        "issue",
        "--dir",
        "ca",
        "--csr",
        "operator/signing.csr",
        "--profile",
        "signing",
        "--out",
        "operator/signing.pem",
    )
    # 3. The ministry enrols its gateway: keys where they live, CSRs, certificates.
    for usage in ("signing", "tls"):
        ok(capsys, "ca", "keygen", "--keystore-dir", "node/keys", "--label", usage, *keys)
        ok(
            capsys,
            "ca",
            "csr",
            "--keystore-dir",
            "node/keys",
            "--label",
            usage,
            "--identity",
            GATEWAY,
            "--dns",
            "localhost",
            "--out",
            f"node/{usage}.csr",
            *keys,
        )
        ok(
            capsys,
            "ca",
            "issue",
            "--dir",
            "ca",
            "--csr",
            f"node/{usage}.csr",
            "--profile",
            usage,
            "--out",
            f"node/{usage}.pem",
        )
        ok(
            capsys,
            "federation",
            "cert",
            "add",
            "federation.yaml",
            "--owner",
            "GOV/000.00.00.G01/DAN-CU",
            "--cert",
            f"node/{usage}.pem",
            "--usage",
            usage,
        )
    # 4. Validate and publish.
    assert json.loads(ok(capsys, "federation", "validate", "federation.yaml", "--json"))["valid"]
    out = ok(
        capsys,
        "federation",
        "publish",
        "federation.yaml",
        "--ca-dir",
        "ca",
        "--key",
        "operator/keys/signing.key.pem",
        "--cert",
        "operator/signing.pem",
        "--out",
        str(published),
        "--valid-for",
        "7d",
        "--json",
    )
    assert json.loads(out)["version"] == 1
    shown = ok(
        capsys,
        "federation",
        "show",
        str(published),
        "--ca-bundle",
        "ca/bundle.pem",
        "--operator",
        OPERATOR,
        "--json",
    )
    assert json.loads(shown)["version"] == 1
    start_server()
    # 5. The gateway fetches it over HTTP, pinning the federation root and the operator.
    (tmp_path / "node" / "node.json").write_text(
        json.dumps({"schema_version": 1, "identity": GATEWAY, "status": {"ca_dir": "../ca"}})
    )
    fetched = json.loads(
        ok(
            capsys,
            "federation",
            "fetch",
            "--from",
            url,
            "--to",
            "node/globalconf",
            "--anchor",
            "ca/bundle.pem",
            "--operator",
            OPERATOR,
            "--json",
        )
    )
    assert fetched == {
        "version": 1,
        "changed": True,
        "expires_at": fetched["expires_at"],
        "dir": "node/globalconf",
    }
    shown = json.loads(ok(capsys, "federation", "show", "node/globalconf", "--json"))
    assert shown["members"] == 2 and shown["signed_by"] == [OPERATOR]
    # 6. Doctor: everything green.
    report = json.loads(ok(capsys, "doctor", "--node-dir", "node", "--json"))
    assert report["ok"] and all(c["status"] == "ok" for c in report["checks"]), report
    # Re-publishing bumps the version; the next fetch (from the remembered source) installs it.
    ok(
        capsys,
        "federation",
        "publish",
        "federation.yaml",
        "--ca-dir",
        "ca",
        "--key",
        "operator/keys/signing.key.pem",
        "--cert",
        "operator/signing.pem",
        "--out",
        str(published),
    )
    assert (
        json.loads(ok(capsys, "federation", "fetch", "--to", "node/globalconf", "--json"))[
            "version"
        ]
        == 2
    )


def test_validate_cli_lists_every_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "instance: VN\nmembers:\n  - {class: GOV, code: bad-code, name: X}\n"
        "  - {class: GOV, code: 000.00.00.G01, name: Y, subsystems: [{code: S, "
        "name: s, security_level: 3, clearance: SECRET}]}\n"
        "access: [{client: GOV/000.00.00.G01/S, service: GOV/000.00.00.G01/S/none}]\n",
        encoding="utf-8",
    )
    code, _, err = cli(capsys, "federation", "validate", str(bad))
    assert code == 2
    assert "members[0]: member code 'bad-code'" in err
    assert "members[1].subsystems[0].clearance: unknown classification level 'SECRET'" in err
    assert "access[0].service: unknown service" in err
    code, _, err = cli(
        capsys,
        "federation",
        "publish",
        str(bad),
        "--ca-dir",
        "x",
        "--key",
        "k.key.pem",
        "--cert",
        "c.pem",
    )
    assert code == 2 and err.count("\n") == 1 and "problems" in err  # one line at the edge


def test_fetch_refuses_rollback_through_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIENTHONG_CA_PASSPHRASE", "synthetic CA passphrase")
    ok(capsys, "ca", "init", "--dir", "ca")
    ok(capsys, "federation", "init", "f.yaml")
    ok(capsys, "ca", "keygen", "--keystore-dir", "op", "--label", "signing")
    ok(
        capsys,
        "ca",
        "csr",
        "--keystore-dir",
        "op",
        "--label",
        "signing",
        "--identity",
        OPERATOR,
        "--out",
        "op.csr",
    )
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
    publish = (
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
    ok(capsys, *publish, "--out", "v1.json")
    ok(capsys, *publish, "--out", "v2.json", "--version", "2")
    fetch = (
        "federation",
        "fetch",
        "--to",
        "gc",
        "--anchor",
        "ca/bundle.pem",
        "--operator",
        OPERATOR,
    )
    ok(capsys, *fetch, "--from", "v2.json")
    code, _, err = cli(capsys, *fetch, "--from", "v1.json")
    assert code == 1 and "roll-back refused: offered version 1" in err
    assert json.loads(ok(capsys, "federation", "show", "gc", "--json"))["version"] == 2
