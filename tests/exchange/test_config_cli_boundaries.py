"""Input boundaries of the gateway's configuration file and ``lienthong gateway`` commands:
bad input gets exit 2 (1 for a damaged database) and one precise line, never a traceback,
an "unexpected" error, a silently misread setting or lost evidence."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.exchange.configs import MINIMAL

from lienthong.cli.main import main
from lienthong.exchange.testbed import Testbed, build_testbed, demo_spec


def _lt(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the root CLI in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    else:
        code = 0
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())


def _write(tmp_path: Path, cfg: dict[str, Any], name: str = "gw.json") -> Path:
    path = tmp_path / name
    if name.endswith(".yaml"):
        path.write_text(yaml.safe_dump(cfg))
    else:
        path.write_text(json.dumps(cfg))
    return path


def _refused(code: int, err: str, *words: str, exit_code: int = 2) -> None:
    assert code == exit_code, err
    assert "unexpected" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    yield build_testbed(tmp_path_factory.mktemp("boundaries"), demo_spec())


def _config(tb: Testbed) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads(tb.configs["BHXH-GW"].read_text())
    return cfg


# -- the configuration file ----------------------------------------------------------------


def test_config_that_is_not_utf8_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gw.yaml"
    path.write_bytes(b"node: \xff\xfe\n")
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(path))
    _refused(code, err, str(path), "not UTF-8")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"node": "A", "role": "agency", "node": "B"}', "'node'"),
        ("node: A\nlimits: {max_body_bytes: 10}\nrole: agency\nlimits: {}\n", "'limits'"),
        ("node: A\npeer:\n  port: 1\n  port: 2\n", "'port'"),
    ],
)
def test_a_key_given_twice_is_refused_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    """YAML and JSON parsers keep the last of two equal keys: a second ``limits:`` block
    silently dropped the first one."""
    path = tmp_path / "gw.yaml"
    path.write_text(text)
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(path))
    _refused(code, err, str(path), key, "twice", "line")


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        # 99999 was accepted and the admin listener opened on 99999 mod 65536 = 34463
        ({"admin": {"port": 99999}}, ["admin.port", "99999", "out of range"]),
        ({"admin": {"port": -1}}, ["admin.port", "-1", "out of range"]),
        ({"peer": {"port": 70000}}, ["peer.port", "70000", "out of range"]),
        # "" listened on every address; a host that is no name failed at start, exit 1
        ({"peer": {"host": "", "port": 1}}, ["peer.host", "0.0.0.0"]),
        ({"internal": {"host": "not a host!", "port": 2}}, ["internal.host", "not a host!"]),
        # two listeners on one address failed at start with "address already in use", exit 1
        (
            {"peer": {"port": 8443}, "admin": {"port": 8443}},
            ["admin", "peer", "8443", "same"],
        ),
        (
            {"peer": {"host": "0.0.0.0", "port": 9000}, "internal": {"port": 9000}},
            ["internal", "peer", "9000", "same"],
        ),
        # a URL without a host, or with a port no URL can hold, was taken as served
        ({"services": {"VN/GOV/G01/S/x": "http://"}}, ["VN/GOV/G01/S/x", "http://"]),
        ({"services": {"VN/GOV/G01/S/x": "http://h:99999/"}}, ["VN/GOV/G01/S/x", "99999"]),
        ({"tls": {**MINIMAL["tls"], "status_url": "ftp://ca"}}, ["tls.status_url", "ftp://ca"]),
        (
            {
                "subsystems": [
                    {"id": "VN/GOV/G01/S", "sign_key": "k", "sign_cert": "c"},
                    {"id": "VN/GOV/G01/S", "sign_key": "k2", "sign_cert": "c2"},
                ]
            },
            ["VN/GOV/G01/S", "twice"],
        ),
    ],
)
def test_listeners_endpoints_and_subsystems_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], patch: dict[str, Any], words: list[str]
) -> None:
    path = _write(tmp_path, MINIMAL | patch)
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(path))
    _refused(code, err, "gateway config", *words)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("header_timeout_s", float("nan")),  # NaN <= 0 is false: every check let it through
        ("idle_timeout_s", float("inf")),
        ("upstream_timeout_s", -1.0),
        ("connect_timeout_s", 0.0),
        ("replay_window_s", float("nan")),
        ("replay_max_entries", 0),  # was: "unexpected ValueError", exit 1
        ("replay_max_entries", -5),
        ("status_ttl_s", -1.0),
        ("status_grace_s", float("-inf")),
        ("config_grace_s", -1.0),
        ("reload_s", 0.0),  # re-read the directory on every turn of the loop
        ("max_header_bytes", 0),  # every request refused
        ("max_body_bytes", -1),
    ],
)
def test_every_limit_is_checked_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: float
) -> None:
    path = _write(tmp_path, MINIMAL | {"limits": {field: value}}, "gw.yaml")
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(path))
    _refused(code, err, "gateway config", f"limits.{field}", "must be")


def test_limits_in_range_are_accepted(tmp_path: Path) -> None:
    from lienthong.exchange.config import load_config

    limits = {"status_ttl_s": 0.0, "status_grace_s": 0.0, "config_grace_s": 0, "reload_s": 0.5}
    cfg = load_config(_write(tmp_path, MINIMAL | {"limits": limits}, "gw.yaml"))
    assert (cfg.limits.status_ttl_s, cfg.limits.reload_s) == (0.0, 0.5)


def test_a_relative_passphrase_file_is_relative_to_the_config(
    testbed: Testbed,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Relative paths are relative to the config file (docs/exchange.md) — the passphrase's
    ``{"$file": ...}`` was read from the current directory instead."""
    home = tmp_path / "etc"
    home.mkdir()
    (home / "passphrase").write_text(os.environ[testbed.passphrase_env] + "\n")
    cfg = _config(testbed) | {"passphrase": {"$file": "passphrase"}}
    cfg["state_dir"] = str(tmp_path / "state")
    path = _write(home, cfg)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = _lt(capsys, "gateway", "check", "--config", str(path))
    assert code == 0, err
    assert json.loads(out)["node"] == "BHXH-GW"


