"""End to end: `photodedup scan` + `photodedup embed --backend onnx` against a naive script.

Usage: PYTHONPATH=. .venv/bin/python benchmarks/end_to_end.py [--originals 8] [--megapixels 12]

The timing is ``photodedup bench --pipeline LIBRARY --precision fp32,int8`` (photodedup/bench/pipeline.py)
on a fresh sample library. The naive script (what one would write first): for each image, md5 of its bytes,
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
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from photodedup.backends.onnx import OnnxBackend  # noqa: E402
from photodedup.bench.pipeline import pipeline  # noqa: E402
from photodedup.catalog import Catalog  # noqa: E402
from photodedup.export_onnx import export_onnx  # noqa: E402
from photodedup.preprocess import PreprocessConfig, crop_from_source, decode_crop, encode_jpeg  # noqa: E402
from photodedup.sample_library import make_library  # noqa: E402


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

    result = pipeline(library, weights=args.weights, precisions=tuple(exports), work=work)
    print(result.render())
    print("\nembedding drift vs full decode + lossless crop (onnx fp32, min / median cosine):")
    for name, (low, median) in drift(work / "catalog-fp32.sqlite", exports["fp32"]).items():
        print(f"  {name}: {low:.5f} / {median:.5f}")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
