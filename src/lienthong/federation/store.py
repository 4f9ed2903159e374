"""A node's copy of the global configuration: fetch, verify, refuse roll-back, keep the last
good copy, report health.

Directory layout (``<node>/globalconf/``)::

    anchor.json       trusted federation root(s), expected operator, sources, warning window
    globalconf.json   the last good signed document, byte for byte as published
    state.json        highest accepted version and its digest, last fetch attempt and error

Unlike X-Road, where an expired configuration stops all traffic with little warning, a node
here (1) keeps working on its last good copy through any fetch failure until that copy
expires, (2) reports ``warning`` from ``warn_before`` ahead of expiry and whenever the last
fetch failed, and (3) tries every configured source (mirrors) in order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from lienthong.errors import (
    BackendError,
    ConfigError,
    InputError,
    LienthongError,
    NotFound,
    TrustError,
)
from lienthong.federation.confverify import verify_configuration
from lienthong.federation.fetch import fetch_document
from lienthong.federation.globalconf import GlobalConfiguration
from lienthong.trust.identity import Identity, parse_identity
from lienthong.trust.x509 import load_certificates

SCHEMA_VERSION = 1


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a directory")
    for parent in (path.parent, *path.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write {path}: {parent} is not a directory")
            break
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc


@dataclass(frozen=True)
class Anchor:
    """What a node trusts before it has any configuration (X-Road's "configuration anchor")."""

    roots_pem: bytes
    operator: str
    sources: tuple[str, ...] = ()
    warn_before_hours: int = 48
    require: tuple[str, ...] = ("ES256",)  # JWS algorithms every document must be signed with

    def roots(self) -> list[x509.Certificate]:
        return load_certificates(self.roots_pem, source="anchor.json roots")

    def operator_identity(self) -> Identity:
        # Pinning the operator matters: every member holds a valid signing certificate from
        # the same CA, so the chain alone cannot tell the operator from any member.
        if not self.operator:
            raise ConfigError(
                "the federation operator identity must be pinned (--operator "
                "INSTANCE/CLASS/MEMBER), or any member could sign a configuration"
            )
        return parse_identity(self.operator)


@dataclass(frozen=True)
class Health:
    """``status`` is ``ok``, ``warning`` (still working; act soon) or ``failing``."""

    status: str
    problems: tuple[str, ...] = ()
    version: int | None = None
    expires_at: str | None = None
    hours_left: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "problems": list(self.problems),
            "version": self.version,
            "expires_at": self.expires_at,
            "hours_left": self.hours_left,
        }


