"""Scan throughput against the floor and a naive script, side by side in one run, and re-scan speed.

    PYTHONPATH=. python benchmarks/scan_speed.py --originals 30 --megapixels 12 --repeats 5 \
        [--baseline REF] [--library DIR] [--rescan-files 10000] [--cpu-split N | --stages N]

Each round runs, one after the other on the same files (12 MP JPEGs of a generated sample library):

- the **floor**: what no scan can beat on this machine, read + MD5 + one decode at 1/8 DCT scale of every
  file, in a fresh pool of one process per core (pool start included, as the scan's is);
- the **naive script**, what most people write first: for each file, md5 of the bytes and
  ``imagehash.phash(Image.open(path))``, in one process;
- ``photodedup.scan.scan`` of this tree into a fresh catalog, in a fresh process (its own timing, pool
  start included), and with ``--baseline REF`` the same of git revision REF (``git archive`` into a
  temporary folder), the two alternated so both see the same load.

Prints medians over ``--repeats`` rounds, the per-round ratios (scan/floor, scan/naive, ours/baseline) and
their medians: on a shared machine only ratios measured within one round mean much. Beside the rates, the CPU
time per image of each (user + system of the whole process tree: the scan's process, its forkserver and
workers, reaped by this process as their subreaper; the floor's pool; the naive loop's process): on a machine
shared with other work, where wall-clock rates swing with the load, CPU time per image is what stays put.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import io
import json
import os
import resource
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

#: The per-file work of a scan in one process: CPU milliseconds of ``_inspect_job`` per file (best of 3 passes).
_PER_FILE = ("import json, sys, time; from photodedup import scan\n"
             "paths = sys.argv[1:]; job = lambda p: scan._inspect_job((p, '/', 200_000_000, None))\n"
             "job(paths[0]); best = []\n"
             "for _ in range(3):\n"
             "    start = time.process_time(); [job(p) for p in paths]\n"
             "    best.append((time.process_time() - start) * 1000 / len(paths))\n"
             "print(json.dumps(min(best)))\n")
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


def floor(paths: list[Path]) -> tuple[float, float]:
    """Images/s of ``floor_one`` over ``paths`` on every core, the pool's start included, and CPU seconds."""
    cpu = _cpu()
    start = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(floor_one, [str(p) for p in paths], chunksize=4))
    return len(paths) / (time.perf_counter() - start), _cpu() - cpu


def _cpu() -> float:
    """User + system seconds of this process and of every descendant reaped so far."""
    return _usage()[0]


def _usage() -> tuple[float, float, int]:
    """``(user + system seconds, system seconds, minor page faults)`` of this process and of every descendant
    reaped so far: the system share and the page faults move little with the machine's load, where user time
    swings by 10% between rounds."""
    usages = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    return (sum(u.ru_utime + u.ru_stime for u in usages), sum(u.ru_stime for u in usages),
            sum(u.ru_minflt for u in usages))


def _become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``): a scan's forkserver
    outlives the scan's process by a moment, and its CPU time (its workers' included) counts only once
    it is reaped here."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children() -> set[int]:
    """The ids of this process's live children (from /proc)."""
    me, found = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                found.add(int(entry.name))
    return found


def _reap_orphans(before: set[int], timeout: float = 60.0) -> None:
    """Reap the children a command left behind (adopted here), until only those of ``before`` remain: this
    process's own pool, started for the floor, lives on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if _children() <= before:
                return
            time.sleep(0.02)


def export_tree(ref: str, into: Path) -> Path:
    """The files of git revision ``ref`` of this repository, in ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def compile_tree(tree: Path) -> Path:
    """Byte-compile the package in ``tree``, as an install does: a tree without ``__pycache__`` (a ``git
    archive``, or any tree where ``PYTHONDONTWRITEBYTECODE`` is set) compiles every module it imports in every
    process, on every run (60-100 ms of CPU a scan command, in its process and its forkserver)."""
    compileall.compile_dir(tree / "photodedup", quiet=1)
    return tree


