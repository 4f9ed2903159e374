"""``lienthong demo``: the whole product working end to end on the embedded default.

Each capability contributes one step: a function ``run(ctx) -> dict`` in its own package
(``lienthong.<capability>.demo``). The steps run in order, share a :class:`DemoContext`
(work directory, seed, and objects earlier steps made, e.g. the federation), and their
results form one JSON object with one key per capability.
"""

from __future__ import annotations

import importlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lienthong.errors import InputError

# (key in the result, "module:function"); later capabilities append their step here.
STEPS: list[tuple[str, str]] = [
    ("synth", "lienthong.synth.demo:run"),
    ("trust", "lienthong.federation.demo:run"),
    ("exchange", "lienthong.exchange.demo:run"),
    ("audit", "lienthong.audit.demo:run"),
    ("sync", "lienthong.sync.demo:run"),
]


@dataclass
class DemoContext:
    workdir: Path
    seed: int = 1
    citizens: int = 2000
    say: Callable[[str], None] = lambda _msg: None
    state: dict[str, Any] = field(default_factory=dict)


MARKER = ".lienthong-demo"


def prepare_workdir(workdir: Path) -> None:
    """Give the demo an empty work directory, so every run tells the whole story from the start.

    A directory an earlier demo made (it holds :data:`MARKER`) is emptied; any other non-empty
    directory is refused rather than touched, because it may hold someone's files.
    """
    if workdir.exists() and not workdir.is_dir():
        raise InputError(f"--workdir {workdir} exists and is not a directory")
    if workdir.is_dir() and any(workdir.iterdir()):
        if not (workdir / MARKER).is_file():
            raise InputError(
                f"--workdir {workdir} is not empty and was not made by 'lienthong demo': "
                "choose a new or empty directory"
            )
        for child in workdir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("made by 'lienthong demo'; emptied on the next run\n", "utf-8")


def run_demo(ctx: DemoContext) -> dict[str, Any]:
    """Run every step; return ``{step: result, ..., "elapsed_s": total}``."""
    prepare_workdir(ctx.workdir)
    result: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        for key, target in STEPS:
            module_name, func_name = target.split(":")
            step = getattr(importlib.import_module(module_name), func_name)
            t0 = time.perf_counter()
            result[key] = step(ctx)
            result[key]["elapsed_s"] = round(time.perf_counter() - t0, 3)
    finally:  # steps leave things open for later steps (e.g. audit logs): close them last
        for close in reversed(ctx.state.get("closers", [])):
            close()
    result["elapsed_s"] = round(time.perf_counter() - started, 3)
    return result
