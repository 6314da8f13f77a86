"""The whole pipeline on a library against the naive script: ``photodedup bench --pipeline LIBRARY``.

The naive script is what one writes first: for each file, md5 of its bytes,
``imagehash.phash(Image.open(p))``, open_clip's preprocess on ``Image.open(p)``, and torch
``encode_image`` in batches of 32, in one process. Ours is ``photodedup scan`` then ``photodedup embed
--backend onnx`` as fresh processes on a fresh catalog (what a user runs; process start and model
load included), once per ONNX precision. Exports are made beforehand and not timed. Images/s counts
the images each path embedded. Needs torch and open_clip (the naive script uses them).

With ``device`` (``bench --pipeline LIB --device cuda``) two more rows, in this process: JPEG bytes to
embeddings with torch-local on that device, the files decoded there by torchvision (nvJPEG on CUDA,
``gpu.JpegCropper``), and the same with PIL decoding in worker processes, the CPU decode rate beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photodedup.errors import BadInputError, PhotodedupError


@dataclass
class PipelineRow:
    path: str                      # "naive script" or "scan + embed onnx <precision>"
    images: int
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


@dataclass
class PipelineResult:
    library: str
    files: int
    rows: list[PipelineRow]

    def as_dict(self) -> dict:
        naive = self.rows[0].images_per_second
        return {"library": self.library, "files": self.files, "rows": [
            {"path": r.path, "images": r.images, "seconds": round(r.seconds, 2),
             "images_per_second": round(r.images_per_second, 2),
             "x_naive": round(r.images_per_second / naive, 2) if naive else None,
             "stages": {k: round(v, 2) for k, v in r.stages.items()}} for r in self.rows]}

    def render(self) -> str:
        naive = self.rows[0].images_per_second
        lines = [f"{self.library}: {self.files} files",
                 f"{'path':<28} {'images/s':>9} {'x naive':>8}  where the time goes"]
        for r in self.rows:
            stages = ", ".join(f"{k} {v:.1f}s" for k, v in r.stages.items())
            lines.append(f"{r.path:<28} {r.images_per_second:>9.2f} {r.images_per_second / naive:>7.1f}x  "
                         f"{r.seconds:.1f}s: {stages}")
        return "\n".join(lines)


def pipeline(library: Path | str, *, weights: str = "random", precisions: Sequence[str] = ("fp32", "int8"),
             work: Path | None = None, device: str | None = None) -> PipelineResult:
    """Time the naive script, then scan + embed per precision, on the same library."""
    from photodedup.export_onnx import export_onnx

    library = Path(library)
    if not library.is_dir():
        raise BadInputError(f"no library folder at {library}", hint="make one: photodedup sample-library DIR")
    files = sorted(str(p) for p in library.rglob("*") if p.is_file() and p.name != "truth.json")
    exports = {p: export_onnx(weights, precision=p) for p in precisions}
    if work is None:  # the catalogs are scratch: gone when the timing is done
        with tempfile.TemporaryDirectory(prefix="photodedup-pipeline-") as scratch:
            return _pipeline(library, files, exports, Path(scratch), weights, device)
    return _pipeline(library, files, exports, Path(work), weights, device)


def _pipeline(library: Path, files: list[str], exports: dict, work: Path, weights: str,
              device: str | None) -> PipelineResult:
    rows = [naive_script(files)]
    for precision, model_dir in exports.items():
        catalog = work / f"catalog-{precision}.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{catalog}{suffix}").unlink(missing_ok=True)
        scanned, scan_wall = _cli("scan", str(library), "--catalog", str(catalog))
        embedded, embed_wall = _cli("embed", "--backend", "onnx", "--model-dir", str(model_dir),
                                    "--catalog", str(catalog))
        timings = embedded.get("timings", {})
        rows.append(PipelineRow(f"scan + embed onnx {precision}", embedded["embedded"], scan_wall + embed_wall, {
            "scan": scan_wall, "embed": embed_wall, "infer": timings.get("infer", 0.0),
            "decode (overlapped)": timings.get("decode", 0.0), "start + load": embed_wall - embedded["seconds"]}))
    if device:
        from photodedup.backends import get_backend

        backend = get_backend("torch-local", weights=weights, device=device, warm_up=True)
        try:
            rows += [jpeg_to_embeddings(files, backend, decoder) for decoder in ("torchvision", "pil")]
        finally:
            backend.close()
    return PipelineResult(str(library), len(files), rows)


def jpeg_to_embeddings(paths: Sequence[str], backend, decoder: str = "torchvision", *, batch_size: int = 64,
                       workers: int | None = None) -> PipelineRow:
    """Files to embeddings with ``backend`` (model loaded beforehand, not timed): read, decode and crop
    (``torchvision`` on the backend's device, or ``pil`` in ``workers`` processes), embed, per batch."""
    from photodedup.executor import worker_pool
    from photodedup.gpu import JpegCropper, read_files
    from photodedup.vectors import decode_original

    stages = {"read": 0.0, "decode": 0.0, "infer": 0.0}
    cropper = JpegCropper(backend.preprocess, device=backend.device) if decoder == "torchvision" else None
    pool = None if cropper else worker_pool(workers or os.cpu_count() or 1)
    done = 0
    start = time.perf_counter()
    try:
        for i in range(0, len(paths), batch_size):
            part = list(paths[i : i + batch_size])
            t = time.perf_counter()
            if cropper:
                blobs, _ = read_files(part)
                stages["read"] += time.perf_counter() - t
                t = time.perf_counter()
                _, crops, _ = cropper.crops(blobs)
            else:
                answers = list(pool.map(decode_original, [(path, backend.preprocess) for path in part]))
                crops = np.stack([crop for crop, _ in answers if crop is not None]) if answers else None
            stages["decode"] += time.perf_counter() - t
            if crops is not None and len(crops):
                t = time.perf_counter()
                backend.embed_batch(crops)
                stages["infer"] += time.perf_counter() - t
                done += len(crops)
    finally:
        if pool:
            pool.shutdown()
    where = f"{decoder} decode" if cropper is None else f"torchvision decode on {backend.device}"
    return PipelineRow(f"jpeg -> torch-local {backend.device} ({where})", done, time.perf_counter() - start, stages)


def naive_script(paths: Sequence[str]) -> PipelineRow:
    """The naive script, timed from start to finish (model creation included); unreadable files skipped."""
    import imagehash
    import open_clip
    import torch
    from PIL import Image

    start = time.perf_counter()
    stages = {"load model": 0.0, "md5": 0.0, "phash": 0.0, "preprocess": 0.0, "infer": 0.0}
    t = time.perf_counter()
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    model.eval()
    stages["load model"] += time.perf_counter() - t
    done, batch = 0, []

    def flush() -> None:
        t = time.perf_counter()
        with torch.no_grad():
            model.encode_image(torch.stack(batch))
        stages["infer"] += time.perf_counter() - t
        batch.clear()

    for path in paths:
        try:
            t = time.perf_counter()
            with open(path, "rb") as handle:
                hashlib.md5(handle.read()).hexdigest()
            t2 = time.perf_counter()
            imagehash.phash(Image.open(path))
            t3 = time.perf_counter()
            batch.append(preprocess(Image.open(path)))
            t4 = time.perf_counter()
        except Exception:  # noqa: BLE001 - the naive script skips what it cannot read
            continue
        stages["md5"] += t2 - t
        stages["phash"] += t3 - t2
        stages["preprocess"] += t4 - t3
        done += 1
        if len(batch) == 32:
            flush()
    if batch:
        flush()
    return PipelineRow("naive script", done, time.perf_counter() - start, stages)


def _cli(*args: str) -> tuple[dict, float]:
    """Run one photodedup command as a fresh process; its JSON result and wall seconds."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "photodedup", *args, "--json", "--quiet"],
                            capture_output=True, text=True, env=os.environ)
    if result.returncode != 0:
        raise PhotodedupError(f"photodedup {args[0]} failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout), time.perf_counter() - start
