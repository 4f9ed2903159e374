"""The gateway's settings: one typed, validated object read from a JSON or YAML file.

Every field is documented in ``docs/exchange.md`` (a test checks it). Private keys are
passphrase-encrypted PKCS#8 PEM files; the passphrase is a reference (``{"$env": NAME}`` or
``{"$file": PATH}``), never inline. Relative paths are resolved against the config file.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import yaml

from lienthong.errors import ConfigError, InputError


class Listen(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 0


class TlsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cert: str  # PEM certificate chain of this node (identity = the node name)
    key: str  # encrypted PKCS#8 PEM private key (also signs hop receipts)
    roots: str  # PEM bundle of the federation CA (root and intermediates)
    crl: str | None = None  # CRL file published by the CA (revocation status)
    status_url: str | None = None  # or: the CA's trust service (OCSP with grace period)


class LocalSubsystem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str  # INSTANCE/CLASS/MEMBER/SUBSYSTEM served by this gateway
    sign_key: str  # encrypted PEM, ECDSA P-256
    sign_cert: str
    pq_key: str | None = None  # encrypted PEM, ML-DSA-65 (needed for MAT and up)
    pq_cert: str | None = None
    kem_x25519: str | None = None  # encrypted PEM, to decrypt calls to this subsystem
    kem_mlkem: str | None = None
    # networks of the information systems that may call as this subsystem
    allowed_sources: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_body_bytes: int = 1 << 30
    memory_body_bytes: int = 4 << 20  # bigger plaintext bodies are spooled to disk to hash
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0  # longest pause allowed inside a request body
    upstream_timeout_s: float = 300.0
    connect_timeout_s: float = 3.0
    replay_window_s: float = 300.0
    replay_max_entries: int = 1_000_000
    status_ttl_s: float = 60.0
    status_grace_s: float = 86400.0  # use the last good OCSP answer this long in an outage
    config_grace_s: float = 86400.0  # keep working this long past the directory's expiry
    reload_s: float = 60.0  # how often the directory / global configuration is re-read
    max_header_bytes: int = 32768
    # open connections per listener (0: half the process's open-file limit) and from one
    # address (0: half of that); beyond them idle connections make room, see docs/exchange.md
    max_connections: int = 0
    max_connections_per_address: int = 0
    monitor_keep_days: float = 7.0  # monitoring records older than this are deleted (0: keep)
    cert_warn_days: float = 30.0  # /health warns this long before an own certificate expires
    # a renewed own certificate is used this long after this node's view first published it,
    # so that every peer holds that configuration (they fetch it about hourly)
    renewal_settle_s: float = 3600.0


class MessageLogSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``message_log`` as an object; the plain strings ``"audit"``/``"jsonl"`` mean
    ``{"kind": ...}`` with the defaults below."""

    kind: str = "audit"  # "audit" (Merkle audit log) or "jsonl" (diagnosis only)
    # "process": the response waits for the log commit, not for its fsync (survives a
    # killed gateway; a power loss can take the last sync_interval_ms of entries);
    # "power": every response waits for the fsync of its log commit.
    durability: str = "process"
    sync_interval_ms: float = 10.0
    # how often the node signs a checkpoint of its message log when it grew (and on close)
    checkpoint_interval_s: float = 60.0


class AuditSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Personal-data accesses in the message log (docs/exchange.md, "Message log")."""

    # the federation person key (secret reference): personal IDs are logged only as its HMAC
    person_key: str | dict[str, str] | None = None
    # provided service id -> where its calls name the data subject: "path" | "query:NAME"
    subject_from: dict[str, str] = {}


class GatewayConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    node: str  # this gateway's node name in the federation directory
    role: str  # "agency" (serves information systems) or "platform" (relay only)
    peer: Listen  # mutual-TLS listener for other gateways
    tls: TlsSettings
    state_dir: str  # monitoring database and message log
    # secret reference of the key files' passphrase: {"$env": NAME} / {"$file": PATH}, or the
    # CLI's env:NAME / file:PATH (as audit.person_key); normalised to the mapping on load
    passphrase: str | dict[str, str]
    directory: str | None = None  # federation directory JSON
    globalconf: str | None = None  # or: this node's verified global-configuration store
    internal: Listen | None = None  # plain HTTP listener for the agency's own systems
    admin: Listen | None = None  # plain HTTP listener for /health and /metrics only
    subsystems: list[LocalSubsystem] = []
    services: dict[str, str] = {}  # service id -> base URL of the real endpoint
    limits: Limits = Limits()
    message_log: str | MessageLogSettings = "audit"  # see MessageLogSettings
    audit: AuditSettings = AuditSettings()  # personal-data access records

    @property
    def message_log_settings(self) -> MessageLogSettings:
        if isinstance(self.message_log, str):
            return MessageLogSettings(kind=self.message_log)
        return self.message_log


def _resolve(base: Path, value: str) -> str:
    p = Path(value)
    return str(p if p.is_absolute() else (base / p))


def _resolve_ref(base: Path, ref: Any) -> dict[str, str]:
    """A checked secret reference with a relative ``$file`` made relative to ``base``."""
    from lienthong.trust.secrets import parse_secret_ref

    norm = parse_secret_ref(ref)
    if "$file" in norm:
        return {"$file": _resolve(base, norm["$file"])}
    return norm


class _DuplicateKey(Exception):
    def __init__(self, key: Hashable, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML (and JSON, its subset) refusing a key given twice in one mapping: the parsers keep
    the last one, so a second ``limits:`` block would silently replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *base" merges keys that may be overridden: not a repeat
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:
                continue  # unhashable: the base constructor reports it
            if repeated:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


MAX_CONFIG_BYTES = 4 << 20  # a gateway config is a few kB; far above is no config


def load_config(path: Path) -> GatewayConfig:
    """Read, validate and path-resolve a gateway config (raise ConfigError with one line)."""
    try:
        with path.open("rb") as fh:  # bounded: /dev/zero or a runaway file is no config
            data = fh.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"gateway config {path} is larger than {MAX_CONFIG_BYTES >> 20} MiB: not a config"
            )
        # a SafeLoader (plain data only), refusing repeated keys
        raw: Any = yaml.load(data.decode("utf-8"), Loader=_UniqueKeyLoader)
    except OSError as exc:
        raise ConfigError(f"cannot read gateway config {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"gateway config {path} is not UTF-8 text "
            f"(byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        ) from exc
    except _DuplicateKey as exc:
        raise ConfigError(
            f"gateway config {path}: key {exc.key!r} is given twice (line {exc.line})"
        ) from exc
    except yaml.YAMLError as exc:
        # one line, whatever the parser printed; the file is named once, not "<unicode string>"
        detail = " ".join(str(exc).replace('in "<unicode string>", ', "").split())
        raise ConfigError(f"gateway config {path} is not YAML/JSON: {detail}") from exc
    except RecursionError:
        raise ConfigError(f"gateway config {path} is nested too deeply") from None
    try:
        cfg = msgspec.convert(raw, GatewayConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"gateway config {path}: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"gateway config {path} is nested too deeply") from None
    verify_config(cfg)
    base = path.parent
    subs = [
        msgspec.structs.replace(
            s,
            **{
                f: _resolve(base, getattr(s, f))
                for f in ("sign_key", "sign_cert", "pq_key", "pq_cert", "kem_x25519", "kem_mlkem")
                if getattr(s, f) is not None
            },
        )
        for s in cfg.subsystems
    ]
    tls = msgspec.structs.replace(
        cfg.tls,
        cert=_resolve(base, cfg.tls.cert),
        key=_resolve(base, cfg.tls.key),
        roots=_resolve(base, cfg.tls.roots),
        crl=_resolve(base, cfg.tls.crl) if cfg.tls.crl else None,
    )
    audit = cfg.audit
    if audit.person_key is not None:
        audit = msgspec.structs.replace(audit, person_key=_resolve_ref(base, audit.person_key))
    return msgspec.structs.replace(
        cfg,
        tls=tls,
        subsystems=subs,
        passphrase=_resolve_ref(base, cfg.passphrase),
        audit=audit,
        directory=_resolve(base, cfg.directory) if cfg.directory else None,
        globalconf=_resolve(base, cfg.globalconf) if cfg.globalconf else None,
        state_dir=_resolve(base, cfg.state_dir),
    )


def _verify_audit(cfg: GatewayConfig) -> None:
    from lienthong.trust.secrets import parse_secret_ref

    audit = cfg.audit
    if audit.person_key is not None:
        try:
            parse_secret_ref(audit.person_key, what="gateway config: audit.person_key")
        except InputError as exc:
            raise ConfigError(str(exc)) from exc
    for service, rule in audit.subject_from.items():
        if service not in cfg.services:
            raise ConfigError(
                f"gateway config: audit.subject_from names {service!r}, not served here"
            )
        if rule != "path" and not (rule.startswith("query:") and len(rule) > 6):
            raise ConfigError(
                f"gateway config: audit.subject_from[{service!r}] must be 'path' or "
                f"'query:NAME', not {rule!r}"
            )
    if audit.subject_from and audit.person_key is None:
        raise ConfigError(
            "gateway config: audit.subject_from needs audit.person_key "
            "(the federation person key: env:NAME or file:PATH)"
        )


def verify_config(cfg: GatewayConfig) -> None:
    """Cross-field checks msgspec cannot express."""
    if cfg.role not in ("agency", "platform"):
        raise ConfigError(f"gateway config: role must be 'agency' or 'platform', not {cfg.role!r}")
    if cfg.role == "agency" and cfg.internal is None:
        raise ConfigError("gateway config: an agency gateway needs an 'internal' listener")
    if cfg.role == "platform" and (cfg.services or cfg.internal):
        raise ConfigError("gateway config: a platform gateway relays only (no services/internal)")
    _verify_listeners(cfg)
    for service, url in cfg.services.items():
        problem = _url_problem(url, service=True)
        if problem:
            raise ConfigError(f"gateway config: service endpoint of {service}: {problem}")
    if cfg.tls.status_url is not None:
        problem = _url_problem(cfg.tls.status_url)
        if problem:
            raise ConfigError(f"gateway config: tls.status_url: {problem}")
    from lienthong.trust.secrets import parse_secret_ref

    try:
        parse_secret_ref(cfg.passphrase, what="gateway key passphrase")
    except InputError as exc:
        raise ConfigError(str(exc)) from exc
    if (cfg.directory is None) == (cfg.globalconf is None):
        raise ConfigError("gateway config: give exactly one of 'directory' and 'globalconf'")
    mlog = cfg.message_log_settings
    if mlog.kind not in ("audit", "jsonl"):
        raise ConfigError("gateway config: message_log must be 'audit' or 'jsonl'")
    if mlog.durability not in ("process", "power"):
        raise ConfigError("gateway config: message_log.durability must be 'process' or 'power'")
    if not 0 < mlog.sync_interval_ms <= 60_000:
        raise ConfigError("gateway config: message_log.sync_interval_ms must be in (0, 60000]")
    if not 0 < mlog.checkpoint_interval_s <= 86_400:
        raise ConfigError("gateway config: message_log.checkpoint_interval_s must be in (0, 86400]")
    if mlog.kind == "jsonl" and (cfg.audit.person_key is not None or cfg.audit.subject_from):
        # the JSON-lines log records no personal-data access: the settings would do nothing
        raise ConfigError(
            "gateway config: audit.person_key / audit.subject_from need message_log 'audit' "
            "(the 'jsonl' log records no personal-data accesses)"
        )
    _verify_audit(cfg)
    seen: set[str] = set()
    for sub in cfg.subsystems:
        if sub.id in seen:
            raise ConfigError(f"gateway config: subsystem {sub.id} is listed twice")
        seen.add(sub.id)
        for a, b in (("pq_key", "pq_cert"), ("kem_x25519", "kem_mlkem")):
            if (getattr(sub, a) is None) != (getattr(sub, b) is None):
                given, absent = (a, b) if getattr(sub, b) is None else (b, a)
                raise ConfigError(
                    f"gateway config: subsystem {sub.id}: {given} needs {absent} (give both or "
                    "neither)"
                )
        for net in sub.allowed_sources:
            try:
                ipaddress.ip_network(net)
            except ValueError as exc:
                raise ConfigError(f"gateway config: subsystem {sub.id}: {exc}") from exc
    _verify_limits(cfg.limits)


# limits that must be above zero; every other one may be 0 (see the Limits comments)
_POSITIVE_LIMITS = (
    "max_body_bytes",
    "memory_body_bytes",
    "header_timeout_s",
    "idle_timeout_s",
    "upstream_timeout_s",
    "connect_timeout_s",
    "replay_window_s",
    "replay_max_entries",
    "reload_s",
    "max_header_bytes",
)


def _verify_limits(lim: Limits) -> None:
    """Every numeric limit finite and not negative; those of _POSITIVE_LIMITS above zero."""
    for f in msgspec.structs.fields(Limits):
        value = getattr(lim, f.name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue  # a limit that is no number has its own check
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"gateway config: limits.{f.name} must be a finite number, not {value}"
            )
        if f.name in _POSITIVE_LIMITS and value <= 0:
            raise ConfigError(f"gateway config: limits.{f.name} must be positive, not {value}")
        if value < 0 and f.name != "monitor_keep_days":  # its range is checked below
            raise ConfigError(f"gateway config: limits.{f.name} must be 0 or positive, not {value}")
    if not 0 <= lim.monitor_keep_days <= 3650:
        raise ConfigError("gateway config: limits.monitor_keep_days must be in [0, 3650]")


_HOSTNAME = re.compile(r"(?!-)[\w-]{1,63}(?<!-)(\.(?!-)[\w-]{1,63}(?<!-))*\.?", re.ASCII)


def _overlap(a: str, b: str) -> bool:
    """Two listener hosts one port cannot serve twice: the same host, or a wildcard covering
    the other (``::`` is dual-stack on Linux; ``0.0.0.0`` covers IPv4 addresses)."""
    if a == b or "::" in (a, b):
        return True
    for wildcard, other in ((a, b), (b, a)):
        if wildcard == "0.0.0.0":
            try:
                return ipaddress.ip_address(other).version == 4
            except ValueError:
                return False
    return False


def _verify_listeners(cfg: GatewayConfig) -> None:
    """Each listener's port in range and host an address or a name; no two on one address."""
    named = [("peer", cfg.peer), ("internal", cfg.internal), ("admin", cfg.admin)]
    listeners = [(name, listen) for name, listen in named if listen is not None]
    for name, listen in listeners:
        if not 0 <= listen.port <= 65535:
            raise ConfigError(f"gateway config: {name}.port {listen.port} out of range (0-65535)")
        if not listen.host:
            raise ConfigError(
                f"gateway config: {name}.host is empty (0.0.0.0 or :: listens on every address)"
            )
        try:
            ipaddress.ip_address(listen.host)
        except ValueError:
            if len(listen.host) > 253 or not _HOSTNAME.fullmatch(listen.host):
                raise ConfigError(
                    f"gateway config: {name}.host {listen.host!r} is neither an IP address "
                    "nor a host name"
                ) from None
    for i, (name, listen) in enumerate(listeners):
        for other, prior in listeners[:i]:
            if listen.port and listen.port == prior.port and _overlap(listen.host, prior.host):
                raise ConfigError(
                    f"gateway config: {name} and {other} listen on the same address "
                    f"({listen.host} and {prior.host}, port {listen.port})"
                )


def _url_problem(url: str, *, service: bool = False) -> str | None:
    """Why ``url`` is not an absolute http(s) URL with a host (None when it is one)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port out of range or not a number
    except ValueError as exc:
        return f"{url!r} is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"{url!r} is not an http(s) URL"
    if not parts.hostname:
        return f"{url!r} names no host"
    if port == 0:
        return f"{url!r}: port 0 cannot be called"
    if service and (parts.query or parts.fragment or parts.username is not None):
        # calls go to scheme://host:port + base path + the signed sub-path, nothing else
        return f"{url!r}: a query, fragment or user:password in a base URL would be dropped"
    return None
