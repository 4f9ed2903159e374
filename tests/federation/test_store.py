"""A node's configuration store: roll-back, equivocation, last good copy, health."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from lienthong.errors import BackendError, ConfigError, NotFound, TrustError
from lienthong.federation.globalconf import build_payload, sign_payload
from lienthong.federation.store import Anchor, ConfigStore

from .pkihelp import NOW, Pki

WEEK = dt.timedelta(days=7)


def doc(pki: Pki, version: int, *, issued: dt.datetime = NOW, note: str = "") -> bytes:
    registry = pki.registry
    if note:  # same version, different content
        registry = dataclasses.replace(registry, direct_links=(), _index={})
    payload = build_payload(
        registry, version=version, issued_at=issued, expires_at=issued + WEEK, trust_anchors=[]
    )
    return sign_payload(payload, [(pki.operator[0], pki.chain(pki.operator[1]))])


def store(pki: Pki, tmp_path: Path, sources: tuple[str, ...] = ()) -> ConfigStore:
    anchor = Anchor(
        pki.ca.root.public_bytes(Encoding.PEM),
        operator="VN/GOV/000.00.00.G22",
        sources=sources,
        warn_before_hours=48,
    )
    return ConfigStore.bootstrap(tmp_path / "globalconf", anchor)


def test_accept_then_refuse_rollback_and_equivocation(pki: Pki, tmp_path: Path) -> None:
    s = store(pki, tmp_path)
    assert s.accept(doc(pki, 2), NOW)[1] is True
    assert s.accept(doc(pki, 2), NOW)[1] is False  # same document again: no change
    with pytest.raises(
        TrustError, match="roll-back refused: offered version 1 is older than accepted version 2"
    ):
        s.accept(doc(pki, 1), NOW)
    with pytest.raises(TrustError, match="version 2 was already accepted with different"):
        s.accept(doc(pki, 2, note="x"), NOW)
    assert s.current(NOW).version == 2
    assert s.accept(doc(pki, 3), NOW)[0].version == 3
    # A fresh ConfigStore object on the same directory remembers (state is on disk).
    with pytest.raises(TrustError, match="roll-back"):
        ConfigStore(s.directory).accept(doc(pki, 2), NOW)


def test_fetch_failure_keeps_last_good_copy(pki: Pki, tmp_path: Path) -> None:
    good = tmp_path / "published.json"
    good.write_bytes(doc(pki, 1))
    s = store(pki, tmp_path, sources=(str(tmp_path / "missing.json"), str(good)))
    assert s.refresh(NOW)[0].version == 1  # first source missing, mirror works
    assert s.health(NOW).status == "ok"
    good.unlink()
    with pytest.raises(BackendError, match="every source failed"):
        s.refresh(NOW + dt.timedelta(hours=1))
    health = s.health(NOW + dt.timedelta(hours=1))
    assert health.status == "warning" and "last fetch failed" in health.problems[0]
    assert s.current(NOW + dt.timedelta(hours=1)).version == 1  # still working


def test_tampered_fetch_is_refused_not_transient(pki: Pki, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(doc(pki, 5).replace(b'"signature":"', b'"signature":"AA'))
    s = store(pki, tmp_path, sources=(str(bad),))
    with pytest.raises(TrustError):
        s.refresh(NOW)


def test_health_warns_before_expiry_and_fails_after(pki: Pki, tmp_path: Path) -> None:
    s = store(pki, tmp_path)
    assert s.health(NOW).status == "failing"  # nothing fetched yet
    s.accept(doc(pki, 1), NOW)
    assert s.health(NOW + dt.timedelta(days=4)).status == "ok"
    h = s.health(NOW + dt.timedelta(days=6))
    assert h.status == "warning" and "expires in 24.0 h" in h.problems[0]
    h = s.health(NOW + WEEK)
    assert h.status == "failing" and "expired" in h.problems[0]


def test_missing_anchor_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"anchor\.json missing: run `lienthong federation fetch"):
        ConfigStore(tmp_path).current(NOW)


def test_operator_must_be_pinned(pki: Pki, tmp_path: Path) -> None:
    anchor = Anchor(pki.ca.root.public_bytes(Encoding.PEM), operator="")
    with pytest.raises(ConfigError, match="operator identity must be pinned"):
        ConfigStore.bootstrap(tmp_path, anchor)


def test_unreachable_http_source_is_transient(pki: Pki, tmp_path: Path) -> None:
    s = store(pki, tmp_path, sources=("http://127.0.0.1:9/globalconf",))
    s.accept(doc(pki, 1), NOW)
    with pytest.raises(BackendError, match=r"cannot fetch http://127\.0\.0\.1:9/globalconf"):
        s.refresh(NOW, timeout=2)
    assert s.current(NOW).version == 1
    assert s.health(NOW).status == "warning"
