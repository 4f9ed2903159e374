"""SoftHSM2 helpers for tests, benchmarks and local trials (not for production tokens).

:func:`init_softhsm_token` creates a private token directory with its own ``SOFTHSM2_CONF``
and initialises one token with ``softhsm2-util --init-token --free``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lienthong.errors import BackendError
from lienthong.trust.hsm import reload_module

SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


def softhsm_module() -> str | None:
    """Path of the SoftHSM2 PKCS#11 module, or None when SoftHSM2 is not installed."""
    if shutil.which("softhsm2-util") is None:
        return None
    return next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)


@dataclass(frozen=True)
class SoftHsmToken:
    module: str
    label: str
    conf: Path
    pin_env: str

    def spec(self) -> dict[str, object]:
        """A key-store spec for :func:`~lienthong.trust.keystore.open_keystore`."""
        return {
            "type": "pkcs11",
            "module": self.module,
            "token": self.label,
            "pin": {"$env": self.pin_env},
        }


def init_softhsm_token(
    directory: Path, *, label: str, pin: str, so_pin: str, pin_env: str = "LIENTHONG_HSM_PIN"
) -> SoftHsmToken:
    """Create a token under ``directory``; sets ``SOFTHSM2_CONF`` and ``pin_env`` in this
    process and re-initialises SoftHSM2 if it was already loaded (it reads its configuration
    at initialisation), which closes sessions on tokens created earlier."""
    module = softhsm_module()
    if module is None:
        raise BackendError("SoftHSM2 is not installed (Debian package softhsm2)")
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ[pin_env] = pin
    result = subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            so_pin,
            "--pin",
            pin,
        ],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ),
    )
    if result.returncode != 0:
        raise BackendError(f"softhsm2-util --init-token failed: {result.stderr.strip()}")
    reload_module(module)  # if this process already loaded SoftHSM2 with another config
    return SoftHsmToken(module, label, conf, pin_env)
