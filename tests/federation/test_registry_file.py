"""Declarative registry files: loading, round trip, and every error reported at once."""

from __future__ import annotations

import copy
import unicodedata
from pathlib import Path

import pytest
import yaml

from lienthong.classification import Level
from lienthong.errors import ConfigError
from lienthong.federation.dump import registry_to_dict
from lienthong.federation.loader import load_registry, registry_from_dict
from lienthong.federation.sample import sample_registry, starter_registry
from lienthong.federation.validate import warnings_of


def problems_of(doc: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        registry_from_dict(doc, source="t.yaml")
    return list(info.value.details["problems"])


def test_sample_loads_and_round_trips() -> None:
    reg = registry_from_dict(sample_registry())
    assert len(reg.members) == 6 and len(reg.platforms) == 4
    assert registry_from_dict(registry_to_dict(reg)) == reg
    assert warnings_of(reg) == []


def test_starter_is_valid() -> None:
    registry_from_dict(starter_registry())


def test_yaml_and_toml_files(tmp_path: Path) -> None:
    y = tmp_path / "fed.yaml"
    y.write_text(yaml.safe_dump(sample_registry(), allow_unicode=True), encoding="utf-8")
    assert load_registry(y).instance == "VN"
    t = tmp_path / "fed.toml"
    t.write_text(
        'instance = "VN"\n'
        '[[platforms]]\ncode = "NDXP"\nname = "Nền tảng quốc gia"\nkind = "national"\n'
        '[[members]]\nclass = "GOV"\ncode = "000.00.00.G01"\nname = "Bộ Công an"\n'
        'platform = "NDXP"\n'
        '[[members.subsystems]]\ncode = "DAN-CU"\nname = "CSDL dân cư"\nsecurity_level = 4\n'
        'clearance = "PERSONAL"\n'
        '[[members.subsystems.services]]\ncode = "residence-lookup"\nlevel = "PERSONAL"\n'
        "[crypto_policy.PUBLIC]\nallowed = true\ne2e_encryption = false\n",
        encoding="utf-8",
    )
    reg = load_registry(t)
    assert reg.services[0].level is Level.PERSONAL
    # Levels the file does not name are refused (fail closed).
    assert [p.allowed for p in reg.crypto_policy] == [True] + [False] * 6


def test_syntax_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("instance: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid yaml"):
        load_registry(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_registry(tmp_path / "missing.toml")


def test_every_error_is_reported_at_once() -> None:
    doc = copy.deepcopy(sample_registry())
    doc["members"][3]["subsystems"][0]["clearance"] = "SECRET"
    doc["members"][1]["code"] = "g01-bca"  # not Decision 20/2020
    doc["members"][2]["subsystems"][0]["services"][0]["level"] = "MAT"  # above clearance
    doc["members"].append(copy.deepcopy(doc["members"][4]))  # duplicate member
    doc["access"].append(
        {
            "client": "GOV/000.00.00.H29/CONG-DVC",
            "service": "GOV/000.00.00.G12/BHYT/no-such-service",
        }
    )
    doc["platforms"][0]["parent"] = "LGSP-HN"  # cycle, and no root left
    doc["members"][0]["platfrom"] = "NDXP"  # typo
    got = problems_of(doc)
    expected = [
        "members[3].subsystems[0].clearance: unknown classification level 'SECRET'",
        "members[1]: member code 'g01-bca' may contain only digits, A-Z",
        "services[VN/GOV/000.00.00.G12/BHYT/card-status]: level MAT is above the clearance "
        "SENSITIVE",
        "members: duplicate id 'VN/GOV/000.01.00.G09'",
        "access[6].service: unknown service VN/GOV/000.00.00.G12/BHYT/no-such-service",
        "platforms[0].parent: platform 'NDXP' is in a parent cycle",
        "platforms: expected exactly one root platform, found 0",
        "members[0].platfrom: unknown key",
    ]
    for e in expected:
        assert any(p.startswith(e) for p in got), (e, got)


def test_structure_errors() -> None:
    got = problems_of(
        {
            "instance": "VN",
            "members": [
                {"class": "XYZ", "code": "A" * 36, "name": ""},
                {
                    "class": "GOV",
                    "code": "000.00.00.G01",
                    "name": "Bộ",
                    "subsystems": [
                        {
                            "code": "S",
                            "name": "s",
                            "security_level": 7,
                            "clearance": "MAT",
                            "services": [
                                {
                                    "code": "x",
                                    "level": "PUBLIC",
                                    "contract": {"kind": "wsdl", "ref": "a"},
                                }
                            ],
                        }
                    ],
                },
            ],
            "access": [
                {"client": "GOV/000.00.00.G01/S", "group": "g", "service": "GOV/000.00.00.G01/S/x"},
                {
                    "client": "GOV/000.00.00.G01/S",
                    "service": "GOV/000.00.00.G01/S/x",
                    "path": "relative",
                },
            ],
            "platforms": [
                {
                    "code": "P",
                    "name": "p",
                    "kind": "national",
                    "links": [{"name": "a", "address": "x"}] * 3,
                    "parent": None,
                }
            ],
            "direct_links": [["GOV/000.00.00.G01"]],
            "crypto_policy": {"PUBLIC": {"allowed": "yes"}, "SECRET": {}},
        }
    )
    text = "\n".join(got)
    for needle in [
        "members[0].name: expected a non-empty string",
        "members[0]: member class 'XYZ' is not one of",
        "members[1].subsystems[0].security_level: 7 is not a Decree 85/2016 level 1-5",
        "members[1].subsystems[0].services[0].contract.kind: unknown contract kind 'wsdl'",
        "access[0]: give exactly one of 'client' (a subsystem) and 'group'",
        "access[1].path: path prefix 'relative' must start with '/'",
        "direct_links[0]: expected a pair of member ids",
        "crypto_policy.PUBLIC.allowed: expected true or false",
        "crypto_policy.SECRET: unknown classification level 'SECRET'",
    ]:
        assert needle in text, (needle, got)


def test_client_clearance_below_service_level_is_an_error() -> None:
    doc = sample_registry()
    doc["access"].append(
        {"client": "GOV/000.01.00.G09/TMS", "service": "GOV/000.00.00.G01/AN-NINH/case-summary"}
    )
    assert any("cleared for PERSONAL, below the level MAT" in p for p in problems_of(doc))


def test_fingerprint_must_match_pem() -> None:
    doc = sample_registry()
    doc["members"][0]["certificates"] = [
        {
            "usage": "signing",
            "fingerprint": "ab" * 32,
            "pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        }
    ]
    assert any("fingerprint does not match the PEM" in p for p in problems_of(doc))


def test_one_link_is_a_warning_not_an_error() -> None:
    doc = sample_registry()
    doc["platforms"][1]["links"] = doc["platforms"][1]["links"][:1]
    reg = registry_from_dict(doc)
    assert any("Decision 1562" in w for w in warnings_of(reg))


def test_names_are_nfc_normalised() -> None:
    doc = sample_registry()
    doc["members"][1]["name"] = unicodedata.normalize("NFD", "Bộ Công an")
    reg = registry_from_dict(doc)
    assert reg.members[1].name == unicodedata.normalize("NFC", "Bộ Công an")
    assert reg.members[1].name != doc["members"][1]["name"]
