"""``lienthong demo``: the whole product working end to end on the embedded default.

Each capability contributes one step: a function ``run(ctx) -> dict`` in its own package
(``lienthong.<capability>.demo``). The steps run in order, share a :class:`DemoContext`
(work directory, seed, and objects earlier steps made, e.g. the federation), and their
results form one JSON object with one key per capability.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def run_demo(ctx: DemoContext) -> dict[str, Any]:
    """Run every step; return ``{step: result, ..., "elapsed_s": total}``."""
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    started = time.perf_counter()
    for key, target in STEPS:
        module_name, func_name = target.split(":")
        step = getattr(importlib.import_module(module_name), func_name)
        t0 = time.perf_counter()
        result[key] = step(ctx)
        result[key]["elapsed_s"] = round(time.perf_counter() - t0, 3)
    result["elapsed_s"] = round(time.perf_counter() - started, 3)
    return result
