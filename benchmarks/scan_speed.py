"""Scan throughput against the floor and a naive script, side by side in one run, and re-scan speed.

    PYTHONPATH=. python benchmarks/scan_speed.py --originals 30 --megapixels 12 --repeats 5 \
        [--baseline REF] [--library DIR] [--rescan-files 10000]

Each round runs, one after the other on the same files (12 MP JPEGs of a generated sample library):

- the **floor**: what no scan can beat on this machine, read + MD5 + one decode at 1/8 DCT scale of every
  file, in a fresh pool of one process per core (pool start included, as the scan's is);
- the **naive script**, what most people write first: for each file, md5 of the bytes and
  ``imagehash.phash(Image.open(path))``, in one process;
- ``photodedup.scan.scan`` of this tree into a fresh catalog, in a fresh process (its own timing, pool
  start included), and with ``--baseline REF`` the same of git revision REF (``git archive`` into a
  temporary folder), the two alternated so both see the same load.

Prints medians over ``--repeats`` rounds, the per-round ratios (scan/floor, scan/naive, ours/baseline) and
their medians: on a shared machine only ratios measured within one round mean much.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import imagehash  # noqa: E402
from PIL import Image  # noqa: E402

from photodedup.sample_library import make_library  # noqa: E402

_SCAN = ("import json, sys; from photodedup.scan import scan\n"
         "if __name__ == '__main__':\n"
         "    s = scan([sys.argv[1]], catalog=sys.argv[2])\n"
         "    print(json.dumps({'new': s.new, 'seconds': s.seconds}))\n")


def naive(paths: list[Path]) -> int:
    done = 0
    for path in paths:
        hashlib.md5(path.read_bytes()).hexdigest()
        try:
            imagehash.phash(Image.open(path))
            done += 1
        except Exception:  # noqa: BLE001 - the naive script skips what it cannot read
            pass
    return done


def floor_one(path: str) -> tuple[int, int]:
    """Read, MD5 and decode one file at 1/8 DCT scale: the least per-file work of a scan."""
    with open(path, "rb") as handle:
        data = handle.read()
    hashlib.md5(data).hexdigest()
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (image.width // 8, image.height // 8))
        image.load()
        return image.size


def floor(paths: list[Path]) -> float:
    """Images/s of ``floor_one`` over ``paths`` on every core, the pool's start included."""
    start = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(floor_one, [str(p) for p in paths], chunksize=4))
    return len(paths) / (time.perf_counter() - start)


def export_tree(ref: str, into: Path) -> Path:
    """The files of git revision ``ref`` of this repository, in ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def scan_rate(tree: Path, folder: Path, catalog: Path, expected: int) -> float:
    """Images/s of one ``scan`` of ``folder`` by the code in ``tree``, in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    result = subprocess.run([sys.executable, "-c", _SCAN, str(folder), str(catalog)], cwd=tree, env=env,
                            capture_output=True, text=True, check=True)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["new"] == expected, summary
    return summary["new"] / summary["seconds"]