def test_person_key_file_short_form_is_relative_to_the_config(tmp_path: Path) -> None:
    from lienthong.exchange.config import load_config

    cfg = load_config(_write(tmp_path, MINIMAL | {"audit": {"person_key": "file:pk"}}))
    assert cfg.audit.person_key == {"$file": str(tmp_path / "pk")}


def test_a_ca_bundle_that_is_not_text_is_refused(
    testbed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roots = tmp_path / "roots.pem"
    roots.write_bytes(b"\xff\xfe\x00garbage")
    cfg = _config(testbed)
    cfg["tls"] = cfg["tls"] | {"roots": str(roots)}
    cfg["state_dir"] = str(tmp_path / "state")
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(_write(tmp_path, cfg)))
    _refused(code, err, "CA bundle", str(roots))


# -- serve options ---------------------------------------------------------------------------


def test_serve_refuses_an_unknown_log_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, MINIMAL)
    code, _, err = _lt(capsys, "gateway", "serve", "--config", str(path), "--log-level", "LOUD")
    _refused(code, err, "--log-level", "LOUD", "WARNING")


@pytest.mark.parametrize("where", ["missing/stats.prof", "."])
def test_serve_refuses_a_profile_it_could_not_write_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """The statistics were written only at exit: a gateway run for days lost them then."""
    path = _write(tmp_path, MINIMAL)
    target = tmp_path / where
    code, _, err = _lt(capsys, "gateway", "serve", "--config", str(path), "--profile", str(target))
    _refused(code, err, "--profile", str(target))


