"""``photodedup run``: the whole job in one call: scan, embed, group, write the HTML report.

Embedding uses the backend named, else the fastest local one: onnx (int8 unless ``precision`` says
otherwise) with an existing export for the weights, or a fresh export (which needs torch). When no
export can be had (torch missing, pretrained weights not downloadable offline), the semantic stage is
skipped with a warning and grouping goes on with exact and perceptual evidence.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from photodedup import config
from photodedup.errors import ExportError, ModelNotFoundError
from photodedup.executor import open_executor
from photodedup.group import group
from photodedup.grouping import GroupResult, GroupSettings
from photodedup.progress import ProgressCallback, no_progress
from photodedup.text import printable

log = logging.getLogger(__name__)

ProgressFactory = Callable[[str], AbstractContextManager[ProgressCallback]]


@dataclass
class RunResult:
    scan: dict
    embed: dict | None
    grouping: GroupResult
    report: Path
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"scan": self.scan, "embed": self.embed, "group": self.grouping.as_dict(),
                "report": str(self.report), "seconds": round(self.seconds, 2), "warnings": self.warnings}

    def render(self) -> str:
        embedded = (f"embedded {self.embed['embedded']} ({self.embed['model']}, {self.embed['backend']})"
                    if self.embed else "embedding skipped")
        g = self.grouping
        return (f"Scanned {self.scan['files']} files ({self.scan['errors']} unreadable), {embedded}, "
                f"{len(g.groups)} duplicate groups ({sum(len(x.members) - 1 for x in g.groups)} candidates) "
                f"in {self.seconds:.1f}s.\nReport: {printable(self.report)}")


def run(roots: Sequence[Path | str], *, catalog: Path | str | None = None, backend: str | None = None,
        weights: str | None = None, model_dir: Path | None = None, precision: str | None = None,
        report: Path | str | None = None, params: GroupSettings | None = None, embed: bool = True,
        progress: ProgressFactory | None = None, stage: Callable[[str], None] | None = None,
        engine: str = "local", ray_address: str | None = None, store_crops: bool = True) -> RunResult:
    """Scan ``roots``, embed, group the files under them and write the report.

    ``stage(message)`` is told where the run is; ``progress(label)`` supplies a progress callback.
    ``engine``/``ray_address``: where scan and embed do their per-file work (one executor for both).
    ``store_crops=False`` embeds each scanned batch right away instead of storing model crops.
    """
    from photodedup.backends.base import default_precision
    from photodedup.catalog import Catalog
    from photodedup.embed import embed as run_embed
    from photodedup.report import write_report
    from photodedup.scan import scan

    progress = progress or (lambda label: nullcontext(no_progress))
    stage = stage or (lambda message: None)
    params = params or GroupSettings()
    precision = precision or default_precision()
    catalog = Path(catalog) if catalog else config.default_catalog()
    weights = weights or config.DEFAULT_WEIGHTS
    started = time.perf_counter()
    warnings: list[str] = []

    with ExitStack() as stack:
        executor = stack.enter_context(open_executor(engine, address=ray_address))
        runner, why = None, "2/4 embed skipped (semantic evidence off)"
        if embed and "semantic" in params.evidence:
            runner, why = open_embedder(backend, weights=weights, model_dir=model_dir, precision=precision,
                                        engine=engine, ray_address=ray_address)
            if runner is None:
                warnings.append(why)
                log.warning(why)
                why = f"2/4 embed skipped: {why}"
            else:
                stack.callback(runner.close)
        streaming = runner if not store_crops else None

        stage(f"1/4 scan {', '.join(str(r) for r in roots)} into {catalog}"
              + (f", embedding with {runner.name} as it goes" if streaming else ""))
        with progress("scan") as callback:
            scanned = scan(list(roots), catalog=catalog, progress=callback, engine=executor,
                           embedder=streaming).as_dict()

        embedded = None
        if runner is None:
            stage(why)
        else:
            stage(f"2/4 embed with {runner.name} ({runner.embedding_id})")
            with progress("embed") as callback:
                embedded = run_embed(runner, catalog=catalog, progress=callback, engine=executor).as_dict()
            usable = params.allow_random or not runner.is_random
            if usable and not params.model:  # group with the embeddings this run made
                params = replace(params, model=runner.embedding_id)

    stage("3/4 group")
    grouping = group(catalog, roots=roots, params=params)
    warnings += grouping.warnings

    out = Path(report) if report else catalog.parent / "photodedup-report.html"
    stage(f"4/4 report {out}")
    with Catalog(catalog, create=False) as cat:
        write_report(grouping.groups, out, catalog=cat, warnings=warnings,
                     notes=[f"Roots: {', '.join(str(r) for r in roots)}; catalog: {catalog}"])
    return RunResult(scanned, embedded, grouping, out.resolve(), time.perf_counter() - started, warnings)


def open_embedder(backend: str | None, *, weights: str, model_dir: Path | None, precision: str = "int8",
                  engine: str = "local", ray_address: str | None = None):
    """The backend to embed with, or ``(None, why)`` when only the default choice failed.

    A backend named explicitly must work (its errors propagate); the default, onnx, is used with an
    existing export or a fresh one, and is skipped with a reason when neither can be had. On a CPU the
    int8 export is the fastest (about 3x fp32, cosine to fp32 >= 0.9997 measured): the default.
    """
    from photodedup.embed import open_backend

    if backend:
        # the default precision (int8) names an ONNX export; torch-local picks its own
        return open_backend(backend, model_dir=model_dir, weights=weights,
                            precision=precision if backend == "onnx" else None, engine=engine,
                            ray_address=ray_address), ""
    from photodedup.exports import resolve_model_dir

    directory = resolve_model_dir(model_dir, weights=weights, precision=precision)
    if not (directory / "model.onnx").is_file():
        try:
            from photodedup.export_onnx import export_onnx

            directory = export_onnx(weights, precision=precision, out=directory)
        except ImportError as error:
            return None, (f"semantic evidence skipped: no ONNX export in {directory} and exporting one needs "
                          f"torch ({error.name or error} is not installed)")
        except (ModelNotFoundError, ExportError) as error:
            return None, f"semantic evidence skipped: cannot export {weights}: {error}"
    return open_backend("onnx", model_dir=directory, weights=weights, precision=precision, engine=engine,
                        ray_address=ray_address), ""

