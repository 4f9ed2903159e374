"""``access-history --archive FILE``: accesses in archived segments are read from the archive
files, checked against the person index and the log's signed checkpoint, listed with proofs,
and the completeness statement then covers the archived prefix (synthetic citizens only)."""

from __future__ import annotations

import json
import lzma
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from audit_reference import NOW, PERSON_KEY, admin_entries, audit_cli

from lienthong.audit import AuditLog, merkle, personal_data_access_entry
from lienthong.audit.archive import archive_segment, read_archive
from lienthong.audit.checkpoint import parse_note
from lienthong.trust.keys import SoftwareSigner, generate_private_key, public_key_to_pem

SIGNER = SoftwareSigner(generate_private_key())
OTHER_SIGNER = SoftwareSigner(generate_private_key())
ORIGIN = "history.example/log"
PID = "001085012345"  # synthetic
OTHER_PID = "079203000017"  # synthetic, another citizen
ACCESSES = (3, 40, 150, 260)  # 3, 40 in archive 1 [0, 100); 150 in archive 2 [100, 200)
LATE = 305  # after the archives, live
ENV = {**os.environ, "LT_HIST_ARCH_PERSON_KEY": PERSON_KEY.decode()}


def _access(pid: str, k: int) -> object:
    return personal_data_access_entry(
        pid,
        "VN/GOV/000.00.00.H29/portal",
        "population/getCitizen",
        f"purpose {k}",
        "Law 49/2019",
        at=NOW,
        key=PERSON_KEY,
        message_id=f"m{k}",
    )


def make_log(
    where: Path, origin: str = ORIGIN, signer: SoftwareSigner = SIGNER, accesses=ACCESSES
) -> tuple[Path, Path, Path]:
    """300 entries (accesses to PID at ``accesses``, another citizen's at 41), archived in
    [0, 100) and [100, 200), then a live access at LATE; returns the log and both archives."""
    where.mkdir(parents=True, exist_ok=True)
    path = where / "node.auditlog"
    entries = admin_entries(300)
    for k in accesses:
        entries[k] = _access(PID, k)
    entries[41] = _access(OTHER_PID, 41)
    with AuditLog.open(path, signer=signer, origin=origin) as log:
        log.append(entries)
        log.checkpoint(now=NOW)
        first = archive_segment(log, where / "arch", 100, now=NOW)
        second = archive_segment(log, where / "arch", 200, now=NOW)
        log.append(admin_entries(LATE - log.size(), "late"))
        log.append_one(_access(PID, LATE))
        log.checkpoint(now=NOW)
    (where / "log.pem").write_bytes(public_key_to_pem(signer.public_key()))
    return path, first, second


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_log(tmp_path_factory.mktemp("node"))


