"""An insider with write access to a log's database, and a malicious log server, attack the
audit log: every attack is detected with a precise verdict (exit 1 with the reason for
tampering, exit 2 for bad input), and nothing crashes or reports "ok" for a damaged log."""

from __future__ import annotations

import asyncio
import json
import lzma
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from audit_reference import NOW, PERSON_KEY, admin_entries, audit_cli
from tests.audit.tampering import cut_tail

from lienthong.audit import AuditLog, personal_data_access_entry, security_event_entry
from lienthong.audit.archive import archive_segment, verify_archives
from lienthong.audit.checkpoint import parse_note
from lienthong.audit.cli import parse_proof
from lienthong.audit.export import security_events
from lienthong.audit.history import access_history
from lienthong.audit.http import log_app
from lienthong.audit.verify import LogInconsistency, verify_log
from lienthong.audit.witness import ForkDetected, LocalLogSource, Witness, WitnessState
from lienthong.errors import InputError, IntegrityError
from lienthong.trust.keys import SoftwareSigner, generate_private_key, public_key_to_pem

SIGNER = SoftwareSigner(generate_private_key())
INSIDER = SoftwareSigner(generate_private_key())  # a key the insider made: not the node's
WITNESS = SoftwareSigner(generate_private_key())
ORIGIN = "attack.example/log"
ENV = {**os.environ}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return audit_cli(ENV, *args)


def build(path: Path, n: int, *, checkpoints: tuple[int, ...] = ()) -> None:
    """``n`` entries, a signed checkpoint at each size in ``checkpoints`` and at ``n``."""
    entries = admin_entries(n)
    with AuditLog.open(path, signer=SIGNER, origin=ORIGIN) as log:
        done = 0
        for size in (*checkpoints, n):
            log.append(entries[done:size])
            log.checkpoint(now=NOW)
            done = size


def pem(tmp_path: Path) -> Path:
    """The node's published key, as an auditor or a citizen holds it."""
    out = tmp_path / "node.pem"
    out.write_bytes(public_key_to_pem(SIGNER.public_key()))
    return out


def test_truncation_with_consistent_tiles_is_caught_by_the_witnessed_checkpoint(
    tmp_path: Path,
) -> None:
    """Rollback: the last entries, their tiles and the checkpoints above them are removed and
    the tiles of the shorter tree written back: the log alone is self-consistent again, but the
    witness's checkpoint shows the deletion, and the witness refuses to go back."""
    path, shorter = tmp_path / "log.sqlite", tmp_path / "shorter.sqlite"
    build(path, 40, checkpoints=(30,))
    build(shorter, 30)  # the same first 30 entries: the tiles the insider writes back
    state_file = tmp_path / "witness.json"
    with AuditLog.open(path) as log:
        Witness("w.example/w", WITNESS, WitnessState(state_file)).witness(
            LocalLogSource(log), ORIGIN, SIGNER.public_key()
        )
    cut_tail(path, shorter, 30)
    with AuditLog.open(path) as log:
        assert verify_log(log, public_key=SIGNER.public_key()).size == 30  # alone: no evidence
        with pytest.raises(ForkDetected, match="went back from size 40 to 30"):
            Witness("w.example/w", WITNESS, WitnessState(state_file)).witness(
                LocalLogSource(log), ORIGIN, SIGNER.public_key()
            )
    res = cli(
        "verify",
        "--log",
        str(path),
        "--pubkey",
        str(pem(tmp_path)),
        "--witness-state",
        str(state_file),
        "--json",
    )
    assert res.returncode == 1, res.stderr
    out = json.loads(res.stdout)
    assert out["kind"] == "deleted" and out["index"] == 30
    assert "entries [30, 40) were deleted" in out["message"]


def test_checkpoint_re_signed_by_another_key_is_a_bad_signature(tmp_path: Path) -> None:
    """The insider truncates the log and signs a matching checkpoint with a key of their own,
    recorded as the log's key: checked against the node's published key, it fails."""
    path = tmp_path / "log.sqlite"
    build(path, 20)
    with AuditLog.open(path) as log:
        forged = AuditLog(log.store, origin=ORIGIN, signer=INSIDER)
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM checkpoints")
            db.execute(
                "UPDATE meta SET value = ? WHERE key = 'public_key'",
                (public_key_to_pem(INSIDER.public_key()).decode(),),
            )
        forged.checkpoint(now=NOW, size=10)
    with AuditLog.open(path) as log, pytest.raises(LogInconsistency) as err:
        verify_log(log, public_key=SIGNER.public_key())
    assert err.value.details["kind"] == "bad_signature"
    assert "no signature by attack.example/log" in err.value.message


