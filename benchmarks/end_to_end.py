"""End to end: `photodedup scan` + `photodedup embed --backend onnx` against a naive script.

Usage: PYTHONPATH=. .venv/bin/python benchmarks/end_to_end.py [--originals 8] [--megapixels 12]

The naive script (what one would write first): for each image, md5 of its bytes,
``imagehash.phash(Image.open(p))``, open_clip's preprocess on ``Image.open(p)``, and torch
``encode_image`` in batches of 32. Ours: the two CLI commands in fresh processes on a fresh catalog,
once with the fp32 export and once with the int8 export (exports made beforehand, not timed).
Images/s counts the images both paths embed (the library's decodable files).

It also measures how far the fast paths move embeddings from the reference (full decode, lossless
crop): the draft (reduced DCT scale) decode, the stored q95 JPEG crop, and both together (what
``scan`` stores and ``embed`` reads). Minimum and median cosine, onnx fp32.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from photodedup.backends.onnx import OnnxBackend  # noqa: E402
from photodedup.catalog import Catalog  # noqa: E402
from photodedup.export_onnx import export_onnx  # noqa: E402
from photodedup.preprocess import PreprocessConfig, crop_from_source, decode_crop, encode_jpeg  # noqa: E402
from photodedup.sample_library import make_library  # noqa: E402


def naive(paths: list[str], weights: str) -> tuple[int, float, dict[str, float]]:
    """The naive script, timed from start to finish (model creation included)."""
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
            stages["md5"] += t2 - t
            stages["phash"] += t3 - t2
            stages["preprocess"] += t4 - t3
            done += 1
        except Exception:  # noqa: BLE001 - the naive script skips what it cannot read
            continue
        if len(batch) == 32:
            flush()
    if batch:
        flush()
    return done, time.perf_counter() - start, stages


def cli(*args: str) -> tuple[dict, float]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "photodedup", *args, "--json", "--quiet"], cwd=ROOT,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    return json.loads(result.stdout), time.perf_counter() - start


def drift(catalog: Path, model_dir: Path) -> dict[str, tuple[float, float]]:
    backend = OnnxBackend(model_dir)
    cfg = PreprocessConfig()
    with Catalog(catalog) as cat:
        rows = cat.files()
        stored = cat.crops([r["id"] for r in rows], cfg.spec)
    paths = [r["path"] for r in rows if r["id"] in stored]
    reference = np.stack([crop_from_source(p, fast=False) for p in paths])
    variants = {
        "draft decode (lossless crop)": np.stack([crop_from_source(p, fast=True) for p in paths]),
        "q95 JPEG of the full-decode crop": np.stack([decode_crop(encode_jpeg(c)) for c in reference]),
        "stored crop (draft + q95 JPEG, what embed reads)": np.stack(
            [decode_crop(stored[r["id"]]) for r in rows if r["id"] in stored]),
    }
    ref = np.concatenate([backend.embed_batch(reference[i : i + 32]) for i in range(0, len(reference), 32)])
    out = {}
    for name, crops in variants.items():
        emb = np.concatenate([backend.embed_batch(crops[i : i + 32]) for i in range(0, len(crops), 32)])
        cos = np.sum(emb * ref, axis=1)
        out[name] = (float(cos.min()), float(np.median(cos)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=8)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--weights", default="random")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder [default: a new temp folder]")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="photodedup-e2e-"))
    library = work / "library"
    if not library.exists():
        make_library(library, originals=args.originals, megapixels=args.megapixels, seed=0)
    exports = {p: export_onnx(args.weights, precision=p) for p in ("fp32", "int8")}

    all_files = sorted(str(p) for p in library.rglob("*") if p.is_file() and p.name != "truth.json")
    os.sync()
    count, naive_seconds, naive_stages = naive(all_files, args.weights)
    naive_rate = count / naive_seconds
    print(f"library: {len(all_files)} files, {count} decodable; "
          f"{sum(os.path.getsize(p) for p in all_files) / len(all_files) / 1e6:.1f} MB a file on average")
    print(f"naive script: {naive_rate:.2f} images/s ({naive_seconds:.1f}s); stages: "
          + ", ".join(f"{k} {v:.1f}s" for k, v in naive_stages.items()))

    results = {}
    for precision, model_dir in exports.items():
        catalog = work / f"catalog-{precision}.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{catalog}{suffix}").unlink(missing_ok=True)
        scan_out, scan_wall = cli("scan", str(library), "--catalog", str(catalog))
        embed_out, embed_wall = cli("embed", "--backend", "onnx", "--model-dir", str(model_dir),
                                    "--catalog", str(catalog))
        total = scan_wall + embed_wall
        rate = embed_out["embedded"] / total
        results[precision] = rate
        t = embed_out["timings"]
        print(f"scan + embed onnx {precision}: {rate:.2f} images/s ({total:.1f}s wall, "
              f"{rate / naive_rate:.1f}x naive); "
              f"scan {scan_wall:.1f}s (in-stage {scan_out['seconds']:.1f}s), embed {embed_wall:.1f}s "
              f"(in-stage {embed_out['seconds']:.1f}s: infer {t['infer']:.1f}s, decode {t['decode']:.1f}s overlapped, "
              f"read {t['read']:.2f}s, write {t['write']:.2f}s; {embed_out['images_per_second']:.1f} images/s); "
              f"embedded {embed_out['embedded']}, errors {embed_out['errors']}")

    print("\nembedding drift vs full decode + lossless crop (onnx fp32, min / median cosine):")
    for name, (low, median) in drift(work / "catalog-fp32.sqlite", exports["fp32"]).items():
        print(f"  {name}: {low:.5f} / {median:.5f}")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
