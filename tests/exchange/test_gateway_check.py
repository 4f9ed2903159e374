"""``lienthong gateway check`` on what would make calls fail, or soon fail, although the config
itself is valid: the node's own certificates (expired: refused; expiring: said) and what the
federation directory does not publish (said, not fatal: onboarding or a renewal may be under
way)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lienthong.cli.main import main
from lienthong.exchange.testbed import (
    GIAMDINH,
    Testbed,
    build_testbed,
    demo_spec,
    issue_renewal,
)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    yield build_testbed(tmp_path_factory.mktemp("check"), demo_spec(direct=True))


def _check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cfg: dict[str, Any]
) -> tuple[int, dict[str, Any], str]:
    cfg = {**cfg, "state_dir": str(tmp_path / "state")}
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(cfg))
    capsys.readouterr()
    try:
        main(["gateway", "check", "--config", str(path)])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    else:
        code = 0
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out else {}, " ".join(out.err.split())


def _config(tb: Testbed, node: str = "BHXH-GW") -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads(tb.configs[node].read_text())
    return cfg


def test_a_sound_node_lists_its_certificates_and_no_warning(
    bed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _check(capsys, tmp_path, _config(bed))
    assert code == 0, err
    roles = sorted((c["role"], c["owner"]) for c in out["own_certificates"])
    subsystems = [s["id"] for s in _config(bed)["subsystems"]]
    assert GIAMDINH in subsystems
    want = [("tls", "BHXH-GW")] + [(r, s) for s in subsystems for r in ("sign", "pq")]
    assert roles == sorted(want)
    assert {c["state"] for c in out["own_certificates"]} == {"ok"}
    assert all(c["days_left"] > 300 for c in out["own_certificates"])
    assert out["warnings"] == []


def _directory(tb: Testbed, tmp_path: Path, edit: Any) -> str:
    """A copy of the testbed's directory, changed by ``edit``; its path."""
    directory = json.loads(tb.directory_path.read_text())
    edit(directory)
    path = tmp_path / "directory.json"
    path.write_text(json.dumps(directory))
    return str(path)


def test_an_unpublished_subsystem_or_tls_certificate_is_said(
    bed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A renewed TLS certificate not yet published and a subsystem the directory does not
    know: both named; the check still passes (the federation may publish them next)."""

    def drop(directory: dict[str, Any]) -> None:
        directory["subsystems"] = [s for s in directory["subsystems"] if s["id"] != GIAMDINH]
        directory["access"] = [a for a in directory["access"] if a[0] != GIAMDINH]

    cert, key, _pem = issue_renewal(bed, "BHXH-GW", "tls")
    cfg = _config(bed) | {"directory": _directory(bed, tmp_path, drop)}
    cfg["tls"] = cfg["tls"] | {"cert": str(cert), "key": str(key)}
    code, out, err = _check(capsys, tmp_path, cfg)
    assert code == 0, err
    text = "\n".join(out["warnings"])
    assert f"subsystem {GIAMDINH} is not in the federation directory" in text
    assert "the tls certificate of BHXH-GW" in text and "is not published" in text
    for role in ("sign", "pq"):  # its certificates went with it
        assert f"the {role} certificate of {GIAMDINH}" in text
    assert len(out["warnings"]) == 4, out["warnings"]


def test_a_service_the_directory_does_not_know_is_said(
    bed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(bed, "BCA-GW")
    gone = next(iter(cfg["services"]))

    def drop(directory: dict[str, Any]) -> None:
        directory["services"] = [s for s in directory["services"] if s["id"] != gone]
        directory["access"] = [a for a in directory["access"] if a[1] != gone]

    code, out, err = _check(capsys, tmp_path, cfg | {"directory": _directory(bed, tmp_path, drop)})
    assert code == 0, err
    assert out["warnings"] == [
        f"service {gone} is not in the federation directory: no call reaches it"
    ]


def test_an_own_certificate_near_its_expiry_is_said(
    bed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key, pem = issue_renewal(bed, "BHXH-GW", "tls", days=10)

    def publish(directory: dict[str, Any]) -> None:
        node = next(n for n in directory["nodes"] if n["name"] == "BHXH-GW")
        node["tls_certs"] = [pem]

    cfg = _config(bed) | {"directory": _directory(bed, tmp_path, publish)}
    cfg["tls"] = cfg["tls"] | {"cert": str(cert), "key": str(key)}
    code, out, err = _check(capsys, tmp_path, cfg)
    assert code == 0, err
    tls = next(c for c in out["own_certificates"] if c["role"] == "tls")
    assert tls["state"] == "warning" and 9 < tls["days_left"] <= 10
    assert len(out["warnings"]) == 1 and "expires in" in out["warnings"][0]


def test_an_expired_own_certificate_fails_the_check(
    bed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Peers would refuse every call: exit 2 naming the certificate, not a summary."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    cert, key, _pem = issue_renewal(bed, GIAMDINH, "sign", now=past, days=2)
    cfg = _config(bed)
    cfg["subsystems"][0] = cfg["subsystems"][0] | {"sign_cert": str(cert), "sign_key": str(key)}
    code, out, err = _check(capsys, tmp_path, cfg)
    assert code == 2 and out == {}
    assert f"the sign certificate of {GIAMDINH} is not in force" in err
    assert "peers would refuse every call" in err


def test_a_node_name_the_directory_does_not_know_lists_the_ones_it_does(
    bed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under globalconf an agency's node is its member id, which operators miss: the message
    names the directory's nodes and the rule."""
    code, out, err = _check(capsys, tmp_path, _config(bed) | {"node": "BHXH"})
    assert code == 2 and out == {}
    assert "node 'BHXH' is not in the federation directory" in err
    assert "BCA-GW, BHXH-GW" in err and "member id" in err
