"""The REST message protocol between an information system and its gateway, and between gateways.

Modelled on X-Road's REST protocol: ``{METHOD} /r1/{instance}/{class}/{member}/{subsystem}/
{service}[/path][?query]`` with the calling subsystem in ``X-LT-Client``
(``INSTANCE/CLASS/MEMBER/SUBSYSTEM``), a message id (UUID) in ``X-LT-Id`` (generated if
missing), the end user in ``X-LT-UserId`` and the **purpose** and **legal basis** of the call in
``X-LT-Purpose`` / ``X-LT-Legal-Basis`` (both mandatory). Every refusal is one uniform code
(``LT.*``) in ``X-LT-Error``; the detail stays in the local log.
"""

from __future__ import annotations

import enum
import functools
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from lienthong.errors import InputError, LienthongError
from lienthong.exchange.httpserver import RequestHeaders
from lienthong.identifiers import ServiceId, SubsystemId

PREFIX = "/r1/"
H_CLIENT = "X-LT-Client"
H_ID = "X-LT-Id"
H_USER = "X-LT-UserId"
H_PURPOSE = "X-LT-Purpose"
H_LEGAL = "X-LT-Legal-Basis"
H_ERROR = "X-LT-Error"
H_REQUEST = "X-LT-Request"  # JWS compact over the request claims (ES256)
H_REQUEST_PQ = "X-LT-Request-PQ"  # detached ML-DSA-65 JWS over the same claims (MAT and up)
H_RESPONSE = "X-LT-Response"
H_RESPONSE_PQ = "X-LT-Response-PQ"
H_HOPS = "X-LT-Hops"  # comma-separated hop receipts added by relays
H_REQUEST_HASH = "X-LT-Request-Hash"
H_REFUSAL = "X-LT-Refusal"  # the refusing node's signed statement (code bound to the request)
H_TIMING = "X-LT-Timing"  # informational, unsigned: "node=ms,...,service=ms" on responses

MAX_SUBPATH = 1024
MAX_TEXT_HEADER = 512
_TEXT = re.compile(r"[\x20-\x7e]*")  # printable ASCII: headers are not a place for bytes
_SUBPATH_SEGMENT = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})+")
# RFC 3986 query characters, percent-escapes well formed: forwarded byte for byte as signed
_QUERY = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


class ErrorCode(enum.StrEnum):
    """The only thing a peer learns about a refusal."""

    BAD_REQUEST = "LT.BAD_REQUEST"
    BAD_SIGNATURE = "LT.BAD_SIGNATURE"
    ACCESS_DENIED = "LT.ACCESS_DENIED"
    CLEARANCE = "LT.CLEARANCE"
    ROUTE = "LT.ROUTE"
    REPLAY = "LT.REPLAY"
    TOO_LARGE = "LT.TOO_LARGE"
    UNAVAILABLE = "LT.UNAVAILABLE"
    TIMEOUT = "LT.TIMEOUT"
    INTERNAL = "LT.INTERNAL"

    @property
    def http_status(self) -> int:
        return _STATUS[self]


_STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.BAD_SIGNATURE: 403,
    ErrorCode.ACCESS_DENIED: 403,
    ErrorCode.CLEARANCE: 403,
    ErrorCode.ROUTE: 403,
    ErrorCode.REPLAY: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAVAILABLE: 502,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.INTERNAL: 500,
}