def test_gateway_module_entry_point_prints_one_line_not_a_traceback(
    testbed: Testbed, tmp_path: Path
) -> None:
    """``python -m lienthong.exchange`` (how gateway processes start) printed a traceback for
    a missing file or an unknown log level."""
    cfg = _config(testbed)
    cfg["tls"] = cfg["tls"] | {"cert": str(tmp_path / "absent.pem")}
    cfg["state_dir"] = str(tmp_path / "state")
    path = _write(tmp_path, cfg)
    env = os.environ | {"COLUMNS": "200"}
    for args, words in (
        (["check", "--config", str(path)], [str(tmp_path / "absent.pem"), "No such file"]),
        (["serve", "--config", str(path), "--log-level", "LOUD"], ["--log-level"]),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "lienthong.exchange", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert all(w in out.stderr for w in words), out.stderr


# -- monitor ---------------------------------------------------------------------------------


def _monitor_db(tmp_path: Path, *statements: str) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / "monitor.sqlite") as db:
        for statement in statements:
            db.execute(statement)
    db.close()
    return _write(tmp_path, MINIMAL | {"state_dir": str(state)})


@pytest.mark.parametrize(
    "statements",
    [
        (  # a schema version that is no number
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
            "INSERT INTO meta VALUES ('schema_version', 'abc')",
        ),
        (  # the records table is missing
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
            "INSERT INTO meta VALUES ('schema_version', '3')",
        ),
        ("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",),  # no version row
    ],
)
@pytest.mark.parametrize("summary", [False, True])
def test_monitor_on_a_damaged_database_says_so(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    statements: tuple[str, ...],
    summary: bool,
) -> None:
    path = _monitor_db(tmp_path, *statements)
    args = ["gateway", "monitor", "--config", str(path), *(["--summary"] if summary else [])]
    code, _, err = _lt(capsys, *args)
    _refused(code, err, "monitoring database", "monitor.sqlite", exit_code=1)


# -- evidence and the time options -----------------------------------------------------------


def _evidence_log(tmp_path: Path) -> Path:
    from lienthong.exchange.messagelog import AuditMessageLog

    path = tmp_path / "m.auditlog"
    mlog = AuditMessageLog(path, "o", durability="power")

    async def two() -> None:
        for i, ts in enumerate((946684800.0 - 86400, time.time())):
            record = {"ts": ts, "id": f"m{i}", "client": "c", "service": "s", "level": 0}
            await mlog.append(record | {"request_tokens": [f"t{i}"], "response_tokens": [f"r{i}"]})

    asyncio.run(two())
    mlog.close()
    return path


