"""Strict parsing of the REST protocol: identifiers, headers, traversal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lienthong.exchange.protocol import (
    ErrorCode,
    Refused,
    parse_message_id,
    parse_service_call,
    parse_target,
)

SVC = "/r1/VN/GOV/G01.BCA/DANCU/cu-tru"
HEADERS = {
    "X-LT-Client": "VN/GOV/G07.BHXH/GIAMDINH",
    "X-LT-Purpose": "giam-dinh",
    "X-LT-Legal-Basis": "Luat BHYT 2008",
}


def test_parse_target_with_subpath() -> None:
    service, sub = parse_target(SVC + "/001203004567/x")
    assert str(service) == "VN/GOV/G01.BCA/DANCU/cu-tru"
    assert sub == "/001203004567/x"


def test_percent_encoded_identifier_parts_are_decoded() -> None:
    service, _ = parse_target("/r1/VN/GOV/G01.BCA/DAN%43U/cu-tru")
    assert service.subsystem.subsystem == "DANCU"


@pytest.mark.parametrize(
    "path",
    [
        SVC + "/../ho-so-mat",
        SVC + "/%2e%2e/x",
        SVC + "/a%2Fb",
        SVC + "/a%5Cb",
        SVC + "/a%00b",
        SVC + "/./x",
        "/r1/VN/GOV/G01.BCA/..",
        "/r1/VN/GOV/G01.BCA/DANCU/%2e%2e",
        "/r1/VN/GOV/G01.BCA/DANCU/%c0%afecho",  # overlong UTF-8 of "/" (was a 500)
        "/r1/VN/GOV/G01.BCA/%ff/cu-tru",
        "/r1/VN/GOV/g01.bca/DANCU/cu-tru",
        "/r2/VN/GOV/G01.BCA/DANCU/cu-tru",
        "/r1/VN/XXX/G01.BCA/DANCU/cu-tru",
        SVC + "/" + "a" * 2000,
    ],
)
def test_bad_targets_are_refused_uniformly(path: str) -> None:
    with pytest.raises(Refused) as err:
        parse_target(path)
    assert err.value.lt_code is ErrorCode.BAD_REQUEST


def test_service_call_requires_purpose_and_legal_basis() -> None:
    call = parse_service_call("GET", SVC, "", HEADERS)
    assert call.purpose == "giam-dinh" and call.legal_basis == "Luat BHYT 2008"
    assert len(call.message_id) == 36
    for missing in ("X-LT-Purpose", "X-LT-Legal-Basis", "X-LT-Client"):
        headers = {k: v for k, v in HEADERS.items() if k != missing}
        with pytest.raises(Refused, match=missing):
            parse_service_call("GET", SVC, "", headers)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-LT-Client", "VN/GOV/G07.BHXH"),
        ("X-LT-Client", "VN/GOV/G07.BHXH/GIAM DINH"),
        ("X-LT-Id", "not-a-uuid"),
        ("X-LT-Purpose", "x" * 600),
        ("X-LT-UserId", "ng\u01b0\u1eddi"),
    ],
)
def test_malformed_headers(name: str, value: str) -> None:
    with pytest.raises(Refused) as err:
        parse_service_call("GET", SVC, "", {**HEADERS, name: value})
    assert err.value.lt_code is ErrorCode.BAD_REQUEST


def test_method_allow_list() -> None:
    with pytest.raises(Refused):
        parse_service_call("TRACE", SVC, "", HEADERS)


def test_message_id_canonical() -> None:
    assert parse_message_id("6F9619FF-8B86-D011-B42D-00C04FC964FF") == (
        "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    )


@given(st.text(max_size=200))
def test_parser_never_crashes(tail: str) -> None:
    try:
        service, sub = parse_target(SVC + "/" + tail)
    except Refused:
        return
    assert ".." not in sub.split("/")
    assert str(service).endswith("cu-tru")
