"""Editing a declarative registry document (plain data) for the ``… add`` commands.

Each function changes the document in place; the command then validates the whole result
and writes it only if it is valid, so a file never ends up half-edited or invalid.
"""

from __future__ import annotations

from typing import Any

from lienthong.errors import InputError, NotFound
from lienthong.federation.refs import member_ref, subsystem_ref


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.setdefault(key, [])
    if value is None:
        value = doc[key] = []
    if not isinstance(value, list):
        raise InputError(f"'{key}' in the registry file is not a list")
    return value


def _find_member(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    wanted = member_ref(ref, str(doc.get("instance", "")))
    for m in _list(doc, "members"):
        if isinstance(m, dict) and (m.get("class"), m.get("code")) == (
            wanted.member_class,
            wanted.member_code,
        ):
            return m
    raise NotFound(
        f"member {wanted} is not in the registry file: add it first "
        "(lienthong federation member add)"
    )


def _find_subsystem(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    wanted = subsystem_ref(ref, str(doc.get("instance", "")))
    member = _find_member(doc, str(wanted.member))
    for s in _list(member, "subsystems"):
        if isinstance(s, dict) and s.get("code") == wanted.subsystem:
            return s
    raise NotFound(
        f"subsystem {wanted} is not in the registry file: add it first "
        "(lienthong federation subsystem add)"
    )


def add_member(
    doc: dict[str, Any], *, member_class: str, code: str, name: str, platform: str | None
) -> None:
    entry: dict[str, Any] = {"class": member_class, "code": code, "name": name}
    if platform:
        entry["platform"] = platform
    entry["subsystems"] = []
    _list(doc, "members").append(entry)


def add_subsystem(
    doc: dict[str, Any],
    *,
    member: str,
    code: str,
    name: str,
    security_level: int,
    clearance: str,
    gateways: list[str],
) -> None:
    _list(_find_member(doc, member), "subsystems").append(
        {
            "code": code,
            "name": name,
            "security_level": security_level,
            "clearance": clearance,
            "gateways": gateways,
            "services": [],
        }
    )


def set_encryption_keys(doc: dict[str, Any], *, subsystem: str, keys: dict[str, Any]) -> None:
    """Publish (or replace) a subsystem's end-to-end encryption public keys."""
    _find_subsystem(doc, subsystem)["encryption_keys"] = dict(keys)


def add_service(
    doc: dict[str, Any],
    *,
    subsystem: str,
    code: str,
    level: str,
    description: str,
    contract: dict[str, Any] | None,
) -> None:
    entry: dict[str, Any] = {"code": code, "level": level, "description": description}
    if contract:
        entry["contract"] = contract
    _list(_find_subsystem(doc, subsystem), "services").append(entry)


def add_access(
    doc: dict[str, Any], *, service: str, client: str | None, group: str | None, path: str | None
) -> None:
    entry: dict[str, Any] = {"service": service}
    if client:
        entry["client"] = client
    if group:
        entry["group"] = group
    if path:
        entry["path"] = path
    _list(doc, "access").append(entry)


def _full_id(doc: dict[str, Any], holder: dict[str, Any], owner: str) -> str:
    """The full identifier (``INSTANCE/CLASS/CODE[/SUBSYSTEM]``) of ``owner``."""
    instance = str(doc.get("instance", ""))
    if "class" in holder:  # a member entry; subsystem entries have no class
        return str(member_ref(owner, instance))
    return str(subsystem_ref(owner, instance))


def _holder_of(doc: dict[str, Any], fingerprint: str) -> str | None:
    """Who already holds a certificate with ``fingerprint`` in the document, if anyone."""
    instance = str(doc.get("instance", ""))
    for p in doc.get("platforms") or []:
        for c in (p.get("certificates") or []) if isinstance(p, dict) else []:
            if isinstance(c, dict) and c.get("fingerprint") == fingerprint:
                return f"platform {p.get('code')}"
    for m in doc.get("members") or []:
        if not isinstance(m, dict):
            continue
        member = f"{instance}/{m.get('class')}/{m.get('code')}"
        for c in m.get("certificates") or []:
            if isinstance(c, dict) and c.get("fingerprint") == fingerprint:
                return member
        for s in m.get("subsystems") or []:
            if not isinstance(s, dict):
                continue
            for c in s.get("certificates") or []:
                if isinstance(c, dict) and c.get("fingerprint") == fingerprint:
                    return f"{member}/{s.get('code')}"
    return None


def add_certificate(
    doc: dict[str, Any],
    *,
    owner: str,
    usage: str,
    fingerprint: str,
    pem: str | None,
    identity: str | None = None,
) -> None:
    """Register a certificate for a member (``CLASS/CODE``), a subsystem (``…/SUBSYSTEM``) or
    the gateway of a platform (its code, e.g. ``NDXP``: TLS only, naming its operator).

    ``identity`` is the identity the certificate names; it must be ``owner`` (a platform's
    operator). A fingerprint registered anywhere in the document already is refused.
    """
    if "/" not in owner.strip("/"):
        _add_platform_certificate(doc, owner.strip("/"), usage, fingerprint, pem, identity)
        return
    parts = owner.strip("/").split("/")
    holder = (
        _find_subsystem(doc, owner)
        if len(parts) in (3, 4) and not (len(parts) == 3 and parts[0] == doc.get("instance"))
        else _find_member(doc, owner)
    )
    certs = _list(holder, "certificates")
    if any(isinstance(c, dict) and c.get("fingerprint") == fingerprint for c in certs):
        raise InputError(f"certificate {fingerprint[:16]}… is already registered for {owner}")
    _refuse_registered(doc, fingerprint)
    if identity is not None and identity != _full_id(doc, holder, owner):
        raise InputError(
            f"the certificate is for {identity}, not for {_full_id(doc, holder, owner)}: "
            "register it for the identity it names (--owner), or enrol a new certificate"
        )
    certs.append(_cert_entry(usage, fingerprint, pem))


def _refuse_registered(doc: dict[str, Any], fingerprint: str) -> None:
    other = _holder_of(doc, fingerprint)
    if other is not None:
        raise InputError(
            f"certificate {fingerprint[:16]}… is already registered for {other}: "
            "a certificate belongs to one member, subsystem or platform"
        )


def _cert_entry(usage: str, fingerprint: str, pem: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"usage": usage, "fingerprint": fingerprint}
    if pem:
        entry["pem"] = pem
    return entry


def _add_platform_certificate(
    doc: dict[str, Any],
    code: str,
    usage: str,
    fingerprint: str,
    pem: str | None,
    identity: str | None,
) -> None:
    platform = next(
        (p for p in _list(doc, "platforms") if isinstance(p, dict) and p.get("code") == code),
        None,
    )
    if platform is None:
        raise NotFound(
            f"{code!r} is neither a platform code nor CLASS/CODE[/SUBSYSTEM]: give the member "
            "or subsystem as CLASS/CODE[/SUBSYSTEM], or a platform's code"
        )
    if usage != "tls":
        raise InputError(
            f"platform {code}: only its gateway's TLS certificate is registered (--usage tls); "
            "signing certificates belong to its operator member"
        )
    if not platform.get("operator"):
        raise InputError(
            f"platform {code} has no operator: set its operator (the member running it) first; "
            "its gateway's certificate names that member"
        )
    operator = str(member_ref(str(platform["operator"]), str(doc.get("instance", ""))))
    if identity is not None and identity != operator:
        raise InputError(
            f"the certificate is for {identity}, not for {operator}, the operator of platform "
            f"{code}: enrol the platform gateway's TLS key under --identity {operator}"
        )
    _refuse_registered(doc, fingerprint)
    _list(platform, "certificates").append(_cert_entry(usage, fingerprint, pem))