def history(log: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return audit_cli(
        ENV,
        "access-history",
        "--person",
        PID,
        "--log",
        str(log),
        "--person-key",
        "env:LT_HIST_ARCH_PERSON_KEY",
        "--log-key",
        f"{ORIGIN}={log.parent / 'log.pem'}",
        *args,
    )


def history_json(log: Path, *archives: Path) -> dict:
    res = history(log, *(a for p in archives for a in ("--archive", str(p))), "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_archived_accesses_are_listed_proven_and_the_whole_log_is_complete(
    node: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    log, first, second = node
    out = history_json(log, second, first)  # any order
    by_index = {a["index"]: a for a in out["accesses"]}
    assert sorted(by_index) == [*ACCESSES, LATE]  # not the other citizen's access at 41
    assert [by_index[i]["archive"] for i in (3, 40, 150)] == [str(first), str(first), str(second)]
    assert by_index[260]["archive"] is None and by_index[LATE]["archive"] is None
    assert by_index[3]["purpose"] == "purpose 3"
    c = out["logs"][0]["completeness"]
    size = c["checkpoint_size"]
    assert c["complete_from"] == 0 and c["proven_range"] == [0, size]
    assert c["checked_ranges"] == [[0, size]] and c["unchecked_ranges"] == []
    assert c["live_from"] == 200 and c["archived_accesses"] == 3
    assert (c["archived_accesses_checked"], c["archived_accesses_unchecked"]) == (3, 0)
    assert [(a["checked"], a["given"]) for a in c["archives"]] == [
        (True, str(first)),
        (True, str(second)),
    ]
    assert f"complete for {ORIGIN} over entries [0, {size})" in c["statement"]
    assert "5 entries name this person (3 of them archived)" in c["statement"]
    assert "NOT re-checked" not in c["statement"]
    # every proof, archived ones included, leads to the root of the signed checkpoint
    cp, _sigs = parse_note(out["logs"][0]["checkpoint"])
    entries: dict[int, bytes] = {}
    read_archive(first, ORIGIN, SIGNER.public_key(), lambda i, d: entries.setdefault(i, d))
    for a in by_index.values():
        p = a["proof"]
        assert (p["tree_size"], p["root_hash"]) == (cp.size, cp.root.hex())
        hashes = [bytes.fromhex(h) for h in p["hashes"]]
        merkle.verify_inclusion(a["index"], cp.size, bytes.fromhex(p["leaf_hash"]), hashes, cp.root)
    assert by_index[3]["proof"]["leaf_hash"] == merkle.leaf_hash(entries[3]).hex()
    # and offline, with the CLI, anchored in the signed checkpoint
    (tmp_path / "p.json").write_text(json.dumps(by_index[40]["proof"]))
    (tmp_path / "cp.note").write_text(out["logs"][0]["checkpoint"])
    (tmp_path / "e.bin").write_bytes(entries[40])
    res = audit_cli(
        ENV,
        "check-proof",
        str(tmp_path / "p.json"),
        "--checkpoint",
        str(tmp_path / "cp.note"),
        "--pubkey",
        str(log.parent / "log.pem"),
        "--origin",
        ORIGIN,
        "--entry",
        str(tmp_path / "e.bin"),
    )
    assert res.returncode == 0, res.stderr
    # the human output names the archive of each archived access, and nothing is left over
    res = history(log, "--archive", str(first), "--archive", str(second))
    assert res.returncode == 0, res.stderr
    assert f"[{ORIGIN} #3, archive {first}]" in res.stdout
    assert f"[{ORIGIN} #{LATE}]" in res.stdout
    assert "more access(es) in archived entries" not in res.stdout


def test_without_archives_the_archived_prefix_stays_unchecked(
    node: tuple[Path, Path, Path],
) -> None:
    out = history_json(node[0])
    assert sorted(a["index"] for a in out["accesses"]) == [260, LATE]
    c = out["logs"][0]["completeness"]
    assert c["complete_from"] == 200 and c["unchecked_ranges"] == [[0, 200]]
    assert (c["archived_accesses_checked"], c["archived_accesses_unchecked"]) == (0, 3)
    assert "entries [0, 200) are archived" in c["statement"]
    assert "NOT re-checked" in c["statement"] and "--archive" in c["statement"]


def test_a_missing_archive_leaves_exactly_its_range_unchecked(
    node: tuple[Path, Path, Path],
) -> None:
    log, first, second = node
    out = history_json(log, second)
    assert sorted(a["index"] for a in out["accesses"]) == [150, 260, LATE]
    c = out["logs"][0]["completeness"]
    size = c["checkpoint_size"]
    assert c["complete_from"] == 100 and c["checked_ranges"] == [[100, size]]
    assert c["unchecked_ranges"] == [[0, 100]]
    assert (c["archived_accesses_checked"], c["archived_accesses_unchecked"]) == (1, 2)
    assert f"complete for {ORIGIN} over entries [100, {size})" in c["statement"]
    assert "entries [0, 100) are archived" in c["statement"]
    assert "NOT re-checked here: the person index counts 2 accesses there" in c["statement"]
    assert [a["checked"] for a in c["archives"]] == [False, True]

    out = history_json(log, first)  # the middle one missing: two checked ranges
    assert sorted(a["index"] for a in out["accesses"]) == [3, 40, 260, LATE]
    c = out["logs"][0]["completeness"]
    assert c["checked_ranges"] == [[0, 100], [200, size]]
    assert c["unchecked_ranges"] == [[100, 200]] and c["complete_from"] == 200
    assert f"over entries [0, 100), [200, {size})" in c["statement"]
    assert "entries [100, 200) are archived" in c["statement"]
    res = history(log, "--archive", str(first))
    assert res.returncode == 0, res.stderr
    assert f"1 more access(es) in archived entries [100, 200) of {ORIGIN}" in res.stdout
    assert second.name in res.stdout


def _rewrite(path: Path, edit) -> None:
    lines = lzma.decompress(path.read_bytes()).split(b"\n")
    path.write_bytes(lzma.compress(b"\n".join(edit(lines))))


def _copy(archive: Path, where: Path) -> Path:
    where.mkdir()
    copy = where / archive.name
    copy.write_bytes(archive.read_bytes())
    Path(f"{copy}.sig").write_bytes(Path(f"{archive}.sig").read_bytes())
    return copy


@pytest.mark.parametrize("tamper", ["remove", "alter"])
def test_a_tampered_archive_fails_naming_the_file(
    node: tuple[Path, Path, Path], tmp_path: Path, tamper: str
) -> None:
    log, first, second = node
    bad = _copy(first, tmp_path / "copy")
    if tamper == "remove":  # one access to this citizen dropped (entry 40: line 41)
        _rewrite(bad, lambda lines: lines[:41] + lines[42:])
    else:  # its purpose changed
        _rewrite(bad, lambda lines: [ln.replace(b"purpose 3", b"purpose X") for ln in lines])
    res = history(log, "--archive", str(bad), "--archive", str(second))
    assert res.returncode == 1, res.stderr
    assert f"archive {bad.name} does not match its signed description" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (  # an insider with the node's key rebuilds the log without the access at 3 and
            # archives it: the file verifies on its own, but the log recorded another one
            {"accesses": (40, 150, 260)},
            "archive {file} is not archive 1 of log " + ORIGIN,
        ),
        (
            {"origin": "other.example/log", "signer": OTHER_SIGNER},
            "archive {file} is of log 'other.example/log', not of any log given",
        ),
    ],
    ids=["resigned-with-the-log-key", "another-log"],
)
def test_an_archive_the_log_did_not_record_is_refused(
    node: tuple[Path, Path, Path], tmp_path: Path, make: dict, message: str
) -> None:
    log, _first, second = node
    _log2, alien, _ = make_log(tmp_path / "alien", **make)
    res = history(log, "--archive", str(alien), "--archive", str(second))
    assert res.returncode == 1, res.stderr
    assert message.format(file=alien) in res.stderr


