"""Signed envelopes: our compact JWS interoperates with jwcrypto both ways; strict parsing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from jwcrypto import jwk, jws

from lienthong.exchange.envelope import (
    KeyedSigner,
    VerifyKey,
    hop_receipt,
    sign_claims,
    token_hash,
    verify_tokens,
)
from lienthong.exchange.protocol import Refused
from lienthong.trust.keys import Algorithm, SoftwareSigner, generate_private_key

EC = SoftwareSigner(generate_private_key(Algorithm.ECDSA_P256))
PQ = SoftwareSigner(generate_private_key(Algorithm.ML_DSA_65))
OTHER = SoftwareSigner(generate_private_key(Algorithm.ECDSA_P256))
KEYS = {
    "ec": VerifyKey(EC.public_key(), "VN/GOV/G07.BHXH/GIAMDINH", Algorithm.ECDSA_P256),
    "pq": VerifyKey(PQ.public_key(), "VN/GOV/G07.BHXH/GIAMDINH", Algorithm.ML_DSA_65),
    "other": VerifyKey(OTHER.public_key(), "VN/GOV/G01.BCA/DANCU", Algorithm.ECDSA_P256),
}
CLAIMS = {"v": 1, "typ": "lt-req", "id": "x", "purpose": "kiểm thử"}


def lookup(kid: str) -> VerifyKey:
    if kid not in KEYS:
        raise KeyError(kid)
    return KEYS[kid]


def test_hybrid_round_trip() -> None:
    tokens = sign_claims(CLAIMS, [KeyedSigner(EC, "ec"), KeyedSigner(PQ, "pq")])
    assert tokens[1].split(".")[1] == ""  # detached payload
    claims, who = verify_tokens(tokens, lookup, hybrid=True)
    assert claims == CLAIMS and who == "VN/GOV/G07.BHXH/GIAMDINH"


def test_hybrid_required_and_identity_must_match() -> None:
    single = sign_claims(CLAIMS, [KeyedSigner(EC, "ec")])
    with pytest.raises(Refused, match="hybrid"):
        verify_tokens([*single, ""], lookup, hybrid=True)
    mixed = sign_claims(CLAIMS, [KeyedSigner(OTHER, "other"), KeyedSigner(PQ, "pq")])
    with pytest.raises(Refused, match="another identity"):
        verify_tokens(mixed, lookup, hybrid=True)


def test_jwcrypto_verifies_our_tokens() -> None:
    tokens = sign_claims(CLAIMS, [KeyedSigner(EC, "ec"), KeyedSigner(PQ, "pq")])
    obj = jws.JWS()
    obj.deserialize(tokens[0])
    obj.verify(jwk.JWK.from_pyca(EC.public_key()), alg="ES256")
    detached = jws.JWS()
    detached.deserialize(tokens[1])
    detached.verify(
        jwk.JWK.from_pyca(PQ.public_key()), alg="ML-DSA-65", detached_payload=obj.objects["payload"]
    )


def test_we_verify_jwcrypto_tokens() -> None:
    key = jwk.JWK.from_pyca(EC.private_key)
    obj = jws.JWS(b'{"v":1,"typ":"lt-req"}')
    obj.add_signature(key, alg="ES256", protected={"alg": "ES256", "kid": "ec"})
    claims, _ = verify_tokens([obj.serialize(compact=True)], lookup, hybrid=False)
    assert claims["typ"] == "lt-req"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t + "=",
        lambda t: t.replace(".", "..", 1),
        lambda t: "eyJhbGciOiJub25lIiwia2lkIjoiZWMifQ." + t.split(".", 1)[1],  # alg none
        lambda t: t.rsplit(".", 1)[0] + ".AAAA",
        lambda t: "",
    ],
)
def test_mangled_tokens(mangle: Callable[[str], str]) -> None:
    token = sign_claims(CLAIMS, [KeyedSigner(EC, "ec")])[0]
    with pytest.raises(Refused):
        verify_tokens([mangle(token)], lookup, hybrid=False)


def test_receipt_binds_request_hash() -> None:
    tokens = sign_claims(CLAIMS, [KeyedSigner(EC, "ec")])
    receipt = hop_receipt("NDXP", token_hash(tokens[0]), 1.0, KeyedSigner(OTHER, "other"))
    claims, who = verify_tokens([receipt], lookup, hybrid=False)
    assert who == "VN/GOV/G01.BCA/DANCU"
    assert claims["req"] == token_hash(tokens[0]) and claims["node"] == "NDXP"


def test_claims_must_be_a_json_object_of_our_version() -> None:
    for payload in ([1, 2], {"v": 2}, "not json"):
        raw = payload if isinstance(payload, str) else None
        claims_token = sign_claims({"v": 1}, [KeyedSigner(EC, "ec")])[0]
        header, _, _ = claims_token.split(".")
        from lienthong.exchange.e2e import b64e
        from lienthong.exchange.envelope import _raw_signature

        body = b64e(raw.encode() if raw else __import__("orjson").dumps(payload))
        sig = b64e(_raw_signature(EC, f"{header}.{body}".encode()))
        with pytest.raises(Refused):
            verify_tokens([f"{header}.{body}.{sig}"], lookup, hybrid=False)


@pytest.mark.parametrize("part", ["QQ+B", "QQ/B", "QQ==", "QQ B", "QQ\nB", "QQé", "QQBBQ", "QQ.B"])
def test_token_parts_are_strict_unpadded_base64url(part: str) -> None:
    from lienthong.exchange.envelope import _strict_b64

    assert _strict_b64("QQ") == b"A" and _strict_b64("-_-_") == b"\xfb\xff\xbf"
    with pytest.raises(Refused):
        _strict_b64(part)
