"""Scan throughput against a naive script, side by side in one run, and re-scan speed.

    python benchmarks/scan_speed.py --originals 40 --megapixels 12 --rescan-files 10000

Prints medians over --repeats runs of each. The naive script is what most people write first:
for each file, md5 of the bytes and ``imagehash.phash(Image.open(path))``, in one process.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import imagehash
from PIL import Image

from photodedup.sample_library import make_library
from photodedup.scan import scan


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=40)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--rescan-files", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="photodedup-bench-scan-"))
    try:
        lib = make_library(work / "lib", originals=args.originals, megapixels=args.megapixels, seed=7)
        # Only the 12 MP JPEG originals and their full-size JPEG variants: what the targets speak of.
        jpegs = [p for p in Path(lib["root"]).rglob("*.jpg") if p.stat().st_size > 500_000]
        subset = work / "jpegs"
        for i, path in enumerate(jpegs):
            (subset / f"{i % 7}").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, subset / f"{i % 7}" / f"{i:05d}.jpg")
        size_mb = sum(p.stat().st_size for p in jpegs) / len(jpegs) / 1e6
        naive_rates, scan_rates = [], []
        for repeat in range(args.repeats):
            paths = sorted(subset.rglob("*.jpg"))
            start = time.perf_counter()
            naive(paths)
            naive_rates.append(len(paths) / (time.perf_counter() - start))
            db = work / f"scan{repeat}.sqlite"
            summary = scan([subset], catalog=db)
            assert summary.new == len(paths), summary
            scan_rates.append(summary.new / summary.seconds)
        n, s = statistics.median(naive_rates), statistics.median(scan_rates)
        print(f"files: {len(jpegs)} JPEGs, {size_mb:.1f} MB average, {args.megapixels} MP")
        print(f"naive script (1 process): median {n:.1f} images/s  runs {[round(r, 1) for r in naive_rates]}")
        print(f"photodedup scan         : median {s:.1f} images/s  runs {[round(r, 1) for r in scan_rates]}")
        print(f"ratio scan / naive      : {s / n:.2f}x")

        # Re-scan of an unchanged library of many small files.
        many = work / "many"
        small = work / "small.jpg"
        Image.new("RGB", (64, 48), (10, 20, 30)).save(small)
        for i in range(args.rescan_files):
            folder = many / f"{i // 500:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(small, folder / f"{i:06d}.jpg")
        db = work / "many.sqlite"
        first = scan([many], catalog=db)
        rates = []
        for _ in range(args.repeats):
            again = scan([many], catalog=db)
            assert again.unchanged == args.rescan_files, again
            rates.append(args.rescan_files / again.seconds)
        print(f"first scan of {args.rescan_files} small files: {first.seconds:.1f}s")
        print(f"re-scan unchanged: median {statistics.median(rates):.0f} files/s  runs {[round(r) for r in rates]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
