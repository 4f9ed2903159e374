"""``lienthong federation member|subsystem|service|access|cert add``: edit a YAML registry.

The whole edited registry is validated before anything is written; comments in the file are
not preserved (the file is rewritten from its data).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import yaml
from cryptography.hazmat.primitives.serialization import Encoding

from lienthong.cli.output import console
from lienthong.errors import CertificateError, InputError, NotFound
from lienthong.federation import edit
from lienthong.federation.loader import read_document, registry_from_dict
from lienthong.federation.publish import certificate_fingerprint
from lienthong.federation.store import write_atomic
from lienthong.trust.identity import identity_of
from lienthong.trust.x509 import load_certificate

FileArg = typer.Argument(..., help="The registry file (YAML) to edit.")
member_app = typer.Typer(help="Members (agencies).", no_args_is_help=True)
subsystem_app = typer.Typer(help="Subsystems (information systems).", no_args_is_help=True)
service_app = typer.Typer(help="Services.", no_args_is_help=True)
access_app = typer.Typer(help="Access rights.", no_args_is_help=True)
cert_app = typer.Typer(help="Registered certificates.", no_args_is_help=True)


def _edit(file: Path, change: Callable[[dict[str, Any]], None], what: str) -> None:
    if file.suffix.lower() not in (".yaml", ".yml"):
        raise InputError(f"{file}: the add commands edit YAML files only")
    doc = read_document(file)
    if not isinstance(doc, dict):
        raise InputError(f"{file}: not a registry document")
    try:
        change(doc)
    except NotFound as exc:  # a reference to something not in the file: bad input
        raise InputError(exc.message) from exc
    registry_from_dict(doc, source=str(file))  # raises listing every problem; nothing written
    write_atomic(file, yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode())
    console.print(f"{file}: added {what}", highlight=False)


@member_app.command("add")
def member_add(
    file: Path = FileArg,
    member_class: str = typer.Option("GOV", "--class", help="GOV, COM, ORG or NGO."),
    code: str = typer.Option(..., "--code", help="Decision 20/2020 code, e.g. 000.00.00.G01."),
    name: str = typer.Option(..., "--name", help="Name in Vietnamese."),
    platform: str | None = typer.Option(None, "--platform", help="Platform it attaches to."),
) -> None:
    """Register a member (agency)."""
    _edit(
        file,
        lambda d: edit.add_member(
            d, member_class=member_class, code=code, name=name, platform=platform
        ),
        f"member {member_class}/{code}",
    )


@subsystem_app.command("add")
def subsystem_add(
    file: Path = FileArg,
    member: str = typer.Option(..., "--member", help="CLASS/CODE of the member."),
    code: str = typer.Option(..., "--code", help="Subsystem code."),
    name: str = typer.Option(..., "--name", help="Name in Vietnamese."),
    security_level: int = typer.Option(..., "--security-level", help="Decree 85/2016 level 1-5."),
    clearance: str = typer.Option(..., "--clearance", help="Highest level it may process."),
    gateway: list[str] = typer.Option([], "--gateway", help="Gateway address (repeatable)."),
) -> None:
    """Register a subsystem (information system) of a member."""
    _edit(
        file,
        lambda d: edit.add_subsystem(
            d,
            member=member,
            code=code,
            name=name,
            security_level=security_level,
            clearance=clearance,
            gateways=gateway,
        ),
        f"subsystem {member}/{code}",
    )


@subsystem_app.command("encryption-keys")
def subsystem_encryption_keys(
    file: Path = FileArg,
    subsystem: str = typer.Option(..., "--subsystem", help="CLASS/CODE/SUBSYSTEM."),
    keys: Path = typer.Option(
        ..., "--keys", help="kem.pub.json as written by lienthong gateway kem-keygen."
    ),
) -> None:
    """Publish a subsystem's end-to-end encryption public keys (X25519 and ML-KEM-768), which
    clients need to call its services from PERSONAL up; replaces the keys published before."""
    try:
        data = json.loads(keys.read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read --keys {keys}: {exc.strerror}") from exc
    except ValueError as exc:
        raise InputError(f"--keys {keys}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f'--keys {keys}: expected {{"x25519": …, "mlkem768": …}}')
    _edit(
        file,
        lambda d: edit.set_encryption_keys(d, subsystem=subsystem, keys=data),
        f"encryption keys of {subsystem}",
    )


@service_app.command("add")
def service_add(
    file: Path = FileArg,
    subsystem: str = typer.Option(..., "--subsystem", help="CLASS/CODE/SUBSYSTEM of the provider."),
    code: str = typer.Option(..., "--code", help="Service code."),
    level: str = typer.Option(..., "--level", help="Classification level."),
    description: str = typer.Option("", "--description"),
    openapi: str | None = typer.Option(None, "--openapi", help="OpenAPI contract reference."),
    json_schema: str | None = typer.Option(None, "--json-schema", help="JSON Schema reference."),
) -> None:
    """Register a service offered by a subsystem."""
    if openapi and json_schema:
        raise InputError("give --openapi or --json-schema, not both: a service has one contract")
    contract = (
        {"kind": "openapi", "ref": openapi}
        if openapi
        else {"kind": "json-schema", "ref": json_schema}
        if json_schema
        else None
    )
    _edit(
        file,
        lambda d: edit.add_service(
            d,
            subsystem=subsystem,
            code=code,
            level=level,
            description=description,
            contract=contract,
        ),
        f"service {subsystem}/{code}",
    )


@access_app.command("add")
def access_add(
    file: Path = FileArg,
    service: str = typer.Option(..., "--service", help="CLASS/CODE/SUBSYSTEM/SERVICE."),
    client: str | None = typer.Option(None, "--client", help="Client subsystem."),
    group: str | None = typer.Option(None, "--group", help="…or a group code."),
    path: str | None = typer.Option(None, "--path", help="Path prefix, e.g. /residence."),
) -> None:
    """Grant a subsystem or group access to a service."""
    _edit(
        file,
        lambda d: edit.add_access(d, service=service, client=client, group=group, path=path),
        f"access to {service}",
    )


@cert_app.command("add")
def cert_add(
    file: Path = FileArg,
    owner: str = typer.Option(
        ..., "--owner", help="CLASS/CODE (member), …/SUBSYSTEM, or a platform's code (TLS)."
    ),
    cert: Path = typer.Option(..., "--cert", help="Certificate (PEM)."),
    usage: str = typer.Option("signing", "--usage", help="signing or tls."),
) -> None:
    """Register a member's or subsystem's certificate, or a platform gateway's TLS certificate
    (it names the platform's operator), by fingerprint and PEM."""
    try:
        data = cert.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read --cert {cert}: {exc.strerror}") from exc
    certificate = load_certificate(data, source=str(cert))
    fp = certificate_fingerprint(certificate)
    pem = certificate.public_bytes(Encoding.PEM).decode()
    try:
        named: str | None = str(identity_of(certificate))
    except CertificateError as exc:
        raise InputError(f"{cert}: {exc.message}") from exc
    _edit(
        file,
        lambda d: edit.add_certificate(
            d, owner=owner, usage=usage, fingerprint=fp, pem=pem, identity=named
        ),
        f"{usage} certificate {fp[:16]}…",
    )