@pytest.mark.parametrize("size", ["²", "١٢", "012", "+12", " 12", "12 "])
def test_checkpoint_size_must_be_plain_ascii_decimal(size: str) -> None:
    """C2SP: the size line is an ASCII decimal without leading zeros. "²" passed isdigit() and
    then crashed int(); "١٢" (Arabic-Indic digits) and "012" were read as 12, so two
    different signed texts stood for one checkpoint."""
    note = f"{ORIGIN}\n{size}\n{'A' * 43}=\n\n— {ORIGIN} AAAA\n"
    with pytest.raises(InputError, match="not a decimal number"):
        parse_note(note)


def test_a_checkpoint_note_with_an_odd_size_is_bad_input_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    build(path, 12)
    with AuditLog.open(path) as log:
        note = log.checkpoint_note(12)
    odd = tmp_path / "odd.note"
    odd.write_text(note.replace("\n12\n", "\n¹²\n"), encoding="utf-8")
    proof = tmp_path / "proof.json"
    res = cli("prove", "--log", str(path), "--index", "3", "--json")
    proof.write_text(res.stdout)
    key = str(pem(tmp_path))
    res = cli("check-proof", str(proof), "--checkpoint", str(odd), "--pubkey", key)
    assert res.returncode == 2 and "is not a decimal number" in res.stderr, res.stderr
    res = cli("verify", "--log", str(path), "--pubkey", key, "--checkpoint", str(odd), "--json")
    assert res.returncode == 1, res.stderr
    out = json.loads(res.stdout)
    assert out["kind"] == "bad_signature" and "is not a decimal number" in out["message"]


class Server:
    """Requests to ``lienthong audit serve``'s app in process (errors become responses)."""

    def __init__(self, log: AuditLog) -> None:
        self.app = log_app(log, {"w.example/w": WITNESS.public_key()})

    def request(self, method: str, url: str, content: bytes | None = None) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://log") as client:
                return await client.request(method, url, content=content)

        return asyncio.run(go())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    path = tmp_path / "served.sqlite"
    build(path, 12)
    with AuditLog.open(path) as log:
        yield Server(log)


@pytest.mark.parametrize(
    "query",
    [
        "/proof?index=²",
        "/proof?index=١",  # Arabic-Indic one: not silently read as 1
        "/proof?index=1&size=٣",
        "/consistency?old=²",
        "/consistency?old=1&new=-3",
        "/proof?index=0x1",
    ],
)
def test_server_refuses_non_ascii_numbers_with_400(server: Server, query: str) -> None:
    res = server.request("GET", query)
    assert res.status_code == 400, res.text
    assert res.json()["error"] == "bad_input"
    assert "must be a non-negative integer" in res.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"size": 1e999, "name": "w.example/w", "line": "x"}',
        b'{"size": Infinity, "name": "w.example/w", "line": "x"}',
        b'{"size": true, "name": "w.example/w", "line": "x"}',
        b'{"size": 12.5, "name": "w.example/w", "line": "x"}',
        b'{"size": "12", "name": "w.example/w", "line": "x"}',
        b'["size", "name", "line"]',
    ],
)
def test_server_refuses_a_malformed_cosignature_with_400(server: Server, body: bytes) -> None:
    res = server.request("POST", "/cosignature", body)
    assert res.status_code == 400, res.text
    assert "co-signature must be JSON with size, name, line" in res.json()["message"]


@pytest.mark.parametrize(
    "content",
    ["[]", '{"attack.example/log": {}}', '{"attack.example/log": {"note": 5}}', '"x"'],
)
def test_a_malformed_witness_state_is_bad_input(tmp_path: Path, content: str) -> None:
    state = tmp_path / "state.json"
    state.write_text(content)
    with pytest.raises(InputError, match="is malformed"):
        WitnessState(state).get(ORIGIN)


