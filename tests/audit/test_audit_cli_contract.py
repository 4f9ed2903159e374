"""CLI contract of the audit commands (QA 11, 12, 15, 22): precise input errors exit 2,
verification failures exit 1, proofs can be anchored to a signed checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from audit_reference import NOW, PERSON_KEY, admin_entries, audit_cli

from lienthong.audit import AuditLog, personal_data_access_entry
from lienthong.audit.archive import archive_segment
from lienthong.errors import InputError
from lienthong.trust.keys import SoftwareSigner, generate_private_key, public_key_to_pem
from lienthong.trust.keystore import FileKeyStore

SIGNER = SoftwareSigner(generate_private_key())
PID = "001085012345"
ENV = {**os.environ, "LT_CC_PERSON_KEY": PERSON_KEY.decode(), "LT_CC_PASS": "test-only-pass"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return audit_cli(ENV, *args)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cc")
    log_path = d / "n.auditlog"
    with AuditLog.open(log_path, signer=SIGNER, origin="cc.example/log") as log:
        entries = admin_entries(40)
        for k in (3, 30):
            entries[k] = personal_data_access_entry(
                PID,
                "VN/GOV/X/portal",
                "population/get",
                "passport",
                "Law 49/2019",
                at=NOW,
                key=PERSON_KEY,
            )
        log.append(entries)
        archive_segment(log, d / "arch", 10, now=NOW)  # entry 3 archived, 30 live
        (d / "cp.note").write_text(log.checkpoint(now=NOW))
        log.append(admin_entries(2, "tail"))  # an unsigned tail of 2 entries
        with pytest.raises(InputError, match="beyond the log's 43 entries"):
            archive_segment(log, d / "arch", 1000, now=NOW)
        with pytest.raises(InputError, match=r"entries \[0, 10\) are archived already"):
            archive_segment(log, d / "arch", 5, now=NOW)
    (d / "pub.pem").write_bytes(public_key_to_pem(SIGNER.public_key()))
    return {"dir": d, "log": log_path, "note": d / "cp.note", "pem": d / "pub.pem"}


def test_check_proof_is_strict_and_can_be_anchored(node: dict[str, Path]) -> None:
    d, note, pem = node["dir"], str(node["note"]), str(node["pem"])
    res = cli("prove", "--log", str(node["log"]), "--index", "20", "--size", "41", "--json")
    assert res.returncode == 0, res.stderr
    good = json.loads(res.stdout)
    (d / "good.json").write_text(res.stdout)
    ok = cli("check-proof", str(d / "good.json"), "--checkpoint", note, "--pubkey", pem)
    assert ok.returncode == 0 and "root anchored: signed checkpoint" in ok.stdout, ok.stderr
    bare = cli("check-proof", str(d / "good.json"))
    assert bare.returncode == 0 and "root not anchored" in bare.stdout
    forged = {**good, "leaf_index": 0, "tree_size": 1, "root_hash": good["leaf_hash"], "hashes": []}
    (d / "forged.json").write_text(json.dumps(forged))
    res = cli("check-proof", str(d / "forged.json"), "--checkpoint", note, "--pubkey", pem)
    assert res.returncode == 1 and "checkpoint is of size 41" in res.stderr
    cases = {
        "float": ({**good, "leaf_index": 0.9}, "leaf_index must be a non-negative integer"),
        "short": ({**good, "hashes": ["ab"]}, "hashes[0] must be 64 hex digits"),
        "missing": ({k: v for k, v in good.items() if k != "hashes"}, "lacks hashes"),
        "array": ([], "must be a JSON object"),
        "outside": ({**good, "leaf_index": 41}, "not inside a tree of size 41"),
    }
    for name, (obj, message) in cases.items():
        (d / f"{name}.json").write_text(json.dumps(obj))
        res = cli("check-proof", str(d / f"{name}.json"))
        assert res.returncode == 2 and message in res.stderr, (name, res.stderr)
        assert "Traceback" not in res.stderr
    res = cli("check-proof", str(d / "good.json"), "--root", "zz")
    assert res.returncode == 2 and "--root must be 64 hex digits" in res.stderr


def test_exit_codes_history_and_unsigned_tail(node: dict[str, Path]) -> None:
    log = str(node["log"])
    res = cli("prove", "--log", log, "--index", "43")
    assert res.returncode == 2 and "entries 0…42" in res.stderr
    res = cli("consistency", "--log", log, "--old", "1", "--new", "400")
    assert res.returncode == 2 and "--new 400" in res.stderr
    res = cli("verify", "--log", log, "--pubkey", str(node["pem"]))
    assert res.returncode == 0 and "unsigned tail: the last 2 entries [41, 43)" in res.stdout
    base = ["access-history", "--log", log, "--person-key", "env:LT_CC_PERSON_KEY"]
    res = cli(*base, "--person", "abc")
    assert res.returncode == 2 and "not a valid personal ID" in res.stderr
    res = cli(*base, "--person", PID)
    assert res.returncode == 0, res.stderr
    assert "1 more access(es) in archived entries [0, 10)" in res.stdout
    assert "#30]" in res.stdout and "person key " in res.stdout
    os.environ.setdefault("LT_CC_PASS", ENV["LT_CC_PASS"])
    FileKeyStore(node["dir"] / "keys", {"$env": "LT_CC_PASS"}).generate("other")
    res = cli(
        "archive",
        "--log",
        log,
        "--out",
        str(node["dir"] / "a2"),
        "--upto",
        "20",
        "--key-dir",
        str(node["dir"] / "keys"),
        "--passphrase",
        "env:LT_CC_PASS",
    )
    assert res.returncode == 2 and "--key-label 'audit': no such key" in res.stderr


def test_serve_refuses_an_address_it_cannot_listen_on(node: dict[str, Path]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("serve", "--log", str(node["log"]), "--port", str(port))
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr and "ERROR" not in result.stderr
