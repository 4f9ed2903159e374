"""Signed global configuration: signing, verification and the precise rejections."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from jwcrypto import jwk, jws

from lienthong.errors import CertificateError, ConfigError, InputError, SignatureError
from lienthong.federation.confverify import verify_configuration
from lienthong.federation.globalconf import b64url, build_payload, canonical_json, sign_payload
from lienthong.federation.publish import parse_duration, publish
from lienthong.identifiers import parse_member
from lienthong.trust.keys import Signer

from .pkihelp import NOW, Pki

WEEK = dt.timedelta(days=7)


def signed(
    pki: Pki,
    *,
    version: int = 1,
    issued: dt.datetime = NOW,
    pq: bool = False,
    signer: str = "operator",
) -> bytes:
    payload = build_payload(
        pki.registry, version=version, issued_at=issued, expires_at=issued + WEEK, trust_anchors=[]
    )
    key, cert = getattr(pki, signer)
    signers = [(key, pki.chain(cert))]
    if pq:
        signers.append((pki.operator_pq[0], pki.chain(pki.operator_pq[1])))
    return sign_payload(payload, signers)


def test_round_trip_es256(pki: Pki) -> None:
    doc = signed(pki)
    config = verify_configuration(
        doc,
        roots=pki.roots,
        now=NOW + dt.timedelta(hours=1),
        operator=parse_member("VN/GOV/000.00.00.G22"),
    )
    assert config.version == 1 and config.registry == pki.registry
    assert config.signed_by == ("VN/GOV/000.00.00.G22",)
    assert config.expires_at == NOW + WEEK


def test_jwcrypto_accepts_our_jws(pki: Pki) -> None:
    """Interoperability: a third-party JOSE library verifies the ES256 signature."""
    doc = signed(pki)
    token = jws.JWS()
    token.deserialize(doc.decode())
    key = jwk.JWK.from_pyca(pki.operator[1].public_key())
    token.verify(key, alg="ES256")
    assert json.loads(token.payload)["version"] == 1


def test_hybrid_signature_and_requirement(pki: Pki) -> None:
    doc = signed(pki, pq=True)
    config = verify_configuration(doc, roots=pki.roots, now=NOW, require=("ES256", "ML-DSA-65"))
    assert config.version == 1
    with pytest.raises(SignatureError, match="lacks a required ML-DSA-65 signature"):
        verify_configuration(signed(pki), roots=pki.roots, now=NOW, require=("ES256", "ML-DSA-65"))
    # jwcrypto verifies the ML-DSA-65 signature too.
    token = jws.JWS()
    token.deserialize(doc.decode())
    token.verify(jwk.JWK.from_pyca(pki.operator_pq[1].public_key()), alg="ML-DSA-65")


def test_tampered_payload_is_rejected(pki: Pki) -> None:
    doc = json.loads(signed(pki))
    payload = json.loads(base64.urlsafe_b64decode(doc["payload"] + "=="))
    payload["registry"]["access"].append(
        {
            "client": "VN/GOV/000.01.00.G09/TMS",
            "service": "VN/GOV/000.00.00.G01/DAN-CU/residence-lookup",
        }
    )
    doc["payload"] = b64url(canonical_json(payload))
    with pytest.raises(SignatureError, match=r"\(ES256\) by VN/GOV/000.00.00.G22 does not verify"):
        verify_configuration(json.dumps(doc).encode(), roots=pki.roots, now=NOW)


def test_tampered_signature_is_rejected(pki: Pki) -> None:
    doc = json.loads(signed(pki))
    sig = bytearray(base64.urlsafe_b64decode(doc["signatures"][0]["signature"] + "=="))
    sig[5] ^= 1
    doc["signatures"][0]["signature"] = b64url(bytes(sig))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_configuration(json.dumps(doc).encode(), roots=pki.roots, now=NOW)


def test_unsigned_is_rejected(pki: Pki) -> None:
    payload = build_payload(
        pki.registry, version=1, issued_at=NOW, expires_at=NOW + WEEK, trust_anchors=[]
    )
    with pytest.raises(SignatureError, match=r"not signed .*bare document"):
        verify_configuration(payload, roots=pki.roots, now=NOW)
    doc = json.loads(signed(pki))
    doc["signatures"] = []
    with pytest.raises(SignatureError, match="no signatures"):
        verify_configuration(json.dumps(doc).encode(), roots=pki.roots, now=NOW)
    with pytest.raises(SignatureError, match="not JSON"):
        verify_configuration(b"\x00garbage", roots=pki.roots, now=NOW)


def test_expired_and_future_are_rejected(pki: Pki) -> None:
    doc = signed(pki)
    with pytest.raises(ConfigError, match="configuration version 1 expired at 2026-11-30 12:00"):
        verify_configuration(doc, roots=pki.roots, now=NOW + WEEK)
    with pytest.raises(ConfigError, match="issued in the future"):
        verify_configuration(doc, roots=pki.roots, now=NOW - dt.timedelta(hours=1))


def test_wrong_signer_is_rejected(pki: Pki) -> None:
    with pytest.raises(CertificateError) as info:
        verify_configuration(signed(pki, signer="foreign"), roots=pki.roots, now=NOW)
    assert info.value.details.get("reason") == "wrong_issuer"
    with pytest.raises(
        CertificateError,
        match=r"signed by VN/GOV/000\.00\.00\.G01, not by the federation operator",
    ):
        verify_configuration(
            signed(pki, signer="member"),
            roots=pki.roots,
            now=NOW,
            operator=parse_member("VN/GOV/000.00.00.G22"),
        )


def test_swapped_certificate_is_rejected(pki: Pki) -> None:
    """A valid operator chain in x5c does not make another key's signature valid."""
    doc = json.loads(signed(pki, signer="member"))
    header = json.loads(base64.urlsafe_b64decode(doc["signatures"][0]["protected"] + "=="))
    good = json.loads(
        base64.urlsafe_b64decode(json.loads(signed(pki))["signatures"][0]["protected"] + "==")
    )
    header["x5c"] = good["x5c"]
    doc["signatures"][0]["protected"] = b64url(canonical_json(header))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_configuration(json.dumps(doc).encode(), roots=pki.roots, now=NOW)


