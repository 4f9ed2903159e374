"""``lienthong audit …``: verify, prove, witness, archive and export the tamper-evident log.

Thin composition root: parses options, opens logs and keys, calls the pure core, prints.
Keys come from an encrypted key store (``--key-dir`` + ``--key-label``, passphrase by
reference ``env:NAME``/``file:PATH``); the person key likewise, never inline.
"""

from __future__ import annotations

import string
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import typer
from cryptography import x509

from lienthong.audit import merkle
from lienthong.audit.archive import archive_segment, verify_archives
from lienthong.audit.checkpoint import parse_note, verify_note
from lienthong.audit.export import security_events, to_cef, to_jsonl, to_syslog
from lienthong.audit.history import access_history
from lienthong.audit.http import HttpLogSource, log_app
from lienthong.audit.log import AuditLog
from lienthong.audit.verify import verify_log
from lienthong.audit.witness import LocalLogSource, Witness, WitnessState
from lienthong.cli.output import console, emit_json
from lienthong.errors import InputError, IntegrityError, SignatureError
from lienthong.trust.keys import PublicKey, Signer, public_key_from_pem
from lienthong.trust.keystore import FileKeyStore
from lienthong.trust.secrets import resolve_secret
from lienthong.validate.personal_id import check_personal_id

app = typer.Typer(
    help="Tamper-evident audit log (nhật ký kiểm toán): verify, prove, witness, archive, export.",
    no_args_is_help=True,
)

LOG = typer.Option(..., "--log", help="Audit log: SQLite file or postgresql:// DSN.")
JSON = typer.Option(False, "--json", help="Print JSON.")
KEY_DIR = typer.Option(None, "--key-dir", help="Encrypted key store directory.")
KEY_LABEL = typer.Option("audit", "--key-label", help="Key label in the key store.")
PASSPHRASE = typer.Option(None, "--passphrase", help="Key store passphrase: env:NAME|file:PATH.")
PUBKEY = typer.Option(None, "--pubkey", help="The log's public key (PEM file).")


def _open(target: str, signer: Signer | None = None) -> AuditLog:
    return AuditLog.open(target, signer=signer, create=False)


def _read(target: str) -> AuditLog:
    """Open an existing log for reading only: nothing is written (a read-only copy works)."""
    return AuditLog.open(target, create=False, readonly=True)


def _signer(key_dir: Path | None, label: str, passphrase: str | None) -> Signer:
    if key_dir is None or passphrase is None:
        raise InputError("signing needs --key-dir and --passphrase (env:NAME or file:PATH)")
    store = FileKeyStore(key_dir, passphrase)
    labels = store.labels()
    if label not in labels:  # a wrong --key-label is bad input, not a failed check
        raise InputError(
            f"--key-label {label!r}: no such key in {key_dir} "
            f"(labels: {', '.join(labels) or 'none'})"
        )
    return store.signer(label)