def test_verify_with_a_malformed_witness_state_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    build(path, 5)
    state = tmp_path / "state.json"
    state.write_text("[]")
    res = cli("verify", "--log", str(path), "--witness-state", str(state))
    assert res.returncode == 2, res.stderr
    assert "is malformed" in res.stderr and "unexpected" not in res.stderr


PID = "001085012345"
READ = ("VN/GOV/X/portal", "population/get", "passport", "Law 49/2019")  # who, what, why


def person_log(path: Path) -> None:
    """12 entries; entries 2 and 7 record accesses to citizen PID's data; signed."""
    entries = admin_entries(12)
    for k in (2, 7):
        entries[k] = personal_data_access_entry(PID, *READ, at=NOW, key=PERSON_KEY)
    with AuditLog.open(path, signer=SIGNER, origin=ORIGIN) as log:
        log.append(entries)
        log.checkpoint(now=NOW)


def history_cli(path: Path, *log_keys: str) -> subprocess.CompletedProcess[str]:
    """``lienthong audit access-history`` of PID in the log at ``path``."""
    env = {**ENV, "LT_PK": PERSON_KEY.decode()}
    args = ["--person", PID, "--log", str(path), "--person-key", "env:LT_PK"]
    return audit_cli(env, "access-history", *args, *(a for k in log_keys for a in ("--log-key", k)))


def history(path: Path, keys: dict[str, SoftwareSigner] | None = None) -> dict:
    with AuditLog.open(path, readonly=True) as log:
        given = {name: s.public_key() for name, s in (keys or {}).items()}
        return access_history([log], PID, PERSON_KEY, given)


def test_access_history_of_a_log_rebuilt_under_a_renamed_key_is_refused(tmp_path: Path) -> None:
    """The insider rebuilds the log without the citizen's accesses, signed with their own key
    under another key name: the citizen's --log-key then matched no log and the key the log
    carries was used — "complete", 0 accesses, exit 0."""
    path = tmp_path / "log.sqlite"
    person_log(path)
    assert len(history(path, {ORIGIN: SIGNER})["accesses"]) == 2
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with AuditLog.open(path, signer=INSIDER, origin=ORIGIN, key_name="ops") as log:
        log.append(admin_entries(12))
        log.checkpoint(now=NOW)
    with pytest.raises(IntegrityError, match="no log given is signed under that name") as err:
        history(path, {ORIGIN: SIGNER})
    assert "ops" in err.value.message  # the name the log uses instead
    res = history_cli(path, f"{ORIGIN}={pem(tmp_path)}")
    assert res.returncode == 1 and "no log given is signed under that name" in res.stderr
    assert "complete for" not in res.stdout


def test_access_history_with_the_key_from_the_log_says_so(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    person_log(path)
    res = history_cli(path)
    assert res.returncode == 0, res.stderr
    assert "complete for attack.example/log" in res.stdout
    assert "key taken from the log itself" in res.stdout


def test_access_history_refuses_another_logs_checkpoint(tmp_path: Path) -> None:
    """One node key signs two logs. The insider copies the other log (no access to the
    citizen) over this one and renames the unsigned name on its signature line: the
    signature verifies, but the checkpoint is of another origin."""
    path, other = tmp_path / "log.sqlite", tmp_path / "other.sqlite"
    person_log(path)
    with AuditLog.open(other, signer=SIGNER, origin="attack.example/other") as log:
        log.append(admin_entries(12))
        log.checkpoint(now=NOW)
    with sqlite3.connect(path) as db:
        db.execute("ATTACH ? AS o", (str(other),))
        for table in ("leaves", "tiles", "persons", "checkpoints"):
            db.execute(f"DELETE FROM {table}")
            db.execute(f"INSERT INTO {table} SELECT * FROM o.{table}")
        db.execute(
            "UPDATE checkpoints SET note = replace(note, '— attack.example/other ', ?)",
            (f"— {ORIGIN} ",),
        )
    with AuditLog.open(path) as log, pytest.raises(LogInconsistency) as err:
        verify_log(log, public_key=SIGNER.public_key())
    assert err.value.details["kind"] == "bad_checkpoint"
    with pytest.raises(IntegrityError, match=r"is for log 'attack\.example/other'"):
        history(path, {ORIGIN: SIGNER})


def tampered_person_log(tmp_path: Path, sql: str) -> Path:
    """:func:`person_log`, then one statement of the insider."""
    path = tmp_path / "log.sqlite"
    person_log(path)
    with sqlite3.connect(path) as db:
        db.execute(sql)
    return path


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "UPDATE leaves SET data = substr(data, 1, length(data) - 2) WHERE idx = 7",
            "entry 7 is not a valid entry",
        ),
        ("UPDATE checkpoints SET note = 'garbage'", "stored checkpoint 12 is malformed"),
        (
            "INSERT INTO cosignatures VALUES (12, 'w.example/w', 'not a signature line')",
            "stored checkpoint 12 is malformed",
        ),
    ],
)
def test_access_history_names_unparsable_log_content_as_tampering(
    tmp_path: Path, sql: str, message: str
) -> None:
    """An access entry cut short (no longer JSON), a stored note or co-signature line that
    does not parse: reported as bad input (exit 2) before, they are tampering (exit 1)."""
    path = tampered_person_log(tmp_path, sql)
    with pytest.raises(IntegrityError, match=message) as err:
        history(path, {ORIGIN: SIGNER})
    assert not isinstance(err.value, InputError)


