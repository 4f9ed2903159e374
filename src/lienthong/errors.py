"""The one exception hierarchy of lienthong.

::

    LienthongError                 every error we raise on purpose
    ├── InputError                 bad input from a user, file, row or peer (exit 2, HTTP 400)
    │   ├── ConfigError            a configuration file or setting is invalid
    │   └── ValidationError        a value breaks a data-dictionary rule (carries reasons)
    ├── TrustError                 a signature, certificate or key check failed (HTTP 403)
    │   ├── CertificateError
    │   ├── SignatureError
    │   └── KeyStoreError
    ├── AccessDenied               authorisation or classification refused (HTTP 403)
    ├── IntegrityError             stored data is inconsistent (audit log, sync state)
    ├── NotFound                   a named thing does not exist (HTTP 404)
    └── BackendError               a database, HSM, file system or peer failed (exit 1, HTTP 502)

Two markers cut across the tree and are read by retry logic: ``TransientError`` (try again
later: a link is down, a server restarts) and ``TerminalError`` (retrying cannot help).

Every error carries ``code`` (a stable machine-readable string) and ``details`` (structured
fields for logs and audit). ``str(err)`` is one precise line for a human.
"""

from __future__ import annotations

from typing import Any


class LienthongError(Exception):
    """Base class: one line of message, a stable code and structured details."""

    code = "error"
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class TransientError(LienthongError):
    """Marker: the operation may succeed if retried later."""


class TerminalError(LienthongError):
    """Marker: retrying cannot help."""


class InputError(TerminalError):
    code = "bad_input"
    exit_code = 2
    http_status = 400


class ConfigError(InputError):
    code = "bad_config"


class ValidationError(InputError):
    """A value breaks one or more rules; ``reasons`` lists every one of them."""

    code = "invalid"

    def __init__(self, message: str, *, reasons: list[str] | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.reasons = reasons or [message]
        self.details["reasons"] = self.reasons


class TrustError(TerminalError):
    code = "untrusted"
    http_status = 403


class CertificateError(TrustError):
    code = "bad_certificate"


class SignatureError(TrustError):
    code = "bad_signature"


class KeyStoreError(TrustError):
    code = "keystore"


class AccessDenied(TerminalError):
    code = "access_denied"
    http_status = 403


class IntegrityError(TerminalError):
    code = "integrity"


class NotFound(TerminalError):
    code = "not_found"
    http_status = 404


class BackendError(TransientError):
    code = "backend"
    http_status = 502


# OS errors that mean a path the user gave does not fit (bad input, exit 2), not a failure
INPUT_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)