def stages(paths: list[Path], repeats: int) -> dict[str, float]:
    """Median milliseconds per file of each step of a scan's per-file work, each timed alone in this process
    (the same calls ``scan._inspect_job`` makes, in its order)."""
    from collections import defaultdict

    import numpy as np

    from photodedup import hashing, media, preprocess, scan

    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        for path in paths:
            marks = [("", time.perf_counter())]
            mark = lambda name, marks=marks: marks.append((name, time.perf_counter()))  # noqa: E731

            data = path.read_bytes()
            mark("read")
            hashlib.md5(data).hexdigest()
            mark("md5")
            _ = media.SAMSUNG_MARKER in data
            mark("marker search (old)")
            opened = preprocess.open_checked(io.BytesIO(data))
            row = {"path": str(path), "width": opened.width, "height": opened.height}
            scan._read_exif(row, opened.getexif(), xmp=opened.info.get("xmp"),
                            iptc=lambda opened=opened: scan._iptc(opened))
            mark("open + EXIF")
            image = preprocess.decode_oriented(opened, fast=True, shortest=preprocess.DEFAULT_PREPROCESS.size)
            mark("decode (1/8 DCT)")
            pixels = np.asarray(image)
            box = hashing.trim_box(pixels)
            mark("trim_box")
            hashing.is_flat(pixels)
            mark("is_flat")
            hashing.is_grayscale_rgb(pixels[box[1]:box[3], box[0]:box[2]])
            mark("is_grayscale")
            gray = image.crop(box).convert("L")
            hashing.dihedral_phashes(gray)
            mark("pHashes")
            imagehash.dhash(gray)
            mark("dHash")
            preprocess.encode_jpeg(preprocess.center_crop_array(image))
            mark("model crop + JPEG")
            scan._thumbnail(image)
            mark("thumbnail")
            for (_, before), (name, after) in zip(marks, marks[1:], strict=False):
                times[name].append(after - before)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=40)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--rescan-files", type=int, default=10000, help="0: skip the re-scan measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", help="a git revision to measure beside this tree (e.g. HEAD~3, main)")
    parser.add_argument("--library", type=Path, help="a sample library made before (--originals is then unused)")
    parser.add_argument("--stages", type=int, default=0, metavar="N",
                        help="only: the median time of each per-file step over the first N files, in this process")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="photodedup-bench-scan-"))
    try:
        if args.library:
            lib_root = args.library
        else:
            lib_root = Path(make_library(work / "lib", originals=args.originals, megapixels=args.megapixels,
                                         seed=7)["root"])
        # Only the 12 MP JPEG originals and their full-size JPEG variants: what the targets speak of.
        jpegs = sorted(p for p in lib_root.rglob("*.jpg") if p.stat().st_size > 500_000)
        subset = work / "jpegs"
        for i, path in enumerate(jpegs):
            (subset / f"{i % 7}").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, subset / f"{i % 7}" / f"{i:05d}.jpg")
        paths = sorted(subset.rglob("*.jpg"))
        size_mb = sum(p.stat().st_size for p in jpegs) / len(jpegs) / 1e6
        if args.stages:
            for name, ms in stages(paths[:args.stages], args.repeats).items():
                print(f"{name:<20} {ms:7.2f} ms")
            return
        trees = {"scan": ROOT}
        if args.baseline:
            trees[f"scan {args.baseline}"] = export_tree(args.baseline, work / "baseline")
        rates: dict[str, list[float]] = {"floor": [], "naive": [], **{name: [] for name in trees}}
        for repeat in range(args.repeats):
            rates["floor"].append(floor(paths))
            start = time.perf_counter()
            naive(paths)
            rates["naive"].append(len(paths) / (time.perf_counter() - start))
            order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
            for name in order:
                catalog = work / f"{list(trees).index(name)}-{repeat}.sqlite"
                rates[name].append(scan_rate(trees[name], subset, catalog, len(paths)))
            line = "; ".join(f"{name} {values[-1]:.1f}" for name, values in rates.items())
            print(f"round {repeat + 1} images/s: {line}", flush=True)
        print(f"\nfiles: {len(paths)} JPEGs, {size_mb:.1f} MB average, {args.megapixels} MP, {os.cpu_count()} cores")
        for name, values in rates.items():
            print(f"{name:<24}: median {statistics.median(values):6.1f} images/s  runs "
                  f"{[round(r, 1) for r in values]}")
        for name in trees:
            of_floor = statistics.median(s / f for s, f in zip(rates[name], rates["floor"], strict=True))
            of_naive = statistics.median(s / n for s, n in zip(rates[name], rates["naive"], strict=True))
            print(f"{name:<24}: {of_floor:.0%} of the floor, {of_naive:.2f}x naive (medians of the round ratios)")
        if args.baseline:
            new, old = rates["scan"], rates[f"scan {args.baseline}"]
            ratio = statistics.median(a / b for a, b in zip(new, old, strict=True))
            print(f"scan / scan {args.baseline}: {ratio:.2f}x (median of the round ratios)")

        if args.rescan_files:  # re-scan of an unchanged library of many small files
            many = work / "many"
            small = work / "small.jpg"
            Image.new("RGB", (64, 48), (10, 20, 30)).save(small)
            for i in range(args.rescan_files):
                folder = many / f"{i // 500:03d}"
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(small, folder / f"{i:06d}.jpg")
            from photodedup.scan import scan

            db = work / "many.sqlite"
            first = scan([many], catalog=db)
            again_rates = []
            for _ in range(args.repeats):
                again = scan([many], catalog=db)
                assert again.unchanged == args.rescan_files, again
                again_rates.append(args.rescan_files / again.seconds)
            print(f"first scan of {args.rescan_files} small files: {first.seconds:.1f}s")
            print(f"re-scan unchanged: median {statistics.median(again_rates):.0f} files/s  "
                  f"runs {[round(r) for r in again_rates]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