def test_the_person_index_must_match_the_archive(
    node: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    log, first, second = node
    tampered = tmp_path / "index-tampered.auditlog"
    tampered.write_bytes(log.read_bytes())
    (tampered.parent / "log.pem").write_bytes((log.parent / "log.pem").read_bytes())
    with sqlite3.connect(tampered) as db:  # an archived access hidden from the index
        db.execute("DELETE FROM persons WHERE idx = 40")
    db.close()
    res = history(tampered)  # unseen without the archive: the index is only counted
    assert res.returncode == 0 and "counts 2 accesses there" in res.stdout, res.stderr
    res = history(tampered, "--archive", str(first), "--archive", str(second))
    assert res.returncode == 1, res.stderr
    assert f"person index tampered in archived entries [0, 100) read from {first}" in res.stderr
    assert "missing from the index: [40] (1)" in res.stderr


def test_a_file_that_is_not_an_archive_is_bad_input(
    node: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    log, first, _second = node
    text = tmp_path / "notes.txt"
    text.write_text("not an archive\n")
    Path(f"{text}.sig").write_text("x\n")
    res = history(log, "--archive", str(text))
    assert res.returncode == 2, res.stderr
    assert f"{text} is not a lienthong-audit-archive/1 archive: not an xz file" in res.stderr
    res = history(log, "--archive", str(tmp_path / "missing.ltar.xz"))
    assert res.returncode == 2 and "cannot read archive" in res.stderr, res.stderr
    unsigned = tmp_path / first.name  # the archive without its .sig beside it
    unsigned.write_bytes(first.read_bytes())
    res = history(log, "--archive", str(unsigned))
    assert res.returncode == 2 and f"cannot read archive {unsigned}" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_an_archive_is_read_as_a_stream_in_any_chunk_size(
    node: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Tiny chunks exercise both paths of the decompressor (more input needed, more output
    pending); every entry is seen once, in order, with its index."""
    import lienthong.audit.archive as archive

    _log, first, second = node
    monkeypatch.setattr(archive, "_CHUNK", chunk)
    for path, start in ((first, 0), (second, 100)):
        seen: list[tuple[int, bytes]] = []
        visit = seen.append  # bound now, not looked up later in the loop
        done = read_archive(path, ORIGIN, SIGNER.public_key(), lambda i, d, v=visit: v((i, d)))
        lines = [ln for ln in lzma.decompress(path.read_bytes()).split(b"\n")[1:] if ln]
        assert seen == list(enumerate(lines, start))
        assert (done.first, done.end, done.seq) == (start, start + 100, start // 100 + 1)
