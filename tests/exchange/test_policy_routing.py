"""Pure routing and classification rules on a hand-made directory."""

from __future__ import annotations

from typing import Any

import pytest

from lienthong.classification import Level
from lienthong.exchange import transport
from lienthong.exchange.directory import (
    Directory,
    DirectoryFile,
    NodeEntry,
    ServiceEntry,
    SubsystemEntry,
    directory_from_file,
)
from lienthong.exchange.policy import verify_access, verify_route
from lienthong.exchange.protocol import ErrorCode, Refused
from lienthong.exchange.routing import next_hop, plan_route, previous_hop
from lienthong.identifiers import ServiceId, SubsystemId

A = "VN/GOV/G07.BHXH/GIAMDINH"
B = "VN/GOV/G01.BCA/DANCU"
LOW = "VN/GOV/G07.BHXH/CONG"
SECRET = "VN/GOV/G01.BCA/QUOCPHONG"


def _directory(direct: bool = False) -> Directory:
    nodes = [
        NodeEntry("NDXP", "platform", ["127.0.0.1:1"]),
        NodeEntry("LGSP-BYT", "platform", ["127.0.0.1:2", "127.0.0.1:3"], parent="NDXP"),
        NodeEntry(
            "BHXH", "agency", ["127.0.0.1:4"], parent="LGSP-BYT", max_level="TUYET_MAT", zone="Z"
        ),
        NodeEntry("BCA", "agency", ["127.0.0.1:5"], parent="NDXP", max_level="TUYET_MAT", zone="Z"),
    ]
    return directory_from_file(
        DirectoryFile(
            instance="VN",
            subsystems=[
                SubsystemEntry(A, "TUYET_MAT", "BHXH"),
                SubsystemEntry(LOW, "INTERNAL", "BHXH"),
                SubsystemEntry(B, "TUYET_MAT", "BCA"),
            ],
            services=[
                ServiceEntry(f"{B}/cu-tru", "PERSONAL"),
                ServiceEntry(f"{B}/mat", "MAT"),
                ServiceEntry(f"{B}/tuyet-mat", "TUYET_MAT"),
            ],
            access=[
                [A, f"{B}/cu-tru"],
                [A, f"{B}/mat"],
                [A, f"{B}/tuyet-mat"],
                [LOW, f"{B}/cu-tru"],
            ],
            nodes=nodes,
            direct_links=[["BHXH", "BCA"]] if direct else [],
        )
    )


def test_route_climbs_to_the_common_platform() -> None:
    d = _directory()
    route = plan_route(d, "BHXH", "BCA")
    assert route == ["BHXH", "LGSP-BYT", "NDXP", "BCA"]
    assert next_hop(route, "LGSP-BYT") == "NDXP" and previous_hop(route, "NDXP") == "LGSP-BYT"
    assert next_hop(route, "BCA") is None
    assert plan_route(_directory(direct=True), "BHXH", "BCA") == ["BHXH", "BCA"]
    with pytest.raises(Refused):
        next_hop(route, "ELSEWHERE")


def test_access_and_clearance() -> None:
    d = _directory()
    decision = verify_access(d, SubsystemId.parse(A), ServiceId.parse(f"{B}/cu-tru"))
    assert decision.level is Level.PERSONAL and decision.policy.encrypt
    assert not decision.policy.hybrid_signature
    with pytest.raises(Refused) as err:
        verify_access(d, SubsystemId.parse(LOW), ServiceId.parse(f"{B}/cu-tru"))
    assert err.value.lt_code is ErrorCode.CLEARANCE
    with pytest.raises(Refused) as err:
        verify_access(d, SubsystemId.parse(LOW), ServiceId.parse(f"{B}/mat"))
    assert err.value.lt_code is ErrorCode.ACCESS_DENIED
    with pytest.raises(Refused) as err:
        verify_access(d, SubsystemId.parse(SECRET), ServiceId.parse(f"{B}/mat"))
    assert err.value.lt_code is ErrorCode.ACCESS_DENIED


