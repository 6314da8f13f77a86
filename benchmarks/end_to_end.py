"""End to end: `photodedup scan` + `photodedup embed --backend onnx` against the limit (and a naive script).

    PYTHONPATH=. .venv/bin/python benchmarks/end_to_end.py --originals 8 --megapixels 12 --rounds 3 \
        [--baseline REF] [--naive] [--drift]

On a fresh sample library, each round measures:

- the **limit**: the floor (read + MD5 + a 1/8 DCT decode of every file, one process per core, as
  ``scan_speed.py`` measures it), then the bare model (``OnnxBackend.embed_batch`` on batches of 32 crops,
  model loaded beforehand), one after the other: ``1 / (1/floor + 1/model)`` images/s, per precision;
- ours: ``photodedup scan`` then ``photodedup embed --backend onnx --model-dir EXPORT`` as fresh processes on a
  fresh catalog (what a user runs; process start and model load included), once per precision, wall time;
  with ``--baseline REF`` the same for git revision REF (``git archive``), alternated with ours.

Images/s counts the images embedded. ``--naive``: also the naive script of ``photodedup bench --pipeline``
(md5, ``imagehash.phash(Image.open(p))``, open_clip's preprocess, torch ``encode_image`` x32), once.
``--drift``: how far the fast paths move embeddings from the reference (full decode, lossless crop): the
draft (reduced DCT scale) decode, the stored q95 JPEG crop, and both (what ``scan`` stores and ``embed``
reads); minimum and median cosine, onnx fp32. Exports are made beforehand and not timed, and each tree loads
each export once before the rounds (its onnxruntime session cache, built untimed). ``--cpu``: also the CPU
seconds of the limit (the floor's pool and the bare model, in this process) and of each command (a cpuacct
cgroup per command: every process it starts), and the limit's share of ours by CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scan_speed import compile_tree, export_tree, floor_one  # noqa: E402

from photodedup.backends.onnx import OnnxBackend  # noqa: E402
from photodedup.catalog import Catalog  # noqa: E402
from photodedup.export_onnx import export_onnx  # noqa: E402
from photodedup.preprocess import PreprocessConfig, crop_from_source, decode_crop, encode_jpeg  # noqa: E402
from photodedup.sample_library import make_library  # noqa: E402


def _floor_or_none(path: str):
    try:
        return floor_one(path)
    except Exception:  # noqa: BLE001 - a broken file costs its read and md5, as in a scan
        return None


def floor_rate(files: list[str]) -> tuple[float, int]:
    """(images/s, images decoded) of read + MD5 + 1/8 DCT decode on every core, the pool's start included."""
    start = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        decoded = sum(size is not None for size in pool.map(_floor_or_none, files, chunksize=4))
    return decoded / (time.perf_counter() - start), decoded