def _pubkey(path: Path | None) -> PublicKey | None:
    if path is None:
        return None
    try:
        return public_key_from_pem(path.read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read public key {path}: {exc.strerror}") from exc


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def _witness_notes(path: Path, origins: list[str]) -> dict[str, str]:
    """The witness's last checkpoint of each of ``origins`` it holds (at least one)."""
    if not path.is_file():
        raise InputError(f"no witness state at {path}")
    state = WitnessState(path)
    notes = {o: n for o in origins if (n := state.get(o)) is not None}
    if not notes:
        raise InputError(f"witness state {path} has no checkpoint of {', '.join(origins)}")
    return notes


def _witness_note(path: Path, origin: str) -> str:
    return _witness_notes(path, [origin])[origin]


def _certificates(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read certificates from {path}: {exc}") from exc


def _named(spec: str, what: str) -> tuple[str, Path]:
    """``NAME=PATH`` (both non-empty), else bad input naming the expected form."""
    name, sep, path = spec.partition("=")
    if not (sep and name and path):
        raise InputError(f"expected NAME={what}, got {spec!r}")
    return name, Path(path)


def _named_keys(specs: list[str]) -> dict[str, PublicKey]:
    out: dict[str, PublicKey] = {}
    for spec in specs:
        name, path = _named(spec, "PUBKEY.pem")
        key = _pubkey(path)
        assert key is not None  # _pubkey returns None only for no path
        out[name] = key
    return out


@app.command()
def verify(
    log: str = LOG,
    pubkey: Path | None = PUBKEY,
    witness: list[str] = typer.Option([], "--witness", help="NAME=PEM of a witness key."),
    tsa_bundle: Path | None = typer.Option(
        None, "--tsa-bundle", help="PEM certificates of the time-stamping authority's chain."
    ),
    checkpoint: list[Path] = typer.Option(
        [], "--checkpoint", help="A signed checkpoint of this log kept elsewhere (note file)."
    ),
    witness_state: list[Path] = typer.Option(
        [], "--witness-state", help="A witness's state file: its last checkpoint of this log."
    ),
    json_out: bool = JSON,
) -> None:
    """Re-check every entry, subtree, checkpoint and co-signature; report the first problem."""
    tsa = _certificates(tsa_bundle) if tsa_bundle is not None else None
    try:
        opened = _read(log)
    except IntegrityError as exc:  # a damaged log (e.g. its leaves table deleted)
        if json_out:
            emit_json({"verified": False, "message": exc.message, **exc.details})
            raise typer.Exit(1) from exc
        raise
    with opened as lg:
        notes = [_read_text(p) for p in checkpoint]
        notes += [_witness_note(p, lg.origin) for p in witness_state]
        try:
            report = verify_log(
                lg,
                public_key=_pubkey(pubkey),
                witnesses=_named_keys(witness),
                tsa_certificates=tsa,
                external_notes=notes,
            )
        except IntegrityError as exc:  # LogInconsistency, or a store value of another type
            if json_out:
                emit_json({"verified": False, "message": exc.message, **exc.details})
                raise typer.Exit(1) from exc
            raise
    if json_out:
        emit_json(report.to_dict())
    else:
        console.print(
            f"verified {report.origin}: {report.entries_checked} entries, "
            f"{report.checkpoints} checkpoints, {report.cosignatures} co-signatures "
            f"(key from {report.key_source}) in {report.elapsed_s}s",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        if report.unsigned_tail:
            console.print(
                f"unsigned tail: the last {report.unsigned_tail} entries "
                f"[{report.size - report.unsigned_tail}, {report.size}) are after the last "
                "signed checkpoint: they are self-consistent but nothing proves they were not "
                "added or changed since; sign a checkpoint to cover them",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        if report.archives:
            console.print(
                f"archived: {report.archived_entries} entries "
                f"pruned in {report.archives} archive(s) attested by signed log.archive entries; "
                f"{report.archive_files_checked} archive file(s) checked, "
                f"{report.archive_files_absent} absent here",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        if report.key_source == "log":
            console.print(
                "key from the log itself: this proves self-consistency only; pass the node's "
                "published key with --pubkey",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )


@app.command()
def prove(
    log: str = LOG,
    index: int = typer.Option(..., "--index", min=0),
    size: int | None = typer.Option(None, "--size", help="Tree size (default: latest)."),
    json_out: bool = JSON,
) -> None:
    """Print the RFC 6962 inclusion proof of entry INDEX."""
    with _read(log) as lg:
        current = lg.size()
        if size is not None and not 1 <= size <= current:
            raise InputError(f"--size {size}: the log has {current} entries")
        tree = current if size is None else size
        if index >= tree:
            raise InputError(f"--index {index}: the tree of size {tree} has entries 0…{tree - 1}")
        proof = lg.prove(index, size)
    if json_out:
        emit_json(proof.to_json())
    else:
        console.print(
            f"entry {index} in tree {proof.tree_size}: root {proof.root_hash.hex()}, "
            f"{len(proof.hashes)} hashes"
        )


PROOF_FIELDS = ("leaf_index", "tree_size", "leaf_hash", "root_hash", "hashes")


def _hash32(value: object, what: str) -> bytes:
    """A SHA-256 hash given as 64 hex digits (exit 2 otherwise)."""
    if not isinstance(value, str) or len(value) != 64:
        shown = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
        raise InputError(f"{what} must be 64 hex digits (a SHA-256 hash), got {shown}")
    if not all(c in string.hexdigits for c in value):  # fromhex() would skip whitespace
        raise InputError(f"{what} must be 64 hex digits (a SHA-256 hash): not hex")
    return bytes.fromhex(value)


def _count(obj: dict[str, object], name: str) -> int:
    value = obj[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputError(f"proof field {name} must be a non-negative integer, got {value!r}")
    return value


def parse_proof(raw: bytes) -> tuple[int, int, bytes, bytes, list[bytes]]:
    """The fields of a ``prove --json`` document, strictly checked (InputError otherwise)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"the proof is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InputError(f"the proof must be a JSON object with {', '.join(PROOF_FIELDS)}")
    missing = [k for k in PROOF_FIELDS if k not in obj]
    if missing:
        raise InputError(f"the proof lacks {', '.join(missing)}")
    index, size = _count(obj, "leaf_index"), _count(obj, "tree_size")
    if index >= size:
        raise InputError(f"leaf_index {index} is not inside a tree of size {size}")
    if not isinstance(obj["hashes"], list):
        raise InputError("proof field hashes must be a list of hex hashes")
    hashes = [_hash32(h, f"hashes[{k}]") for k, h in enumerate(obj["hashes"])]
    return (
        index,
        size,
        _hash32(obj["leaf_hash"], "leaf_hash"),
        _hash32(obj["root_hash"], "root_hash"),
        hashes,
    )


@app.command("check-proof")
def check_proof(
    proof_file: Path = typer.Argument(..., help="Proof JSON file, or - for stdin."),
    root: str | None = typer.Option(None, "--root", help="Expected root (hex)."),
    entry: Path | None = typer.Option(None, "--entry", help="Entry bytes file."),
    checkpoint_note: Path | None = typer.Option(
        None, "--checkpoint", help="The log's signed checkpoint (note file) to anchor the root."
    ),
    pubkey: Path | None = PUBKEY,
    origin: str | None = typer.Option(
        None, "--origin", help="The log the checkpoint must be of (its origin line)."
    ),
    json_out: bool = JSON,
) -> None:
    """Verify an inclusion proof JSON (as printed by 'prove --json') offline.

    Anchor it with --checkpoint NOTE --pubkey PEM: the root is then the one the log signed.

    With --origin ORIGIN the checkpoint must be of that log (one key may sign several).

    Without an anchor only the proof's own consistency is shown.
    """
    raw = sys.stdin.buffer.read() if str(proof_file) == "-" else _read_bytes(proof_file)
    index, size, leaf, root_hash, hashes = parse_proof(raw)
    expected = _hash32(root.lower(), "--root") if root is not None else None
    if (checkpoint_note is None) != (pubkey is None):
        raise InputError("--checkpoint and --pubkey go together (the note and the log's key)")
    if origin is not None and checkpoint_note is None:
        raise InputError("--origin checks the origin of a --checkpoint: give one with --pubkey")
    anchor = cp_origin = None
    if checkpoint_note is not None:
        key = _pubkey(pubkey)
        assert key is not None
        note = _read_text(checkpoint_note)
        cp, sigs = parse_note(note)
        names = [n for n, _blob in sigs]
        for name in names:
            try:
                verify_note(note, name, key)
            except SignatureError:
                continue
            anchor = f"signed checkpoint of {cp.origin} by {name}"
            break
        else:
            raise SignatureError(
                f"the checkpoint carries no valid signature by the given key ({names})"
            )
        if origin is not None and cp.origin != origin:
            raise merkle.ProofError(
                f"the checkpoint is of log {cp.origin!r}, not of {origin!r} (--origin): the "
                "same key signs it, but the proof would be anchored in another log"
            )
        cp_origin = cp.origin
        if cp.size != size or cp.root != root_hash:
            raise merkle.ProofError(
                f"the proof is for tree size {size}, root {root_hash.hex()[:16]}…, but the "
                f"checkpoint is of size {cp.size}, root {cp.root.hex()[:16]}…: ask for a proof "
                f"in that tree (prove --size {cp.size})"
            )
    if entry is not None and merkle.leaf_hash(_read_bytes(entry)) != leaf:
        raise merkle.ProofError("the entry does not hash to the proof's leaf hash")
    if expected is not None and expected != root_hash:
        raise merkle.ProofError("the proof is for another root than the one expected (--root)")
    merkle.verify_inclusion(index, size, leaf, hashes, root_hash)
    if json_out:
        emit_json(
            {
                "verified": True,
                "leaf_index": index,
                "tree_size": size,
                "root_hash": root_hash.hex(),
                "anchor": anchor or ("--root" if expected is not None else None),
                "origin": cp_origin,
                "origin_checked": origin is not None,
                "entry_checked": entry is not None,
            }
        )
        return
    msg = f"ok: entry {index} is in the tree of size {size} with root {root_hash.hex()}"
    if anchor is not None:
        msg += f"; root anchored: {anchor}"
        msg += (
            f" (origin {cp_origin} as required by --origin)"
            if origin is not None
            else " (origin not checked: pass --origin ORIGIN to require this log)"
        )
    elif expected is not None:
        msg += "; root anchored only by the --root you gave"
    else:
        msg += (
            "; root not anchored: this shows only that the proof is self-consistent — pass "
            "--checkpoint NOTE --pubkey PEM to check it against the log's signed checkpoint"
        )
    if entry is None:
        msg += " (entry bytes not checked: --entry FILE)"
    console.print(msg, highlight=False, markup=False, soft_wrap=True)


@app.command()
def consistency(
    log: str = LOG,
    old: int = typer.Option(..., "--old", min=0),
    new: int | None = typer.Option(None, "--new"),
) -> None:
    """Print a consistency proof between two tree sizes (JSON)."""
    with _read(log) as lg:
        current = lg.size()
        new_size = current if new is None else new
        if not 0 <= new_size <= current:
            raise InputError(f"--new {new_size}: the log has {current} entries")
        if old > new_size:
            raise InputError(f"--old {old} is larger than the new size {new_size}")
        proof = lg.consistency(old, new_size)
        emit_json(
            {
                "old_size": old,
                "new_size": new_size,
                "old_root": lg.root(old).hex(),
                "new_root": lg.root(new_size).hex(),
                "hashes": [h.hex() for h in proof],
            }
        )


@app.command()
def checkpoint(
    log: str = LOG,
    key_dir: Path | None = KEY_DIR,
    key_label: str = KEY_LABEL,
    passphrase: str | None = PASSPHRASE,
) -> None:
    """Sign a checkpoint of the current tree and print the signed note."""
    signer = _signer(key_dir, key_label, passphrase)
    with _open(log, signer) as lg:
        sys.stdout.write(lg.checkpoint(now=datetime.now(UTC)))


@app.command("witness")
def witness_cmd(
    log: list[str] = typer.Option(..., "--log", help="Log(s) to witness."),
    log_key: list[str] = typer.Option(..., "--log-key", help="NAME=PEM log key."),
    name: str = typer.Option(..., "--name", help="This witness's key name."),
    state: Path = typer.Option(..., "--state", help="Witness state file (JSON)."),
    key_dir: Path | None = KEY_DIR,
    key_label: str = KEY_LABEL,
    passphrase: str | None = PASSPHRASE,
) -> None:
    """Check each log's latest checkpoint against what this witness saw, then co-sign it.

    --log is a log file/DSN or the URL of 'lienthong audit serve'.
    """
    keys = _named_keys(log_key)
    wit = Witness(name, _signer(key_dir, key_label, passphrase), WitnessState(state))
    for target in log:
        if target.startswith(("http://", "https://")):
            source = HttpLogSource(target)
            try:
                signers = [n for n, _blob in parse_note(source.latest_note())[1]]
                known = [n for n in signers if n in keys]
                if not known:
                    raise InputError(f"{target}: no --log-key for any of {signers}")
                wit.witness(source, known[0], keys[known[0]])
            finally:
                source.close()
            console.print(f"co-signed {target}")
            continue
        with _open(target) as lg:
            if lg.key_name not in keys:
                raise InputError(f"no --log-key for {lg.key_name}")
            wit.witness(LocalLogSource(lg), lg.key_name, keys[lg.key_name])
            console.print(f"co-signed {lg.origin}")


@app.command()
def serve(
    log: str = LOG,
    host: str = typer.Option("127.0.0.1", "--host", help="Listen address."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Listen port."),
    witness: list[str] = typer.Option(
        [], "--witness", help="NAME=PEM of a witness whose co-signatures are accepted."
    ),
) -> None:
    """Serve the log to witnesses and auditors (checkpoint, proofs, co-signatures)."""
    import uvicorn

    from lienthong.cli.listen import check_listen

    witnesses = _named_keys(witness)
    with _open(log) as lg:
        check_listen(host, port)  # a bad address or a busy port: one line, exit 2
        uvicorn.run(log_app(lg, witnesses), host=host, port=port, log_level="warning")


@app.command("access-history")
def access_history_cmd(
    person: str = typer.Option(..., "--person", help="Personal ID number."),
    log: list[str] = LOG,
    person_key: str = typer.Option(
        ..., "--person-key", help="Federation person key: env:NAME|file:PATH."
    ),
    log_key: list[str] = typer.Option(
        [], "--log-key", help="NAME=PEM: a node's published key (else the key in its log)."
    ),
    checkpoint_notes: list[str] = typer.Option(
        [],
        "--checkpoint",
        help="NAME=NOTE: a signed checkpoint of the log with key name NAME kept elsewhere.",
    ),
    witness_state: list[Path] = typer.Option(
        [], "--witness-state", help="A witness's state file: its last checkpoint of each log."
    ),
    archive_files: list[Path] = typer.Option(
        [],
        "--archive",
        help="An archive file (.ltar.xz, its .sig beside it) of a log given: verified, its "
        "accesses listed and covered by the completeness statement.",
    ),
    json_out: bool = JSON,
) -> None:
    """Who accessed a citizen's data, when, why — with proofs and a completeness statement.

    A checkpoint kept outside a log (--checkpoint, --witness-state) shows a rollback.

    Archived entries are checked only in the archive files given (--archive).
    """
    checked = check_personal_id(person)
    if checked.value is None:
        why = "; ".join(r.message for r in checked.reasons if r.severity == "error")
        raise InputError(f"--person: not a valid personal ID (số định danh cá nhân): {why}")
    person = checked.value
    key = resolve_secret(person_key, what="person key")
    keys = _named_keys(log_key)
    anchors: dict[str, list[tuple[str, str]]] = {}
    for spec in checkpoint_notes:
        name, path = _named(spec, "NOTE")
        anchors.setdefault(name, []).append((f"the checkpoint in {path}", _read_text(path)))
    logs = [_read(t) for t in log]
    try:
        names = {lg.origin: lg.key_name for lg in logs}
        for state in witness_state:
            for origin, note in _witness_notes(state, list(names)).items():
                anchors.setdefault(names[origin], []).append((f"the witness state {state}", note))
        result = access_history(logs, person, key, keys, anchors, archive_files)
    finally:
        for lg in logs:
            lg.close()
    if json_out:
        emit_json(result)
        return
    for a in result["accesses"]:
        source = f", archive {a['archive']}" if a["archive"] is not None else ""
        console.print(
            f"{a['at']}  {a['requester']}  {a['service']}  purpose: {a['purpose']} "
            f"({a['legal_basis']})  [{a['log']} #{a['index']}{source}]",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if not result["accesses"]:
        console.print(
            "no recorded access in the proven ranges", highlight=False, markup=False, soft_wrap=True
        )
    for h in result["logs"]:
        c = h["completeness"]
        if c["archived_accesses_unchecked"]:
            ranges = ", ".join(f"[{a}, {b})" for a, b in c["unchecked_ranges"])
            console.print(
                f"{c['archived_accesses_unchecked']} more access(es) in archived entries "
                f"{ranges} of {h['origin']}, not checked here: pass the archive files "
                f"{', '.join(a['file'] for a in c['archives'] if not a['checked'])} "
                "with --archive",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        console.print(c["statement"], highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"person key {result['person_key_id']} (a wrong key finds nobody: compare this "
        "fingerprint with the federation's)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command()
def archive(
    log: str = LOG,
    out: Path = typer.Option(..., "--out", help="Archive directory."),
    upto: int = typer.Option(..., "--upto", help="Archive entries before this index."),
    keep: bool = typer.Option(False, "--keep", help="Do not prune the live store."),
    key_dir: Path | None = KEY_DIR,
    key_label: str = KEY_LABEL,
    passphrase: str | None = PASSPHRASE,
) -> None:
    """Export the next segment to a signed, chained .ltar.xz archive and prune it."""
    signer = _signer(key_dir, key_label, passphrase)
    with _open(log, signer) as lg:
        path = archive_segment(lg, out, upto, now=datetime.now(UTC), prune=not keep)
    console.print(f"wrote {path}")


@app.command("verify-archive")
def verify_archive_cmd(
    archives: list[Path] = typer.Argument(..., help="Archive files."),
    pubkey: Path = typer.Option(..., "--pubkey"),
    key_name: str = typer.Option(..., "--key-name"),
) -> None:
    """Verify archive files offline (signatures, entries, hash chain)."""
    key = _pubkey(pubkey)
    assert key is not None
    emit_json(verify_archives(list(archives), key_name, key))


@app.command()
def export(
    log: str = LOG,
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or cef."),
    syslog: bool = typer.Option(False, "--syslog", help="RFC 5424 header (cef)."),
    since: int = typer.Option(0, "--since", min=0, help="First entry index."),
) -> None:
    """Stream security events for the monitoring centre."""
    if fmt not in ("jsonl", "cef"):
        raise InputError(f"--format must be jsonl or cef, not {fmt!r}")
    with _read(log) as lg:
        for event in security_events(lg, since):
            line = to_jsonl(event) if fmt == "jsonl" else to_cef(event)
            if syslog and fmt == "cef":
                line = to_syslog(line, event)
            sys.stdout.write(line + "\n")