@pytest.mark.parametrize(
    ("sql", "where"),
    [
        ("UPDATE tiles SET hashes = 1 WHERE id = 0", "tiles.hashes"),
        ("UPDATE tiles SET hashes = 100000000 WHERE id = 0", "tiles.hashes"),
        ("UPDATE persons SET person = 'abc'", "persons.person"),
        ("UPDATE persons SET idx = 'x' WHERE idx = 7", "persons.idx"),
        ("UPDATE persons SET idx = 7.5 WHERE idx = 7", "persons.idx"),
        ("UPDATE checkpoints SET size = 'x'", "checkpoints.size"),
        ("INSERT INTO archives VALUES (1, 'a', 3, 'p', 's')", "archives.first"),
    ],
)
def test_a_value_of_another_sql_type_is_tampering_not_a_crash(
    tmp_path: Path, sql: str, where: str
) -> None:
    """SQLite keeps any value in any column: the insider stores text or numbers where the log
    keeps hashes and indexes. verify and access-history crashed (TypeError, ValueError;
    ``bytes(100000000)`` even allocated 100 MB of zeros) instead of naming the damage."""
    path = tampered_person_log(tmp_path, sql)
    with AuditLog.open(path, readonly=True) as log, pytest.raises(IntegrityError) as err:
        verify_log(log, public_key=SIGNER.public_key())
    assert where in err.value.message and "tampered" in err.value.message
    with pytest.raises(IntegrityError, match="tampered"):  # the column, or the index it hid
        history(path, {ORIGIN: SIGNER})


def test_verify_json_reports_a_store_value_of_another_type(tmp_path: Path) -> None:
    path = tampered_person_log(tmp_path, "UPDATE persons SET idx = 'x' WHERE idx = 7")
    res = cli("verify", "--log", str(path), "--pubkey", str(pem(tmp_path)), "--json")
    assert res.returncode == 1, res.stderr
    out = json.loads(res.stdout)
    assert out["verified"] is False and "persons.idx" in out["message"]


@pytest.fixture
def archives(tmp_path: Path) -> tuple[Path, Path]:
    with AuditLog.open(tmp_path / "log.sqlite", signer=SIGNER, origin=ORIGIN) as log:
        log.append(admin_entries(30))
        first = archive_segment(log, tmp_path / "arch", 10, now=NOW)
        second = archive_segment(log, tmp_path / "arch", 20, now=NOW)
    return first, second