def test_publish_auto_increments_and_refuses_lower(pki: Pki, tmp_path: Path) -> None:
    out = tmp_path / "globalconf.json"

    def pub(version: int | None = None, key: Signer = pki.operator[0]) -> int:
        return publish(
            pki.registry,
            out=out,
            signers=[(key, pki.chain(pki.operator[1]))],
            roots=pki.roots,
            intermediates=pki.ca.intermediates,
            now=NOW,
            valid_for=parse_duration("7d"),
            version=version,
        )[0]

    assert pub() == 1
    assert pub() == 2
    with pytest.raises(InputError, match="not above the published version 2"):
        pub(2)
    config = verify_configuration(out.read_bytes(), roots=pki.roots, now=NOW)
    assert len(config.trust_anchors) == 2  # root and intermediate
    with pytest.raises(InputError, match="does not match the operator key"):
        pub(key=pki.member[0])


def test_parse_duration() -> None:
    assert parse_duration("1d12h") == dt.timedelta(hours=36)
    for bad in ("", "7", "7x", "0d"):
        with pytest.raises(InputError, match="duration"):
            parse_duration(bad)


def test_publish_refuses_a_signer_who_is_not_the_operator(pki: Pki, tmp_path: Path) -> None:
    key, cert = pki.member  # a valid signing certificate, but of VN/GOV/000.00.00.G01
    with pytest.raises(InputError, match=r"names VN/GOV/000\.00\.00\.G22 as operator of NDXP"):
        publish(
            pki.registry,
            out=tmp_path / "g.json",
            signers=[(key, pki.chain(cert))],
            roots=pki.roots,
            intermediates=pki.ca.intermediates,
            now=NOW,
            valid_for=WEEK,
        )
    assert not (tmp_path / "g.json").exists()
