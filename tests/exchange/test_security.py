"""Security suite: every refused case must leave the provider service untouched."""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from aiohttp import web
from tests.exchange.conftest import Federation
from tests.exchange.craft import (
    HEADERS,
    ROUTE,
    RelayImpostor,
    build_request,
    make_call,
    relay_tls,
    send,
)

from lienthong.exchange.certs import fingerprint, load_pem_cert
from lienthong.exchange.envelope import KeyedSigner
from lienthong.exchange.protocol import ErrorCode, Refused
from lienthong.exchange.testbed import (
    CONGTT,
    GIAMDINH,
    SVC_ECHO,
    SVC_RESIDENCE,
    SVC_SECRET,
    SVC_SINK,
    SVC_UPLOAD,
)


@pytest.fixture(scope="module")
def kit(federation: Federation) -> dict[str, object]:
    relay = federation.node("NDXP")
    client_gw = federation.node("BHXH-GW")
    provider_gw = federation.node("BCA-GW")
    return {
        "relay": relay,
        "tls": relay_tls(relay),
        "signers": client_gw.local[make_call(GIAMDINH, SVC_ECHO).client].signers,
        "portal": client_gw.local[make_call(CONGTT, SVC_ECHO).client].signers,
        "kem": provider_gw.directory.subsystems[
            make_call(GIAMDINH, SVC_RESIDENCE).service.subsystem
        ].kem,
        "port": federation.testbed.peer_ports["BCA-GW"],
    }


def refused(
    federation: Federation, action: Callable[[], httpx.Response], code: str
) -> httpx.Response:
    before = len(federation.received())
    resp = action()
    assert resp.headers.get("X-LT-Error") == code, (resp.status_code, resp.text)
    assert resp.json() == {"error": code}  # nothing more for the peer
    time.sleep(0.05)
    assert len(federation.received()) == before, "the provider must receive nothing"
    return resp


def test_crafted_baseline_is_accepted(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE, body=b"ok"
    )
    before = len(federation.received())
    resp = send(kit["tls"], kit["port"], call, headers, body)
    assert resp.status_code == 200 and "X-LT-Response" in resp.headers
    assert len(federation.received()) == before + 1


def test_forged_signature(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    token = headers["X-LT-Request"]
    headers["X-LT-Request"] = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    refused(
        federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.BAD_SIGNATURE"
    )


def test_tampered_body(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_SINK, method="POST")
    headers, _, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE, body=b"pay 10"
    )
    refused(
        federation,
        lambda: send(kit["tls"], kit["port"], call, headers, b"pay 99"),
        "LT.BAD_SIGNATURE",
    )


