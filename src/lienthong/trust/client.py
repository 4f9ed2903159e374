"""HTTP client for the trust service: a status source for gateways and a remote timestamper."""

from __future__ import annotations

import hashlib
import os

import httpx
from asn1crypto import cms, tsp
from cryptography import x509

from lienthong.errors import BackendError
from lienthong.trust.tsa import token_from_response


class TrustServiceClient:
    """Talks to ``lienthong ca serve``; implements ``StatusSource`` and ``Timestamper``.

    Every network or HTTP failure becomes :class:`BackendError` (transient), which
    :class:`~lienthong.trust.status.StatusChecker` turns into its grace-period behaviour.
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _call(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> bytes:
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            resp = self._http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise BackendError(f"trust service {self.base_url} unreachable: {exc}") from exc
        if resp.status_code != 200:
            raise BackendError(
                f"trust service {self.base_url}{path} answered HTTP {resp.status_code}"
            )
        return resp.content

    def fetch(self, request_der: bytes) -> bytes:
        """POST an OCSP request; return the DER response."""
        return self._call(
            "POST", "/ocsp", content=request_der, content_type="application/ocsp-request"
        )

    def crl(self) -> x509.CertificateRevocationList:
        der = self._call("GET", "/crl")
        try:
            return x509.load_der_x509_crl(der)
        except ValueError as exc:
            raise BackendError(f"trust service returned an invalid CRL: {exc}") from exc

    def ca_bundle(self) -> bytes:
        return self._call("GET", "/ca")

    def timestamp(self, digest: bytes) -> bytes:
        """An RFC 3161 token over a SHA-256 ``digest`` (nonce checked)."""
        nonce = int.from_bytes(os.urandom(8), "big")
        req = tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": digest,
                },
                "nonce": nonce,
                "cert_req": True,
            }
        )
        token = token_from_response(
            self._call(
                "POST", "/tsa", content=req.dump(), content_type="application/timestamp-query"
            )
        )

        info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
        if info["nonce"].native != nonce:
            raise BackendError("time-stamp response does not echo our nonce (replayed?)")
        return token

    def timestamp_data(self, data: bytes) -> bytes:
        return self.timestamp(hashlib.sha256(data).digest())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TrustServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
