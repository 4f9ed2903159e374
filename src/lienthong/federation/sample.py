"""A sample federation (used by ``lienthong federation init``, the demo and the tests).

Member codes have the Decision 20/2020 shape but are illustrative, not the official codes.
"""

from __future__ import annotations

from typing import Any

from lienthong.classification import Level
from lienthong.federation.policy_loader import default_policy, policy_to_dict

OPERATOR = "GOV/000.00.00.G22"
BCA, BHXH, GDDT, THUE, HANOI = (
    "GOV/000.00.00.G01",
    "GOV/000.00.00.G12",
    "GOV/000.00.00.G08",
    "GOV/000.01.00.G09",
    "GOV/000.00.00.H29",
)


def _policy() -> dict[str, Any]:
    return {p.level.name: policy_to_dict(p) for p in default_policy()}


def _link(name: str, host: str) -> list[dict[str, str]]:
    return [
        {"name": f"{name}-1", "address": f"https://{host}:8443"},
        {"name": f"{name}-2", "address": f"https://{host}-b:8443"},
    ]


def _platforms() -> list[dict[str, Any]]:
    return [
        {
            "code": "NDXP",
            "name": "Nền tảng tích hợp, chia sẻ dữ liệu quốc gia",
            "kind": "national",
            "operator": OPERATOR,
            "gateways": ["https://ndxp.gov.example:8443"],
        },
        {
            "code": "LGSP-BCA",
            "name": "Nền tảng chia sẻ dữ liệu Bộ Công an",
            "kind": "ministry",
            "parent": "NDXP",
            "gateways": ["https://lgsp.bca.example:8443"],
            "links": _link("tslcd-bca", "ndxp.gov.example"),
        },
        {
            "code": "LGSP-BTC",
            "name": "Nền tảng chia sẻ dữ liệu Bộ Tài chính",
            "kind": "ministry",
            "parent": "NDXP",
            "gateways": ["https://lgsp.btc.example:8443"],
            "links": _link("tslcd-btc", "ndxp.gov.example"),
        },
        {
            "code": "LGSP-HN",
            "name": "Nền tảng tích hợp, chia sẻ dữ liệu TP Hà Nội",
            "kind": "province",
            "parent": "NDXP",
            "gateways": ["https://lgsp.hanoi.example:8443"],
            "links": _link("tslcd-hn", "ndxp.gov.example"),
        },
    ]


def _sub(
    code: str,
    name: str,
    sec: int,
    clearance: Level,
    host: str,
    services: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "code": code,
        "name": name,
        "security_level": sec,
        "clearance": clearance.name,
        "gateways": [f"https://{host}:8443"],
        "services": services or [],
    }