def test_levels_on_the_route() -> None:
    d = _directory()
    route = plan_route(d, "BHXH", "BCA")
    verify_route(d, Level.MAT, route)  # platforms allow up to TOI_MAT by default
    with pytest.raises(Refused) as err:
        verify_route(d, Level.TUYET_MAT, route)
    assert err.value.lt_code is ErrorCode.ROUTE
    # TUYET_MAT only inside one isolated zone: the direct link inside zone Z is fine.
    direct = _directory(direct=True)
    verify_route(direct, Level.TUYET_MAT, plan_route(direct, "BHXH", "BCA"))


def test_dead_link_goes_last() -> None:
    transport._DOWN_UNTIL.clear()
    assert transport._in_preference(["a", "b"]) == ["a", "b"]
    transport._DOWN_UNTIL["a"] = float("inf")
    assert transport._in_preference(["a", "b"]) == ["b", "a"]
    transport._DOWN_UNTIL.clear()


def test_expired_configuration_fails_closed_after_grace() -> None:
    import dataclasses
    from types import SimpleNamespace

    from lienthong.exchange.server import verify_fresh_configuration

    d = dataclasses.replace(_directory(), expires_at=1000.0)
    node = SimpleNamespace(
        directory=d, cfg=SimpleNamespace(limits=SimpleNamespace(config_grace_s=50))
    )
    verify_fresh_configuration(node, 1040.0)
    with pytest.raises(Refused) as err:
        verify_fresh_configuration(node, 1051.0)
    assert err.value.lt_code is ErrorCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("address", "kem", "message"),
    [
        ("nohostport", {}, "address 'nohostport' is not host:port"),
        ("127.0.0.1:99999", {}, "address '127.0.0.1:99999' is not host:port"),
        ("127.0.0.1:", {}, "is not host:port"),
        (":443", {}, "is not host:port"),
        ("127.0.0.1:4", {"x25519": "AAAA", "mlkem768": "AAAA"}, "kem x25519 is 3 bytes, not 32"),
        ("127.0.0.1:4", {"x25519": "!!", "mlkem768": "AAAA"}, "kem x25519 is not base64url"),
        ("127.0.0.1:4", {"x25519": "AAAA"}, "kem must hold exactly"),
    ],
)
def test_a_directory_entry_a_call_could_not_use_is_refused_at_load(
    address: str, kem: dict[str, str], message: str
) -> None:
    """An address that is no host:port was found by the first call to that node (an int()
    error inside the transport), a garbage key-agreement key by the first call encrypted to
    the subsystem: now the directory is refused at load (the node keeps the view it has) and
    the message names the entry."""
    from lienthong.errors import ConfigError

    data = DirectoryFile(
        instance="VN",
        subsystems=[SubsystemEntry(A, "PUBLIC", "BHXH", kem=kem)],
        services=[],
        access=[],
        nodes=[NodeEntry("BHXH", "agency", [address])],
    )
    with pytest.raises(ConfigError, match="federation directory") as refused:
        directory_from_file(data)
    assert message in str(refused.value)


def test_addresses_a_gateway_can_dial_are_accepted() -> None:
    for address in ("127.0.0.1:1", "gw.bhxh.gov.vn:8443", "[::1]:443", "lgsp_hn:65535"):
        nodes = [NodeEntry("BHXH", "agency", [address])]
        data = DirectoryFile(instance="VN", subsystems=[], services=[], access=[], nodes=nodes)
        assert directory_from_file(data).nodes["BHXH"].addresses == [address]


def test_a_provider_without_published_key_agreement_keys_is_unavailable_not_bad_request() -> None:
    """An encrypted call to a subsystem whose keys the federation has not published was
    refused LT.BAD_REQUEST — the caller's fault, so it would not retry; it is the
    configuration's: LT.UNAVAILABLE."""
    import types

    from lienthong.exchange import e2e
    from lienthong.exchange.outbound import _encapsulate
    from lienthong.exchange.protocol import ServiceCall

    directory = _directory()  # its subsystems publish no key-agreement keys
    node: Any = types.SimpleNamespace(directory=directory)
    call = ServiceCall(
        "GET", ServiceId.parse(f"{B}/cu-tru"), "", "", SubsystemId.parse(A), "m1", None, "p", "l"
    )
    with pytest.raises(Refused) as refused:
        _encapsulate(node, call, e2e.suite_named("X25519-MLKEM768-AES256GCM"))
    assert refused.value.lt_code is ErrorCode.UNAVAILABLE
