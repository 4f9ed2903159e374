"""Certificate profiles (pure): what each kind of certificate contains.

=========== ============================================ =====================================
profile     key usage (critical)                         extended key usage
=========== ============================================ =====================================
root        keyCertSign, cRLSign                         —  (basicConstraints CA, critical)
intermediate keyCertSign, cRLSign                        —  (basicConstraints CA, pathlen 0)
signing     digitalSignature, nonRepudiation             —  (official-use signatures)
tls         digitalSignature                             serverAuth, clientAuth (gateway mTLS)
ocsp        digitalSignature                             OCSPSigning (+ id-pkix-ocsp-nocheck)
tsa         digitalSignature                             timeStamping (critical, RFC 3161)
=========== ============================================ =====================================

All leaves carry SubjectKeyIdentifier, AuthorityKeyIdentifier and basicConstraints CA:FALSE.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from lienthong.errors import InputError
from lienthong.trust.keys import PublicKey, Signer
from lienthong.trust.signing import sign_certificate


class Profile(enum.StrEnum):
    SIGNING = "signing"
    TLS = "tls"
    OCSP = "ocsp"
    TSA = "tsa"

    @classmethod
    def parse(cls, value: str) -> Profile:
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise InputError(
                f"unknown profile {value!r}: use one of {', '.join(p.value for p in cls)}"
            ) from None


DEFAULT_DAYS = {Profile.SIGNING: 730, Profile.TLS: 397, Profile.OCSP: 365, Profile.TSA: 1825}


def _key_usage(*, sign: bool = False, nonrep: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=nonrep,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """AKI pointing at ``issuer``'s subject key identifier."""
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def ca_certificate(
    *,
    subject: x509.Name,
    public_key: PublicKey,
    issuer: x509.Certificate | None,
    signer: Signer,
    serial: int,
    now: dt.datetime,
    days: int,
    path_length: int | None,
) -> x509.Certificate:
    """A root (``issuer`` None: self-signed) or intermediate CA certificate."""
    issuer_name = subject if issuer is None else issuer.subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(authority_key_id(issuer), critical=False)
    return sign_certificate(builder, signer)


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InputError(f"{text!r} is not an IP address") from None


def validate_dns(name: str) -> str:
    labels = name.rstrip(".").split(".")
    ok = all(
        0 < len(lab) <= 63
        and lab.replace("-", "").isalnum()
        and lab.isascii()
        and not lab.startswith("-")
        and not lab.endswith("-")
        for lab in labels
    )
    if not ok or len(name) > 253:
        raise InputError(f"{name!r} is not a valid DNS name")
    return name.lower()


def leaf_certificate(
    *,
    profile: Profile,
    subject: x509.Name,
    public_key: PublicKey,
    issuer: x509.Certificate,
    signer: Signer,
    serial: int,
    now: dt.datetime,
    days: int | None = None,
    identity_uri: str | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
) -> x509.Certificate:
    """An end-entity certificate of ``profile`` issued by ``issuer`` (signed by ``signer``)."""
    days = days or DEFAULT_DAYS[profile]
    not_after = min(now + dt.timedelta(days=days), issuer.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(authority_key_id(issuer), critical=False)
    )
    if profile is Profile.SIGNING:
        builder = builder.add_extension(_key_usage(sign=True, nonrep=True), critical=True)
    else:
        eku = {
            Profile.TLS: [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            Profile.OCSP: [ExtendedKeyUsageOID.OCSP_SIGNING],
            Profile.TSA: [ExtendedKeyUsageOID.TIME_STAMPING],
        }[profile]
        builder = builder.add_extension(_key_usage(sign=True), critical=True)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(eku), critical=profile in (Profile.TSA, Profile.OCSP)
        )
    if profile is Profile.OCSP:
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    names: list[x509.GeneralName] = []
    if identity_uri:
        names.append(x509.UniformResourceIdentifier(identity_uri))
    names += [x509.DNSName(validate_dns(d)) for d in dns_names]
    names += [x509.IPAddress(parse_ip(ip)) for ip in ip_addresses]
    if profile is Profile.TLS and not (dns_names or ip_addresses):
        raise InputError("a tls certificate needs at least one DNS name or IP address")
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return sign_certificate(builder, signer)
