"""How batches reach the hub: one interface, several carriers.

:class:`Transport` sends one signed envelope and returns the hub's signed acknowledgement.
Errors tell the sender what to do: :class:`~lienthong.errors.TransientError` (hub or link
down: keep the batch, retry later) or a rejection (:class:`~lienthong.errors.TrustError` /
:class:`~lienthong.errors.IntegrityError`: the copy that arrived was bad; the outbox still
holds the intact batch and re-sends it). A gateway transport (exchange layer) plugs in here
unchanged, because the envelope is already signed and encrypted end to end
(:class:`lienthong.sync.gateway_transport.GatewayTransport`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import httpx

from lienthong.errors import BackendError, IntegrityError, LienthongError, SignatureError

if TYPE_CHECKING:  # the hub imports batch parsing, which imports pipelines: no cycle at runtime
    from lienthong.sync.hub.service import Hub

BATCH_PATH = "/sync/v1/batches"
MEDIA_TYPE = "application/vnd.lienthong.sync-batch"


class Transport(Protocol):
    name: str

    def send(self, envelope: bytes) -> bytes:
        """Deliver one envelope; return the hub's signed ack bytes."""
        ...


class DirectTransport:
    """The hub in the same process (embedded deployments, the demo, tests)."""

    name = "direct"

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def send(self, envelope: bytes) -> bytes:
        return self.hub.receive(envelope)


class HttpTransport:
    """POST the envelope to a hub process (``lienthong sync hub serve``)."""

    name = "http"

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/") + BATCH_PATH
        self.client = httpx.Client(timeout=timeout, trust_env=False)

    def send(self, envelope: bytes) -> bytes:
        try:
            resp = self.client.post(
                self.url, content=envelope, headers={"content-type": MEDIA_TYPE}
            )
        except httpx.HTTPError as exc:
            raise BackendError(
                f"hub unreachable: {type(exc).__name__}", code="hub_unreachable"
            ) from exc
        return hub_answer(resp)

    def close(self) -> None:
        self.client.close()


class FlakyTransport:
    """Fault injection (tests, drills): corrupts or drops the first deliveries on purpose."""

    name = "flaky"

    def __init__(self, inner: Transport, *, corrupt: int = 0, drop: int = 0) -> None:
        self.inner = inner
        self.corrupt = corrupt
        self.drop = drop

    def send(self, envelope: bytes) -> bytes:
        if self.drop > 0:
            self.drop -= 1
            raise BackendError("link down (injected)", code="hub_unreachable")
        if self.corrupt > 0:
            self.corrupt -= 1
            tampered = bytearray(envelope)
            tampered[-1] ^= 0x01  # one flipped bit in the body
            envelope = bytes(tampered)
        return self.inner.send(envelope)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


def hub_answer(resp: httpx.Response, via: str = "") -> bytes:
    """The hub's HTTP answer as the Transport contract wants it: the ack, or an error.

    403 (trust failure) → SignatureError, 400/409 (malformed, sequence) → IntegrityError — the
    hub's detail stays in its own log; anything else (503 while its database is down, a proxy's
    5xx) → BackendError, i.e. transient.
    """
    where = f" {via}" if via else ""
    if resp.status_code == 200:
        return resp.content
    if resp.status_code in (400, 403, 409):
        # one uniform rejection: the hub's log has the detail
        error = _json(resp).get("error", "rejected")
        cls = SignatureError if resp.status_code == 403 else IntegrityError
        raise cls(f"hub rejected the batch{where} ({error})", code=str(error))
    raise BackendError(f"hub answered HTTP {resp.status_code}{where}", code="hub_error")


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        doc = resp.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


__all__ = [
    "DirectTransport",
    "FlakyTransport",
    "HttpTransport",
    "LienthongError",
    "Transport",
    "hub_answer",
]
