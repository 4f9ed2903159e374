"""``lienthong audit`` end to end in real processes; proofs checked by an independent oracle."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from audit_reference import NOW, PERSON_KEY, admin_entries, audit_cli, mth, path

from lienthong.audit import AuditLog, personal_data_access_entry
from lienthong.trust.keys import public_key_to_pem
from lienthong.trust.keystore import FileKeyStore

PASS_ENV = "LT_AUDIT_TEST_PASSPHRASE"
PERSON_ENV = "LT_AUDIT_TEST_PERSON_KEY"
ENV = {**os.environ, PASS_ENV: "test-only-passphrase", PERSON_ENV: PERSON_KEY.decode()}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return audit_cli(ENV, *args)


@pytest.fixture
def node(tmp_path: Path) -> dict:
    os.environ.setdefault(PASS_ENV, ENV[PASS_ENV])
    keys = FileKeyStore(tmp_path / "keys", {"$env": PASS_ENV})
    signer = keys.generate("audit")
    (tmp_path / "log.pem").write_bytes(public_key_to_pem(signer.public_key()))
    log_path = tmp_path / "node.auditlog"
    entries = admin_entries(37)
    entries[5] = personal_data_access_entry(
        "001085012345",
        "VN/GOV/000.00.00.H29/portal",
        "population/getCitizen",
        "issue passport",
        "Law 49/2019",
        at=NOW,
        key=PERSON_KEY,
    )
    with AuditLog.open(log_path, signer=signer, origin="cli.example/log") as log:
        log.append(entries)
    return {
        "log": str(log_path),
        "data": [e.data for e in entries],
        "dir": tmp_path,
        "keyopts": ["--key-dir", str(tmp_path / "keys"), "--passphrase", f"env:{PASS_ENV}"],
    }


def test_prove_json_matches_an_independent_rfc6962_oracle(node: dict) -> None:
    data = node["data"]
    for index in (0, 5, 36):
        res = cli("prove", "--log", node["log"], "--index", str(index), "--json")
        assert res.returncode == 0, res.stderr
        proof = json.loads(res.stdout)
        assert set(proof) == {"leaf_index", "tree_size", "leaf_hash", "root_hash", "hashes"}
        assert proof["tree_size"] == 37
        assert proof["root_hash"] == mth(data).hex()
        assert proof["hashes"] == [h.hex() for h in path(index, data)]
        assert proof["leaf_hash"] == mth([data[index]]).hex()
    proof_file = node["dir"] / "p.json"
    proof_file.write_text(res.stdout)
    assert cli("check-proof", str(proof_file), "--root", mth(data).hex()).returncode == 0
    bad = json.loads(res.stdout)
    bad["hashes"][0] = "00" * 32
    proof_file.write_text(json.dumps(bad))
    failed = cli("check-proof", str(proof_file))
    assert failed.returncode == 1 and "does not lead to the root" in failed.stderr


def test_checkpoint_witness_verify_and_tamper(node: dict) -> None:
    res = cli("checkpoint", "--log", node["log"], *node["keyopts"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("cli.example/log\n37\n")
    keys = FileKeyStore(node["dir"] / "wkeys", {"$env": PASS_ENV})
    (node["dir"] / "w.pem").write_bytes(public_key_to_pem(keys.generate("audit").public_key()))
    res = cli(
        "witness",
        "--log",
        node["log"],
        "--log-key",
        f"cli.example/log={node['dir'] / 'log.pem'}",
        "--name",
        "w.example/w",
        "--state",
        str(node["dir"] / "wstate.json"),
        "--key-dir",
        str(node["dir"] / "wkeys"),
        "--passphrase",
        f"env:{PASS_ENV}",
    )
    assert res.returncode == 0, res.stderr
    res = cli(
        "verify",
        "--log",
        node["log"],
        "--pubkey",
        str(node["dir"] / "log.pem"),
        "--witness",
        f"w.example/w={node['dir'] / 'w.pem'}",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["cosignatures"] == 1
    with sqlite3.connect(node["log"]) as db:
        db.execute(
            "UPDATE leaves SET data = CAST(replace(CAST(data AS TEXT), 't20', 't2O')"
            " AS BLOB) WHERE idx = 20"
        )
    res = cli("verify", "--log", node["log"])
    assert res.returncode == 1
    assert "entry 20 was modified" in res.stderr


def test_access_history_archive_export(node: dict) -> None:
    assert cli("checkpoint", "--log", node["log"], *node["keyopts"]).returncode == 0
    res = cli(
        "access-history",
        "--person",
        "001085012345",
        "--log",
        node["log"],
        "--person-key",
        f"env:{PERSON_ENV}",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    hist = json.loads(res.stdout)
    assert [a["index"] for a in hist["accesses"]] == [5]
    assert "001085012345" not in res.stdout
    res = cli(
        "archive",
        "--log",
        node["log"],
        "--out",
        str(node["dir"] / "arch"),
        "--upto",
        "20",
        *node["keyopts"],
    )
    assert res.returncode == 0, res.stderr
    files = sorted((node["dir"] / "arch").glob("*.ltar.xz"))
    res = cli(
        "verify-archive",
        *map(str, files),
        "--pubkey",
        str(node["dir"] / "log.pem"),
        "--key-name",
        "cli.example/log",
    )
    assert res.returncode == 0 and json.loads(res.stdout)[0]["verified"] is True
    assert cli("verify", "--log", node["log"]).returncode == 0
    res = cli("export", "--log", node["log"], "--format", "cef", "--syslog")
    assert res.returncode == 0 and res.stdout.count("CEF:0|lienthong|audit|") >= 17


def test_bad_input_exits_2_in_one_line(node: dict, tmp_path: Path) -> None:
    for args in (
        ["prove", "--log", node["log"], "--index", "-1"],
        ["verify", "--log", str(tmp_path / "missing.auditlog")],
        ["export", "--log", node["log"], "--format", "xml"],
        ["access-history", "--person", "1", "--log", node["log"], "--person-key", "plaintext-key"],
    ):
        res = cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr
    (tmp_path / "junk").write_bytes(b"not a database at all")
    res = cli("verify", "--log", str(tmp_path / "junk"))
    assert res.returncode == 2 and "not an audit log" in res.stderr
    assert (tmp_path / "junk").read_bytes() == b"not a database at all"
