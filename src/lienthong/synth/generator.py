"""Compose a run: draw the citizens, build each agency's source, write everything.

Nothing is half-written: every file goes to a temporary name first and is renamed into place
only once all of them are complete (server targets load into staging tables and swap, see
``writers``). Output for the same seed and settings is byte-identical.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from random import Random
from typing import Any, Protocol

from lienthong.errors import BackendError, InputError
from lienthong.synth.config import SynthConfig
from lienthong.synth.dates import DateTexts
from lienthong.synth.geography import geography
from lienthong.synth.model import Source
from lienthong.synth.names import vocabulary
from lienthong.synth.people import Citizens, generate_citizens
from lienthong.synth.sources.base import BuildContext
from lienthong.synth.sources.education import build_education
from lienthong.synth.sources.health import build_health
from lienthong.synth.sources.population import build_population
from lienthong.synth.sources.tax import build_tax
from lienthong.synth.truth import write_truth
from lienthong.synth.writers.files import write_table_csv, write_table_xlsx
from lienthong.synth.writers.sqlite import write_sqlite

BUILDERS: tuple[Callable[[BuildContext], Source], ...] = (
    build_population,
    build_health,
    build_education,
    build_tax,
)
TRUTH_FORMAT = "lienthong-synth-truth/1"


class ServerTarget(Protocol):
    """A database server that receives the sources instead of SQLite files."""

    backend: str

    def write(self, sources: list[Source]) -> dict[str, dict[str, Any]]:
        """Load every source; return per-source ``{"location": ..., "tables": {t: name}}``."""
        ...


@dataclass(slots=True)
class World:
    """Everything one run generates, in memory."""

    ctx: BuildContext
    sources: list[Source]

    @property
    def citizens(self) -> Citizens:
        return self.ctx.citizens


def build(cfg: SynthConfig) -> World:
    """Generate the citizens and every source (pure: no I/O besides the packaged data)."""
    geo, vocab = geography(), vocabulary()
    citizens = generate_citizens(cfg, Random(f"lienthong-synth/{cfg.seed}/citizens"), geo, vocab)
    dates = DateTexts.between(
        dt.date(cfg.as_of.year - 102, 1, 1), dt.date(cfg.as_of.year + 2, 12, 31)
    )
    ctx = BuildContext(cfg, citizens, geo, vocab, dates)
    return World(ctx, [builder(ctx) for builder in BUILDERS])


def prepare_out(out: Path) -> Path:
    """Create ``out`` and prove it is writable, or raise InputError (exit 2)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".lienthong-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"output directory {out} is not writable: {reason}") from exc
    return out.resolve()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _stage_files(world: World, out: Path, server: ServerTarget | None) -> dict[Path, Path]:
    """Write every file under a temporary name; return {temporary: final}."""
    staged: dict[Path, Path] = {}
    as_of = world.ctx.cfg.as_of
    for source in world.sources:
        if server is None:
            tmp = out / f".{source.name}.sqlite.tmp"
            write_sqlite(source, tmp)
            staged[tmp] = out / f"{source.name}.sqlite"
        for export in source.exports:
            folder = out / source.name
            folder.mkdir(exist_ok=True)
            tmp = folder / f".{export.filename}.tmp"
            table = source.table(export.table)
            if export.format == "csv":
                write_table_csv(tmp, table)
            else:
                write_table_xlsx(tmp, table, as_of)
            staged[tmp] = folder / export.filename
    truth_tmp = out / ".truth.tmp"
    shutil.rmtree(truth_tmp, ignore_errors=True)
    ctx = world.ctx
    for path in write_truth(
        truth_tmp, ctx.citizens, world.sources, ctx.defects, ctx.geo, ctx.dates
    ):
        staged[path] = out / "truth" / path.name
    return staged


