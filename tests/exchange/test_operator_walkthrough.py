"""An operator's first setup, by the CLI alone (README, onboarding.md, exchange.md): a CA, the
registry with the national platform NDXP, a provider (population register) and a client
(health insurance), enrolment, a PERSONAL service, the signed global configuration, gateway
configs that read it — and what stood in the way: no CLI for the provider's key-agreement
keys or for a platform gateway's TLS certificate, and ``gateway check`` silent about both."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from tests.exchange.configs import MINIMAL
from tests.federation.clihelp import cli as federation_cli

from lienthong.errors import ConfigError
from lienthong.exchange.config import load_config
from lienthong.exchange.processes import wait_port
from lienthong.federation.projection import to_exchange_directory
from lienthong.federation.store import ConfigStore
from lienthong.ports import free_port

OPERATOR = "VN/GOV/000.00.00.G22"
PROVIDER = "GOV/000.00.00.G01/DAN-CU"
CLIENT = "GOV/000.00.00.G12/GIAM-DINH"
SERVICE = f"{PROVIDER}/residence-lookup"
PASS = "walkthrough-passphrase-1"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``lienthong ARGS`` in-process through the real edge handler: (exit code, out, err on
    one line)."""
    capsys.readouterr()
    code, out, err = federation_cli(capsys, *args)
    return code, out, " ".join(err.split())


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = cli(capsys, *args)
    assert code == 0, (args, out, err)
    return out


@dataclass
class Site:
    root: Path
    ports: dict[str, int]

    @property
    def registry(self) -> str:
        return str(self.root / "federation.yaml")

    def publish_and_fetch(self, capsys: pytest.CaptureFixture[str]) -> None:
        r = self.root
        ok(
            capsys,
            *("federation", "publish", self.registry, "--ca-dir", str(r / "ca")),
            *("--key", str(r / "operator/keys/signing.key.pem")),
            *("--cert", str(r / "operator/signing.pem")),
            *("--out", str(r / "published/globalconf.json"), "--valid-for", "7d"),
            *("--passphrase", "env:LIENTHONG_KEY_PASSPHRASE"),
        )
        for node in ("bca", "bhxh", "ndxp"):
            args = ["federation", "fetch", "--to", str(r / node / "globalconf")]
            args += ["--from", str(r / "published/globalconf.json")]
            if not (r / node / "globalconf" / "anchor.json").exists():
                args += ["--anchor", str(r / "ca/bundle.pem"), "--operator", OPERATOR]
            ok(capsys, *args)

    def directory(self, node: str = "bhxh") -> dict[str, Any]:
        config = ConfigStore(self.root / node / "globalconf").current(dt.datetime.now(dt.UTC))
        doc, _ = to_exchange_directory(config)
        return doc


