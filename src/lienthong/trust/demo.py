"""Build a small, complete PKI quickly (for ``lienthong demo`` and tests of other capabilities).

:func:`build_pki` creates a CA (root + intermediate, ECDSA P-256 by default) and, for each
member or subsystem, generates its keys in its own encrypted key store, writes CSRs and has
the CA issue a ``signing`` and a ``tls`` certificate (SAN localhost/127.0.0.1). It does not add
a demo step itself; the federation step calls it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.enrol import make_csr
from lienthong.trust.identity import Identity, member_of, parse_identity
from lienthong.trust.keys import Algorithm, Signer
from lienthong.trust.keystore import FileKeyStore
from lienthong.trust.profiles import Profile

DEMO_PASSPHRASE_ENV = "LIENTHONG_DEMO_PASSPHRASE"
_PEM = serialization.Encoding.PEM


@dataclass
class Enrolled:
    """One member/subsystem's keys and certificates."""

    identity: Identity
    keystore: FileKeyStore
    signing_cert: Path
    tls_cert: Path
    tls_key: Path  # encrypted PKCS#8 (same passphrase reference as the key store)

    def signer(self) -> Signer:
        return self.keystore.signer("signing")


@dataclass
class Pki:
    ca: CertificateAuthority
    ca_bundle: Path
    enrolled: dict[str, Enrolled] = field(default_factory=dict)

    @property
    def certificates(self) -> list[Path]:
        """Every leaf certificate issued, signing and TLS."""
        return [p for e in self.enrolled.values() for p in (e.signing_cert, e.tls_cert)]


def build_pki(
    workdir: Path | str,
    identities: Sequence[Identity | str],
    *,
    algorithm: Algorithm = Algorithm.ECDSA_P256,
    now: dt.datetime | None = None,
    passphrase_env: str = DEMO_PASSPHRASE_ENV,
    intermediate: bool = True,
) -> Pki:
    """Create ``workdir/ca`` and enrol every identity under ``workdir/members/<id>``.

    The passphrase comes from ``passphrase_env``; if unset, a demo-only value is put in this
    process's environment (never on disk).
    """
    workdir = Path(workdir)
    now = now or dt.datetime.now(dt.UTC)
    os.environ.setdefault(passphrase_env, "demo-only-" + os.urandom(8).hex())
    ref = {"$env": passphrase_env}
    ca = CertificateAuthority.init(
        workdir / "ca",
        keystore_spec={"type": "file", "dir": "keys", "passphrase": ref},
        now=now,
        algorithm=algorithm,
        intermediate=intermediate,
    )
    pki = Pki(ca=ca, ca_bundle=ca.bundle_path)
    for item in identities:
        identity = parse_identity(item) if isinstance(item, str) else item
        home = workdir / "members" / str(identity).replace("/", "_")
        store = FileKeyStore(home / "keys", ref)
        certs: dict[Profile, Path] = {}
        for profile in (Profile.SIGNING, Profile.TLS):
            signer = store.generate(profile.value, algorithm)
            name = member_of(identity).member_code.lower() if profile is Profile.TLS else None
            csr = make_csr(
                signer,
                identity,
                common_name=name,
                dns_names=["localhost"] if profile is Profile.TLS else (),
                ip_addresses=["127.0.0.1"] if profile is Profile.TLS else (),
            )
            cert = ca.issue(csr, profile=profile, now=now)
            certs[profile] = home / f"{profile.value}.pem"
            certs[profile].write_bytes(cert.public_bytes(_PEM))
        pki.enrolled[str(identity)] = Enrolled(
            identity,
            store,
            certs[Profile.SIGNING],
            certs[Profile.TLS],
            store.directory / "tls.key.pem",
        )
    return pki
