"""How federation identities are written into certificates and read back.

Mapping (documented in ``docs/trust.md``)::

    C            = VN                      (country, fixed)
    O            = member code             (Decision 20/2020, e.g. G01.BCA)
    OU           = member class            (GOV, COM, ORG, NGO)
    CN           = subsystem code, gateway name, or the member code for member-level certs
    serialNumber = the full identifier     (omitted when it contains "_": PrintableString)
    SAN URI      = urn:lienthong:INSTANCE/CLASS/MEMBER[/SUBSYSTEM]   (authoritative)

:func:`identity_of` reads the SAN URI, checks it against the subject and returns a
:class:`MemberId` or :class:`SubsystemId`.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from lienthong.errors import CertificateError, InputError
from lienthong.identifiers import MemberId, SubsystemId, parse_member

URN_PREFIX = "urn:lienthong:"
Identity = MemberId | SubsystemId


def member_of(identity: Identity) -> MemberId:
    return identity.member if isinstance(identity, SubsystemId) else identity


def parse_identity(text: str) -> Identity:
    """Parse ``INSTANCE/CLASS/MEMBER`` or ``INSTANCE/CLASS/MEMBER/SUBSYSTEM``."""
    parts = text.strip().strip("/").split("/")
    if len(parts) == 4:
        return SubsystemId.parse(text)
    if len(parts) == 3:
        return parse_member(text)
    raise InputError(
        f"identity {text!r} must be INSTANCE/CLASS/MEMBER or INSTANCE/CLASS/MEMBER/SUBSYSTEM"
    )


def identity_uri(identity: Identity) -> str:
    return f"{URN_PREFIX}{identity}"


def subject_for(identity: Identity, *, common_name: str | None = None) -> x509.Name:
    """The subject name for a member/subsystem certificate (CN defaults to the subsystem)."""
    member = member_of(identity)
    if common_name is None:
        common_name = (
            identity.subsystem if isinstance(identity, SubsystemId) else member.member_code
        )
    if not 0 < len(common_name) <= 64:
        raise InputError(f"common name {common_name!r} must be 1-64 characters (X.520 limit)")
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, member.member_code),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, member.member_class),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if "_" not in str(identity):  # serialNumber is a PrintableString, which has no "_"
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, str(identity)))
    return x509.Name(attrs)


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def identity_from(
    subject: x509.Name, extensions: x509.Extensions, *, what: str = "certificate"
) -> Identity:
    """Identity from a subject and extensions (shared by certificates and CSRs)."""
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [
            u
            for u in san.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith(URN_PREFIX)
        ]
    except x509.ExtensionNotFound:
        uris = []
    text = uris[0].removeprefix(URN_PREFIX) if uris else _attr(subject, NameOID.SERIAL_NUMBER)
    if text is None:
        raise CertificateError(
            f"{what} carries no lienthong identity (no {URN_PREFIX} SAN URI or serialNumber)",
            code="no_identity",
        )
    try:
        identity = parse_identity(text)
    except InputError as exc:
        raise CertificateError(f"{what} identity is invalid: {exc}", code="no_identity") from exc
    member = member_of(identity)
    org = _attr(subject, NameOID.ORGANIZATION_NAME)
    unit = _attr(subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if (org, unit) != (member.member_code, member.member_class):
        raise CertificateError(
            f"{what} subject O={org}/OU={unit} does not match its identity {identity}",
            code="identity_mismatch",
        )
    return identity


def identity_of(cert: x509.Certificate | x509.CertificateSigningRequest) -> Identity:
    """The federation identity (member or subsystem) a certificate or CSR is for."""
    what = "CSR" if isinstance(cert, x509.CertificateSigningRequest) else "certificate"
    return identity_from(cert.subject, cert.extensions, what=what)