def test_delete_before_in_the_future_is_refused_and_deletes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped year (2925 for 2025) deleted every token, the newest included, and moved the
    store's retention mark past every entry: later checks counted any missing token as deleted
    by retention, never as missing."""
    log = _evidence_log(tmp_path)
    for when in ("2925-01-01", "9999-12-31T23:59:59+00:00"):
        code, _, err = _lt(
            capsys, "gateway", "evidence", "--log", str(log), "--delete-before", when
        )
        _refused(code, err, "--delete-before", when, "future")
    code, out, err = _lt(capsys, "gateway", "evidence", "--log", str(log))
    assert code == 0, err
    report = json.loads(out)
    assert report["tokens_checked"] == 4 and "tokens_deleted_by_retention" not in report


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("evidence", "--delete-before", "9999-12-31T23:59:59-12:00"),
        ("evidence", "--delete-before", "0001-01-01T00:00:00+05:00"),
        ("monitor", "--since", "0001-01-01T00:00:00+05:00"),
        ("monitor", "--until", "9999-12-31T23:59:59-12:00"),
    ],
)
def test_a_time_outside_the_calendar_names_its_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, option: str, value: str
) -> None:
    """Was "value out of range: date value out of range", naming neither option nor value."""
    if command == "evidence":
        args = ["--log", str(_evidence_log(tmp_path))]
    else:
        args = ["--config", str(_monitor_db(tmp_path, "CREATE TABLE t (a)"))]
    code, _, err = _lt(capsys, "gateway", command, *args, option, value)
    _refused(code, err, option, value, "range")


def test_evidence_times_still_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _evidence_log(tmp_path)
    code, out, err = _lt(
        capsys, "gateway", "evidence", "--log", str(log), "--delete-before", "2000-01-01"
    )
    assert code == 0, err
    assert json.loads(out)["tokens_deleted"] == 2


def test_base_config_is_valid(tmp_path: Path) -> None:
    """The patches above fail for their own reason, not for the base they start from."""
    from lienthong.exchange.config import load_config

    assert load_config(_write(tmp_path, copy.deepcopy(MINIMAL), "gw.yaml")).node == "A"


@pytest.mark.parametrize("crl", ["absent.pem", "garbage.pem"])
def test_check_refuses_a_crl_that_would_fail_every_certificate_check(
    testbed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str], crl: str
) -> None:
    """With no usable CRL read since the start every certificate check fails closed (every
    exchange refused), yet ``check`` printed its summary and exit 0."""
    (tmp_path / "garbage.pem").write_text("-----BEGIN X509 CRL-----\nnot one\n")
    cfg = _config(testbed)
    cfg["tls"] = cfg["tls"] | {"crl": crl}  # relative: beside the config
    cfg["state_dir"] = str(tmp_path / "state")
    code, out, err = _lt(capsys, "gateway", "check", "--config", str(_write(tmp_path, cfg)))
    _refused(code, err, "tls.crl", str(tmp_path / crl), "fail closed")
    assert out == ""


def test_check_refuses_a_state_dir_that_is_a_file(
    testbed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was "error: PATH: File exists", naming neither the setting nor the problem."""
    state = tmp_path / "state"
    state.write_text("not a directory")
    cfg = _config(testbed) | {"state_dir": str(state)}
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(_write(tmp_path, cfg)))
    _refused(code, err, f"state_dir {state} is not a directory")
    assert state.read_text() == "not a directory"


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"pq_key": "pq.key.pem"}, "pq_cert"),
        ({"pq_cert": "pq.pem"}, "pq_key"),
        ({"kem_x25519": "x.key.pem"}, "kem_mlkem"),
        ({"kem_mlkem": "m.key.pem"}, "kem_x25519"),
    ],
)
def test_half_a_key_pair_is_refused_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: dict[str, str], missing: str
) -> None:
    """A pq_key without its pq_cert (or one key-agreement key of two) was silently dropped:
    the subsystem then had no ML-DSA signature or could not decrypt, found only on a call."""
    sub = {"id": "VN/GOV/G01/S", "sign_key": "k", "sign_cert": "c", **given}
    path = _write(tmp_path, MINIMAL | {"subsystems": [sub]})
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(path))
    _refused(code, err, "VN/GOV/G01/S", missing, next(iter(given)))


def test_check_refuses_a_signing_key_that_does_not_match_its_certificate(
    testbed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each request would be signed with one key and named by another key's certificate:
    every peer refuses it (LT.BAD_SIGNATURE), yet ``check`` said all was well."""
    cfg = _config(testbed)
    first, second = cfg["subsystems"][0], cfg["subsystems"][1]
    first["sign_cert"] = second["sign_cert"]
    cfg["state_dir"] = str(tmp_path / "state")
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(_write(tmp_path, cfg)))
    _refused(code, err, first["sign_key"], second["sign_cert"], "does not match")


def test_check_refuses_a_tls_key_that_does_not_match_its_certificate(
    testbed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(testbed)
    other = str(testbed.workdir / "nodes" / "BCA-GW" / "tls.pem")
    cfg["tls"] = cfg["tls"] | {"cert": other}
    cfg["state_dir"] = str(tmp_path / "state")
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(_write(tmp_path, cfg)))
    _refused(code, err, "tls.key", "tls.cert", other, "does not match")


def test_a_certificate_file_that_is_not_pem_is_named(
    testbed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was "not a PEM certificate: Unable to load PEM file. See https://…", naming no file."""
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate\n")
    for field in ("tls", "subsystem"):
        cfg = _config(testbed)
        if field == "tls":
            cfg["tls"] = cfg["tls"] | {"cert": str(bad)}
        else:
            cfg["subsystems"][0]["sign_cert"] = str(bad)
        cfg["state_dir"] = str(tmp_path / "state")
        code, _, err = _lt(capsys, "gateway", "check", "--config", str(_write(tmp_path, cfg)))
        _refused(code, err, str(bad), "not a PEM certificate")


@pytest.mark.parametrize(
    "text",
    [
        "node: " + "[" * 5000 + "]" * 5000 + "\n",
        "node: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
        '{"node": ' + "[" * 50000 + "]" * 50000 + "}",
    ],
)
def test_a_config_nested_too_deeply_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    """Was "unexpected RecursionError", exit 1."""
    path = tmp_path / "gw.yaml"
    path.write_text(text)
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(path))
    _refused(code, err, str(path), "nested too deeply")


