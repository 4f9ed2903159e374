"""``lienthong ca``: certification authority, enrolment, revocation, status and time-stamps.

Secrets are given as references only: ``--passphrase env:NAME`` or ``--passphrase file:PATH``
(likewise ``--pin``); the secret itself never appears on the command line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from cryptography.hazmat.primitives import serialization

from lienthong.cli.output import console, emit_json
from lienthong.errors import CertificateError, InputError
from lienthong.trust.ca import CertificateAuthority, LocalStatusSource
from lienthong.trust.client import TrustServiceClient
from lienthong.trust.enrol import make_csr, read_csr
from lienthong.trust.identity import identity_of, parse_identity
from lienthong.trust.keys import Algorithm, public_key_to_pem
from lienthong.trust.keystore import open_keystore
from lienthong.trust.ocsp import CertStatus, build_request, verify_response
from lienthong.trust.profiles import Profile
from lienthong.trust.revocation import check_not_revoked, load_crl, verify_crl
from lienthong.trust.secrets import parse_secret_ref
from lienthong.trust.x509 import (
    Usage,
    build_chain,
    load_certificate,
    load_certificates,
    load_csr,
    verify_chain,
)

app = typer.Typer(
    help="Certification authority for official-use signatures (chữ ký số "
    "chuyên dùng công vụ): keys, certificates, revocation, status, time-stamps.",
    no_args_is_help=True,
)

PEM = serialization.Encoding.PEM
DirOpt = typer.Option(..., "--dir", help="CA directory.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object.")
PassOpt = typer.Option(
    "env:LIENTHONG_CA_PASSPHRASE",
    "--passphrase",
    help="Key-store passphrase REFERENCE: env:NAME or file:PATH.",
)
ModuleOpt = typer.Option(None, "--pkcs11-module", help="PKCS#11 library (HSM key store).")
TokenOpt = typer.Option(None, "--token", help="PKCS#11 token label.")
PinOpt = typer.Option("env:LIENTHONG_HSM_PIN", "--pin", help="HSM user PIN REFERENCE.")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _check_output(path: Path, what: str) -> None:
    """Refuse an output path that cannot be written, before anything is recorded."""
    if path == Path(""):
        raise InputError(f"{what}: the output path is empty")
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; give a file name")
    parent = path.parent
    if not parent.exists():
        raise InputError(f"cannot write {what} {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"cannot write {what} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {what} {path}: directory {parent} is not writable")


@contextlib.contextmanager
def _reserved_output(path: Path, what: str) -> Iterator[Any]:
    """Open a temporary file beside ``path`` BEFORE the work that records state.

    The caller writes into the yielded file; on success it is renamed onto ``path`` (atomic),
    on any error it is removed — so an unwritable ``--out`` fails before the CA records
    anything, and a failure never leaves half a file.
    """
    _check_output(path, what)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write {what} {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _spec(
    keys_dir: str, passphrase: str, module: str | None, token: str | None, pin: str
) -> dict[str, Any]:
    if module or token:
        return {
            "type": "pkcs11",
            "module": module or "",
            "token": token or "",
            "pin": parse_secret_ref(pin, what="--pin"),
        }
    return {
        "type": "file",
        "dir": keys_dir,
        "passphrase": parse_secret_ref(passphrase, what="--passphrase"),
    }


def _report(json_out: bool, data: Any, text: str, **print_kw: Any) -> None:
    """One JSON object for machines, or one line of text for people."""
    if json_out:
        emit_json(data)
    else:
        console.print(text, highlight=False, soft_wrap=True, **print_kw)


def _cert_info(cert: Any, path: Path | None = None) -> dict[str, Any]:
    try:
        ident: str | None = str(identity_of(cert))
    except CertificateError:
        ident = None
    return {
        "serial": f"{cert.serial_number:x}",
        "subject": cert.subject.rfc4514_string(),
        "identity": ident,
        "not_after": cert.not_valid_after_utc.isoformat(),
        "path": str(path) if path else None,
    }


@app.command()
def init(
    directory: Path = DirOpt,
    algorithm: str = typer.Option("ECDSA-P256", "--algorithm", help="ECDSA-P256 or ML-DSA-65."),
    intermediate: bool = typer.Option(
        True, "--intermediate/--no-intermediate", help="Issue leaves from an intermediate CA."
    ),
    name: str = typer.Option("Lienthong Root CA", "--name", help="Root CA common name."),
    days: int = typer.Option(3650, "--days", min=1, max=36500, help="Root validity."),
    passphrase: str = PassOpt,
    pkcs11_module: str | None = ModuleOpt,
    token: str | None = TokenOpt,
    pin: str = PinOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Create a CA: root (± intermediate), status responder and time-stamping keys."""
    spec = _spec("keys", passphrase, pkcs11_module, token, pin)
    ca = CertificateAuthority.init(
        directory,
        keystore_spec=spec,
        now=_now(),
        algorithm=Algorithm.parse(algorithm),
        intermediate=intermediate,
        name=name,
        days=days,
    )
    result = {
        "dir": str(directory),
        "algorithm": ca.algorithm.value,
        "bundle": str(ca.bundle_path),
        "root": _cert_info(ca.root),
        "issuer": _cert_info(ca.issuer),
    }
    _report(
        json_out,
        result,
        f"CA created in {directory} ({ca.algorithm.value}); trust bundle {ca.bundle_path}",
    )


