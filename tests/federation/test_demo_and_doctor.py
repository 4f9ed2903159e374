"""The demo federation (openssl-verifiable certificates) and doctor finding injected faults."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lienthong.demo import DemoContext
from lienthong.errors import ConfigError
from lienthong.federation.demo import run
from lienthong.federation.doctor import Finding, diagnose
from lienthong.federation.node import load_node
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.x509 import load_certificate

NODE = "VN/GOV/000.00.00.G01/DAN-CU"


@pytest.fixture
def demo(tmp_path: Path) -> tuple[dict[str, Any], DemoContext]:
    ctx = DemoContext(workdir=tmp_path)
    return run(ctx), ctx


def node_dir(ctx: DemoContext) -> Path:
    return Path(ctx.state["federation"]["nodes"][NODE]["dir"])


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def failing(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings if f.status == "fail"}


def test_demo_result_and_openssl(demo: tuple[dict[str, Any], DemoContext]) -> None:
    result, ctx = demo
    assert result["members"] >= 4 and result["platforms"] >= 3
    assert result["config_version"] == 1 and result["doctor"]["ok"]
    assert len(result["certificates"]) == 16
    for cert in result["certificates"]:
        proc = subprocess.run(
            ["openssl", "verify", "-CAfile", result["ca_bundle"], cert],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout
    state = ctx.state["federation"]
    assert state["config"].version == 1 and NODE in state["nodes"]
    assert result["route_hanoi_portal_to_population_db"][1:-1] == ["LGSP-HN", "NDXP", "LGSP-BCA"]


def test_healthy_node_has_no_failures(demo: tuple[dict[str, Any], DemoContext]) -> None:
    _, ctx = demo
    findings = diagnose(node_dir(ctx), dt.datetime.now(dt.UTC))
    assert all(f.status == "ok" for f in findings), findings
    assert {"keys.signing", "certificates.tls", "status.signing", "configuration"} <= set(
        by_check(findings)
    )


def test_doctor_finds_key_faults(
    demo: tuple[dict[str, Any], DemoContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ctx = demo
    node, now = node_dir(ctx), dt.datetime.now(dt.UTC)
    (node / "keys" / "tls.key.pem").unlink()
    plain = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (node / "keys" / "signing.key.pem").write_bytes(plain)
    bad = failing(diagnose(node, now))
    assert "tls.key.pem is missing" in bad["keys.tls"].message
    assert "lienthong ca keygen" in str(bad["keys.tls"].fix)
    assert "not encrypted" in bad["keys.signing"].message


def test_doctor_finds_wrong_passphrase(
    demo: tuple[dict[str, Any], DemoContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ctx = demo
    monkeypatch.setenv(ctx.state["federation"]["passphrase_env"], "wrong")
    bad = failing(diagnose(node_dir(ctx), dt.datetime.now(dt.UTC)))
    assert "wrong passphrase" in bad["keys.signing"].message
    assert "set the secret" in str(bad["keys.signing"].fix)


def test_doctor_finds_certificate_faults(demo: tuple[dict[str, Any], DemoContext]) -> None:
    _, ctx = demo
    node, now = node_dir(ctx), dt.datetime.now(dt.UTC)
    other = Path(ctx.state["federation"]["nodes"]["VN/GOV/000.00.00.G12/BHYT"]["dir"])
    shutil.copy(other / "signing.pem", node / "signing.pem")  # someone else's certificate
    (node / "tls.pem").unlink()
    bad = failing(diagnose(node, now))
    assert "does not match key 'signing'" in bad["certificates.signing"].message
    assert "tls.pem is missing" in bad["certificates.tls"].message
    assert "lienthong ca issue" in str(bad["certificates.tls"].fix)


def test_doctor_warns_before_certificate_expiry(demo: tuple[dict[str, Any], DemoContext]) -> None:
    _, ctx = demo
    node = node_dir(ctx)
    expiry = load_certificate((node / "tls.pem").read_bytes()).not_valid_after_utc
    found = by_check(diagnose(node, expiry - dt.timedelta(days=10)))
    assert found["certificates.tls"].status == "warn"
    assert "expires in" in found["certificates.tls"].message


def test_doctor_finds_revocation_and_status_outage(
    demo: tuple[dict[str, Any], DemoContext],
) -> None:
    _, ctx = demo
    node, now = node_dir(ctx), dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.open(ctx.state["federation"]["ca_dir"])
    serial = load_certificate((node / "signing.pem").read_bytes()).serial_number
    ca.revoke(serial, "keyCompromise", now)
    bad = failing(diagnose(node, now + dt.timedelta(seconds=1)))
    assert "revoked" in bad["status.signing"].message
    assert "re-enrol" in str(bad["status.signing"].fix)
    settings = json.loads((node / "node.json").read_text())
    settings["status"] = {"url": "http://127.0.0.1:9"}  # nothing listens on the discard port
    (node / "node.json").write_text(json.dumps(settings))
    # the answers saved by the previous runs carry the node through the outage, with a warning
    found = by_check(diagnose(node, now))
    assert found["status.tls"].status == "warn"
    assert "status service unreachable" in found["status.tls"].message
    assert "before this node fails closed" in found["status.tls"].message
    assert "lienthong ca serve" in str(found["status.tls"].fix)
    assert found["status.signing"].status == "fail"  # the saved answer says revoked
    # ... until the saved answer and the grace period run out: then it fails closed
    bad = failing(diagnose(node, now + dt.timedelta(days=3)))
    assert "failing closed" in bad["status.tls"].message
    shutil.rmtree(node / "status-cache")
    bad = failing(diagnose(node, now))
    assert "cannot be established" in bad["status.tls"].message


def test_doctor_finds_configuration_faults(demo: tuple[dict[str, Any], DemoContext]) -> None:
    _, ctx = demo
    node, now = node_dir(ctx), dt.datetime.now(dt.UTC)
    found = by_check(diagnose(node, now + dt.timedelta(days=6)))
    assert found["configuration"].status == "warn"
    bad = failing(diagnose(node, now + dt.timedelta(days=8)))
    assert "expired" in bad["configuration"].message
    conf = node / "globalconf" / "globalconf.json"
    conf.write_bytes(conf.read_bytes().replace(b'"signature":"', b'"signature":"AAAA'))
    bad = failing(diagnose(node, now))
    assert "ES256 signature by VN/GOV/000.00.00.G22 is malformed" in bad["configuration"].message
    assert "lienthong federation fetch --to" in str(bad["configuration"].fix)
    conf.unlink()
    assert "no global configuration" in failing(diagnose(node, now))["configuration"].message


def test_doctor_cli_exit_codes(demo: tuple[dict[str, Any], DemoContext]) -> None:
    _, ctx = demo
    node = node_dir(ctx)
    # The demo put its key-store passphrase in this process's environment; children inherit it.
    cli = [sys.executable, "-m", "lienthong", "doctor", "--node-dir", str(node)]
    ok = subprocess.run([*cli, "--json"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True, ok.stderr
    (node / "keys" / "tls.key.pem").unlink()
    bad = subprocess.run(cli, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "FAIL keys.tls" in bad.stdout and "fix: lienthong ca keygen" in bad.stdout


def test_doctor_fix_commands_work_when_pasted(
    demo: tuple[dict[str, Any], DemoContext], capsys: pytest.CaptureFixture[str]
) -> None:
    """The fix for a missing key, run as printed, repairs the node (keys and certificate)."""
    from lienthong.cli.main import main

    _, ctx = demo
    node, now = node_dir(ctx), dt.datetime.now(dt.UTC)
    (node / "keys" / "tls.key.pem").unlink()
    fix = str(failing(diagnose(node, now))["keys.tls"].fix)
    assert "--passphrase env:" in fix and "--keystore-dir" in fix and "--dns " in fix
    for command in fix.split(" && "):
        argv = shlex.split(command)
        assert argv[0] == "lienthong"
        with pytest.raises(SystemExit) as exc:
            main(argv[1:])
        assert exc.value.code in (0, None), (command, capsys.readouterr())
    found = by_check(diagnose(node, now))
    assert found["keys.tls"].status == "ok" and found["certificates.tls"].status != "fail"
    for f in found.values():
        assert "{'" not in f.message and "{'" not in str(f.fix)  # no Python dict reprs


@pytest.mark.parametrize(
    "settings,expected",
    [
        ({"certificates": 5}, "certificates must be a JSON object, got int"),
        ({"status_grace_hours": 1e308}, "status_grace_hours must be a whole number of hours"),
        ({"status": {"url": 7}}, "status.url must be a non-empty string, got int"),
        ({"identity": ["x"]}, "identity must be a string, got list"),
    ],
)
def test_node_settings_type_errors_are_precise(
    tmp_path: Path, settings: dict[str, Any], expected: str
) -> None:
    (tmp_path / "node.json").write_text(json.dumps({"schema_version": 1, **settings}))
    with pytest.raises(ConfigError, match=expected):
        load_node(tmp_path)


def test_doctor_bad_node_dir_is_one_line_exit_2(tmp_path: Path) -> None:
    from lienthong.cli.main import main

    for target, expected in (
        (tmp_path / "missing", "no such directory"),
        (tmp_path / "node.json", "is not a directory"),
    ):
        (tmp_path / "node.json").write_text("{}")
        with pytest.raises(SystemExit) as exc:
            main(["doctor", "--node-dir", str(target)])
        assert exc.value.code == 2, expected
    (tmp_path / "node.json").write_text(json.dumps({"schema_version": 1, "certificates": 5}))
    with pytest.raises(SystemExit) as exc:
        main(["doctor", "--node-dir", str(tmp_path)])
    assert exc.value.code == 2