def test_a_yaml_error_names_the_file_and_line_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text("node: A\nlimits: [\n")
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(path))
    _refused(code, err, str(path), "not YAML/JSON", "line 3")
    assert "<unicode string>" not in err


def test_a_state_dir_that_cannot_be_created_is_named(
    testbed: Testbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was "PATH: Not a directory" from deep inside the message log, naming no setting."""
    (tmp_path / "file").write_text("x")
    cfg = _config(testbed) | {"state_dir": str(tmp_path / "file" / "state")}
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(_write(tmp_path, cfg)))
    _refused(code, err, "state_dir " + str(tmp_path / "file" / "state"), "Not a directory")


@pytest.mark.parametrize("summary", [[], ["--summary"]])
def test_monitor_refuses_a_time_range_that_ends_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], summary: list[str]
) -> None:
    """An inverted range answered "[]" (no records), as if nothing had happened."""
    from lienthong.exchange.monitor import MonitorStore

    (tmp_path / "state").mkdir()
    MonitorStore(tmp_path / "state" / "monitor.sqlite").close()
    path = _write(tmp_path, MINIMAL | {"state_dir": str(tmp_path / "state")})
    args = ["--since", "2026-01-02", "--until", "2026-01-01", *summary]
    code, out, err = _lt(capsys, "gateway", "monitor", "--config", str(path), *args)
    _refused(code, err, "--until '2026-01-01'", "--since '2026-01-02'")
    assert out == ""
    code, out, err = _lt(capsys, "gateway", "monitor", "--config", str(path), "--since", "1d")
    assert (code, json.loads(out)) == (0, []), err


@pytest.mark.parametrize(
    "host", ["localhost", "gw_1.agency.example", "0.0.0.0", "::1", "fe80::1%lo"]
)
def test_listener_hosts_that_are_addresses_or_names_are_accepted(tmp_path: Path, host: str) -> None:
    from lienthong.exchange.config import load_config

    cfg = load_config(_write(tmp_path, MINIMAL | {"admin": {"host": host, "port": 3}}))
    assert cfg.admin is not None and cfg.admin.host == host


@pytest.mark.parametrize(
    "url",
    ["http://svc.local/api?key=abc", "http://svc.local/api#v2", "https://user:pw@svc.local/api"],
)
def test_a_service_base_url_with_parts_the_gateway_would_drop_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """The gateway calls scheme, host, port and base path + the signed sub-path: a query,
    fragment or user:password in the configured URL was silently dropped from every call."""
    path = _write(tmp_path, MINIMAL | {"services": {"VN/GOV/G01/S/x": url}})
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(path))
    _refused(code, err, "VN/GOV/G01/S/x", url, "dropped")


@pytest.mark.parametrize("source", ["/dev/zero", "big"])
def test_a_config_that_does_not_end_is_refused_not_read_forever(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str
) -> None:
    """``--config /dev/zero`` hung reading an endless file; a config is a few kB."""
    path = Path(source)
    if source == "big":
        path = tmp_path / "gw.yaml"
        path.write_text("# " + "x" * (5 << 20) + "\nnode: A\n")
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(path))
    _refused(code, err, str(path), "larger than 4 MiB")


def test_audit_settings_with_the_jsonl_log_are_refused_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The JSON-lines log records no personal-data access: ``audit.*`` beside it did nothing,
    silently — an agency believed its citizens' accesses were being recorded."""
    cfg = copy.deepcopy(MINIMAL) | {
        "message_log": "jsonl",
        "audit": {"person_key": {"$env": "LT_PERSON_KEY"}},
    }
    code, _, err = _lt(capsys, "gateway", "check", "--config", str(_write(tmp_path, cfg)))
    _refused(code, err, "audit.person_key", "message_log 'audit'")
