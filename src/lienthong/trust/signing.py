"""Signing X.509 structures with any :class:`Signer`, including keys that never leave an HSM.

``cryptography``'s builders only sign with in-memory private keys. For other signers we let the
builder sign with a throw-away key of the same algorithm (so the TBS carries the right
signature-algorithm identifier), take the exact TBS bytes, sign them with the real signer and
replace the signature value with ``asn1crypto``. The TBS bytes are never re-encoded.
"""

from __future__ import annotations

import functools

from asn1crypto import crl as asn1_crl
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from lienthong.trust.keys import Algorithm, PrivateKey, Signer, SoftwareSigner, generate_private_key

_DER = serialization.Encoding.DER


@functools.cache
def _throwaway(algorithm: Algorithm) -> PrivateKey:
    return generate_private_key(algorithm)


def _key_and_hash(signer: Signer) -> tuple[PrivateKey, hashes.SHA256 | None]:
    key = signer.private_key if isinstance(signer, SoftwareSigner) else _throwaway(signer.algorithm)
    return key, (hashes.SHA256() if signer.algorithm is Algorithm.ECDSA_P256 else None)


def sign_certificate(builder: x509.CertificateBuilder, signer: Signer) -> x509.Certificate:
    """Sign a certificate builder with ``signer``."""
    key, digest = _key_and_hash(signer)
    cert = builder.sign(key, digest)
    if isinstance(signer, SoftwareSigner):
        return cert
    asn1 = asn1_x509.Certificate.load(cert.public_bytes(_DER))
    asn1["signature_value"] = signer.sign(cert.tbs_certificate_bytes)
    return x509.load_der_x509_certificate(asn1.dump())


def sign_csr(
    builder: x509.CertificateSigningRequestBuilder, signer: Signer
) -> x509.CertificateSigningRequest:
    """Sign a CSR builder with ``signer`` (the CSR carries ``signer``'s public key)."""
    key, digest = _key_and_hash(signer)
    csr = builder.sign(key, digest)
    if isinstance(signer, SoftwareSigner):
        return csr
    asn1 = asn1_csr.CertificationRequest.load(csr.public_bytes(_DER))
    info = asn1["certification_request_info"]
    spki = signer.public_key().public_bytes(_DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    info["subject_pk_info"] = asn1_keys.PublicKeyInfo.load(spki)
    asn1["signature"] = signer.sign(info.dump(force=True))
    return x509.load_der_x509_csr(asn1.dump(force=True))


def sign_crl(
    builder: x509.CertificateRevocationListBuilder, signer: Signer
) -> x509.CertificateRevocationList:
    """Sign a CRL builder with ``signer``."""
    key, digest = _key_and_hash(signer)
    crl = builder.sign(key, digest)
    if isinstance(signer, SoftwareSigner):
        return crl
    asn1 = asn1_crl.CertificateList.load(crl.public_bytes(_DER))
    asn1["signature"] = signer.sign(crl.tbs_certlist_bytes)
    return x509.load_der_x509_crl(asn1.dump())


def sign_ocsp(builder: ocsp.OCSPResponseBuilder, signer: Signer) -> ocsp.OCSPResponse:
    """Sign an OCSP response builder with ``signer``."""
    key, digest = _key_and_hash(signer)
    resp = builder.sign(key, digest)
    if isinstance(signer, SoftwareSigner):
        return resp
    asn1 = asn1_ocsp.OCSPResponse.load(resp.public_bytes(_DER))
    basic = asn1["response_bytes"]["response"].parsed
    basic["signature"] = signer.sign(resp.tbs_response_bytes)
    asn1["response_bytes"]["response"] = asn1_ocsp.BasicOCSPResponse.load(basic.dump())
    return ocsp.load_der_ocsp_response(asn1.dump(force=True))
