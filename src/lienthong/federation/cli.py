"""``lienthong federation``: edit, validate, publish, fetch and serve the global configuration."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import typer
import yaml

from lienthong.cli.output import console, emit_json
from lienthong.errors import ConfigError, InputError
from lienthong.federation import edit_cli
from lienthong.federation.confverify import verify_configuration
from lienthong.federation.globalconf import MAX_VERSION, GlobalConfiguration
from lienthong.federation.loader import load_registry
from lienthong.federation.model import Registry
from lienthong.federation.publish import parse_duration, publish
from lienthong.federation.sample import sample_registry, starter_registry
from lienthong.federation.store import Anchor, ConfigStore
from lienthong.federation.validate import warnings_of
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.identity import parse_identity
from lienthong.trust.keys import Signer
from lienthong.trust.keystore import FileKeyStore, open_keystore
from lienthong.trust.secrets import parse_secret_ref
from lienthong.trust.x509 import load_certificate, load_certificates

app = typer.Typer(
    help="Federation registry and signed global configuration (cấu hình toàn cục).",
    no_args_is_help=True,
)
JSON = typer.Option(False, "--json", help="Print one JSON object.")
# Last published version per instance, kept beside the CA that signs the configuration.
PUBLISHED_RECORD = "published-globalconf.json"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def summary(reg: Registry) -> dict[str, int]:
    return {
        "members": len(reg.members),
        "subsystems": sum(len(m.subsystems) for m in reg.members),
        "services": len(reg.services),
        "access_rights": len(reg.access),
        "platforms": len(reg.platforms),
        "groups": len(reg.groups),
    }


@app.command()
def init(
    file: Path = typer.Argument(Path("federation.yaml"), help="File to create (YAML)."),
    instance: str = typer.Option("VN", "--instance", help="Federation instance code."),
    sample: bool = typer.Option(False, "--sample", help="Write the six-agency sample instead."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a starter declarative registry file to edit."""
    if file.suffix.lower() not in (".yaml", ".yml"):
        raise InputError(f"{file}: init writes YAML (.yaml); TOML is accepted by validate/publish")
    if file.exists() and not force:
        raise InputError(f"{file} exists; use --force to overwrite")
    doc = sample_registry(instance) if sample else starter_registry(instance)
    header = (
        "# lienthong federation registry — edit, then `lienthong federation validate "
        f"{file.name}`\n# Format: docs/federation.md\n"
    )
    file.write_text(
        header + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    console.print(f"wrote {file}")


@app.command()
def validate(
    file: Path = typer.Argument(..., help="Registry file (.yaml, .toml)."), json_out: bool = JSON
) -> None:
    """Check a registry file; list every problem at once (exit 2 when there is any)."""
    try:
        reg = load_registry(file)
    except ConfigError as exc:
        problems = exc.details.get("problems", [exc.message])
        if json_out:
            emit_json({"valid": False, "problems": problems})
        else:
            for line in problems:
                prefix = "" if str(line).startswith(f"{file}:") else f"{file}: "
                typer.echo(f"{prefix}{line}", err=True)
            if len(problems) > 1:
                typer.echo(f"{len(problems)} problems", err=True)
        raise typer.Exit(2) from None
    warnings = warnings_of(reg)
    if json_out:
        emit_json({"valid": True, **summary(reg), "warnings": warnings})
        return
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    counts = ", ".join(f"{v} {k}" for k, v in summary(reg).items())
    console.print(f"{file}: valid ({counts})", highlight=False)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _file_signer(key: Path, passphrase: str) -> Signer:
    if not key.name.endswith(".key.pem"):
        raise InputError(f"--key {key}: expected an encrypted key file named LABEL.key.pem")
    if not key.is_file():
        raise InputError(f"--key {key}: no such key file")
    return FileKeyStore(key.parent, passphrase).signer(key.name.removesuffix(".key.pem"))


def _hsm_signer(module: str, token: str | None, pin: str, label: str) -> Signer:
    spec = {
        "type": "pkcs11",
        "module": module,
        "token": token or "",
        "pin": parse_secret_ref(pin, what="--pin"),
    }
    return open_keystore(spec).signer(label)


@app.command(name="publish")
def publish_cmd(
    file: Path = typer.Argument(..., help="Registry file (.yaml, .toml)."),
    ca_dir: Path = typer.Option(..., "--ca-dir", help="CA directory (root/intermediate)."),
    cert: Path = typer.Option(..., "--cert", help="Operator signing certificate (PEM)."),
    key: Path | None = typer.Option(None, "--key", help="Operator key file (LABEL.key.pem)."),
    passphrase: str = typer.Option(
        "env:LIENTHONG_KEY_PASSPHRASE",
        "--passphrase",
        help="Key passphrase reference: env:NAME or file:PATH.",
    ),
    pkcs11_module: str | None = typer.Option(
        None, "--pkcs11-module", help="…or the operator key in an HSM: PKCS#11 library."
    ),
    token: str | None = typer.Option(None, "--token", help="PKCS#11 token label."),
    pin: str = typer.Option("env:LIENTHONG_HSM_PIN", "--pin", help="HSM PIN reference."),
    label: str = typer.Option("signing", "--label", help="Key label in the HSM."),
    pq_key: Path | None = typer.Option(None, "--pq-key", help="Extra ML-DSA-65 key file."),
    pq_cert: Path | None = typer.Option(None, "--pq-cert", help="Its certificate."),
    out: Path = typer.Option(Path("globalconf.json"), "--out", help="Signed document to write."),
    version: int | None = typer.Option(
        None,
        "--version",
        min=1,
        max=MAX_VERSION,
        help="Version (default: last published + 1; at most that).",
    ),
    allow_version_jump: bool = typer.Option(
        False,
        "--allow-version-jump",
        help="Allow --version to skip versions (gateways then refuse all below it).",
    ),
    valid_for: str = typer.Option("7d", "--valid-for", help="Validity, e.g. 7d, 36h."),
    json_out: bool = JSON,
) -> None:
    """Validate FILE and publish it as a signed, versioned global configuration."""
    reg = load_registry(file)
    ca = CertificateAuthority.open(ca_dir)
    if (key is None) == (pkcs11_module is None):
        raise InputError("give the operator key as --key FILE or --pkcs11-module (HSM)")
    if (pq_key is None) != (pq_cert is None):
        raise InputError("give both --pq-key and --pq-cert, or neither")
    main_signer = (
        _file_signer(key, passphrase)
        if key is not None
        else _hsm_signer(str(pkcs11_module), token, pin, label)
    )
    signers = [
        (
            main_signer,
            [load_certificate(_read(cert, "--cert"), source=str(cert)), *ca.intermediates],
        )
    ]
    if pq_key is not None and pq_cert is not None:
        signers.append(
            (
                _file_signer(pq_key, passphrase),
                [
                    load_certificate(_read(pq_cert, "--pq-cert"), source=str(pq_cert)),
                    *ca.intermediates,
                ],
            )
        )
    now = _now()
    v, expires = publish(
        reg,
        out=out,
        signers=signers,
        roots=[ca.root],
        intermediates=ca.intermediates,
        now=now,
        valid_for=parse_duration(valid_for),
        version=version,
        allow_version_jump=allow_version_jump,
        record=ca_dir / PUBLISHED_RECORD,
    )
    result = {
        "out": str(out),
        "version": v,
        "issued_at": now.isoformat(),
        "expires_at": expires.isoformat(),
        **summary(reg),
    }
    if json_out:
        emit_json(result)
    else:
        console.print(
            f"published version {v} to {out}, valid until {expires:%Y-%m-%d %H:%M}Z",
            highlight=False,
        )


def _describe(config: GlobalConfiguration) -> dict[str, object]:
    reg = config.registry
    return {
        "version": config.version,
        "instance": config.instance,
        "issued_at": config.issued_at.isoformat(),
        "expires_at": config.expires_at.isoformat(),
        "signed_by": list(config.signed_by),
        "digest": config.digest,
        **summary(reg),
        "platforms_tree": {p.code: p.parent for p in reg.platforms},
        "member_list": [
            {"id": str(m.id), "name": m.name, "platform": m.platform} for m in reg.members
        ],
    }


@app.command()
def show(
    source: Path = typer.Argument(..., help="A node's globalconf directory or a signed file."),
    ca_bundle: Path | None = typer.Option(
        None, "--ca-bundle", help="Trusted root(s) to verify a signed file."
    ),
    operator: str | None = typer.Option(None, "--operator", help="Expected signer identity."),
    json_out: bool = JSON,
) -> None:
    """Verify and describe a global configuration."""
    now = _now()
    if not source.exists():
        raise InputError(f"{source}: no such file or directory")
    if source.is_dir():
        config = ConfigStore(source).current(now)
    else:
        if ca_bundle is None:
            raise InputError("--ca-bundle is required to verify a signed file")
        roots = load_certificates(_read(ca_bundle, "--ca-bundle"), source=str(ca_bundle))
        who = parse_identity(operator) if operator else None
        config = verify_configuration(
            _read(source, "configuration"), roots=roots, now=now, operator=who
        )
    info = _describe(config)
    if json_out:
        emit_json(info)
        return
    console.print(
        f"version {config.version} of {config.instance}, signed by "
        f"{', '.join(config.signed_by)}, expires {config.expires_at:%Y-%m-%d %H:%M}Z",
        highlight=False,
    )
    for m in config.registry.members:
        console.print(f"  {m.id}  {m.name}  (platform {m.platform or '-'})", highlight=False)


@app.command()
def fetch(
    sources: list[str] = typer.Option([], "--from", help="URL or path; repeat for mirrors."),
    to: Path = typer.Option(..., "--to", help="The node's globalconf directory."),
    anchor: Path | None = typer.Option(
        None, "--anchor", help="Federation CA bundle (PEM) to pin: first fetch only."
    ),
    operator: str | None = typer.Option(
        None, "--operator", help="Pinned signer identity, e.g. VN/GOV/000.00.00.G22."
    ),
    warn_before: str = typer.Option("48h", "--warn-before", help="Warn this long before expiry."),
    require_pq: bool = typer.Option(
        False, "--require-pq", help="Also require an ML-DSA-65 signature (with --anchor)."
    ),
    json_out: bool = JSON,
) -> None:
    """Fetch, verify and install the global configuration; keep the last good copy."""
    if to.exists() and not to.is_dir():
        raise InputError(f"--to {to} is a file: give the node's globalconf directory")
    store = ConfigStore(to)
    if anchor is not None:
        if operator is None:
            raise InputError("--anchor needs --operator: the identity that signs the configuration")
        hours = int(parse_duration(warn_before).total_seconds() // 3600)
        try:
            pem = anchor.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read --anchor {anchor}: {exc.strerror}") from exc
        require = ("ES256", "ML-DSA-65") if require_pq else ("ES256",)
        ConfigStore.bootstrap(to, Anchor(pem, operator, tuple(sources), hours, require))
        store = ConfigStore(to)
    config, changed = store.refresh(_now(), tuple(sources))
    result = {
        "version": config.version,
        "changed": changed,
        "expires_at": config.expires_at.isoformat(),
        "dir": str(to),
    }
    if json_out:
        emit_json(result)
    else:
        what = "installed" if changed else "unchanged:"
        console.print(
            f"{what} version {config.version}, valid until {config.expires_at:%Y-%m-%d %H:%M}Z",
            highlight=False,
        )


@app.command()
def serve(
    file: Path = typer.Argument(..., help="The signed document to serve."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8700, "--port", min=1, max=65535),
) -> None:
    """Serve the signed configuration at http://HOST:PORT/globalconf.

    FILE must exist and verify when the server starts; later publications are served at once.
    """
    import uvicorn

    from lienthong.cli.listen import check_listen
    from lienthong.federation.server import check_document, make_app

    check_document(file, _now())
    check_listen(host, port)
    print(f"serving {file} at http://{host}:{port}/globalconf", file=sys.stderr, flush=True)
    uvicorn.run(make_app(file), host=host, port=port, log_level="warning")


app.add_typer(edit_cli.member_app, name="member")
app.add_typer(edit_cli.subsystem_app, name="subsystem")
app.add_typer(edit_cli.service_app, name="service")
app.add_typer(edit_cli.access_app, name="access")
app.add_typer(edit_cli.cert_app, name="cert")