def _manifest(world: World, out: Path, staged: dict[Path, Path], where: dict[str, Any]) -> bytes:
    cfg = world.ctx.cfg
    doc = {
        "format": TRUTH_FORMAT,
        "seed": cfg.seed,
        "citizens": cfg.citizens,
        "as_of": cfg.as_of.isoformat(),
        "defect_rates": cfg.rates.as_dict(),
        "coverage": asdict(cfg.coverage),
        "sources": {
            s.name: {
                "title": s.title,
                **where[s.name],
                "tables": {
                    t.name: {"rows": len(t), "key": t.key, "columns": [c.name for c in t.columns]}
                    for t in s.tables
                },
                "exports": [f"{s.name}/{e.filename}" for e in s.exports],
            }
            for s in world.sources
        },
        "links": sum(s.rows for s in world.sources),
        "defects": dict(sorted(Counter(d.defect for d in world.ctx.defects).items())),
        "files": {
            str(final.relative_to(out)): _sha256(tmp)
            for tmp, final in sorted(staged.items(), key=lambda kv: str(kv[1]))
        },
    }
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode()


def _commit(staged: dict[Path, Path], out: Path, manifest: bytes) -> None:
    truth = out / "truth"
    tmp_truth = out / ".truth.tmp"
    (tmp_truth / "manifest.json").write_bytes(manifest)
    for tmp, final in staged.items():
        if final.parent != truth:
            os.replace(tmp, final)
    shutil.rmtree(truth, ignore_errors=True)
    os.replace(tmp_truth, truth)


def _cleanup(staged: dict[Path, Path], out: Path) -> None:
    for tmp in staged:
        tmp.unlink(missing_ok=True)
    for pattern in (".*.tmp", "*/.*.tmp"):  # files staged before a failure
        for leftover in out.glob(pattern):
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
    shutil.rmtree(out / ".truth.tmp", ignore_errors=True)


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: the run allocates millions of lists and tuples
    that live until the end (no cycles), and every full collection would walk all of them
    again (≈ 20% of the CPU time). Reference counting still frees everything."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def generate(cfg: SynthConfig, out: Path, server: ServerTarget | None = None) -> dict[str, Any]:
    """Generate and write one federation's sources and the ground truth; return a report."""
    with _without_cyclic_gc():
        return _generate(cfg, out, server)


def _generate(cfg: SynthConfig, out: Path, server: ServerTarget | None) -> dict[str, Any]:
    started = time.perf_counter()
    out = prepare_out(out)
    world = build(cfg)
    built = time.perf_counter()
    staged: dict[Path, Path] = {}
    try:
        staged = _stage_files(world, out, server)
        if server is not None:  # after the files: a failed file write leaves the server as is
            where = server.write(world.sources)
        else:
            where = {
                s.name: {"backend": "sqlite", "location": f"{s.name}.sqlite"} for s in world.sources
            }
        _commit(staged, out, _manifest(world, out, staged, where))
    except OSError as exc:
        _cleanup(staged, out)
        raise BackendError(f"cannot write into {out}: {exc.strerror or exc}") from exc
    except BaseException:
        _cleanup(staged, out)
        raise
    elapsed = time.perf_counter() - started
    return _report(world, out, where, elapsed, built - started)


def _report(
    world: World, out: Path, where: dict[str, Any], elapsed: float, build_s: float
) -> dict[str, Any]:
    n = world.ctx.cfg.citizens
    sources = {}
    for s in world.sources:
        location = where[s.name]["location"]
        path = str(out / location) if where[s.name]["backend"] == "sqlite" else location
        sources[s.name] = {
            "title": s.title,
            "backend": where[s.name]["backend"],
            "path": path,
            "rows": s.rows,
            "tables": {t.name: len(t) for t in s.tables},
            "exports": [str(out / s.name / e.filename) for e in s.exports],
        }
    return {
        "citizens": n,
        "seed": world.ctx.cfg.seed,
        "out": str(out),
        "truth": str(out / "truth"),
        "sources": sources,
        "links": sum(s.rows for s in world.sources),
        "defects": dict(sorted(Counter(d.defect for d in world.ctx.defects).items())),
        "build_s": round(build_s, 3),
        "elapsed_s": round(elapsed, 3),
        "citizens_per_s": round(n / elapsed) if elapsed > 0 else None,
    }