def cli_scan(tree: Path, folder: Path, catalog: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the whole process tree) of ``photodedup scan FOLDER --json --quiet``
    by the code in ``tree``, a fresh process: what a user runs."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    before, cpu, start = _children(), _cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "photodedup", "scan", str(folder), "--catalog", str(catalog), "--json",
                    "--quiet"], cwd=tree, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    _reap_orphans(before)
    return wall, _cpu() - cpu


def scan_rate(tree: Path, folder: Path, catalog: Path, expected: int) -> tuple[float, float, float, int]:
    """Images/s of one ``scan`` of ``folder`` by the code in ``tree``, in a fresh process, and the CPU seconds,
    system seconds and minor page faults of its process tree (interpreter start and imports included)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    before, usage = _children(), _usage()
    result = subprocess.run([sys.executable, "-c", _SCAN, str(folder), str(catalog)], cwd=tree, env=env,
                            capture_output=True, text=True, check=True)
    _reap_orphans(before)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["new"] == expected, summary
    cpu, system, faults = (after - first for after, first in zip(_usage(), usage, strict=True))
    return summary["new"] / summary["seconds"], cpu, system, faults


def cpu_split(trees: dict[str, Path], paths: list[Path], work: Path, repeats: int) -> None:
    """The scan's CPU in two parts, each tree in fresh processes, alternated: the fixed cost (a scan of 4 small
    files: interpreter, imports, catalog, the pool's start; by ``scan()`` and by the ``photodedup scan``
    command) and the per-file work (``_inspect_job`` in one process, best of 3 passes). Also the floor's
    per-file work (``floor_one``) in this process."""
    tiny = work / "tiny"
    for i in range(4):
        (tiny / str(i)).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (10 * i, 20, 30)).save(tiny / str(i) / "a.jpg")
    fixed: dict[str, list[float]] = {name: [] for name in trees}
    fixed_cli: dict[str, list[float]] = {name: [] for name in trees}
    per_file: dict[str, list[float]] = {name: [] for name in trees}
    floor_ms = []
    for repeat in range(repeats):
        for name in (list(trees) if repeat % 2 == 0 else list(reversed(trees))):
            env = dict(os.environ, PYTHONPATH=str(trees[name]))
            _rate, seconds, _system, _faults = scan_rate(trees[name], tiny,
                                                         work / f"tiny-{name}-{repeat}.sqlite".replace(" ", "_"), 4)
            fixed[name].append(seconds * 1000)
            _wall, seconds = cli_scan(trees[name], tiny, work / f"cli-{name}-{repeat}.sqlite".replace(" ", "_"))
            fixed_cli[name].append(seconds * 1000)
            result = subprocess.run([sys.executable, "-c", _PER_FILE, *map(str, paths)], cwd=trees[name], env=env,
                                    capture_output=True, text=True, check=True)
            per_file[name].append(json.loads(result.stdout.strip().splitlines()[-1]))
        start = time.process_time()
        for path in paths:
            floor_one(str(path))
        floor_ms.append((time.process_time() - start) * 1000 / len(paths))
        print(f"round {repeat + 1}: " + "; ".join(f"{name}: fixed {fixed[name][-1]:.0f} ms (command "
                                                   f"{fixed_cli[name][-1]:.0f} ms), per file "
                                                   f"{per_file[name][-1]:.1f} ms" for name in trees)
              + f"; floor per file {floor_ms[-1]:.1f} ms", flush=True)
    for name in trees:
        print(f"{name:<24}: fixed CPU median {statistics.median(fixed[name]):.0f} ms (`photodedup scan` command: "
              f"{statistics.median(fixed_cli[name]):.0f} ms), per-file CPU median "
              f"{statistics.median(per_file[name]):.1f} ms (floor's {statistics.median(floor_ms):.1f} ms: "
              f"{statistics.median(f / s for f, s in zip(floor_ms, per_file[name], strict=True)):.0%})")


def stages(paths: list[Path], repeats: int) -> dict[str, float]:
    """Median milliseconds per file of each step of a scan's per-file work, each timed alone in this process
    (the same calls ``scan._inspect_job`` makes, in its order)."""
    from collections import defaultdict

    import numpy as np

    from photodedup import hashing, media, preprocess, scan

    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        for path in paths:
            marks = [("", time.process_time())]
            mark = lambda name, marks=marks: marks.append((name, time.process_time()))  # noqa: E731

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
    parser.add_argument("--cpu-split", type=int, default=0, metavar="N",
                        help="only: the scan's fixed CPU cost and per-file CPU over the first N files, each tree")
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
        for tree in trees.values():
            compile_tree(tree)
        if args.cpu_split:
            _become_subreaper()
            cpu_split(trees, paths[:args.cpu_split], work, args.repeats)
            return
        rates: dict[str, list[float]] = {"floor": [], "naive": [], **{name: [] for name in trees}}
        cpu: dict[str, list[float]] = {name: [] for name in rates}  # CPU milliseconds per image
        system: dict[str, list[float]] = {name: [] for name in trees}  # of which system, ms per image
        faults: dict[str, list[float]] = {name: [] for name in trees}  # minor page faults per image
        if not _become_subreaper():
            print("note: not a subreaper here: the scans' CPU times miss their forkserver and workers")
        for repeat in range(args.repeats):
            rate, seconds = floor(paths)
            rates["floor"].append(rate)
            cpu["floor"].append(seconds * 1000 / len(paths))
            start, start_cpu = time.perf_counter(), time.process_time()
            naive(paths)
            rates["naive"].append(len(paths) / (time.perf_counter() - start))
            cpu["naive"].append((time.process_time() - start_cpu) * 1000 / len(paths))
            order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
            for name in order:
                catalog = work / f"{list(trees).index(name)}-{repeat}.sqlite"
                rate, seconds, sys_seconds, page_faults = scan_rate(trees[name], subset, catalog, len(paths))
                rates[name].append(rate)
                cpu[name].append(seconds * 1000 / len(paths))
                system[name].append(sys_seconds * 1000 / len(paths))
                faults[name].append(page_faults / len(paths))
            line = "; ".join(f"{name} {values[-1]:.1f} ({cpu[name][-1]:.1f} ms CPU"
                             + (f", {system[name][-1]:.1f} system, {faults[name][-1]:.0f} page faults"
                                if name in system else "") + ")" for name, values in rates.items())
            print(f"round {repeat + 1} images/s (CPU per image): {line}", flush=True)
        print(f"\nfiles: {len(paths)} JPEGs, {size_mb:.1f} MB average, {args.megapixels} MP, {os.cpu_count()} cores")
        for name, values in rates.items():
            print(f"{name:<24}: median {statistics.median(values):6.1f} images/s  runs "
                  f"{[round(r, 1) for r in values]};  CPU median {statistics.median(cpu[name]):6.1f} ms an image  "
                  f"runs {[round(c, 1) for c in cpu[name]]}")
        for name in trees:
            print(f"{name:<24}: system CPU median {statistics.median(system[name]):.1f} ms an image, "
                  f"minor page faults median {statistics.median(faults[name]):.0f} an image")
        for name in trees:
            of_floor = statistics.median(s / f for s, f in zip(rates[name], rates["floor"], strict=True))
            of_naive = statistics.median(s / n for s, n in zip(rates[name], rates["naive"], strict=True))
            cpu_floor = statistics.median(f / s for s, f in zip(cpu[name], cpu["floor"], strict=True))
            cpu_naive = statistics.median(n / s for s, n in zip(cpu[name], cpu["naive"], strict=True))
            print(f"{name:<24}: {of_floor:.0%} of the floor, {of_naive:.2f}x naive (medians of the round ratios); "
                  f"by CPU per image: {cpu_floor:.0%} of the floor's, {cpu_naive:.2f}x naive's")
        if args.baseline:
            new, old = rates["scan"], rates[f"scan {args.baseline}"]
            ratio = statistics.median(a / b for a, b in zip(new, old, strict=True))
            print(f"scan / scan {args.baseline}: {ratio:.2f}x (median of the round ratios)")
            new_cpu, old_cpu = cpu["scan"], cpu[f"scan {args.baseline}"]
            ratio = statistics.median(b / a for a, b in zip(new_cpu, old_cpu, strict=True))
            print(f"CPU per image, scan {args.baseline} / scan: {ratio:.2f}x (median of the round ratios)")

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
