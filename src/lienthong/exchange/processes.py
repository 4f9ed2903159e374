"""Start and stop a testbed's real processes: gateways, the sample service, link proxies.

Every process listens on 127.0.0.1 only and is stopped by its own pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lienthong.errors import BackendError
from lienthong.exchange.testbed import Testbed


def wait_port(
    port: int,
    timeout: float = 20.0,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Wait until something accepts connections on ``port`` (fail early if ``proc`` dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = log.read_text(errors="replace")[-500:] if log and log.exists() else ""
            raise BackendError(f"process exited with {proc.returncode}: {err.strip()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise BackendError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Running:
    """The processes of one testbed; use as a context manager."""

    testbed: Testbed
    log_level: str = "WARNING"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()

    def _spawn(self, name: str, args: list[str], port: int, log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log.open("ab") as out:
            proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=out, env=env)
        self.procs[name] = proc
        wait_port(port, proc=proc, log=log)

    def start_service(self, record: Path | None = None) -> None:
        args = ["-m", "lienthong.exchange.sample_service", "--port", str(self.testbed.service_port)]
        if record is not None:
            args += ["--record", str(record)]
        self._spawn(
            "service",
            args,
            self.testbed.service_port,
            self.testbed.workdir / "logs" / "service.log",
        )

    def start_gateway(self, node: str) -> None:
        args = [
            "-m",
            "lienthong.exchange",
            "serve",
            "--config",
            str(self.testbed.configs[node]),
            "--log-level",
            self.log_level,
        ]
        port = self.testbed.internal_ports.get(node, self.testbed.peer_ports[node])
        self._spawn(node, args, port, self.testbed.workdir / "logs" / f"{node}.log")
        wait_port(self.testbed.peer_ports[node], proc=self.procs[node])

    def start_trust_service(self, port: int) -> None:
        """Start the CA's trust service (OCSP, CRL, TSA) of this testbed on ``port``."""
        code = (
            "from lienthong.trust.service import serve; "
            f"serve({str(self.testbed.ca.directory)!r}, port={port})"
        )
        self._spawn("status", ["-c", code], port, self.testbed.workdir / "logs" / "status.log")

    def start_link(self, node: str) -> None:
        """Start the TCP relay carrying ``node``'s first physical link."""
        listen, target = self.testbed.proxies[node]
        args = ["-m", "lienthong.exchange.linkproxy", str(listen), str(target)]
        self._spawn(
            f"link:{node}", args, listen, self.testbed.workdir / "logs" / f"link-{node}.log"
        )

    def start_all(self, record: Path | None = None) -> None:
        self.start_service(record)
        for node in self.testbed.proxies:
            self.start_link(node)
        for spec in self.testbed.spec.nodes:
            self.start_gateway(spec.name)

    def stop(self, name: str, *, kill: bool = False) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
