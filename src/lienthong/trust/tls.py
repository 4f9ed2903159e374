"""Mutual TLS between gateways: ``ssl`` contexts from enrolled files, and peer identities.

Python's ``ssl`` needs the TLS private key as a file, so gateway TLS keys live in the
encrypted-file key store (the passphrase is resolved from its reference, never stored);
message-signing keys may live in an HSM. Both sides require TLS 1.2+ and a certificate from
the federation CA bundle; :func:`peer_identity` then names the federation member on the other
end.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from cryptography import x509

from lienthong.errors import CertificateError
from lienthong.trust.identity import Identity, identity_of
from lienthong.trust.secrets import resolve_secret


def _context(
    purpose: ssl.Purpose, cert: Path, key: Path, passphrase_ref: Any, ca_bundle: Path
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose, cafile=str(ca_bundle))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    secret = resolve_secret(passphrase_ref, what="TLS key passphrase")
    try:
        ctx.load_cert_chain(str(cert), str(key), password=lambda: secret)
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(
            f"cannot load TLS certificate {cert} / key {key}: {exc}", code="tls_key"
        ) from exc
    return ctx


def server_context(cert: Path, key: Path, passphrase_ref: Any, ca_bundle: Path) -> ssl.SSLContext:
    """A server context that requires a client certificate from the federation CA."""
    ctx = _context(ssl.Purpose.CLIENT_AUTH, cert, key, passphrase_ref, ca_bundle)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(cert: Path, key: Path, passphrase_ref: Any, ca_bundle: Path) -> ssl.SSLContext:
    """A client context presenting our certificate and trusting only the federation CA."""
    return _context(ssl.Purpose.SERVER_AUTH, cert, key, passphrase_ref, ca_bundle)


def peer_identity(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> Identity:
    """The federation identity in the peer's (already verified) certificate."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise CertificateError("peer presented no certificate", code="no_identity")
    return identity_of(x509.load_der_x509_certificate(der))