@app.command()
def keygen(
    keystore_dir: Path = typer.Option(
        Path("keys"), "--keystore-dir", help="Directory of the encrypted-file key store."
    ),
    label: str = typer.Option(..., "--label", help="Key label."),
    algorithm: str = typer.Option("ECDSA-P256", "--algorithm"),
    passphrase: str = PassOpt,
    pkcs11_module: str | None = ModuleOpt,
    token: str | None = TokenOpt,
    pin: str = PinOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Generate a key pair in a key store (agency side); prints the public key."""
    store = open_keystore(_spec(str(keystore_dir), passphrase, pkcs11_module, token, pin))
    signer = store.generate(label, Algorithm.parse(algorithm))
    pem = public_key_to_pem(signer.public_key()).decode()
    _report(
        json_out,
        {"label": label, "algorithm": signer.algorithm.value, "public_key": pem},
        pem,
        end="",
    )


@app.command()
def csr(
    keystore_dir: Path = typer.Option(Path("keys"), "--keystore-dir"),
    label: str = typer.Option(..., "--label", help="Key label in the store."),
    identity: str = typer.Option(
        ..., "--identity", help="INSTANCE/CLASS/MEMBER\\[/SUBSYSTEM], e.g. VN/GOV/G01.BCA"
    ),
    common_name: str | None = typer.Option(None, "--cn", help="Gateway name (TLS)."),
    dns: list[str] = typer.Option([], "--dns", help="DNS subjectAltName (repeatable)."),
    ip: list[str] = typer.Option([], "--ip", help="IP subjectAltName (repeatable)."),
    out: Path = typer.Option(..., "--out", help="Where to write the CSR (PEM)."),
    passphrase: str = PassOpt,
    pkcs11_module: str | None = ModuleOpt,
    token: str | None = TokenOpt,
    pin: str = PinOpt,
) -> None:
    """Write a CSR for an identity, signed by a key in the store (proof of possession)."""
    _check_output(out, "CSR")
    store = open_keystore(_spec(str(keystore_dir), passphrase, pkcs11_module, token, pin))
    request = make_csr(
        store.signer(label),
        parse_identity(identity),
        common_name=common_name,
        dns_names=dns,
        ip_addresses=ip,
    )
    with _reserved_output(out, "CSR") as fh:
        fh.write(request.public_bytes(PEM))
    console.print(f"CSR written to {out}")


@app.command()
def issue(
    directory: Path = DirOpt,
    csr_file: Path = typer.Option(..., "--csr", help="CSR file (PEM or DER)."),
    profile: str = typer.Option(..., "--profile", help="signing or tls."),
    days: int | None = typer.Option(None, "--days", min=1, max=3650),
    dns: list[str] = typer.Option([], "--dns", help="Extra DNS SAN (tls)."),
    ip: list[str] = typer.Option([], "--ip", help="Extra IP SAN (tls)."),
    out: Path = typer.Option(..., "--out", help="Where to write the certificate (PEM)."),
    expect: str | None = typer.Option(
        None, "--expect-identity", help="Refuse unless the CSR names exactly this identity."
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Issue a certificate from a CSR (identity taken from the CSR and validated)."""
    request = load_csr(_read(csr_file, "CSR"), source=str(csr_file))
    if expect is not None:
        named = read_csr(request).identity
        if named != parse_identity(expect):
            raise InputError(f"{csr_file} names {named}, not the expected {expect}")
    ca = CertificateAuthority.open(directory)
    use = Profile.parse(profile)
    # The output file is reserved before the CA records the certificate in its index: an
    # unwritable --out fails here, with nothing issued.
    with _reserved_output(out, "certificate") as fh:
        cert = ca.issue(
            request,
            profile=use,
            now=_now(),
            days=days,
            dns_names=dns,
            ip_addresses=ip,
        )
        fh.write(cert.public_bytes(PEM))
    _report(
        json_out,
        _cert_info(cert, out),
        f"issued {profile} certificate {cert.serial_number:x} for {identity_of(cert)} → {out}",
    )


@app.command()
def revoke(
    directory: Path = DirOpt,
    serial: str = typer.Argument(..., help="Serial (hex)."),
    reason: str = typer.Option("unspecified", "--reason", help="e.g. keyCompromise."),
    json_out: bool = JsonOpt,
) -> None:
    """Revoke a certificate and publish a fresh CRL."""
    ca = CertificateAuthority.open(directory)
    cert = ca.revoke(serial, reason, _now())
    _report(
        json_out,
        {"revoked": f"{cert.serial_number:x}", "reason": reason},
        f"revoked {cert.serial_number:x} ({reason}); CRL republished",
    )


@app.command()
def crl(directory: Path = DirOpt, json_out: bool = JsonOpt) -> None:
    """Publish a fresh CRL (crl.pem in the CA directory)."""
    ca = CertificateAuthority.open(directory)
    published = ca.publish_crl(_now())
    info = {
        "path": str(ca.directory / "crl.pem"),
        "revoked": len(list(published)),
        "next_update": published.next_update_utc.isoformat() if published.next_update_utc else None,
    }
    _report(json_out, info, f"CRL: {info}")


@app.command()
def renew(directory: Path = DirOpt, json_out: bool = JsonOpt) -> None:
    """Renew the status-responder and TSA certificates (same keys, fresh validity)."""
    certs = CertificateAuthority.open(directory).renew_service_certificates(_now())
    _report(
        json_out,
        {"renewed": [_cert_info(c) for c in certs]},
        "renewed: " + ", ".join(f"{c.serial_number:x}" for c in certs),
    )


@app.command("list")
def list_certificates(
    directory: Path = DirOpt,
    expiring_days: int | None = typer.Option(
        None, "--expiring-within", min=0, help="Only good certificates expiring within N days."
    ),
    json_out: bool = JsonOpt,
) -> None:
    """List the certificates this CA issued (serial, profile, identity, expiry, status)."""
    records = CertificateAuthority.open(directory).status_records()
    now = _now()
    rows = []
    for serial, rec in sorted(records.items(), key=lambda kv: kv[1]["not_after"]):
        left = (dt.datetime.fromisoformat(rec["not_after"]) - now).days
        if expiring_days is not None and (rec["status"] != "good" or left > expiring_days):
            continue
        rows.append(
            {
                "serial": serial,
                "profile": rec["profile"],
                "identity": rec["identity"],
                "subject": rec["subject"],
                "not_after": rec["not_after"],
                "days_left": left,
                "status": rec["status"],
            }
        )
    if json_out:
        emit_json({"certificates": rows})
        return
    for row in rows:
        console.print(
            f"{row['serial']}  {row['profile']:<8} {row['status']:<8} "
            f"{row['days_left']:>5} d  {row['identity'] or row['subject']}",
            highlight=False,
        )


@app.command()
def status(
    cert_file: Path = typer.Option(..., "--cert", help="Certificate to check."),
    directory: Path | None = typer.Option(None, "--dir", help="Ask the CA directory..."),
    url: str | None = typer.Option(None, "--url", help="...or the status service at URL."),
    issuer_file: Path | None = typer.Option(None, "--issuer", help="Issuer cert (with --url)."),
    json_out: bool = JsonOpt,
) -> None:
    """Ask for a signed status answer (OCSP) and verify it."""
    cert = load_certificate(_read(cert_file, "certificate"), source=str(cert_file))
    if (directory is None) == (url is None):
        raise InputError("give exactly one of --dir or --url")
    if directory is not None:
        ca = CertificateAuthority.open(directory)
        issuer = ca.issuer
        der = LocalStatusSource(ca, _now).fetch(build_request(cert, issuer))
    else:
        if issuer_file is None:
            raise InputError("--url needs --issuer (the issuing CA certificate)")
        issuer = load_certificate(_read(issuer_file, "issuer"), source=str(issuer_file))
        with TrustServiceClient(str(url)) as client:
            der = client.fetch(build_request(cert, issuer))
    answer = verify_response(der, cert=cert, issuer=issuer, now=_now())
    _report(
        json_out,
        answer.to_dict(),
        f"{answer.status.value} (next update {answer.next_update.isoformat()})",
    )
    if answer.status is not CertStatus.GOOD:  # revoked or unknown: not usable
        raise typer.Exit(1)


@app.command()
def verify(
    cert_file: Path = typer.Option(..., "--cert"),
    bundle: Path = typer.Option(..., "--bundle", help="Trusted root(s) + intermediates PEM."),
    usage: str = typer.Option(
        "any", "--usage", help="any, signing, tls-server, tls-client, timestamping, ocsp-signing."
    ),
    crl_file: Path | None = typer.Option(
        None,
        "--crl",
        help="CRL to check revocation against (default: crl.pem beside the bundle, if any).",
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Verify a certificate chain and, with a CRL, its revocation (exit 1 with the reason).

    Without a CRL only the chain is checked, and the output says so.
    """
    cert = load_certificate(_read(cert_file, "certificate"), source=str(cert_file))
    certs = load_certificates(_read(bundle, "bundle"), source=str(bundle))
    roots = [c for c in certs if c.subject == c.issuer]
    try:
        use = Usage(usage)
    except ValueError:
        raise InputError(f"unknown usage {usage!r}") from None
    now = _now()
    intermediates = [c for c in certs if c not in roots]
    verify_chain(cert, intermediates=intermediates, roots=roots, now=now, usage=use)
    if crl_file is None and (bundle.parent / "crl.pem").is_file():
        crl_file = bundle.parent / "crl.pem"
    if crl_file is not None:
        crl = load_crl(_read(crl_file, "CRL"), source=str(crl_file))
        issuer = build_chain(cert, intermediates=intermediates, roots=roots, now=now)[1:2]
        try:
            verify_crl(crl, issuer=issuer[0] if issuer else cert, now=now)
        except CertificateError as exc:
            raise CertificateError(
                f"{crl_file}: {exc.message} (publish a fresh one: lienthong ca crl)",
                code=exc.code,
                **exc.details,
            ) from exc
        check_not_revoked(crl, cert)
        revocation, note = str(crl_file), f"chain and revocation (CRL {crl_file})"
    else:
        revocation = None
        note = "chain only: revocation not checked (give --crl, or use lienthong ca status)"
    _report(
        json_out,
        {"ok": True, "revocation_checked_with": revocation, **_cert_info(cert, cert_file)},
        f"{cert_file}: OK — {note}",
    )


@app.command()
def timestamp(
    directory: Path = DirOpt,
    file: Path = typer.Option(..., "--file", help="Data to stamp."),
    out: Path = typer.Option(..., "--out", help="Token (DER) output."),
) -> None:
    """Time-stamp a file's SHA-256 with the CA's TSA (RFC 3161 token)."""
    _check_output(out, "time-stamp token")
    data = _read(file, "file")
    tsa = CertificateAuthority.open(directory).timestamp_authority()
    with _reserved_output(out, "time-stamp token") as fh:
        fh.write(tsa.timestamp(hashlib.sha256(data).digest()))
    console.print(f"time-stamp token written to {out}")


@app.command()
def serve(
    directory: Path = DirOpt,
    port: int = typer.Option(8650, "--port", min=1, max=65535),
    host: str = typer.Option("127.0.0.1", "--host", help="Listen address."),
) -> None:
    """Serve status (OCSP), CRL, CA bundle and time-stamps over HTTP."""
    from lienthong.cli.listen import check_listen
    from lienthong.trust.service import serve as run

    CertificateAuthority.open(directory)  # a missing or broken CA directory: one line, now
    check_listen(host, port)
    run(directory, host=host, port=port)
