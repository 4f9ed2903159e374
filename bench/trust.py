"""Signatures and verifications per second per algorithm and key store, beside the raw limit.

    python bench/trust.py [--json] [--seconds 1.0]

Rows: ECDSA P-256 and ML-DSA-65 × the encrypted-file key store and a PKCS#11 token (SoftHSM2
in a throw-away directory). ``limit_sign_per_s`` is raw ``cryptography`` signing with an
in-memory key, measured in the same run: the ceiling any key store can reach on this machine.
Figures on a shared 2-core machine are provisional.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from lienthong.errors import LienthongError
from lienthong.trust.ca import CertificateAuthority
from lienthong.trust.enrol import make_csr
from lienthong.trust.identity import parse_identity
from lienthong.trust.keys import (
    Algorithm,
    Signer,
    SoftwareSigner,
    generate_private_key,
    verify_signature,
)
from lienthong.trust.keystore import FileKeyStore, KeyStore, open_keystore
from lienthong.trust.ocsp import build_request, verify_response
from lienthong.trust.profiles import Profile
from lienthong.trust.softhsm import init_softhsm_token, softhsm_module
from lienthong.trust.x509 import verify_chain

MESSAGE = os.urandom(256)


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(3):
        fn()
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            fn()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def raw_limit(algorithm: Algorithm, seconds: float) -> float:
    key = generate_private_key(algorithm)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        ecdsa = ec.ECDSA(hashes.SHA256())
        return rate(lambda: key.sign(MESSAGE, ecdsa), seconds)
    return rate(lambda: key.sign(MESSAGE), seconds)


def _row(
    algorithm: Algorithm,
    store: str,
    sign: float | None,
    verify: float | None,
    limit: float,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "algorithm": algorithm.value,
        "keystore": store,
        "sign_per_s": None if sign is None else round(sign),
        "verify_per_s": None if verify is None else round(verify),
        "limit_sign_per_s": round(limit),
        "supported": reason is None,
        "reason": reason,
    }


def measure(
    store: KeyStore, name: str, algorithm: Algorithm, seconds: float, limit: float
) -> dict[str, Any]:
    try:
        signer: Signer = store.generate(f"bench-{algorithm.value.lower()}", algorithm)
    except LienthongError as exc:
        return _row(algorithm, name, None, None, limit, exc.message)
    signature = signer.sign(MESSAGE)
    public = signer.public_key()
    sign = rate(lambda: signer.sign(MESSAGE), seconds)
    verify = rate(lambda: verify_signature(public, signature, MESSAGE), seconds)
    return _row(algorithm, name, sign, verify, limit)


def run(seconds: float) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lt-bench-trust-") as tmp:
        os.environ["LT_BENCH_PASSPHRASE"] = os.urandom(12).hex()
        file_store = FileKeyStore(Path(tmp) / "keys", {"$env": "LT_BENCH_PASSPHRASE"})
        stores: list[tuple[str, KeyStore | str]] = [("file", file_store)]
        if softhsm_module() is None:
            stores.append(
                ("pkcs11-softhsm2", "SoftHSM2 is not installed (apt-get install softhsm2)")
            )
        else:
            token = init_softhsm_token(
                Path(tmp) / "hsm", label="bench", pin="1234", so_pin="5678", pin_env="LT_BENCH_PIN"
            )
            stores.append(("pkcs11-softhsm2", open_keystore(token.spec())))
        for algorithm in Algorithm:
            for name, store in stores:
                # the limit is measured just before each row, so both see the same machine load
                limit = raw_limit(algorithm, seconds)
                if isinstance(store, str):
                    rows.append(_row(algorithm, name, None, None, limit, store))
                else:
                    rows.append(measure(store, name, algorithm, seconds, limit))
        operations = measure_operations(Path(tmp), seconds)
    return {
        "rows": rows,
        "operations": operations,
        "message_bytes": len(MESSAGE),
        "provisional": True,
        "cpu_count": os.cpu_count(),
    }


def measure_operations(tmp: Path, seconds: float) -> list[dict[str, Any]]:
    """What a gateway and the status service do per message or per peer, per algorithm:
    chain validation (leaf → intermediate → root), OCSP answer (build + sign) and its
    verification, RFC 3161 token issuance."""
    now = dt.datetime.now(dt.UTC)
    digest = hashlib.sha256(MESSAGE).digest()
    out = []
    for algorithm in Algorithm:
        ca = CertificateAuthority.init(
            tmp / f"ca-{algorithm.value}",
            now=now,
            algorithm=algorithm,
            intermediate=True,
            keystore_spec={
                "type": "file",
                "dir": "keys",
                "passphrase": {"$env": "LT_BENCH_PASSPHRASE"},
            },
        )
        signer = SoftwareSigner(generate_private_key(algorithm))
        leaf = ca.issue(
            make_csr(signer, parse_identity("VN/GOV/G01.BCA/BENCH")),
            profile=Profile.SIGNING,
            now=now,
        )
        request = build_request(leaf, ca.issuer)
        answer = ca.ocsp_response(request, now)
        tsa = ca.timestamp_authority()
        ops: dict[str, Callable[[], object]] = {
            "verify_chain": lambda ca=ca, leaf=leaf: verify_chain(
                leaf, intermediates=ca.intermediates, roots=[ca.root], now=now
            ),
            "ocsp_answer": lambda ca=ca, req=request: ca.ocsp_response(req, now),
            "ocsp_verify": lambda ca=ca, leaf=leaf, ans=answer: verify_response(
                ans, cert=leaf, issuer=ca.issuer, now=now
            ),
            "timestamp": lambda tsa=tsa: tsa.timestamp(digest),
        }
        for name, fn in ops.items():
            out.append(
                {
                    "algorithm": algorithm.value,
                    "operation": name,
                    "per_s": round(rate(fn, seconds / 2)),
                }
            )
    return out


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{'algorithm':<11} {'keystore':<16} {'sign/s':>9} {'verify/s':>9} "
        f"{'limit sign/s':>13}  note"
    )
    for row in result["rows"]:

        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:,.0f}"

        note = "" if row["supported"] else f"unsupported: {row['reason']}"
        print(
            f"{row['algorithm']:<11} {row['keystore']:<16} {fmt(row['sign_per_s']):>9} "
            f"{fmt(row['verify_per_s']):>9} {fmt(row['limit_sign_per_s']):>13}  {note}"
        )
    print()
    print(f"{'algorithm':<11} {'operation (file key store)':<28} {'per s':>9}")
    for op in result["operations"]:
        print(f"{op['algorithm']:<11} {op['operation']:<28} {op['per_s']:>9,}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args(argv)
    result = run(args.seconds)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
