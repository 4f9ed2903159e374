"""Key stores: encrypted files (refusing plaintext) and a real SoftHSM2 token."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from lienthong.errors import InputError, KeyStoreError, NotFound
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.enrol import make_csr
from lienthong.trust.hsm import Pkcs11KeyStore, reload_module
from lienthong.trust.keys import Algorithm, generate_private_key, verify_signature
from lienthong.trust.keystore import FileKeyStore, open_keystore
from lienthong.trust.profiles import Profile
from lienthong.trust.secrets import resolve_secret
from lienthong.trust.softhsm import SoftHsmToken, init_softhsm_token
from lienthong.trust.x509 import Usage, load_csr, verify_chain

from .conftest import NOW, PASS_ENV
from .helpers import IDENTITY


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_file_store_roundtrip(tmp_path: Path, algorithm: Algorithm) -> None:
    store = FileKeyStore(tmp_path, {"$env": PASS_ENV})
    signer = store.generate("k1", algorithm)
    pem = (tmp_path / "k1.key.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert (tmp_path / "k1.key.pem").stat().st_mode & 0o777 == 0o600
    reopened = FileKeyStore(tmp_path, f"env:{PASS_ENV}").signer("k1")
    verify_signature(reopened.public_key(), reopened.sign(b"x"), b"x")
    verify_signature(signer.public_key(), reopened.sign(b"y"), b"y")
    assert store.labels() == ["k1"]


def test_file_store_refuses_plaintext_and_bad_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = generate_private_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "plain.key.pem").write_bytes(plain)
    store = FileKeyStore(tmp_path, {"$env": PASS_ENV})
    with pytest.raises(KeyStoreError, match="refusing plaintext"):
        store.signer("plain")
    FileKeyStore(tmp_path, {"$env": PASS_ENV}).generate("k")
    monkeypatch.setenv(PASS_ENV, "short")
    with pytest.raises(InputError, match="use at least 12"):
        FileKeyStore(tmp_path, {"$env": PASS_ENV}).generate("k2")
    assert not (tmp_path / "k2.key.pem").exists()
    monkeypatch.setenv(PASS_ENV, "wrong")
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        FileKeyStore(tmp_path, {"$env": PASS_ENV}).signer("k")
    monkeypatch.delenv(PASS_ENV)
    with pytest.raises(InputError, match=f"{PASS_ENV} is not set"):
        FileKeyStore(tmp_path, {"$env": PASS_ENV}).signer("k")
    with pytest.raises(NotFound):
        store.signer("absent")
    with pytest.raises(InputError, match="already exists"):
        store.generate("k")


def test_secret_references(tmp_path: Path) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text("s3cret\n")
    assert resolve_secret({"$file": str(secret)}) == b"s3cret"
    assert resolve_secret(f"file:{secret}") == b"s3cret"
    with pytest.raises(InputError, match="never the secret itself"):
        resolve_secret("s3cret")
    with pytest.raises(InputError, match="cannot read"):
        resolve_secret({"$file": str(tmp_path / "missing")})
    with pytest.raises(InputError, match="must be"):
        open_keystore({"type": "file", "passphrase": "plaintext-passphrase"})
    with pytest.raises(InputError, match="unknown key store type"):
        open_keystore({"type": "tpm"})
    with pytest.raises(InputError, match="key label"):
        FileKeyStore(tmp_path, {"$file": str(secret)}).generate("../escape")


# -- SoftHSM2 --------------------------------------------------------------------------------


@pytest.mark.hsm
def test_hsm_signs_and_key_stays_inside(hsm: Pkcs11KeyStore, tmp_path: Path) -> None:
    signer = hsm.generate("gw-sign")
    signature = signer.sign(b"message")
    verify_signature(signer.public_key(), signature, b"message")
    assert "gw-sign" in hsm.labels()
    import pkcs11

    key = hsm._private("gw-sign")  # the token refuses to reveal the private value
    assert key[pkcs11.Attribute.SENSITIVE] and not key[pkcs11.Attribute.EXTRACTABLE]
    with pytest.raises(pkcs11.PKCS11Error):
        _ = key[pkcs11.Attribute.VALUE]


@pytest.mark.hsm
def test_hsm_ml_dsa_reported_unsupported(hsm: Pkcs11KeyStore) -> None:
    if hsm.supports(Algorithm.ML_DSA_65):
        pytest.skip("this SoftHSM2 build supports ML-DSA")
    with pytest.raises(KeyStoreError, match="does not support ML-DSA-65"):
        hsm.generate("pq", Algorithm.ML_DSA_65)


@pytest.mark.hsm
def test_hsm_csr_and_ca_keys(hsm: Pkcs11KeyStore, hsm_token: SoftHsmToken, tmp_path: Path) -> None:
    # a CA whose keys live in the token issues a certificate for an HSM-held gateway key
    ca = CertificateAuthority.init(
        tmp_path / "ca", keystore_spec=hsm_token.spec(), now=NOW, intermediate=True
    )
    signer = hsm.generate("gw-tls")
    csr = load_csr(
        make_csr(signer, IDENTITY, common_name="gw", dns_names=["localhost"]).public_bytes(
            serialization.Encoding.PEM
        )
    )
    cert = ca.issue(csr, profile=Profile.TLS, now=NOW)
    verify_chain(
        cert, intermediates=ca.intermediates, roots=[ca.root], now=NOW, usage=Usage.TLS_CLIENT
    )
    path = tmp_path / "gw.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    crl = ca.publish_crl(NOW)
    assert crl.is_signature_valid(ca.issuer.public_key())  # type: ignore[arg-type]
    now = dt.datetime.now(dt.UTC)
    fresh = ca.issue(csr, profile=Profile.TLS, now=now)
    path.write_bytes(fresh.public_bytes(serialization.Encoding.PEM))
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca.bundle_path), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert not list((tmp_path / "ca").glob("keys/*"))  # no key files next to the CA


@pytest.mark.hsm
def test_two_cas_share_one_token_and_failed_init_leaves_nothing(
    hsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    a = CertificateAuthority.init(tmp_path / "a", keystore_spec=hsm_token.spec(), now=NOW)
    b = CertificateAuthority.init(tmp_path / "b", keystore_spec=hsm_token.spec(), now=NOW)
    assert a.label("root") != b.label("root")
    with pytest.raises(KeyStoreError, match="does not support ML-DSA"):
        CertificateAuthority.init(
            tmp_path / "pq", keystore_spec=hsm_token.spec(), now=NOW, algorithm=Algorithm.ML_DSA_65
        )
    assert not (tmp_path / "pq").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    with pytest.raises(InputError, match="not empty"):
        CertificateAuthority.init(tmp_path / "a", keystore_spec=hsm_token.spec(), now=NOW)


@pytest.mark.hsm
def test_new_token_after_module_loaded(hsm_token: SoftHsmToken, tmp_path: Path) -> None:
    # SoftHSM2 reads SOFTHSM2_CONF at initialisation: a second token directory in the same
    # process needs the module re-initialised, which init_softhsm_token does
    first = open_keystore(hsm_token.spec())
    first.labels()
    try:
        other = init_softhsm_token(
            tmp_path / "other",
            label="lt-other",
            pin="1111",
            so_pin="2222",
            pin_env="LT_TEST_OTHER_PIN",
        )
        store = open_keystore(other.spec())
        signer = store.generate("k")
        verify_signature(signer.public_key(), signer.sign(b"m"), b"m")
    finally:
        os.environ["SOFTHSM2_CONF"] = str(hsm_token.conf)
        reload_module(hsm_token.module)
    assert isinstance(open_keystore(hsm_token.spec()).labels(), list)
