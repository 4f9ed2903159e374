"""Identity mapping in certificates (property-based) and small parsers of the trust core."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.errors import CertificateError, InputError
from lienthong.identifiers import MEMBER_CLASSES, MemberId, SubsystemId
from lienthong.trust.enrol import make_csr
from lienthong.trust.identity import identity_of, identity_uri, parse_identity, subject_for
from lienthong.trust.keys import SoftwareSigner, generate_private_key
from lienthong.trust.revocation import parse_reason, serial_key
from lienthong.trust.secrets import parse_secret_ref

GROUP = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=5)
MEMBER_CODE = st.lists(GROUP, min_size=1, max_size=5).map(".".join).filter(lambda c: len(c) <= 35)
PART = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.",
    min_size=1,
    max_size=20,
).filter(lambda p: p not in (".", ".."))
MEMBERS = st.builds(
    MemberId,
    st.sampled_from(["VN", "XROADVN", "VN-TEST"]),
    st.sampled_from(MEMBER_CLASSES),
    MEMBER_CODE,
)
IDENTITIES = st.one_of(MEMBERS, st.builds(SubsystemId, MEMBERS, PART))
SIGNER = SoftwareSigner(generate_private_key())


@settings(max_examples=60, deadline=None)
@given(IDENTITIES)
def test_identity_roundtrips_through_csr(identity: MemberId | SubsystemId) -> None:
    csr = make_csr(SIGNER, identity)
    assert identity_of(csr) == identity
    assert parse_identity(str(identity)) == identity


def test_subject_must_agree_with_uri() -> None:
    ident = SubsystemId.parse("VN/GOV/G01.BCA/DANCU")
    other = MemberId("VN", "GOV", "G02.BTC")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject_for(other))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity_uri(ident))]),
            critical=False,
        )
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    with pytest.raises(CertificateError, match="does not match its identity"):
        identity_of(csr)


@pytest.mark.parametrize(
    "text",
    [
        "VN/GOV",
        "VN/XXX/G01",
        "VN/GOV/g01.bca",
        "VN/GOV/G01..BCA",
        "VN/GOV/" + "A" * 36,
        "a/b/c/d/e",
    ],
)
def test_bad_identities(text: str) -> None:
    with pytest.raises(InputError):
        parse_identity(text)


@given(st.integers(min_value=1, max_value=2**159))
def test_serial_key_normalises(serial: int) -> None:
    hexa = f"{serial:x}"
    assert serial_key(serial) == hexa
    assert serial_key("0x" + hexa.upper()) == hexa
    colons = ":".join(
        hexa.zfill(len(hexa) + len(hexa) % 2)[i : i + 2]
        for i in range(0, len(hexa) + len(hexa) % 2, 2)
    )
    assert serial_key(colons) == hexa


@pytest.mark.parametrize("bad", ["", "xyz", "0", "-5"])
def test_serial_key_rejects(bad: str) -> None:
    with pytest.raises(InputError):
        serial_key(bad)


def test_reasons_and_secret_refs() -> None:
    assert parse_reason("KEYCOMPROMISE") is x509.ReasonFlags.key_compromise
    with pytest.raises(InputError, match="unknown revocation reason"):
        parse_reason("removeFromCRL")
    assert parse_secret_ref("env:X") == {"$env": "X"}
    assert parse_secret_ref({"$file": "/p"}) == {"$file": "/p"}
    for bad in ("X", "env:", {"$env": ""}, {"$env": "A", "$file": "B"}, 42):
        with pytest.raises(InputError):
            parse_secret_ref(bad)