def _enrol(
    capsys: pytest.CaptureFixture[str], r: Path, home: str, identity: str, usage: str, *cn: str
) -> Path:
    keys = str(r / home / "keys")
    ref = "env:LIENTHONG_KEY_PASSPHRASE"
    ok(capsys, "ca", "keygen", "--keystore-dir", keys, "--label", usage, "--passphrase", ref)
    csr = str(r / home / f"{usage}.csr")
    ok(
        capsys,
        *("ca", "csr", "--keystore-dir", keys, "--label", usage, "--identity", identity),
        *("--dns", "localhost", "--ip", "127.0.0.1", *cn, "--out", csr, "--passphrase", ref),
    )
    pem = r / home / f"{usage}.pem"
    ok(
        capsys,
        *("ca", "issue", "--dir", str(r / "ca"), "--csr", csr, "--profile", usage),
        *("--out", str(pem)),
    )
    return pem


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The registry, CA and enrolled certificates of the walkthrough, built by the CLI."""
    r = tmp_path_factory.mktemp("walkthrough")
    saved = {k: os.environ.get(k) for k in ("LIENTHONG_CA_PASSPHRASE", "LIENTHONG_KEY_PASSPHRASE")}
    os.environ["LIENTHONG_CA_PASSPHRASE"] = PASS + "-ca"
    os.environ["LIENTHONG_KEY_PASSPHRASE"] = PASS
    capsys: Any = _Capture()
    ports = {name: free_port() for name in ("ndxp", "bca", "bca-in", "bhxh", "bhxh-in", "service")}
    try:
        ok(capsys, "ca", "init", "--dir", str(r / "ca"))
        reg = str(r / "federation.yaml")
        ok(capsys, "federation", "init", reg)
        doc = yaml.safe_load(Path(reg).read_text())
        doc["platforms"][0]["gateways"] = [f"https://127.0.0.1:{ports['ndxp']}"]
        Path(reg).write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
        ok(capsys, "ca", "keygen", "--keystore-dir", str(r / "operator/keys"), "--label",
           "signing", "--passphrase", "env:LIENTHONG_KEY_PASSPHRASE")  # fmt: skip
        ok(
            capsys,
            *("ca", "csr", "--keystore-dir", str(r / "operator/keys"), "--label", "signing"),
            *("--identity", OPERATOR, "--out", str(r / "operator/signing.csr")),
            *("--passphrase", "env:LIENTHONG_KEY_PASSPHRASE"),
        )
        ok(
            capsys,
            *("ca", "issue", "--dir", str(r / "ca"), "--csr", str(r / "operator/signing.csr")),
            *("--profile", "signing", "--out", str(r / "operator/signing.pem")),
        )
        for member, name, sub, port in (
            ("000.00.00.G01", "Bộ Công an", "DAN-CU", ports["bca"]),
            ("000.00.00.G12", "Bảo hiểm xã hội Việt Nam", "GIAM-DINH", ports["bhxh"]),
        ):
            ok(capsys, "federation", "member", "add", reg, "--code", member, "--name", name,
               "--platform", "NDXP")  # fmt: skip
            ok(
                capsys,
                *("federation", "subsystem", "add", reg, "--member", f"GOV/{member}"),
                *("--code", sub, "--name", f"Hệ thống {sub}", "--security-level", "3"),
                *("--clearance", "PERSONAL", "--gateway", f"https://127.0.0.1:{port}"),
            )
        ok(capsys, "federation", "service", "add", reg, "--subsystem", PROVIDER, "--code",
           "residence-lookup", "--level", "PERSONAL")  # fmt: skip
        ok(capsys, "federation", "access", "add", reg, "--client", CLIENT, "--service", SERVICE)
        for home, owner in (("bca", PROVIDER), ("bhxh", CLIENT)):
            for usage in ("signing", "tls"):
                pem = _enrol(capsys, r, home, f"VN/{owner}", usage)
                ok(capsys, "federation", "cert", "add", reg, "--owner", owner, "--cert",
                   str(pem), "--usage", usage)  # fmt: skip
        _enrol(capsys, r, "ndxp", OPERATOR, "tls", "--cn", "ndxp")
        s = Site(r, ports)
        s.publish_and_fetch(capsys)
        yield s
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Capture:
    """A stand-in for capsys in the module fixture (output is not examined there)."""

    def readouterr(self) -> tuple[str, str]:
        return "", ""


def _gateway_config(s: Site, node: str, **extra: Any) -> Path:
    r = s.root
    cfg: dict[str, Any] = {
        "node": {"bca": "VN/GOV/000.00.00.G01", "bhxh": "VN/GOV/000.00.00.G12"}.get(node, "NDXP"),
        "role": "platform" if node == "ndxp" else "agency",
        "peer": {"host": "127.0.0.1", "port": s.ports[node]},
        "tls": {
            "cert": "tls.pem",
            "key": "keys/tls.key.pem",
            "roots": "../ca/bundle.pem",
            "crl": "../ca/crl.pem",
        },
        "globalconf": "globalconf",
        "state_dir": "state",
        "passphrase": {"$env": "LIENTHONG_KEY_PASSPHRASE"},
        **extra,
    }
    path = r / node / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _provider_config(s: Site, kem: bool) -> Path:
    sub: dict[str, Any] = {
        "id": f"VN/{PROVIDER}",
        "sign_key": "keys/signing.key.pem",
        "sign_cert": "signing.pem",
    }
    if kem:
        sub |= {"kem_x25519": "kem/kem-x25519.key.pem", "kem_mlkem": "kem/kem-mlkem.key.pem"}
    return _gateway_config(
        s,
        "bca",
        internal={"host": "127.0.0.1", "port": s.ports["bca-in"]},
        subsystems=[sub],
        services={f"VN/{SERVICE}": f"http://127.0.0.1:{s.ports['service']}/residence"},
    )


def _check(capsys: pytest.CaptureFixture[str], config: Path) -> list[str]:
    out = ok(capsys, "gateway", "check", "--config", str(config))
    warnings: list[str] = json.loads(out)["warnings"]
    return warnings


# --- 1. the provider's key-agreement keys (PERSONAL services are encrypted end to end) ---


def test_kem_keygen_writes_encrypted_keys_and_their_public_half(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = json.loads(ok(capsys, "gateway", "kem-keygen", "--dir", str(tmp_path / "k"), "--json"))
    xk = serialization.load_pem_private_key(
        (tmp_path / "k/kem-x25519.key.pem").read_bytes(), PASS.encode()
    )
    mk = serialization.load_pem_private_key(
        (tmp_path / "k/kem-mlkem.key.pem").read_bytes(), PASS.encode()
    )
    assert isinstance(xk, x25519.X25519PrivateKey)
    assert isinstance(mk, mlkem.MLKEM768PrivateKey)
    assert (tmp_path / "k/kem-x25519.key.pem").stat().st_mode & 0o077 == 0
    public = json.loads((tmp_path / "k/kem.pub.json").read_text())
    assert public == out["encryption_keys"]
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert base64.b64decode(public["x25519"]) == xk.public_key().public_bytes(*raw)
    assert base64.b64decode(public["mlkem768"]) == mk.public_key().public_bytes(*raw)
    # a published key is never replaced
    code, _, err = cli(capsys, "gateway", "kem-keygen", "--dir", str(tmp_path / "k"))
    assert code == 2 and "already exist" in err, err
    assert public == json.loads((tmp_path / "k/kem.pub.json").read_text())


def test_kem_keygen_refuses_a_short_or_literal_passphrase(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHORT_PASS", "short")
    for ref, expected in (("env:SHORT_PASS", "at least 12"), ("hunter2hunter2", "reference")):
        code, _, err = cli(
            capsys, "gateway", "kem-keygen", "--dir", str(tmp_path / "k"), "--passphrase", ref
        )
        assert code == 2 and expected in err, err
    assert not (tmp_path / "k").exists() or not any((tmp_path / "k").iterdir())


def test_registry_refuses_encryption_keys_no_gateway_could_use(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Until now any base64 passed: every gateway then refused the whole configuration."""
    for keys, expected in (
        ({"x25519": base64.b64encode(b"\x01" * 31).decode()}, "must hold exactly"),
        (
            {
                "x25519": base64.b64encode(b"\x01" * 31).decode(),
                "mlkem768": base64.b64encode(b"\x02" * 1184).decode(),
            },
            "31 bytes, not 32",
        ),
    ):
        path = tmp_path / "bad.pub.json"
        path.write_text(json.dumps(keys))
        before = Path(site.registry).read_bytes()
        code, _, err = cli(
            capsys, "federation", "subsystem", "encryption-keys", site.registry,
            "--subsystem", PROVIDER, "--keys", str(path),
        )  # fmt: skip
        assert code == 2 and expected in err, err
        assert Path(site.registry).read_bytes() == before


