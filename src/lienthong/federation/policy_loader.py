"""The crypto policy per classification level: defaults and the declarative form.

Fail closed: a level missing from the file is not allowed. The defaults (written by
``lienthong federation init``) allow PUBLIC–SENSITIVE on every path with end-to-end
encryption from PERSONAL up, MAT only inside an isolated zone, and refuse TOI_MAT and
TUYET_MAT: those need the state cipher (cơ yếu), which a federation enables by naming its suite.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from lienthong.classification import Level
from lienthong.federation import fields as f
from lienthong.federation.model import LevelPolicy

HYBRID_KEM = "hybrid-x25519-mlkem768-aes256gcm"
HYBRID_SIG = "hybrid-ecdsa-p256+ml-dsa-65"
POLICY_KEYS = {
    "allowed",
    "e2e_encryption",
    "transport",
    "encryption",
    "signature",
    "isolated_zone_only",
    "direct",
    "relayed",
}


def default_policy() -> tuple[LevelPolicy, ...]:
    """The starter policy, one entry per level, lowest first."""
    return (
        LevelPolicy(Level.PUBLIC, allowed=True, e2e_encryption=False),
        LevelPolicy(Level.INTERNAL, allowed=True, e2e_encryption=False),
        LevelPolicy(Level.PERSONAL, allowed=True, encryption=(HYBRID_KEM,)),
        LevelPolicy(
            Level.SENSITIVE, allowed=True, encryption=(HYBRID_KEM,), signature=(HYBRID_SIG,)
        ),
        LevelPolicy(
            Level.MAT,
            allowed=True,
            encryption=(HYBRID_KEM,),
            signature=(HYBRID_SIG,),
            isolated_zone_only=True,
            relayed=False,
        ),
        LevelPolicy(Level.TOI_MAT, allowed=False),
        LevelPolicy(Level.TUYET_MAT, allowed=False),
    )


def policy_to_dict(policy: LevelPolicy) -> dict[str, Any]:
    return {
        "allowed": policy.allowed,
        "e2e_encryption": policy.e2e_encryption,
        "transport": list(policy.transport),
        "encryption": list(policy.encryption),
        "signature": list(policy.signature),
        "isolated_zone_only": policy.isolated_zone_only,
        "direct": policy.direct,
        "relayed": policy.relayed,
    }


def crypto_policy(problems: f.Problems, raw: Any, path: str) -> tuple[LevelPolicy, ...]:
    """Parse ``{LEVEL: {...}}``; levels not named are refused (``allowed: false``)."""
    if raw is None:
        return default_policy()
    if not isinstance(raw, dict):
        problems.add(path, "expected a mapping of level name to policy")
        return ()
    found: dict[Level, LevelPolicy] = {}
    for key, value in raw.items():
        p = f.join(path, str(key))
        level = f.convert(problems, p, partial(Level.parse, str(key)))
        if level is None:
            continue
        if level in found:
            problems.add(p, f"level {level} is given twice")
        entry = _level_policy(problems, level, value, p)
        if entry is not None:
            found[level] = entry
    return tuple(found.get(level, LevelPolicy(level, allowed=False)) for level in Level)


def _level_policy(problems: f.Problems, level: Level, raw: Any, path: str) -> LevelPolicy | None:
    d = f.mapping(problems, raw, path, POLICY_KEYS)
    if d is None:
        return None
    policy = LevelPolicy(
        level,
        allowed=f.flag(problems, d, "allowed", path, False),
        e2e_encryption=f.flag(problems, d, "e2e_encryption", path, True),
        transport=f.strings(problems, d, "transport", path) if "transport" in d else ("tls13",),
        encryption=f.strings(problems, d, "encryption", path),
        signature=(
            f.strings(problems, d, "signature", path) if "signature" in d else ("ecdsa-p256",)
        ),
        isolated_zone_only=f.flag(problems, d, "isolated_zone_only", path, False),
        direct=f.flag(problems, d, "direct", path, True),
        relayed=f.flag(problems, d, "relayed", path, True),
    )
    if policy.allowed and policy.e2e_encryption and not policy.encryption:
        problems.add(f.join(path, "encryption"), "e2e_encryption is required but no suite is named")
    if policy.allowed and not policy.signature:
        problems.add(
            f.join(path, "signature"), "an allowed level needs at least one signature suite"
        )
    if policy.allowed and not (policy.direct or policy.relayed):
        problems.add(path, "allowed but neither direct nor relayed: set allowed: false instead")
    return policy