class Refused(LienthongError):
    """An exchange refused with a uniform ``lt_code``; ``message`` and details are local only."""

    code = "exchange_refused"
    http_status = 403

    def __init__(self, lt_code: ErrorCode, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.lt_code = lt_code
        self.http_status = lt_code.http_status


@dataclass(frozen=True)
class ServiceCall:
    """A validated call from an information system, as its gateway understands it."""

    method: str
    service: ServiceId
    subpath: str  # "" or "/a/b" (already checked for traversal)
    query: str
    client: SubsystemId
    message_id: str
    user_id: str | None
    purpose: str
    legal_basis: str


@functools.lru_cache(maxsize=4096)
def parse_target(raw_path: str) -> tuple[ServiceId, str]:
    """Split ``/r1/I/C/M/S/SERVICE[/path]`` into the service id and a safe sub-path.

    ``raw_path`` is the path as it came on the wire (still percent-encoded). Identifier parts
    are decoded one by one (X-Road percent-encodes them); the sub-path stays encoded and may not
    contain dot segments (``..;x``, ``..%20`` and ``...`` included), encoded slashes or
    backslashes, NUL or controls.
    """
    if not raw_path.startswith(PREFIX):
        raise Refused(ErrorCode.BAD_REQUEST, f"path must start with {PREFIX}")
    parts = raw_path[len(PREFIX) :].split("/")
    if len(parts) < 5:
        raise Refused(
            ErrorCode.BAD_REQUEST, "path must name INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE"
        )
    try:
        ids = [_decode_part(p) for p in parts[:5]]
        service = ServiceId.parse("/".join(ids))
    except InputError as exc:
        raise Refused(ErrorCode.BAD_REQUEST, f"bad service identifier: {exc}") from exc
    rest = parts[5:]
    subpath = "/" + "/".join(rest) if rest else ""
    verify_subpath(subpath)
    return service, subpath


@functools.lru_cache(maxsize=1024)
def _parse_client(text: str) -> SubsystemId:
    """The calling subsystem of ``X-LT-Client`` (pure: parsed once per distinct value)."""
    try:
        return SubsystemId.parse("/".join(_decode_part(p) for p in text.split("/")))
    except InputError as exc:
        raise Refused(ErrorCode.BAD_REQUEST, f"bad {H_CLIENT}: {exc}") from exc


def _decode_part(part: str) -> str:
    try:
        decoded = unquote(part, errors="strict")
    except UnicodeDecodeError as exc:  # e.g. overlong UTF-8 (%c0%af): not an identifier
        raise InputError(f"identifier part {part!r} is not UTF-8") from exc
    if "/" in decoded or "\\" in decoded:
        raise InputError(f"identifier part {part!r} contains a slash")
    return decoded


def verify_subpath(subpath: str) -> None:
    """Raise :class:`Refused` unless ``subpath`` is a plain, traversal-free path."""
    if len(subpath) > MAX_SUBPATH:
        raise Refused(ErrorCode.BAD_REQUEST, "sub-path too long")
    if not subpath:
        return
    segments = subpath[1:].split("/")
    for i, segment in enumerate(segments):
        if segment == "" and i == len(segments) - 1:  # one trailing slash; never "//"
            continue
        if not _SUBPATH_SEGMENT.fullmatch(segment):
            raise Refused(ErrorCode.BAD_REQUEST, f"bad sub-path segment {segment!r}")
        decoded = unquote(segment, errors="replace")
        head = decoded.partition(";")[0]
        if (
            # "..;x" is ".." to servlet containers (Tomcat, Jetty: ";" starts path parameters),
            # ".. " and "..." are ".." or "." to Windows (a name loses trailing dots and spaces)
            (head and not head.strip(". "))
            or any(c in decoded for c in "/\\\x00")
            or not _TEXT.fullmatch(decoded)
        ):
            raise Refused(ErrorCode.BAD_REQUEST, f"sub-path segment {segment!r} is not allowed")


def verify_single_headers(headers: Mapping[str, str]) -> None:
    """Refuse a request repeating an ``X-LT-*`` or ``Content-Type`` header: which copy counts
    would depend on the reader (a multi-dict's ``items()`` lists every copy; its ``keys()``
    does not)."""
    if isinstance(headers, RequestHeaders):  # the first copies are unique by construction
        if any(k.startswith("x-lt-") or k == "content-type" for k, _ in headers.repeats):
            raise Refused(ErrorCode.BAD_REQUEST, "repeated protocol header")
        return
    seen: set[str] = set()
    for name, _ in headers.items():
        low = name.lower()
        if low.startswith("x-lt-") or low == "content-type":
            if low in seen:
                raise Refused(ErrorCode.BAD_REQUEST, "repeated protocol header", header=low)
            seen.add(low)


def verify_query(query: str) -> None:
    """Raise :class:`Refused` unless ``query`` is a bounded RFC 3986 query (it is forwarded and
    signed exactly as received, so nothing on the way may need to re-encode it)."""
    if len(query) > MAX_SUBPATH or not _QUERY.fullmatch(query):
        raise Refused(ErrorCode.BAD_REQUEST, "query too long or not a plain URI query")


def _header(headers: Mapping[str, str], name: str, *, required: bool) -> str | None:
    value = headers.get(name)
    if value is None or value == "":
        if required:
            raise Refused(ErrorCode.BAD_REQUEST, f"missing header {name}")
        return None
    if len(value) > MAX_TEXT_HEADER or not _TEXT.fullmatch(value):
        raise Refused(ErrorCode.BAD_REQUEST, f"header {name} is too long or not printable ASCII")
    return value


_NONCE = re.compile(r"[A-Za-z0-9_-]{22}")  # 128 bits, base64url without padding
# what str(uuid.UUID(x)) gives back: lower-case hex, 8-4-4-4-12 (a tenth of its CPU)
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _text_claim(claims: Mapping[str, Any], key: str, *, required: bool) -> None:
    value = claims.get(key)
    if value is None or value == "" or (required and isinstance(value, str) and value.isspace()):
        if required:
            raise Refused(ErrorCode.BAD_REQUEST, f"signed claim {key!r} missing", claim=key)
        return
    if not isinstance(value, str) or len(value) > MAX_TEXT_HEADER or not _TEXT.fullmatch(value):
        raise Refused(ErrorCode.BAD_REQUEST, f"signed claim {key!r} malformed", claim=key)


def body_claim_ok(body: object) -> bool:
    """Whether a signed ``body`` claim (request or response) is null or exactly
    ``{"sha256": str, "len": int ≥ 0}``."""
    return body is None or (
        isinstance(body, dict)
        and body.keys() == {"sha256", "len"}
        and isinstance(body["sha256"], str)
        and type(body["len"]) is int
        and body["len"] >= 0
    )


def verify_claim_text(claims: Mapping[str, Any]) -> None:
    """The signed text a provider forwards to its service or logs, held to the rules of the
    internal API: ``id`` a canonical UUID (so never a bare personal ID), ``user``/``purpose``/
    ``legal``/``ctype`` printable ASCII ≤ 512 (``purpose`` and ``legal`` not blank), ``level``
    a JSON integer (not ``4.0``, not ``true``), ``nonce``
    128-bit base64url; and the shapes later steps rely on: ``body`` null or exactly
    ``{"sha256": str, "len": int ≥ 0}``, ``enc`` null or an object of strings naming its
    ``suite``. A member key signs what it likes: this runs before anything is logged under the
    claims or sent anywhere (a claim of the wrong type is ``LT.BAD_REQUEST``, never a crash)."""
    mid = claims.get("id")
    if not isinstance(mid, str) or not _CANONICAL_UUID.fullmatch(mid):
        raise Refused(ErrorCode.BAD_REQUEST, "signed claim 'id' not a canonical UUID", claim="id")
    for key, required in (("purpose", True), ("legal", True), ("user", False), ("ctype", False)):
        _text_claim(claims, key, required=required)
    if type(claims.get("level")) is not int:  # 4.0 == 4 and True == 1 in Python, not here
        raise Refused(ErrorCode.BAD_REQUEST, "signed claim 'level' not an integer", claim="level")
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise Refused(ErrorCode.BAD_REQUEST, "signed claim 'nonce' malformed", claim="nonce")
    if not body_claim_ok(claims.get("body")):
        raise Refused(ErrorCode.BAD_REQUEST, "signed claim 'body' malformed", claim="body")
    enc = claims.get("enc")
    if enc is not None and not (
        isinstance(enc, dict)
        and isinstance(enc.get("suite"), str)
        and all(isinstance(v, str) for v in enc.values())
    ):
        raise Refused(ErrorCode.BAD_REQUEST, "signed claim 'enc' malformed", claim="enc")


def new_message_id() -> str:
    """A random (version 4) UUID in canonical form; what ``str(uuid.uuid4())`` returns, at a
    third of its cost (no ``UUID`` object)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_message_id(value: str | None, new_id: str | None = None) -> str:
    """Return the canonical UUID of ``value``, or ``new_id`` (a fresh UUID4) when absent."""
    if value is None:
        return new_id or new_message_id()
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise Refused(ErrorCode.BAD_REQUEST, f"{H_ID} is not a UUID") from exc


def parse_service_call(
    method: str, raw_path: str, query: str, headers: Mapping[str, str]
) -> ServiceCall:
    """Validate an information system's request to its own gateway (strict, one error)."""
    if method not in METHODS:
        raise Refused(ErrorCode.BAD_REQUEST, f"method {method!r} not allowed")
    service, subpath = parse_target(raw_path)
    verify_single_headers(headers)
    verify_query(query)
    client_text = _header(headers, H_CLIENT, required=True)
    assert client_text is not None
    client = _parse_client(client_text)
    _header(headers, "Content-Type", required=False)  # it travels as the signed "ctype"
    purpose = _header(headers, H_PURPOSE, required=True)
    legal = _header(headers, H_LEGAL, required=True)
    assert purpose is not None and legal is not None
    return ServiceCall(
        method=method,
        service=service,
        subpath=subpath,
        query=query,
        client=client,
        message_id=parse_message_id(_header(headers, H_ID, required=False)),
        user_id=_header(headers, H_USER, required=False),
        purpose=purpose,
        legal_basis=legal,
    )


def error_body(code: ErrorCode) -> bytes:
    """The uniform JSON body of a refusal (nothing but the code)."""
    return b'{"error":"' + code.value.encode() + b'"}'