def _svc(
    code: str, level: Level, description: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    contract = (
        {"kind": "json-schema", "inline": schema}
        if schema
        else {"kind": "openapi", "ref": f"contracts/{code}.openapi.yaml"}
    )
    return {"code": code, "level": level.name, "description": description, "contract": contract}


_RESIDENCE = {
    "type": "object",
    "required": ["personal_id"],
    "properties": {"personal_id": {"type": "string", "pattern": "^[0-9]{12}$"}},
}


def _members() -> list[dict[str, Any]]:
    p, mat, sens = Level.PERSONAL, Level.MAT, Level.SENSITIVE
    return [
        {
            "class": "GOV",
            "code": OPERATOR.split("/")[1],
            "name": "Văn phòng Chính phủ",
            "platform": "NDXP",
            "subsystems": [
                _sub("DIEU-HANH", "Hệ thống thông tin chỉ đạo điều hành", 4, mat, "vpcp.example")
            ],
        },
        {
            "class": "GOV",
            "code": BCA.split("/")[1],
            "name": "Bộ Công an",
            "platform": "LGSP-BCA",
            "subsystems": [
                _sub(
                    "DAN-CU",
                    "Cơ sở dữ liệu quốc gia về dân cư",
                    4,
                    sens,
                    "dancu.bca.example",
                    [
                        _svc(
                            "residence-lookup",
                            p,
                            "Tra cứu thông tin cư trú của công dân",
                            _RESIDENCE,
                        ),
                        _svc("citizen-verify", p, "Xác thực thông tin công dân"),
                    ],
                ),
                _sub(
                    "AN-NINH",
                    "Hệ thống thông tin an ninh",
                    5,
                    mat,
                    "anninh.bca.example",
                    [_svc("case-summary", mat, "Tóm tắt hồ sơ (Mật)")],
                ),
            ],
        },
        {
            "class": "GOV",
            "code": BHXH.split("/")[1],
            "name": "Bảo hiểm xã hội Việt Nam",
            "platform": "NDXP",
            "subsystems": [
                _sub(
                    "BHYT",
                    "Cơ sở dữ liệu quốc gia về bảo hiểm",
                    3,
                    sens,
                    "bhyt.bhxh.example",
                    [_svc("card-status", p, "Tra cứu thẻ bảo hiểm y tế")],
                )
            ],
        },
        {
            "class": "GOV",
            "code": GDDT.split("/")[1],
            "name": "Bộ Giáo dục và Đào tạo",
            "platform": "NDXP",
            "subsystems": [
                _sub(
                    "CSDL-GD",
                    "Cơ sở dữ liệu ngành giáo dục",
                    3,
                    p,
                    "csdl.moet.example",
                    [_svc("diploma-verify", p, "Xác minh văn bằng")],
                )
            ],
        },
        {
            "class": "GOV",
            "code": THUE.split("/")[1],
            "name": "Cục Thuế",
            "platform": "LGSP-BTC",
            "subsystems": [
                _sub(
                    "TMS",
                    "Hệ thống quản lý thuế tập trung",
                    3,
                    p,
                    "tms.gdt.example",
                    [_svc("tax-id-lookup", p, "Tra cứu mã số thuế cá nhân")],
                )
            ],
        },
        {
            "class": "GOV",
            "code": HANOI.split("/")[1],
            "name": "Ủy ban nhân dân TP Hà Nội",
            "platform": "LGSP-HN",
            "subsystems": [
                _sub("CONG-DVC", "Cổng dịch vụ công TP Hà Nội", 3, sens, "dichvucong.hanoi.example")
            ],
        },
    ]


def sample_registry(instance: str = "VN") -> dict[str, Any]:
    """The sample federation as a declarative document."""
    return {
        "instance": instance,
        "platforms": _platforms(),
        "members": _members(),
        "groups": [
            {
                "code": "cong-dich-vu-cong",
                "description": "Cổng dịch vụ công",
                "subsystems": [f"{HANOI}/CONG-DVC"],
            }
        ],
        "access": [
            {
                "client": f"{HANOI}/CONG-DVC",
                "service": f"{BCA}/DAN-CU/residence-lookup",
                "path": "/residence",
            },
            {"group": "cong-dich-vu-cong", "service": f"{BHXH}/BHYT/card-status"},
            {"client": f"{THUE}/TMS", "service": f"{BCA}/DAN-CU/citizen-verify"},
            {"client": f"{BHXH}/BHYT", "service": f"{BCA}/DAN-CU/residence-lookup"},
            {"client": f"{HANOI}/CONG-DVC", "service": f"{GDDT}/CSDL-GD/diploma-verify"},
            {"client": f"{OPERATOR}/DIEU-HANH", "service": f"{BCA}/AN-NINH/case-summary"},
        ],
        "direct_links": [[BCA, BHXH]],
        "isolated_zones": [{"code": "VUNG-MAT-1", "members": [BCA, OPERATOR]}],
        "crypto_policy": _policy(),
    }


def starter_registry(instance: str = "VN") -> dict[str, Any]:
    """A minimal starter: the national platform and its operator (for ``federation init``)."""
    return {
        "instance": instance,
        "platforms": [_platforms()[0]],
        "members": [_members()[0]],
        "groups": [],
        "access": [],
        "direct_links": [],
        "isolated_zones": [],
        "crypto_policy": _policy(),
    }