@dataclass
class ConfigStore:
    """The global configuration directory of one node."""

    directory: Path
    _anchor: Anchor | None = field(default=None, repr=False)

    @classmethod
    def bootstrap(cls, directory: Path, anchor: Anchor) -> ConfigStore:
        """Create (or replace) the anchor; the roots must parse."""
        anchor.roots()
        anchor.operator_identity()
        doc = {
            "schema_version": SCHEMA_VERSION,
            "roots": anchor.roots_pem.decode(),
            "operator": anchor.operator,
            "sources": list(anchor.sources),
            "warn_before_hours": anchor.warn_before_hours,
            "require": list(anchor.require),
        }
        write_atomic(directory / "anchor.json", json.dumps(doc, indent=2).encode())
        return cls(directory, anchor)

    def anchor(self) -> Anchor:
        if self._anchor is None:
            data = self._read_json("anchor.json")
            if data is None:
                raise NotFound(
                    f"{self.directory}/anchor.json missing: run `lienthong federation "
                    "fetch --anchor ROOT.pem --from URL --to DIR` once"
                )
            self._anchor = Anchor(
                str(data.get("roots", "")).encode(),
                str(data.get("operator") or ""),
                tuple(data.get("sources", [])),
                int(data.get("warn_before_hours", 48)),
                tuple(data.get("require", ["ES256"])),
            )
        return self._anchor

    def _read_json(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.directory / name).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.directory / name} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(f"{self.directory / name}: unsupported schema version")
        return data

    def state(self) -> dict[str, Any]:
        return self._read_json("state.json") or {"schema_version": SCHEMA_VERSION}

    def _save_state(self, **changes: Any) -> None:
        state = self.state() | changes
        write_atomic(self.directory / "state.json", json.dumps(state, indent=2).encode())

    def verify(self, document: bytes, now: dt.datetime) -> GlobalConfiguration:
        anchor = self.anchor()
        return verify_configuration(
            document,
            roots=anchor.roots(),
            now=now,
            operator=anchor.operator_identity(),
            require=anchor.require,
        )

    def current(self, now: dt.datetime) -> GlobalConfiguration:
        """The last good copy, verified again at ``now`` (it may have expired since)."""
        self.anchor()
        try:
            document = (self.directory / "globalconf.json").read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"no global configuration in {self.directory}: run `lienthong "
                f"federation fetch --to {self.directory}`"
            ) from None
        return self.verify(document, now)

    def accept(self, document: bytes, now: dt.datetime) -> tuple[GlobalConfiguration, bool]:
        """Verify ``document`` and make it current; return it and whether it changed.

        Refuses an older version than the highest accepted (roll-back) and the same version
        with different content (equivocation); nothing is written on refusal.
        """
        config = self.verify(document, now)
        state = self.state()
        known, digest = state.get("version"), state.get("digest")
        if isinstance(known, int) and config.version < known:
            raise TrustError(
                f"configuration roll-back refused: offered version {config.version} "
                f"is older than accepted version {known}",
                code="config_rollback",
            )
        if config.version == known and config.digest != digest:
            raise TrustError(
                f"configuration version {known} was already accepted with different "
                f"content (digest {str(digest)[:12]}…, offered "
                f"{config.digest[:12]}…)",
                code="config_equivocation",
            )
        changed = config.version != known
        if changed:
            write_atomic(self.directory / "globalconf.json", document)
        self._save_state(
            version=config.version,
            digest=config.digest,
            expires_at=config.expires_at.isoformat(),
            fetched_at=now.isoformat(),
            last_error=None,
        )
        return config, changed

    def refresh(
        self, now: dt.datetime, sources: tuple[str, ...] = (), timeout: float = 10.0
    ) -> tuple[GlobalConfiguration, bool]:
        """Fetch from each source in turn until one is accepted.

        On total failure the error is recorded for :meth:`health` and raised; the last good
        copy stays in place and in use.
        """
        anchor = self.anchor()  # no anchor: one precise error, not one per source
        sources = sources or anchor.sources
        if not sources:
            raise ConfigError("no configuration source: give --from URL|PATH")
        errors: list[str] = []
        refused = True
        for source in sources:
            try:
                return self.accept(fetch_document(source, timeout=timeout), now)
            except LienthongError as exc:
                errors.append(f"{source}: {exc.message}")
                refused = refused and not isinstance(exc, BackendError | NotFound)
        self._save_state(last_attempt=now.isoformat(), last_error="; ".join(errors))
        message = errors[0] if len(errors) == 1 else "every source failed: " + "; ".join(errors)
        # A document that arrived but was refused is a trust failure; an unreachable source
        # is transient. Either way the last good copy stays current.
        if refused:
            raise TrustError(message, code="config_refused")
        raise BackendError(message, code="config_fetch_failed")

    def health(self, now: dt.datetime) -> Health:
        """Status for health checks and ``lienthong doctor``."""
        try:
            config = self.current(now)
        except LienthongError as exc:
            return Health("failing", (exc.message,))
        anchor, state = self.anchor(), self.state()
        left = config.expires_at - now
        hours = round(left.total_seconds() / 3600, 1)
        problems = []
        if left <= dt.timedelta(hours=anchor.warn_before_hours):
            problems.append(
                f"configuration version {config.version} expires in {hours} h "
                f"({config.expires_at:%Y-%m-%d %H:%M}Z): publish and fetch a new one"
            )
        if state.get("last_error"):
            problems.append(
                f"last fetch failed: {state['last_error']} (still using version "
                f"{config.version}, valid {hours} h more)"
            )
        return Health(
            "warning" if problems else "ok",
            tuple(problems),
            config.version,
            config.expires_at.isoformat(),
            hours,
        )