def _recompressed(path: Path, edit: Callable[[dict], None]) -> None:
    lines = lzma.decompress(path.read_bytes()).split(b"\n")
    header = json.loads(lines[0])
    edit(header)
    path.write_bytes(lzma.compress(b"\n".join([json.dumps(header).encode(), *lines[1:]])))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flip", "is damaged"),  # xz's CRC fails: was exit 2, "cannot read" (bad input)
        ("truncate", "is damaged"),
        ("binary_sig", "is damaged"),
        ("no_prev", "does not match its signed description"),  # was a KeyError
    ],
)
def test_an_altered_archive_file_is_an_integrity_failure(
    archives: tuple[Path, Path], damage: str, message: str
) -> None:
    first, second = archives
    blob = second.read_bytes()
    if damage == "flip":
        second.write_bytes(blob[:60] + bytes([blob[60] ^ 1]) + blob[61:])
    elif damage == "truncate":
        second.write_bytes(blob[: len(blob) // 2])
    elif damage == "binary_sig":
        Path(f"{second}.sig").write_bytes(b"\xff\xfe garbage")
    else:
        _recompressed(second, lambda h: h.pop("prev_sha256"))
    with pytest.raises(IntegrityError, match=message) as err:
        verify_archives([first, second], ORIGIN, SIGNER.public_key())
    assert not isinstance(err.value, InputError)


def test_verify_archive_exits_1_for_a_corrupted_file(
    archives: tuple[Path, Path], tmp_path: Path
) -> None:
    first, second = archives
    blob = second.read_bytes()
    second.write_bytes(blob[:60] + bytes([blob[60] ^ 1]) + blob[61:])
    key = str(pem(tmp_path))
    res = cli("verify-archive", str(first), str(second), "--pubkey", key, "--key-name", ORIGIN)
    assert res.returncode == 1 and "is damaged" in res.stderr, res.stderr


GOOD_PROOF = {"leaf_index": 0, "tree_size": 2, "leaf_hash": "ab" * 32, "root_hash": "cd" * 32}


@pytest.mark.parametrize(
    "value",
    ["00 " * 20 + "0000", "\t\t" + "00" * 31, "0x" + "00" * 31, "٠" * 64, "00" * 31 + "\n0"],
)
@pytest.mark.parametrize("where", ["leaf_hash", "root_hash", "hashes"])
def test_a_proof_hash_must_be_exactly_64_hex_digits(value: str, where: str) -> None:
    """bytes.fromhex skips ASCII whitespace: "00 00 … 0000" (64 characters) gave a 22-byte
    hash and the proof failed as not verifying (exit 1) instead of being malformed (2)."""
    proof = {**GOOD_PROOF, "hashes": ["ef" * 32]}
    if where == "hashes":
        proof["hashes"] = [value]
    else:
        proof[where] = value
    with pytest.raises(InputError, match="must be 64 hex digits"):
        parse_proof(json.dumps(proof).encode())


def test_check_proof_refuses_a_root_with_spaces_as_bad_input(tmp_path: Path) -> None:
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps({**GOOD_PROOF, "hashes": ["ef" * 32]}))
    res = cli("check-proof", str(proof), "--root", "cd " * 20 + "cdcd")
    assert res.returncode == 2 and "--root must be 64 hex digits" in res.stderr, res.stderr


@pytest.fixture
def archived(tmp_path: Path) -> Path:
    """600 entries, accesses to PID at 3 (archived), 300 (archived) and 550; [0, 512) pruned."""
    path = tmp_path / "archived.sqlite"
    entries = admin_entries(600)
    for k in (3, 300, 550):
        entries[k] = personal_data_access_entry(PID, *READ, at=NOW, key=PERSON_KEY)
    with AuditLog.open(path, signer=SIGNER, origin=ORIGIN) as log:
        log.append(entries)
        log.checkpoint(now=NOW)
        archive_segment(log, tmp_path / "arch", 512, now=NOW)
    return path


def test_access_history_names_a_deleted_hash_of_the_archived_prefix(archived: Path) -> None:
    """The archived prefix enters the root through its stored subtree hashes: with that tile
    deleted, access-history crashed on a KeyError."""
    with sqlite3.connect(archived) as db:
        db.execute("DELETE FROM tiles WHERE id = ?", (9 << 48,))
    with pytest.raises(IntegrityError, match=r"lacks tree node\(s\) \[\(9, 0\)\]"):
        history(archived, {ORIGIN: SIGNER})


def test_access_history_refuses_an_archive_record_pointing_at_another_file(
    archived: Path, tmp_path: Path
) -> None:
    """The citizen is told to check the archived accesses in the recorded archive file; a
    record redirected to another file present here is caught (as verify catches it)."""
    decoy = tmp_path / "decoy.ltar.xz"
    decoy.write_bytes(b"not the archive")
    with sqlite3.connect(archived) as db:
        db.execute("UPDATE archives SET path = ?", (str(decoy),))
    with pytest.raises(IntegrityError, match="does not hash to the SHA-256 recorded"):
        history(archived, {ORIGIN: SIGNER})
    with sqlite3.connect(archived) as db:  # an absent file cannot be checked here: listed
        db.execute("UPDATE archives SET path = ?", (str(tmp_path / "elsewhere.ltar.xz"),))
    assert len(history(archived, {ORIGIN: SIGNER})["accesses"]) == 1


def test_kind_column_changed_to_a_kind_named_inside_the_entry_is_caught(tmp_path: Path) -> None:
    """The kind column (which export filters on) was checked by finding '"kind":"<column>"'
    anywhere in the entry: a security event whose detail has its own "kind" could be
    relabelled with it, verify said ok, and the event left the monitoring export."""
    path = tmp_path / "log.sqlite"
    entries = admin_entries(5)
    entries[2] = security_event_entry(
        at=NOW, event="verification.failed", severity=8, source="gw", detail={"kind": "tls"}
    )
    with AuditLog.open(path, signer=SIGNER, origin=ORIGIN) as log:
        log.append(entries)
        log.checkpoint(now=NOW)
        assert [e["index"] for e in security_events(log)].count(2) == 1
    with sqlite3.connect(path) as db:
        db.execute("UPDATE leaves SET kind = 'tls' WHERE idx = 2")
    with AuditLog.open(path, readonly=True) as log, pytest.raises(LogInconsistency) as err:
        verify_log(log, public_key=SIGNER.public_key())
    assert err.value.details == {"kind": "modified", "index": 2}
    assert "its kind column was changed to 'tls'" in err.value.message


def test_witness_refuses_a_second_origin_under_one_log_key(tmp_path: Path) -> None:
    """A log server shows the witness a forked history under a new origin, signed by the
    same log key and key name: the witness keeps state per origin, so it co-signed the
    fork as a fresh log. One key name is one log: the second origin is refused."""
    witness = Witness("w.example/w", WITNESS, WitnessState(tmp_path / "w.json"))
    build(tmp_path / "honest.sqlite", 10)
    with AuditLog.open(tmp_path / "honest.sqlite") as log:
        witness.witness(LocalLogSource(log), ORIGIN, SIGNER.public_key())
    fork = tmp_path / "fork.sqlite"
    with AuditLog.open(fork, signer=SIGNER, origin=f"{ORIGIN}-b", key_name=ORIGIN) as log:
        log.append(admin_entries(10, "forked"))
        log.checkpoint(now=NOW)
        with pytest.raises(ForkDetected, match=r"already witnessed for log attack\.example/log;"):
            witness.witness(LocalLogSource(log), ORIGIN, SIGNER.public_key())
        assert log.store.cosignatures(10) == []
    assert sorted(witness.state.data) == [ORIGIN]


def test_a_signature_with_a_non_ascii_character_is_refused_not_a_crash(tmp_path: Path) -> None:
    """base64.b64decode raises a plain ValueError (not binascii.Error) for non-ASCII text:
    one '²' in a stored signature or co-signature line ended verify in 'unexpected
    ValueError'."""
    path = tmp_path / "log.sqlite"
    build(path, 6)
    with AuditLog.open(path) as log:
        Witness("w.example/w", WITNESS, WitnessState(tmp_path / "w.json")).witness(
            LocalLogSource(log), ORIGIN, SIGNER.public_key()
        )
        note = log.store.checkpoints()[-1][1]
    odd = note[:-5] + "²" + note[-4:]
    with pytest.raises(InputError, match="is not base64"):
        parse_note(odd)
    witnesses = {"w.example/w": WITNESS.public_key()}
    with sqlite3.connect(path) as db:
        db.execute("UPDATE cosignatures SET line = substr(line, 1, 30) || '²' || substr(line, 32)")
    with AuditLog.open(path) as log, pytest.raises(LogInconsistency) as err:
        verify_log(log, public_key=SIGNER.public_key(), witnesses=witnesses)
    assert err.value.details["kind"] == "bad_cosignature"
    assert "co-signature of w.example/w is not base64" in err.value.message
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM cosignatures")
        db.execute("UPDATE checkpoints SET note = ?", (odd,))
    with AuditLog.open(path) as log, pytest.raises(LogInconsistency) as err:
        verify_log(log, public_key=SIGNER.public_key())
    assert err.value.details["kind"] == "bad_signature" and "is not base64" in err.value.message
