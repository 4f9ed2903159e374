"""Batches through the exchange layer: the agency's own gateway carries them to the hub.

The sender posts each envelope to its **own** gateway with the X-Road-style REST call of
``docs/exchange.md``::

    POST {gateway}/r1/{hub sync service id}/batches
    X-LT-Client: <the agency's sync subsystem>     X-LT-Id: <fresh UUID>
    X-LT-Purpose / X-LT-Legal-Basis: <from the pipeline's [transport]>

The gateways sign the call, route it through the platform hierarchy, encrypt it end to end to
the hub's subsystem from PERSONAL up, and the provider gateway forwards it to the hub's
``/sync/v1`` endpoint, which verifies the envelope's own signature before applying it. The
hub's signed acknowledgement comes back as the response body.

Answers map onto the :class:`~lienthong.sync.transport.Transport` contract:

* the own gateway unreachable, ``LT.UNAVAILABLE`` / ``LT.TIMEOUT`` / ``LT.INTERNAL`` (a link,
  a relay, the provider gateway or the hub down) → :class:`BackendError` (transient: the
  outbox keeps the batch and sends it again later);
* ``LT.BAD_SIGNATURE`` (damaged in transit) → :class:`SignatureError`, and the hub's own
  rejections as for :class:`~lienthong.sync.transport.HttpTransport` (the stored intact batch
  is re-sent);
* ``LT.ACCESS_DENIED`` / ``LT.CLEARANCE`` / ``LT.ROUTE`` / ``LT.BAD_REQUEST`` /
  ``LT.TOO_LARGE`` / ``LT.REPLAY`` → :class:`GatewayRefused`, a terminal error that names the
  cause and what to check; the batch stays in the outbox until the configuration is fixed.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from lienthong.errors import BackendError, InputError, SignatureError, TerminalError
from lienthong.identifiers import ServiceId, SubsystemId
from lienthong.sync.transport import BATCH_PATH, MEDIA_TYPE, hub_answer

TRANSPORT_KINDS = ("gateway",)
SYNC_SUBPATH = "/batches"  # after the service id; the hub's service base URL ends in /sync/v1
DEFAULT_PURPOSE = "dong-bo-csdl-tong-hop"
DEFAULT_LEGAL_BASIS = "Cong dien 103/CD-TTg; Luat Giao dich dien tu 2023, Dieu 42"
TRANSPORT_SETTINGS = ("kind", "url", "service", "client", "purpose", "legal_basis", "timeout_s")
_TEXT = re.compile(r"[\x20-\x7e]{1,512}")  # the gateway's header rule: printable ASCII

_TRANSIENT = {"LT.UNAVAILABLE", "LT.TIMEOUT", "LT.INTERNAL"}
_WHY = {
    "LT.ACCESS_DENIED": "no access right for client {client} to service {service} in the "
    "federation configuration (or this host may not act as that subsystem at its gateway)",
    "LT.CLEARANCE": "the clearance of {client} or of the hub's subsystem is below the level "
    "of service {service}",
    "LT.ROUTE": "the route to service {service} does not allow its level (federation "
    "configuration: node max_level / isolated zones)",
    "LT.BAD_REQUEST": "the gateway refused the call as malformed (check [transport] service, "
    "client, purpose and legal_basis)",
    "LT.TOO_LARGE": "the batch is above the gateways' limits.max_body_bytes (lower batch_size)",
    "LT.REPLAY": "a gateway refused the call as stale or replayed (check the clocks of the "
    "agency and the gateways)",
}
# the service base URL the hub's provider gateway forwards to (docs/sync.md)
HUB_SERVICE_PATH = BATCH_PATH.removesuffix(SYNC_SUBPATH)


class GatewayRefused(TerminalError):
    """A gateway refused the sync call for a reason retrying cannot fix (configuration)."""

    code = "gateway_refused"
    http_status = 403


@dataclass(frozen=True)
class GatewaySettings:
    """The ``[transport]`` table of a pipeline with ``kind = "gateway"``."""

    url: str
    service: str
    client: str
    purpose: str = DEFAULT_PURPOSE
    legal_basis: str = DEFAULT_LEGAL_BASIS
    timeout_s: float = 60.0


def parse_transport(doc: Any, errors: list[str]) -> GatewaySettings | None:
    """Validate a pipeline's ``[transport]`` table; append every problem to ``errors``."""
    if not isinstance(doc, dict):
        errors.append("transport: expected a table")
        return None
    before = len(errors)
    errors.extend(f"transport.{k}: unknown setting" for k in doc if k not in TRANSPORT_SETTINGS)
    kind = doc.get("kind")
    if kind is None:
        errors.append('transport.kind: required ("gateway")')
    elif kind not in TRANSPORT_KINDS:
        errors.append(f"transport.kind: {kind!r} is not one of {', '.join(TRANSPORT_KINDS)}")
    url = doc.get("url")
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s/?#]+/?", url):
        errors.append(
            "transport.url: required, the base URL of the agency's own gateway "
            '(its internal listener), e.g. "http://127.0.0.1:8080"'
        )
    for name, parse in (("service", ServiceId.parse), ("client", SubsystemId.parse)):
        value = doc.get(name)
        if not isinstance(value, str):
            errors.append(
                f"transport.{name}: required, "
                + (
                    "the national hub's sync service id INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE"
                    if name == "service"
                    else "this agency's sync subsystem id INSTANCE/CLASS/MEMBER/SUBSYSTEM"
                )
            )
            continue
        try:
            parse(value)
        except InputError as exc:
            errors.append(f"transport.{name}: {exc.message}")
    for name in ("purpose", "legal_basis"):
        value = doc.get(name, "x")
        if not isinstance(value, str) or not _TEXT.fullmatch(value):
            errors.append(
                f"transport.{name}: printable ASCII text of 1 to 512 characters "
                "(it travels in an HTTP header)"
            )
    timeout = doc.get("timeout_s", 60.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        errors.append("transport.timeout_s: a positive number of seconds")
    if len(errors) > before:
        return None
    return GatewaySettings(
        url=str(url),
        service=str(doc["service"]),
        client=str(doc["client"]),
        purpose=str(doc.get("purpose", DEFAULT_PURPOSE)),
        legal_basis=str(doc.get("legal_basis", DEFAULT_LEGAL_BASIS)),
        timeout_s=float(timeout),
    )


class GatewayTransport:
    """POST envelopes to the agency's own gateway, addressed to the hub's sync service."""

    name = "gateway"

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        service = str(ServiceId.parse(settings.service))
        self.url = f"{settings.url.rstrip('/')}/r1/{service}{SYNC_SUBPATH}"
        self.client = httpx.Client(timeout=settings.timeout_s, trust_env=False)
        self.last_message_id: str | None = None

    def send(self, envelope: bytes) -> bytes:
        s = self.settings
        message_id = str(uuid.uuid4())  # a fresh id per attempt: the gateways' replay window
        self.last_message_id = message_id
        headers = {
            "content-type": MEDIA_TYPE,
            "X-LT-Client": s.client,
            "X-LT-Id": message_id,
            "X-LT-Purpose": s.purpose,
            "X-LT-Legal-Basis": s.legal_basis,
        }
        try:
            resp = self.client.post(self.url, content=envelope, headers=headers)
        except httpx.HTTPError as exc:
            raise BackendError(
                f"own gateway unreachable at {s.url}: {type(exc).__name__}",
                code="gateway_unreachable",
            ) from exc
        code = resp.headers.get("X-LT-Error")
        if code is None:
            return hub_answer(resp, via="through the gateways")
        if code in _TRANSIENT:
            raise BackendError(
                f"gateway answered {code}: a gateway, link or the hub is unavailable",
                code="gateway_unavailable",
                lt_code=code,
            )
        if code == "LT.BAD_SIGNATURE":
            raise SignatureError(
                "a gateway rejected the call (LT.BAD_SIGNATURE): damaged or tampered in transit",
                code="gateway_bad_signature",
            )
        why = _WHY.get(code, "refused by a gateway (see its log)")
        raise GatewayRefused(
            f"gateway refused the sync batch ({code}): "
            + why.format(client=s.client, service=s.service),
            lt_code=code,
            message_id=message_id,
        )

    def close(self) -> None:
        self.client.close()


__all__ = [
    "DEFAULT_LEGAL_BASIS",
    "DEFAULT_PURPOSE",
    "HUB_SERVICE_PATH",
    "TRANSPORT_SETTINGS",
    "GatewayRefused",
    "GatewaySettings",
    "GatewayTransport",
    "parse_transport",
]
