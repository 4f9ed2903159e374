"""Check that a server can listen on HOST:PORT before starting it (one line, exit 2 if not).

uvicorn reports a bad address or a port in use only as a log line and exits 3; serve commands
call :func:`check_listen` first so that the user gets one precise line instead, e.g.
``cannot listen on 256.1.1.1:8650: Name or service not known``.
"""

from __future__ import annotations

import socket

from lienthong.errors import InputError


def check_listen(host: str, port: int) -> None:
    """Raise InputError unless a TCP socket can be bound to ``host``:``port`` right now."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not host:
        raise InputError(f"cannot listen on {where}: the host is empty")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, OverflowError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise InputError(f"cannot listen on {where}: {reason}") from exc
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            # as uvicorn does: a port in TIME_WAIT is usable, one held by a listener is not
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        raise InputError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