def test_gateway_check_says_what_a_personal_service_lacks_until_both_halves_are_in_place(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _provider_config(site, kem=False)
    warnings = _check(capsys, config)
    assert any("has no key-agreement keys here" in w for w in warnings), warnings
    assert any("publishes no encryption keys" in w for w in warnings), warnings
    # the keys on the gateway, not yet published
    kem_dir = site.root / "bca" / "kem"
    ok(capsys, "gateway", "kem-keygen", "--dir", str(kem_dir))
    config = _provider_config(site, kem=True)
    warnings = _check(capsys, config)
    assert [w for w in warnings if "encrypt" in w] == [
        f"service VN/{SERVICE} (PERSONAL) is encrypted end to end, but the federation "
        f"directory publishes no encryption keys for VN/{PROVIDER} (lienthong federation "
        "subsystem encryption-keys): clients refuse to call it"
    ]
    # other keys published: said
    other = site.root / "other-kem"
    ok(capsys, "gateway", "kem-keygen", "--dir", str(other))
    ok(capsys, "federation", "subsystem", "encryption-keys", site.registry, "--subsystem",
       PROVIDER, "--keys", str(other / "kem.pub.json"))  # fmt: skip
    site.publish_and_fetch(capsys)
    assert any("are not the public half" in w for w in _check(capsys, config))
    # the right ones: nothing to say
    ok(capsys, "federation", "subsystem", "encryption-keys", site.registry, "--subsystem",
       PROVIDER, "--keys", str(kem_dir / "kem.pub.json"))  # fmt: skip
    site.publish_and_fetch(capsys)
    assert [w for w in _check(capsys, config) if "encrypt" in w] == []
    (provider,) = [x for x in site.directory()["subsystems"] if x["id"] == f"VN/{PROVIDER}"]
    assert provider["kem"] == json.loads((kem_dir / "kem.pub.json").read_text())


# --- 2. the platform gateway's TLS certificate (else no call can be relayed) ---


def test_a_platform_gateway_tls_certificate_is_registered_and_projected(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    ndxp_pem = (site.root / "ndxp" / "tls.pem").read_text()
    # not the operator's identity: refused, nothing written
    before = Path(site.registry).read_bytes()
    code, _, err = cli(
        capsys, "federation", "cert", "add", site.registry, "--owner", "NDXP",
        "--cert", str(site.root / "bca" / "tls.pem"), "--usage", "tls",
    )  # fmt: skip
    assert code == 2 and f"not for {OPERATOR}, the operator of platform NDXP" in err, err
    code, _, err = cli(
        capsys, "federation", "cert", "add", site.registry, "--owner", "NDXP",
        "--cert", str(site.root / "ndxp" / "tls.pem"), "--usage", "signing",
    )  # fmt: skip
    assert code == 2 and "TLS certificate" in err, err
    assert Path(site.registry).read_bytes() == before
    assert not any(n["tls_cert"] for n in site.directory()["nodes"] if n["name"] == "NDXP")
    warnings = _check(capsys, _gateway_config(site, "ndxp"))
    assert any("not published in the federation directory" in w for w in warnings), warnings

    ok(capsys, "federation", "cert", "add", site.registry, "--owner", "NDXP", "--cert",
       str(site.root / "ndxp" / "tls.pem"), "--usage", "tls")  # fmt: skip
    ok(capsys, "federation", "validate", site.registry)
    site.publish_and_fetch(capsys)
    (ndxp,) = [n for n in site.directory()["nodes"] if n["name"] == "NDXP"]
    assert ndxp["tls_cert"].split() == ndxp_pem.split()
    assert _check(capsys, _gateway_config(site, "ndxp")) == []
    # one certificate, one holder
    code, _, err = cli(
        capsys, "federation", "cert", "add", site.registry, "--owner", OPERATOR.removeprefix("VN/"),
        "--cert", str(site.root / "ndxp" / "tls.pem"), "--usage", "tls",
    )  # fmt: skip
    assert code == 2 and "already registered for platform NDXP" in err, err


# --- 3. the call itself: information system → BHXH gateway → NDXP → BCA gateway → service ---


@pytest.fixture
def running(site: Site) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    procs: dict[str, subprocess.Popen[bytes]] = {}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (site.root / "processes.log").open("ab")
    try:
        procs["service"] = subprocess.Popen(
            [sys.executable, "-m", "lienthong.exchange.sample_service", "--port",
             str(site.ports["service"])],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        wait_port(site.ports["service"], proc=procs["service"])
        for node in ("ndxp", "bca", "bhxh"):
            procs[node] = subprocess.Popen(
                [sys.executable, "-m", "lienthong", "gateway", "serve", "--config",
                 str(site.root / node / "gateway.yaml")],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        for node in ("ndxp", "bca", "bhxh"):
            wait_port(site.ports[node], proc=procs[node])
        wait_port(site.ports["bhxh-in"], proc=procs["bhxh"])
        yield procs
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=20)
        log.close()


def test_one_call_through_both_gateways_and_the_platform_by_the_documented_setup(
    site: Site, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    kem_dir = site.root / "bca" / "kem"
    if not kem_dir.exists():  # run alone (-k): publish what the tests above publish
        ok(capsys, "gateway", "kem-keygen", "--dir", str(kem_dir))
        ok(capsys, "federation", "subsystem", "encryption-keys", site.registry, "--subsystem",
           PROVIDER, "--keys", str(kem_dir / "kem.pub.json"))  # fmt: skip
        ok(capsys, "federation", "cert", "add", site.registry, "--owner", "NDXP", "--cert",
           str(site.root / "ndxp" / "tls.pem"), "--usage", "tls")  # fmt: skip
        site.publish_and_fetch(capsys)
    config = _provider_config(site, kem=True)
    cfg = yaml.safe_load(config.read_text())
    cfg["audit"] = {
        "person_key": "env:LIENTHONG_PERSON_KEY",
        "subject_from": {f"VN/{SERVICE}": "path"},
    }
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    os.environ["LIENTHONG_PERSON_KEY"] = "synthetic-person-key-0123456789"
    request.addfinalizer(lambda: os.environ.pop("LIENTHONG_PERSON_KEY", None))
    _gateway_config(site, "ndxp")
    _gateway_config(
        site,
        "bhxh",
        internal={"host": "127.0.0.1", "port": site.ports["bhxh-in"]},
        subsystems=[
            {"id": f"VN/{CLIENT}", "sign_key": "keys/signing.key.pem", "sign_cert": "signing.pem"}
        ],
    )
    for node in ("ndxp", "bca", "bhxh"):
        assert _check(capsys, site.root / node / "gateway.yaml") == [], node
    procs = request.getfixturevalue("running")
    answer = httpx.get(
        f"http://127.0.0.1:{site.ports['bhxh-in']}/r1/VN/{SERVICE}/001203004567",
        headers={
            "X-LT-Client": f"VN/{CLIENT}",
            "X-LT-Purpose": "giam-dinh-bao-hiem-y-te",
            "X-LT-Legal-Basis": "Luat BHYT 2008, Dieu 22",
        },
        timeout=20,
    )
    assert answer.status_code == 200, (answer.headers, answer.text)
    assert answer.json()["so_dinh_danh"] == "001203004567"
    # stopped, the provider's log is checkpointed whole: verified with the published key,
    # and the citizen finds the read in its access history (the documented base URL)
    procs["bca"].terminate()
    assert procs["bca"].wait(timeout=20) == 0
    state = site.root / "bca" / "state"
    out = ok(capsys, "audit", "verify", "--log", str(state / "message-log.auditlog"),
             "--pubkey", str(state / "message-log.pub.pem"))  # fmt: skip
    assert "unsigned tail" not in out and "(key from given)" in out, out
    out = ok(
        capsys,
        *("audit", "access-history", "--person", "001203004567"),
        *("--log", str(state / "message-log.auditlog")),
        *("--log-key", f"lienthong/exchange/VN/GOV/000.00.00.G01={state / 'message-log.pub.pem'}"),
        *("--person-key", "env:LIENTHONG_PERSON_KEY"),
    )
    assert f"VN/{CLIENT}" in out and "1 entries name this person" in out, out


def test_sample_service_says_ready_only_once_listening(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "lienthong.exchange.sample_service", "--port", str(port)],
            capture_output=True,
            timeout=30,
        )
    assert done.returncode == 2
    assert done.stdout == b""  # no false "ready"
    assert done.stderr.decode().strip() == (
        f"sample service: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_doctor_on_a_gateway_without_the_ca_passphrase_says_what_to_do(
    site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``status.ca_dir`` (onboarding step 5) needs the CA's passphrase; the fix said only
    "repair the CA directory … (lienthong ca list …)", which works and repairs nothing."""
    node = site.root / "bca"
    (node / "node.json").write_text(
        json.dumps(
            {"schema_version": 1, "identity": f"VN/{PROVIDER}", "status": {"ca_dir": "../ca"}}
        )
    )
    monkeypatch.delenv("LIENTHONG_CA_PASSPHRASE")
    code, out, _ = cli(capsys, "doctor", "--node-dir", str(node), "--json")
    assert code == 1
    status = [c for c in json.loads(out)["checks"] if c["check"].startswith("status.")]
    assert [c["status"] for c in status] == ["fail", "fail"], status
    for check in status:
        assert "LIENTHONG_CA_PASSPHRASE" in check["message"]
        assert "key-store passphrase available here" in check["fix"], check["fix"]
        assert '"status": {"url": "http://STATUS-HOST:8650"}' in check["fix"]
    monkeypatch.setenv("LIENTHONG_CA_PASSPHRASE", PASS + "-ca")
    code, out, _ = cli(capsys, "doctor", "--node-dir", str(node), "--json")
    checks = json.loads(out)["checks"]
    assert [c["status"] for c in checks if c["check"].startswith("status.")] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("given", "loaded"),
    [
        ("env:LIENTHONG_KEY_PASSPHRASE", {"$env": "LIENTHONG_KEY_PASSPHRASE"}),
        ("file:secrets/pass", {"$file": "SECRETS"}),
        ({"$env": "LIENTHONG_KEY_PASSPHRASE"}, {"$env": "LIENTHONG_KEY_PASSPHRASE"}),
    ],
)
def test_gateway_passphrase_takes_the_cli_short_form_too(
    tmp_path: Path, given: Any, loaded: dict[str, str]
) -> None:
    """The CLI says env:NAME, audit.person_key takes it; passphrase answered "Expected
    `object`, got `str` - at `$.passphrase`"."""
    path = tmp_path / "gw.json"
    path.write_text(json.dumps({**MINIMAL, "passphrase": given}))
    expected = {"$file": str(tmp_path / "secrets/pass")} if "$file" in loaded else loaded
    assert load_config(path).passphrase == expected


def test_a_literal_gateway_passphrase_is_refused_as_one(tmp_path: Path) -> None:
    path = tmp_path / "gw.json"
    path.write_text(json.dumps({**MINIMAL, "passphrase": "walkthrough-passphrase-1"}))
    with pytest.raises(ConfigError, match=r"must be a reference .* never the secret itself"):
        load_config(path)