def _cpu() -> float:
    """User + system seconds of this process and of its children reaped so far (the floor's pool)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


class _CpuGroup:
    """A cpuacct cgroup (v1, root) for one command: the CPU seconds of every process it starts (a forkserver
    and its workers, which outlive the command by a moment, included); ``None`` where there is none."""

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self, name: str) -> None:
        self.path = self.ROOT / f"photodedup-e2e-{os.getpid()}-{name}"
        self.path.mkdir()

    @classmethod
    def available(cls) -> bool:
        try:
            probe = cls("probe")
        except OSError:
            return False
        probe.path.rmdir()
        return True

    def enter(self) -> None:  # in the child, before exec
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def close(self, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while (self.path / "cgroup.procs").read_text().split() and time.monotonic() < deadline:
            time.sleep(0.02)  # a forkserver left behind exits once the command's end reaches it
        seconds = int((self.path / "cpuacct.usage").read_text()) / 1e9
        self.path.rmdir()
        return seconds


def model_rate(backend: OnnxBackend, crops: np.ndarray, images: int) -> float:
    """Images/s of the loaded model alone on ``images`` crops in batches of 32 (the embed default)."""
    start = time.perf_counter()
    for first in range(0, images, 32):
        backend.embed_batch(crops[np.arange(first, min(first + 32, images)) % len(crops)])
    return images / (time.perf_counter() - start)


def ours(tree: Path, library: Path, model_dir: Path, catalog: Path, cpu: bool = False) -> tuple[float, int, dict]:
    """(images/s, images embedded, stage seconds) of ``scan`` then ``embed`` by the code in ``tree``; with
    ``cpu``, also each command's CPU seconds (its cgroup's: every process it started)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    used: dict[str, float] = {}

    def cli(*args: str) -> tuple[dict, float]:
        group = _CpuGroup(args[0]) if cpu else None
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "photodedup", *args, "--json", "--quiet"], cwd=tree,
                                env=env, capture_output=True, text=True, preexec_fn=group and group.enter)
        wall = time.perf_counter() - started
        if group:
            used[f"{args[0]} CPU"] = group.close()
        if result.returncode:
            raise SystemExit(f"photodedup {args[0]} failed ({tree}): {result.stderr[-1500:]}")
        return json.loads(result.stdout), wall

    _, scan_wall = cli("scan", str(library), "--catalog", str(catalog))
    embedded, embed_wall = cli("embed", "--backend", "onnx", "--model-dir", str(model_dir), "--catalog", str(catalog))
    stages = {"scan": scan_wall, "embed": embed_wall, "infer": embedded["timings"]["infer"],
              "start + load": embed_wall - embedded["seconds"], **used}
    return embedded["embedded"] / (scan_wall + embed_wall), embedded["embedded"], stages


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
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", help="a git revision to measure beside this tree")
    parser.add_argument("--naive", action="store_true", help="also time the naive script (needs open_clip)")
    parser.add_argument("--drift", action="store_true", help="also measure the embedding drift of the fast paths")
    parser.add_argument("--cpu", action="store_true", help="also CPU seconds: the limit's (floor + bare model, "
                        "this process) and each command's (a cpuacct cgroup each; Linux, root), and their ratio")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder [default: a new temp folder]")
    args = parser.parse_args()
    if args.cpu and not _CpuGroup.available():
        raise SystemExit("--cpu needs a cpuacct cgroup (v1) this process can create (root, Linux)")
    work = args.work or Path(tempfile.mkdtemp(prefix="photodedup-e2e-"))
    library = work / "library"
    if not library.exists():
        make_library(library, originals=args.originals, megapixels=args.megapixels, seed=0)
    files = sorted(str(p) for p in library.rglob("*") if p.is_file() and p.name != "truth.json")
    precisions = args.precisions.split(",")
    exports = {p: export_onnx(args.weights, precision=p) for p in precisions}
    backends = {p: OnnxBackend(d) for p, d in exports.items()}
    trees = {"ours": ROOT}
    if args.baseline:
        trees[args.baseline] = export_tree(args.baseline, work / "baseline")
    for tree in trees.values():
        compile_tree(tree)
        for model_dir in exports.values():  # each tree's onnx session cache (its form may differ), built untimed
            subprocess.run([sys.executable, "-c", "import sys; from photodedup.backends.onnx import OnnxBackend; "
                            "OnnxBackend(sys.argv[1])", str(model_dir)], cwd=tree, check=True, capture_output=True,
                           env=dict(os.environ, PYTHONPATH=str(tree)))
    crops = np.stack([decode_crop(encode_jpeg(crop_from_source(p))) for p in files
                      if p.endswith(".jpg") and "Broken" not in p][:64])
    for backend in backends.values():
        backend.embed_batch(crops[:32])  # warm

    results: dict[tuple[str, str], list[float]] = {}
    for round_ in range(1, args.rounds + 1):
        before = _cpu()
        floor, decoded = floor_rate(files)
        floor_cpu = _cpu() - before
        line = [f"floor {floor:.1f}" + (f" ({floor_cpu:.2f} s CPU)" if args.cpu else "")]
        for precision, backend in backends.items():
            before = _cpu()
            model = model_rate(backend, crops, decoded)
            limit_cpu = floor_cpu + _cpu() - before
            limit = 1 / (1 / floor + 1 / model)
            results.setdefault(("limit", precision), []).append(limit)
            line.append(f"model {precision} {model:.1f}, limit {limit:.1f}")
            order = list(trees) if round_ % 2 else list(reversed(trees))
            for name in order:
                catalog = work / f"catalog-{name.replace('/', '-')}-{precision}-{round_}.sqlite"
                for stale in work.glob(catalog.name + "*"):  # a --work folder used before: scan afresh
                    stale.unlink()
                rate, embedded, stages = ours(trees[name], library, exports[precision], catalog, args.cpu)
                results.setdefault((name, precision), []).append(rate)
                results.setdefault((f"{name} of limit", precision), []).append(rate / limit)
                if args.cpu:
                    spent = stages["scan CPU"] + stages["embed CPU"]
                    results.setdefault((f"{name} of limit by CPU", precision), []).append(limit_cpu / spent)
                    line.append(f"{name} CPU {spent:.2f} s (limit's {limit_cpu:.2f} s: {limit_cpu / spent:.0%})")
                line.append(f"{name} {rate:.1f} ({rate / limit:.0%}; "
                            + ", ".join(f"{k} {v:.1f}s" for k, v in stages.items()) + ")")
        print(f"round {round_} images/s ({len(files)} files, {decoded} decodable): " + "; ".join(line), flush=True)
    print()
    for (name, precision), values in results.items():
        if "of limit" in name:
            print(f"{name:<22} {precision}: median {statistics.median(values):.0%}  rounds "
                  f"{[f'{v:.0%}' for v in values]}")
        else:
            print(f"{name:<22} {precision}: median {statistics.median(values):.1f} images/s  rounds "
                  f"{[round(v, 1) for v in values]}")
    if args.naive:
        from photodedup.bench.pipeline import naive_script

        row = naive_script(files)
        print(f"naive script: {row.images_per_second:.2f} images/s ({row.seconds:.1f}s: "
              + ", ".join(f"{k} {v:.1f}s" for k, v in row.stages.items()) + ")")
    if args.drift and "fp32" in exports:
        print("\nembedding drift vs full decode + lossless crop (onnx fp32, min / median cosine):")
        last = work / f"catalog-ours-fp32-{args.rounds}.sqlite"
        for name, (low, median) in drift(last, exports["fp32"]).items():
            print(f"  {name}: {low:.5f} / {median:.5f}")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
