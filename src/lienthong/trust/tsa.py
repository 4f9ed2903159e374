"""RFC 3161 time-stamps: a time-stamping authority (TSA) and token verification.

A token is a CMS ``SignedData`` (RFC 5652) whose content is a ``TSTInfo`` over a SHA-256
digest, signed by a key held behind the :class:`Signer` interface: ECDSA P-256 with SHA-256,
or ML-DSA-65 (RFC 9882: pure ML-DSA over the signed attributes, SHA-512 message digest) under
an ML-DSA CA — which ``openssl ts`` 3.0 cannot check, like every ML-DSA chain.
Signed attributes: contentType, messageDigest, signingTime and ESS signingCertificateV2 (the
latter is required by ``openssl ts -verify``). The TSA certificate carries the critical
extended key usage timeStamping. Tokens verify with
``openssl ts -verify -digest HEX -token_in -in token.der -CAfile bundle.pem -untrusted tsa.pem``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lienthong.errors import InputError, SignatureError
from lienthong.trust.keys import Algorithm, Signer, algorithm_of, verify_signature
from lienthong.trust.x509 import Usage, load_certificate, public_key_of, verify_chain

# 2.999 is the ITU-T "example" arc: a placeholder policy until an official OID is assigned.
POLICY_OID = "2.999.3161.1"
_DER = serialization.Encoding.DER


class Timestamper(Protocol):
    """What the audit log needs: a DER time-stamp token over a SHA-256 digest."""

    def timestamp(self, digest: bytes) -> bytes: ...


def _check_digest(digest: bytes) -> None:
    if len(digest) != 32:
        raise InputError(f"time-stamp digest must be 32 bytes of SHA-256, got {len(digest)}")


# CMS algorithms per key: ECDSA P-256 with SHA-256 (RFC 5753); ML-DSA-65 (pure, empty
# context) with SHA-512 for the message digest, as RFC 9882 recommends.
_CMS_ALGORITHMS = {
    Algorithm.ECDSA_P256: ("sha256", "1.2.840.10045.4.3.2"),
    Algorithm.ML_DSA_65: ("sha512", "2.16.840.1.101.3.4.3.18"),
}


class TimeStampAuthority:
    """Issues RFC 3161 tokens signed by ``signer`` (certificate ``certificate``)."""

    def __init__(
        self,
        signer: Signer,
        certificate: x509.Certificate,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        policy: str = POLICY_OID,
    ) -> None:
        self.signer = signer
        self.certificate = certificate
        self.clock = clock
        self.policy = policy
        # asn1crypto re-encodes shared sub-objects on every dump: keep DER and parse it afresh
        # per token (lazy parsing makes that cheap), which is ~40x faster than reusing objects
        self._cert_der = certificate.public_bytes(_DER)
        cert_hash = hashlib.sha256(self._cert_der).digest()
        self._ess_attribute = cms.CMSAttribute(
            {"type": "signing_certificate_v2", "values": [{"certs": [{"cert_hash": cert_hash}]}]}
        ).dump()  # ESS signingCertificateV2 (RFC 5035), constant per TSA certificate
        self._issuer_der = certificate.issuer.public_bytes()

    def timestamp(self, digest: bytes) -> bytes:
        """A DER ``ContentInfo`` token over ``digest``, timed now, with a random serial."""
        return self.token_at(
            digest, now=self.clock(), serial=int.from_bytes(os.urandom(16), "big") >> 1
        )

    def token_at(
        self, digest: bytes, *, now: dt.datetime, serial: int, nonce: int | None = None
    ) -> bytes:
        """Deterministic core of :meth:`timestamp`."""
        _check_digest(digest)
        now = now.astimezone(dt.UTC).replace(microsecond=(now.microsecond // 1000) * 1000)
        info = tsp.TSTInfo(
            {
                "version": "v1",
                "policy": self.policy,
                "message_imprint": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": digest,
                },
                "serial_number": serial,
                "gen_time": now,
                "accuracy": {"seconds": 1},
                "nonce": nonce,
            }
        )
        info_der = info.dump()
        digest_name, signature_oid = _CMS_ALGORITHMS[self.signer.algorithm]
        attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [hashlib.new(digest_name, info_der).digest()]},
                {"type": "signing_time", "values": [cms.Time({"utc_time": core.UTCTime(now)})]},
                cms.CMSAttribute.load(self._ess_attribute),
            ]
        )
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": {
                    "issuer_and_serial_number": {
                        "issuer": asn1_x509.Name.load(self._issuer_der),
                        "serial_number": self.certificate.serial_number,
                    }
                },
                "digest_algorithm": {"algorithm": digest_name},
                "signed_attrs": attrs,
                "signature_algorithm": {"algorithm": signature_oid},
                "signature": self.signer.sign(attrs.dump()),
            }
        )
        signed = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [{"algorithm": digest_name}],
                "encap_content_info": {
                    "content_type": "tst_info",
                    "content": core.ParsableOctetString(info_der),
                },
                "certificates": [asn1_x509.Certificate.load(self._cert_der)],
                "signer_infos": [signer_info],
            }
        )
        return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER ``TimeStampReq`` with a ``TimeStampResp`` (HTTP transport, RFC 3161)."""
        try:
            req = tsp.TimeStampReq.load(request_der)
            imprint = req["message_imprint"]
            if imprint["hash_algorithm"]["algorithm"].native != "sha256":
                raise ValueError("only sha256 message imprints are accepted")
            digest, nonce = imprint["hashed_message"].native, req["nonce"].native
            _check_digest(digest)
        except (ValueError, TypeError, InputError) as exc:
            return bytes(
                tsp.TimeStampResp(
                    {
                        "status": {
                            "status": "rejection",
                            "status_string": [f"bad request: {exc}"],
                            "fail_info": {"bad_data_format"},
                        }
                    }
                ).dump()
            )
        token = self.token_at(
            digest, now=self.clock(), nonce=nonce, serial=int.from_bytes(os.urandom(16), "big") >> 1
        )
        granted = {"status": {"status": "granted"}, "time_stamp_token": cms.ContentInfo.load(token)}
        return bytes(tsp.TimeStampResp(granted).dump())


