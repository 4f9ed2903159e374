"""Routing through the platform hierarchy and access checks."""

from __future__ import annotations

import pytest

from lienthong.classification import Level
from lienthong.errors import AccessDenied, NotFound
from lienthong.federation.access import (
    certificates_of,
    check_access,
    find_certificate,
    path_matches,
    policy_for,
)
from lienthong.federation.loader import registry_from_dict
from lienthong.federation.model import CertUsage, Registry
from lienthong.federation.routing import Hop, route
from lienthong.federation.sample import BCA, BHXH, GDDT, HANOI, OPERATOR, THUE, sample_registry
from lienthong.identifiers import MemberId, ServiceId, SubsystemId, parse_member


@pytest.fixture(scope="module")
def reg() -> Registry:
    return registry_from_dict(sample_registry())


def m(short: str) -> MemberId:
    return parse_member(f"VN/{short}")


def ids(hops: list[Hop]) -> list[str]:
    return [h.id for h in hops]


def test_route_up_and_down(reg: Registry) -> None:
    hops = route(reg, m(HANOI), m(BCA))
    assert ids(hops) == [f"VN/{HANOI}", "LGSP-HN", "NDXP", "LGSP-BCA", f"VN/{BCA}"]
    assert [h.kind for h in hops] == ["member", "platform", "platform", "platform", "member"]
    # The platform-parent edges carry both physical links.
    assert len(hops[2].links) == 2 and len(hops[3].links) == 2
    assert hops[1].addresses == ("https://lgsp.hanoi.example:8443",)


def test_route_via_common_ancestor_only(reg: Registry) -> None:
    assert ids(route(reg, m(BHXH), m(GDDT))) == [f"VN/{BHXH}", "NDXP", f"VN/{GDDT}"]
    assert ids(route(reg, m(THUE), m(HANOI))) == [
        f"VN/{THUE}",
        "LGSP-BTC",
        "NDXP",
        "LGSP-HN",
        f"VN/{HANOI}",
    ]


def test_direct_link_and_same_member(reg: Registry) -> None:
    assert ids(route(reg, m(BHXH), m(BCA))) == [f"VN/{BHXH}", f"VN/{BCA}"]
    assert ids(route(reg, m(BCA), m(BCA))) == [f"VN/{BCA}"]


def test_level_policy_restricts_routes(reg: Registry) -> None:
    # MAT only inside the isolated zone (BCA and the operator share VUNG-MAT-1).
    assert ids(route(reg, m(OPERATOR), m(BCA), level=Level.MAT)) == [f"VN/{OPERATOR}", f"VN/{BCA}"]
    with pytest.raises(AccessDenied) as info:
        route(reg, m(HANOI), m(BCA), level=Level.MAT)
    assert "isolated zone" in info.value.details["reasons"][0]
    with pytest.raises(AccessDenied, match="TOI_MAT"):
        route(reg, m(OPERATOR), m(BCA), level=Level.TOI_MAT)
    with pytest.raises(AccessDenied, match="unknown member"):
        route(reg, parse_member("VN/GOV/000.00.00.G99"), m(BCA))


def test_unattached_member_has_no_route() -> None:
    doc = sample_registry()
    del doc["members"][3]["platform"]
    reg = registry_from_dict(doc)
    with pytest.raises(AccessDenied) as info:
        route(reg, m(GDDT), m(HANOI))
    assert "not attached to any platform" in info.value.details["reasons"][0]


def test_policy_for(reg: Registry) -> None:
    assert policy_for(reg, Level.PERSONAL).e2e_encryption
    assert "hybrid-x25519-mlkem768-aes256gcm" in policy_for(reg, Level.PERSONAL).encryption
    assert not policy_for(reg, Level.TUYET_MAT).allowed
    assert not policy_for(Registry("VN"), Level.PUBLIC).allowed  # fail closed


def test_path_matches_by_segment() -> None:
    assert path_matches("/residence", "/residence")
    assert path_matches("/residence/", "/residence/1")
    assert not path_matches("/residence", "/residences")
    assert path_matches(None, "/anything") and path_matches("/", "/x")


def test_check_access(reg: Registry) -> None:
    portal = SubsystemId.parse(f"VN/{HANOI}/CONG-DVC")
    residence = ServiceId.parse(f"VN/{BCA}/DAN-CU/residence-lookup")
    check_access(reg, portal, residence, "/residence/001203000123")
    check_access(reg, portal, ServiceId.parse(f"VN/{BHXH}/BHYT/card-status"), "/x")  # group
    for path in ("/other", "/residence/../admin", "residence"):
        with pytest.raises(AccessDenied):
            check_access(reg, portal, residence, path)
    tms = SubsystemId.parse(f"VN/{THUE}/TMS")
    with pytest.raises(AccessDenied) as info:
        check_access(reg, tms, ServiceId.parse(f"VN/{BCA}/AN-NINH/case-summary"), "/")
    reasons = info.value.details["reasons"]
    assert any("no access right" in r for r in reasons)
    assert any("clearance PERSONAL is below the service level MAT" in r for r in reasons)
    with pytest.raises(AccessDenied, match="unknown service"):
        check_access(reg, tms, ServiceId.parse(f"VN/{BCA}/DAN-CU/nope"), "/")


def test_certificate_lookup() -> None:
    doc = sample_registry()
    doc["members"][1]["subsystems"][0]["certificates"] = [
        {"usage": "tls", "fingerprint": "AB:" * 31 + "AB"}
    ]
    reg = registry_from_dict(doc)
    owner, ref = find_certificate(reg, "ab" * 32)
    assert str(owner) == f"VN/{BCA}/DAN-CU" and ref.usage is CertUsage.TLS
    assert certificates_of(reg, SubsystemId.parse(f"VN/{BCA}/DAN-CU"), CertUsage.SIGNING) == ()
    with pytest.raises(NotFound):
        find_certificate(reg, "cd" * 32)