def test_tampered_request_line(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    refused(
        federation,
        lambda: send(kit["tls"], kit["port"], call, headers, body, path=f"/r1/{SVC_ECHO}/other"),
        "LT.BAD_SIGNATURE",
    )


def test_tampered_encrypted_body(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_RESIDENCE, "/001203004567")
    headers, body, _ = build_request(
        call,
        kit["signers"][:1],
        kit["relay"],
        level=2,
        route=ROUTE,
        body=b"q",
        encrypt_to=kit["kem"],
    )
    bad = body[:-1] + bytes([body[-1] ^ 1])
    refused(
        federation, lambda: send(kit["tls"], kit["port"], call, headers, bad), "LT.BAD_SIGNATURE"
    )


def test_replay_and_stale(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    assert send(kit["tls"], kit["port"], call, headers, body).status_code == 200
    refused(federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.REPLAY")
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE, ts=time.time() - 3600
    )
    refused(federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.REPLAY")


@pytest.mark.parametrize("which", ["expired", "revoked", "foreign"])
def test_bad_certificates(federation: Federation, kit: dict, which: str) -> None:
    signer, pem = federation.extra_keys[which]
    ks = KeyedSigner(signer, fingerprint(load_pem_cert(pem)))
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, [ks], kit["relay"], level=0, route=ROUTE)
    refused(
        federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.BAD_SIGNATURE"
    )


def test_missing_access_right(federation: Federation, kit: dict) -> None:
    call = make_call(CONGTT, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["portal"][:1], kit["relay"], level=0, route=ROUTE)
    refused(
        federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.ACCESS_DENIED"
    )


def test_route_violation(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=["BHXH-GW", "BCA-GW"]
    )
    refused(federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.ROUTE")


def test_plaintext_where_encryption_required(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_RESIDENCE, "/001203004567")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=2, route=ROUTE)
    refused(federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.CLEARANCE")


def test_mat_needs_hybrid_signature(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_SECRET, method="POST")
    headers, body, _ = build_request(
        call,
        kit["signers"][:1],
        kit["relay"],
        level=4,
        route=ROUTE,
        body=b"x",
        encrypt_to=kit["kem"],
    )
    refused(
        federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.BAD_SIGNATURE"
    )


def test_level_downgrade_in_claims(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_SECRET, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    refused(
        federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.BAD_SIGNATURE"
    )


def test_garbage_token(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers = {"X-LT-Request": "not.a.jws"}
    refused(
        federation, lambda: send(kit["tls"], kit["port"], call, headers, b""), "LT.BAD_SIGNATURE"
    )


def test_peer_without_client_certificate_cannot_connect(federation: Federation) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
        httpx.Client(verify=ctx) as c,
    ):
        c.get(f"https://127.0.0.1:{federation.testbed.peer_ports['BCA-GW']}/r1/{SVC_ECHO}")


def _internal(federation: Federation) -> str:
    return federation.testbed.internal_url("BHXH-GW")


@pytest.mark.parametrize(
    ("client", "service", "code"),
    [
        (CONGTT, SVC_SECRET, "LT.ACCESS_DENIED"),
        (CONGTT, SVC_RESIDENCE, "LT.CLEARANCE"),
        ("VN/GOV/G99.XYZ/KHAC", SVC_ECHO, "LT.ACCESS_DENIED"),
        ("VN/GOV/G07.BHXH", SVC_ECHO, "LT.BAD_REQUEST"),
    ],
)
def test_internal_refusals(federation: Federation, client: str, service: str, code: str) -> None:
    headers = {**HEADERS, "X-LT-Client": client}
    refused(
        federation,
        lambda: httpx.post(f"{_internal(federation)}/r1/{service}", headers=headers),
        code,
    )


def test_oversized_body(federation: Federation) -> None:
    big = b"x" * (9 << 20)
    refused(
        federation,
        lambda: httpx.post(
            f"{_internal(federation)}/r1/{SVC_SINK}", headers=HEADERS, content=big, timeout=20
        ),
        "LT.TOO_LARGE",
    )

    def chunked() -> httpx.Response:
        def gen() -> Iterator[bytes]:
            for _ in range(9):
                yield b"y" * (1 << 20)

        return httpx.post(
            f"{_internal(federation)}/r1/{SVC_SINK}", headers=HEADERS, content=gen(), timeout=20
        )

    refused(federation, chunked, "LT.TOO_LARGE")


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        return s.recv(65536)


@pytest.mark.parametrize(
    "target",
    [
        f"/r1/{SVC_ECHO}/../ho-so-mat",
        f"/r1/{SVC_ECHO}/%2e%2e/%2e%2e/x",
        "/r1/VN/GOV/G01.BCA/DANCU/..%2Fho-so-mat",
        "/r1/VN/GOV/G01.BCA/DANCU",
        "/etc/passwd",
    ],
)
def test_path_traversal_and_malformed_paths(federation: Federation, target: str) -> None:
    port = federation.testbed.internal_ports["BHXH-GW"]
    head = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    before = len(federation.received())
    answer = _raw(
        port, f"GET {target} HTTP/1.1\r\nHost: x\r\n{head}Connection: close\r\n\r\n".encode()
    )
    assert b"LT.BAD_REQUEST" in answer or b" 400 " in answer.split(b"\r\n")[0]
    assert len(federation.received()) == before


def test_slow_loris_is_cut(federation: Federation) -> None:
    port = federation.testbed.internal_ports["BHXH-GW"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /r1/" + SVC_ECHO.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 4:
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            s.settimeout(0.3)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed, "a connection that never finishes its headers must be closed"
        assert time.monotonic() - started < 3.5


def _answer_after_stall(sock: socket.socket, head: bytes, part: bytes) -> tuple[bytes, bytes]:
    """Send ``head`` and the first ``part`` of a body, then nothing: (status line, answer)."""
    sock.settimeout(15)
    sock.sendall(head + part)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
        if b"\r\n\r\n" in answer and answer.endswith(b"}"):
            break
    return answer.split(b"\r\n", 1)[0], answer


def _assert_timeout_refusal(status: bytes, answer: bytes) -> None:
    assert b" 504 " in status + b" ", answer[:200]
    assert b"x-lt-error: lt.timeout" in answer.lower()
    assert answer.endswith(b'{"error":"LT.TIMEOUT"}')


@pytest.mark.parametrize(
    ("service", "framing"),
    [(SVC_SINK, "length"), (SVC_UPLOAD, "chunked")],  # hashed plaintext; encrypted stream
)
def test_trickled_body_is_cut(federation: Federation, service: str, framing: str) -> None:
    """Slow-loris on the body: headers complete, then the body stops (idle_timeout_s = 2 s)."""
    port = federation.testbed.internal_ports["BHXH-GW"]
    head = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    frame = "Content-Length: 1000" if framing == "length" else "Transfer-Encoding: chunked"
    part = b"0123456789" if framing == "length" else b"a\r\n0123456789\r\n"
    before = len(federation.received())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        request = f"POST /r1/{service} HTTP/1.1\r\nHost: x\r\n{head}{frame}\r\n\r\n"
        status, answer = _answer_after_stall(s, request.encode(), part)
    _assert_timeout_refusal(status, answer)
    time.sleep(0.1)
    assert len(federation.received()) == before, "the provider must receive nothing"


def test_trickled_body_between_gateways_is_cut(federation: Federation, kit: dict) -> None:
    """The same at the provider gateway, from a (compromised) relay: a validly signed request
    whose body stops after 10 of its 1,000 bytes."""
    call = make_call(GIAMDINH, SVC_SINK, method="POST")
    headers, body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE, body=b"b" * 1000
    )
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"POST /r1/{call.service} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: 1000\r\n\r\n"
    before = len(federation.received())
    with (
        socket.create_connection(("127.0.0.1", kit["port"]), timeout=5) as raw,
        kit["tls"].wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        status, answer = _answer_after_stall(s, request.encode(), body[:10])
    _assert_timeout_refusal(status, answer)
    time.sleep(0.1)
    assert len(federation.received()) == before, "the provider must receive nothing"


def test_tampered_large_encrypted_stream(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_UPLOAD, method="POST")
    body = b"\x03" * (3 << 20)  # above the in-memory limit: streamed record by record
    headers, wire, _ = build_request(
        call,
        kit["signers"][:1],
        kit["relay"],
        level=2,
        route=ROUTE,
        body=body,
        encrypt_to=kit["kem"],
    )
    bad = bytearray(wire)
    bad[len(bad) // 2] ^= 1
    before = len(federation.received())
    try:
        resp = send(kit["tls"], kit["port"], call, headers, bytes(bad))
        assert resp.status_code != 200
    except httpx.HTTPError:
        pass  # the stream may be cut instead: equally a refusal
    time.sleep(0.1)
    assert len(federation.received()) == before


def test_oversized_encrypted_stream(federation: Federation) -> None:
    def gen() -> Iterator[bytes]:
        for _ in range(9):
            yield b"z" * (1 << 20)

    refused(
        federation,
        lambda: httpx.post(
            f"{_internal(federation)}/r1/{SVC_UPLOAD}", headers=HEADERS, content=gen(), timeout=20
        ),
        "LT.TOO_LARGE",
    )


def test_silent_tls_peer_is_cut(federation: Federation) -> None:
    port = federation.testbed.peer_ports["BCA-GW"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        started = time.monotonic()
        s.settimeout(4)
        assert s.recv(1) == b""  # no ClientHello: the handshake deadline closes it
        assert time.monotonic() - started < 3.5


def test_node_key_cannot_sign_as_a_subsystem(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    relay_key = kit["relay"].receipt_signer  # a gateway's TLS key, not a subsystem's
    headers, body, _ = build_request(call, [relay_key], kit["relay"], level=0, route=ROUTE)
    refused(
        federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.BAD_SIGNATURE"
    )


def test_replay_after_a_provider_restart(federation: Federation, kit: dict) -> None:
    """The restarted provider has forgotten the keys it saw: a request signed before its start
    is refused — unsigned, as it cannot know whether it served it before the restart."""
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    assert send(kit["tls"], kit["port"], call, headers, body).status_code == 200
    federation.running.stop("BCA-GW")
    federation.running.start_gateway("BCA-GW")
    again = refused(
        federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.REPLAY"
    )
    assert "X-LT-Refusal" not in again.headers
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")  # freshly signed: served
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    assert send(kit["tls"], kit["port"], call, headers, body).status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        {"user": "a\r\nX-Injected: 1"},
        {"ctype": "text/plain\r\nX-Injected: 1"},
        {"id": {"a": 1}},
        {"user": 12345},
        {"id": "'; DROP TABLE x;-- ../../" + "A" * 3000},
        {"id": "001203004567"},  # a personal ID would land in clear in the Merkle leaf
        {"id": "6F9619FF-8B86-4011-B42D-00C04FC964FF"},  # a UUID, but not in canonical form
        {"id": "urn:uuid:6f9619ff-8b86-4011-b42d-00c04fc964ff"},
        {"user": "Nguyễn \u202eVan A"},
        {"purpose": "mục đích"},
        {"legal": ""},
        {"nonce": None},
        {"nonce": "short"},
        {"ts": float("nan")},
    ],
)
def test_signed_claims_are_held_to_the_internal_rules(
    federation: Federation, kit: dict, overrides: dict
) -> None:
    """A member key signs what it likes: the provider checks every claim it forwards or logs
    before the service sees anything."""
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE, overrides=overrides
    )
    code = "LT.BAD_SIGNATURE" if "ts" in overrides else "LT.BAD_REQUEST"
    refused(federation, lambda: send(kit["tls"], kit["port"], call, headers, body), code)


def test_one_message_id_per_client_whatever_the_nonce(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    assert send(kit["tls"], kit["port"], call, headers, body).status_code == 200
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    refused(federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.REPLAY")


def test_internal_api_refuses_a_reused_message_id(federation: Federation) -> None:
    headers = {**HEADERS, "X-LT-Id": "6f9619ff-8b86-4011-b42d-00c04fc964ff"}
    url = f"{_internal(federation)}/r1/{SVC_ECHO}"
    assert httpx.post(url, headers=headers, content=b"x").status_code == 200
    refused(federation, lambda: httpx.post(url, headers=headers, content=b"x"), "LT.REPLAY")


@pytest.mark.parametrize("name", ["X-LT-Client", "X-LT-Purpose", "x-lt-id", "Content-Type"])
def test_internal_api_refuses_repeated_protocol_headers(federation: Federation, name: str) -> None:
    values = {"X-LT-Client": CONGTT, "X-LT-Purpose": "khac", "x-lt-id": "", "Content-Type": "a/b"}
    headers = [*HEADERS.items(), ("Content-Type", "text/plain"), (name, values[name])]
    if name == "x-lt-id":
        headers += [("X-LT-Id", str(uuid.uuid4())), ("X-LT-Id", str(uuid.uuid4()))]
    url = f"{_internal(federation)}/r1/{SVC_ECHO}"
    refused(federation, lambda: httpx.post(url, headers=headers, content=b"x"), "LT.BAD_REQUEST")


def test_peer_refuses_repeated_protocol_headers(federation: Federation, kit: dict) -> None:
    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, _ = build_request(call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE)
    twice = [*headers.items(), ("X-LT-Hops", headers["X-LT-Hops"])]
    url = f"https://127.0.0.1:{kit['port']}/r1/{call.service}"

    def action() -> httpx.Response:
        with httpx.Client(verify=kit["tls"], timeout=10) as c:
            return c.post(url, headers=twice, content=body)

    refused(federation, action, "LT.BAD_REQUEST")


def test_slow_loris_on_a_keep_alive_connection_is_cut(federation: Federation) -> None:
    """The header deadline holds for every request of a connection, not only the first."""
    port = federation.testbed.internal_ports["BHXH-GW"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:
            first += s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for _ in range(40):  # 1.5 s deadline; trickle for up to ~12 s
            try:
                s.sendall(b"X-Slow: 1\r\n")
                s.settimeout(0.3)
                data = s.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
            if data == b"" or b"X-Slow" in data:
                closed = data == b""
                break
        assert closed, "a second request that never finishes its headers must be cut"


@pytest.mark.parametrize("tail", ["/a%3bjsessionid", "?x=1&y=%2e%2e", "/a%20b/c%3D?q=%41&r=~"])
def test_path_and_query_travel_exactly_as_signed(federation: Federation, tail: str) -> None:
    """No re-normalisation on the way (yarl would decode %3b, %2e …): the legitimate call is
    served, and the service sees the very bytes the client sent."""
    before = len(federation.received())
    resp = httpx.post(f"{_internal(federation)}/r1/{SVC_ECHO}{tail}", headers=HEADERS, content=b"x")
    assert resp.status_code == 200, resp.headers.get("X-LT-Error")
    got = federation.received()[before:]
    assert len(got) == 1 and str(got[0]["raw_path"]).endswith(tail), got


@pytest.mark.parametrize("query", ["x=%zz", "x=a b", "x=%E2%80%AE\u00e9"])
def test_unforwardable_query_is_refused_at_entry(federation: Federation, query: str) -> None:
    url = f"{_internal(federation)}/r1/{SVC_ECHO}"
    port = federation.testbed.internal_ports["BHXH-GW"]
    head = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    raw = f"GET /r1/{SVC_ECHO}?{query} HTTP/1.1\r\nHost: x\r\n{head}Connection: close\r\n\r\n"
    before = len(federation.received())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw.encode("utf-8"))
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") or answer.startswith(b"HTTP/1.0 400"), answer[:100]
    assert url and len(federation.received()) == before


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def _bad_requests_counted(federation: Federation) -> float:
    text = httpx.get(f"{_internal(federation)}/metrics").text
    for line in text.splitlines():
        labels = ('code="LT.BAD_REQUEST"', 'role="client"', 'result="refused"')
        if line.startswith("lienthong_exchanges_total{") and all(x in line for x in labels):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


_P = f"/r1/{SVC_ECHO}".encode()
_H = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items()).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"POST "
        + _P
        + b" HTTP/1.1\r\nHost: x\r\n"
        + _H
        + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST "
        + _P
        + b" HTTP/1.1\r\nHost: x\r\n"
        + _H
        + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
        b"GET " + _P + b" HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n  SECRET-b\r\n" + _H + b"\r\n",
        b"GET " + _P + "/\u00e9SECRET".encode() + b" HTTP/1.1\r\nHost: x\r\n" + _H + b"\r\n",
        b"get " + _P + b"/SECRET HTTP/1.1\r\nHost: x\r\n" + _H + b"\r\n",
        b"POST "
        + _P
        + b" HTTP/1.1\r\nHost: x\r\n"
        + _H
        + b"Content-Type: a/SECRET\r\nContent-Type: b\r\nContent-Length: 0\r\n\r\n",
        b"GET " + _P + b" HTTP/1.1\r\nHost: x\r\nX-Big: SECRET" + b"a" * 100_000 + b"\r\n\r\n",
        b"GET " + _P + b" HTTP/2.0\r\nHost: x\r\n" + _H + b"\r\n",
    ],
    ids=["cl-te", "dup-cl", "obs-fold", "utf8-url", "lowercase", "dup-ctype", "huge", "http2"],
)
def test_http_parse_errors_are_uniform_refusals(federation: Federation, raw: bytes) -> None:
    port = federation.testbed.internal_ports["BHXH-GW"]
    counted = _bad_requests_counted(federation)
    before = len(federation.received())
    answer = _raw(port, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b" 400 " in head.split(b"\r\n", 1)[0] + b" ", answer[:300]
    assert b"x-lt-error: lt.bad_request" in head.lower(), head
    assert body == b'{"error":"LT.BAD_REQUEST"}', body[:200]
    assert b"SECRET" not in answer
    assert b"aiohttp" not in head.lower() and b"python" not in head.lower()
    assert len(federation.received()) == before
    if not raw.endswith(b"HTTP/2.0\r\nHost: x\r\n" + _H + b"\r\n"):
        assert _bad_requests_counted(federation) == counted + 1  # recorded, not only answered


class _EvilRelay(RelayImpostor):
    """Forwards to BCA-GW like NDXP, then answers per ``mode``."""

    def __init__(self, federation: Federation, kit: dict) -> None:
        super().__init__(federation, kit)
        self.mode = "forge"

    async def _answer(self, request: web.BaseRequest) -> web.Response:
        if self.mode == "forge":
            return web.Response(
                status=403,
                body=b'{"error":"LT.ACCESS_DENIED"}',
                headers={"X-LT-Error": "LT.ACCESS_DENIED"},
            )
        # "strip": forward without NDXP's hop receipt: BCA-GW refuses (signed) LT.ROUTE
        status, back, data = await self.forward(request, await request.read(), receipt=False)
        return web.Response(status=status, body=data, headers=back)


def test_a_relay_cannot_forge_refusals(federation: Federation, kit: dict) -> None:
    """Refusals are signed by the refusing node, bound to the request hash: an unsigned one
    from a relay reaches the caller as LT.UNAVAILABLE, a genuine one keeps its code."""
    url = f"{_internal(federation)}/r1/{SVC_ECHO}"

    def call() -> httpx.Response:
        return httpx.post(url, headers=HEADERS, content=b"x", timeout=20)

    with _EvilRelay(federation, kit) as evil:
        refused(federation, call, "LT.UNAVAILABLE")
        evil.mode = "strip"
        refused(federation, call, "LT.ROUTE")


@pytest.mark.parametrize(
    ("status", "ctype"),
    [
        (101, None),  # an interim status as the final answer: the body would be read as the next
        (100, "application/json"),
        (600, None),
        (199, None),
        (True, None),
        ("200", None),
        (200.0, None),
        (None, None),
        (200, "text/plain\r\nSet-Cookie: x=1"),
        (200, "text/plain\x01"),
        (200, "x" * 1025),
        (200, 7),
        (200, "văn-bản/plain"),
    ],
)
def test_a_provider_cannot_sign_a_status_or_content_type_the_caller_cannot_take(
    status: object, ctype: object
) -> None:
    from lienthong.exchange.outbound import response_status

    with pytest.raises(Refused) as err:
        response_status({"status": status, "ctype": ctype})
    assert err.value.lt_code is ErrorCode.BAD_SIGNATURE


def test_signed_statuses_and_content_types_that_pass() -> None:
    from lienthong.exchange.outbound import response_status

    json = "application/json"
    assert response_status({"status": 200, "ctype": json}) == (200, json)
    assert response_status({"status": 204, "ctype": None}) == (204, None)
    assert response_status({"status": 599, "ctype": ""}) == (599, None)
    odd = 'text/plain; charset="utf-8"; x=\t1'  # a legacy service's odd but valid value
    assert response_status({"status": 404, "ctype": odd}) == (404, odd)


def test_unsigned_hop_timings_are_kept_only_when_tame() -> None:
    from lienthong.exchange.outbound import _hop_ms

    route = ["BHXH-GW", "NDXP", "BCA-GW"]
    good = "NDXP=3.100,BCA-GW=1.200,service=0.400"
    assert _hop_ms(good, route) == good
    for bad in ["NDXP=1.000,evil=" + "9" * 400, "NDXP=1.000,NDXP=2.000", "NDXP=x", "", "NDXP=1"]:
        assert _hop_ms(bad, route) is None


@pytest.mark.parametrize("case", ["stale", "future", "empty-item"])
def test_hop_receipts_fresh_and_well_formed(federation: Federation, kit: dict, case: str) -> None:
    from lienthong.exchange.envelope import hop_receipt

    call = make_call(GIAMDINH, SVC_ECHO, method="POST")
    headers, body, req_hash = build_request(
        call, kit["signers"][:1], kit["relay"], level=0, route=ROUTE
    )
    relay = kit["relay"]
    if case == "empty-item":
        headers["X-LT-Hops"] += ",,"
    else:
        ts = 0.0 if case == "stale" else time.time() + 365 * 86400
        headers["X-LT-Hops"] = hop_receipt(relay.name, req_hash, ts, relay.receipt_signer)
    refused(federation, lambda: send(kit["tls"], kit["port"], call, headers, body), "LT.ROUTE")


def test_double_trailing_slash_is_refused(federation: Federation) -> None:
    url = f"{_internal(federation)}/r1/{SVC_ECHO}//"
    refused(federation, lambda: httpx.post(url, headers=HEADERS, content=b"x"), "LT.BAD_REQUEST")
