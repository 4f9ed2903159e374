"""Certificate status checking for gateways: cached, outage-tolerant, then fail-closed.

X-Road stops all traffic as soon as its OCSP answers expire. :class:`StatusChecker` instead
keeps using the last verified answer through a status-service outage for a configurable
``grace`` period after that answer's ``next_update``, then fails closed; :meth:`health` reports
``warning`` (with the seconds left) from the first failed refresh, long before that happens.

Pure core: the status source is injected and ``now`` is passed in.
"""

from __future__ import annotations

import datetime as dt
import enum
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

from lienthong.errors import BackendError, CertificateError, TrustError
from lienthong.trust.ocsp import CertStatus, StatusAnswer, build_request, verify_response
from lienthong.trust.x509 import Usage, build_chain, verify_chain


class StatusSource(Protocol):
    """Where OCSP answers come from (HTTP client, or the CA directory itself)."""

    def fetch(self, request_der: bytes) -> bytes:
        """Return a DER OCSP response; raise BackendError when unreachable."""
        ...


class Health(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILING = "failing"


@dataclass(frozen=True)
class HealthReport:
    state: Health
    seconds_until_fail_closed: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "detail": self.detail,
            "seconds_until_fail_closed": self.seconds_until_fail_closed,
        }


class StatusChecker:
    """Check certificate status through a :class:`StatusSource` with caching and grace."""

    def __init__(
        self,
        source: StatusSource,
        *,
        grace: dt.timedelta = dt.timedelta(hours=24),
        refresh_before: dt.timedelta = dt.timedelta(minutes=30),
        retry_interval: dt.timedelta = dt.timedelta(seconds=30),
    ) -> None:
        self.source = source
        self.grace = grace
        self.refresh_before = refresh_before
        self.retry_interval = retry_interval
        self._last_failure: dt.datetime | None = None
        self._cache: dict[tuple[bytes, int], StatusAnswer] = {}
        self._outage_since: dt.datetime | None = None
        self._last_error: str | None = None
        self._lock = threading.Lock()

    def _fetch(
        self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime
    ) -> StatusAnswer | str:
        """A verified answer, or the reason why none could be had (runs outside the lock)."""
        try:
            der = self.source.fetch(build_request(cert, issuer))
            return verify_response(der, cert=cert, issuer=issuer, now=now)
        except (BackendError, TrustError) as exc:
            return exc.message

    def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, now: dt.datetime
    ) -> StatusAnswer:
        """Return the ``good`` answer for ``cert`` or raise :class:`CertificateError` with
        reason ``revoked``, ``status_unknown`` or ``status_unavailable`` (failed closed).

        After a failed fetch the source is not asked again for ``retry_interval``, so an
        outage costs one timeout per interval, not one per message."""
        key = (issuer.subject.public_bytes(), cert.serial_number)
        with self._lock:
            answer = self._cache.get(key)
            due = answer is None or now >= answer.next_update - self.refresh_before
            backing_off = (
                self._last_failure is not None and now - self._last_failure < self.retry_interval
            )
        result = self._fetch(cert, issuer, now) if due and not backing_off else None
        with self._lock:
            if isinstance(result, StatusAnswer):
                answer = self._cache[key] = result
                self._outage_since = self._last_failure = self._last_error = None
            elif isinstance(result, str):
                self._outage_since = self._outage_since or now
                self._last_failure, self._last_error = now, result
            if answer is None or now > answer.next_update + self.grace:
                since = self._outage_since or now
                raise CertificateError(
                    f"status of certificate {cert.serial_number:x} cannot be established: "
                    f"status service failing since {since:%Y-%m-%dT%H:%M:%SZ} "
                    f"({self._last_error}) and no answer within the "
                    f"{self.grace.total_seconds() / 3600:g} h grace period: failing closed",
                    code="cert_status_unavailable",
                    reason="status_unavailable",
                )
        if answer.status is CertStatus.REVOKED:
            raise CertificateError(
                f"certificate {cert.serial_number:x} was revoked at {answer.revoked_at} "
                f"({answer.reason or 'unspecified'})",
                code="cert_revoked",
                reason="revoked",
            )
        if answer.status is CertStatus.UNKNOWN:
            raise CertificateError(
                f"certificate {cert.serial_number:x} is unknown to its CA",
                code="cert_status_unknown",
                reason="status_unknown",
            )
        return answer

    def health(self, now: dt.datetime) -> HealthReport:
        """``ok``; ``warning`` during an outage or with stale answers (with seconds left);
        ``failing`` once some cached certificate can no longer be checked."""
        with self._lock:
            answers = list(self._cache.values())
            outage, error = self._outage_since, self._last_error
        if not answers:
            if outage is None:
                return HealthReport(Health.OK, None, "no certificate checked yet")
            return HealthReport(Health.FAILING, 0.0, f"status service failing: {error}")
        deadline = min(a.next_update for a in answers) + self.grace
        left = (deadline - now).total_seconds()
        if left <= 0:
            return HealthReport(
                Health.FAILING,
                0.0,
                f"grace period over since {deadline.isoformat()}: failing closed",
            )
        stale = any(now > a.next_update for a in answers)
        if outage is not None or stale:
            why = (
                f"status service failing since {outage.isoformat()}: {error}"
                if outage
                else "cached status answers are past next_update"
            )
            return HealthReport(
                Health.WARNING,
                left,
                f"{why}; fail-closed in {left / 3600:.1f} h unless it recovers",
            )
        return HealthReport(Health.OK, left, "status answers fresh")


def verify_certificate(
    cert: x509.Certificate,
    *,
    intermediates: Iterable[x509.Certificate],
    roots: Iterable[x509.Certificate],
    now: dt.datetime,
    usage: Usage | str,
    checker: StatusChecker,
) -> None:
    """What a gateway does for a peer: :func:`verify_chain` then a status check of the leaf
    with its issuer (raises CertificateError with the precise reason)."""
    intermediates, roots = list(intermediates), list(roots)
    verify_chain(cert, intermediates=intermediates, roots=roots, now=now, usage=usage)
    chain = build_chain(cert, intermediates=intermediates, roots=roots, now=now)
    if len(chain) > 1:
        checker.check(cert, chain[1], now=now)