def token_from_response(response_der: bytes) -> bytes:
    """Extract the token from a ``TimeStampResp``; raise if the TSA refused."""
    try:
        resp = tsp.TimeStampResp.load(response_der)
        status = resp["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            texts = resp["status"]["status_string"].native or []
            raise SignatureError(f"time-stamping authority refused: {status} {'; '.join(texts)}")
        return bytes(resp["time_stamp_token"].dump())
    except ValueError as exc:
        raise SignatureError(f"not a time-stamp response ({exc})") from exc


@dataclass(frozen=True)
class _Token:
    info_der: bytes
    imprint_algorithm: str
    hashed: bytes
    gen_time: dt.datetime
    attrs: dict[str, object]
    signed_bytes: bytes
    signature: bytes
    algorithms: tuple[str, str]
    tsa_cert: x509.Certificate
    certs: list[x509.Certificate]


def _parse_token(token: bytes) -> _Token:
    """Every field of a token, parsed up front; SignatureError if anything is malformed."""
    try:
        info_der, signer_info, certs = _unpack(token)
        info = tsp.TSTInfo.load(info_der)
        imprint = info["message_imprint"]
        sid = signer_info["sid"].chosen
        issuer_der, serial = sid["issuer"].dump(), sid["serial_number"].native
        tsa_cert = next(
            (
                c
                for c in certs
                if c.serial_number == serial and c.issuer.public_bytes() == issuer_der
            ),
            None,
        )
        if tsa_cert is None:
            raise SignatureError("time-stamp token does not carry its TSA certificate")
        gen_time = info["gen_time"].native
        if not isinstance(gen_time, dt.datetime):
            raise SignatureError("time-stamp token has no valid genTime")
        return _Token(
            info_der=info_der,
            imprint_algorithm=imprint["hash_algorithm"]["algorithm"].native,
            hashed=imprint["hashed_message"].native,
            gen_time=gen_time,
            attrs={a["type"].native: a["values"][0].native for a in signer_info["signed_attrs"]},
            # the signature covers the attributes DER-encoded as a SET (tag 0x31), not as [0]
            signed_bytes=b"\x31" + signer_info["signed_attrs"].dump()[1:],
            signature=signer_info["signature"].native,
            algorithms=(
                signer_info["digest_algorithm"]["algorithm"].native,
                signer_info["signature_algorithm"]["algorithm"].dotted,
            ),
            tsa_cert=tsa_cert,
            certs=certs,
        )
    except (ValueError, TypeError, KeyError, AttributeError, InputError) as exc:
        raise SignatureError(f"malformed time-stamp token ({exc})") from exc


def verify_timestamp(
    token: bytes,
    digest: bytes,
    *,
    roots: Iterable[x509.Certificate],
    intermediates: Iterable[x509.Certificate] = (),
) -> dt.datetime:
    """Verify a token over ``digest`` and return its time; raise SignatureError/
    CertificateError. The TSA certificate chain is validated at the token's own time."""
    _check_digest(digest)
    tok = _parse_token(token)
    if tok.imprint_algorithm != "sha256" or tok.hashed != digest:
        raise SignatureError("time-stamp token is over another digest")
    key = public_key_of(tok.tsa_cert)
    if tok.algorithms != _CMS_ALGORITHMS[algorithm_of(key)]:
        raise SignatureError(f"time-stamp token uses unexpected algorithms {tok.algorithms}")
    if (
        tok.attrs.get("content_type") != "tst_info"
        or tok.attrs.get("message_digest") != hashlib.new(tok.algorithms[0], tok.info_der).digest()
    ):
        raise SignatureError("time-stamp token content does not match its signed attributes")
    verify_signature(key, tok.signature, tok.signed_bytes)
    verify_chain(
        tok.tsa_cert,
        intermediates=[*tok.certs, *intermediates],
        roots=roots,
        now=tok.gen_time,
        usage=Usage.TIMESTAMPING,
    )
    return tok.gen_time


def _unpack(token: bytes) -> tuple[bytes, cms.SignerInfo, list[x509.Certificate]]:
    info = cms.ContentInfo.load(token)
    if info["content_type"].native != "signed_data":
        raise ValueError("not a CMS SignedData")
    signed = info["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise ValueError("content is not a TSTInfo")
    content = encap["content"]
    info_der = bytes(content)
    certs = [
        load_certificate(c.chosen.dump(), source="TSA certificate") for c in signed["certificates"]
    ]
    if len(signed["signer_infos"]) != 1:
        raise ValueError("expected exactly one signer")
    signer = signed["signer_infos"][0]
    # fields outside the signed attributes are pinned, so a token has exactly one encoding
    if signed["version"].native != "v3" or signer["version"].native != "v1":
        raise ValueError("unexpected CMS versions")
    digests = [d.dump() for d in signed["digest_algorithms"]]
    if digests != [signer["digest_algorithm"].dump()]:
        raise ValueError("digestAlgorithms does not match the signer's")
    return info_der, signer, certs
