"""Grouping 100,000 photos with every default evidence kind, the verification stage included.

    PYTHONPATH=. .venv/bin/python benchmarks/group_verify_scale.py --n 100000 --catalog /tmp/verify100k.sqlite

Builds (once; reused when the catalog exists; ``--build-only`` to build in the background) a catalog
of ``n`` synthetic photos as the scan would store them: a 320 px thumbnail, the content box, grayscale
flag and the 8 dihedral pHashes of each (``scan._content_features`` on the thumbnail). The photos are
procedural scenes (a smooth background and random shapes; a different generator from the sample
library's); a tenth of them are edited copies of another (10% crop, mirror, turn 90, corner watermark,
JPEG re-encode at quality 40), interleaved, so a catalog cut short still holds planted pairs
(``--limit N`` groups the first N), and building again resumes it: the photos already there are
skipped. Then it runs ``photodedup group``'s own library function (``photodedup.group.group``, nothing
stored) and times each stage of its edge finding by wrapping the functions ``grouping.find_edges`` calls, in
place (exact, perceptual + dihedral, framed pages, confirmation of the upper band, verification candidates
and ORB checks, colour signatures and proposals, the pixel check of every candidate pair, its closure; a stage's
time leaves out the stages it calls), and prints the planted pairs found, the pairs found that were not planted,
the CPU time of this process and its workers, and the peak memory: this process's, the largest worker's, and the
sum over the process tree (sampled twice a second with psutil; the workers start from a forkserver,
so the kernel's RUSAGE_CHILDREN does not see them). ``--cgroup`` counts the CPU exactly (a cpuacct cgroup);
``--out`` writes the groups as JSON, to compare two versions' verdicts (``PYTHONPATH=<other tree>``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from photodedup import cluster as clu
from photodedup import group as grouping_command
from photodedup import grouping
from photodedup.catalog import Catalog
from photodedup.grouping import GroupSettings
from photodedup.scan import _content_features

EDITS = ("crop", "mirror", "turn", "watermark", "reencode")
SIZE = (320, 240)


class TreeMonitor:
    """Peak RSS of this process, of its largest descendant and of the whole tree; CPU seconds of all."""

    def __init__(self, every: float = 0.5) -> None:
        import psutil

        self.me = psutil.Process()
        self.own = self.worker = self.tree = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        import psutil

        while not self._stop.wait(every):
            total = 0
            for proc in [self.me, *self.me.children(recursive=True)]:
                try:
                    rss, times = proc.memory_info().rss, proc.cpu_times()
                except psutil.Error:  # ended between the listing and the reading
                    continue
                total += rss
                self.cpu[proc.pid] = times.user + times.system
                if proc.pid == self.me.pid:
                    self.own = max(self.own, rss)
                else:
                    self.worker = max(self.worker, rss)
            self.tree = max(self.tree, total)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class CpuCgroup:
    """The CPU seconds of this process and every process it starts from now on (the forkserver's workers, which
    the kernel's RUSAGE_CHILDREN and a sampling monitor miss in part), from a cpuacct cgroup of its own."""

    def __init__(self) -> None:
        self.path = Path(f"/sys/fs/cgroup/cpuacct/photodedup-bench-{os.getpid()}")
        self.path.mkdir()
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> float:
        seconds = int((self.path / "cpuacct.usage").read_text()) / 1e9
        for pid in (self.path / "cgroup.procs").read_text().split():  # back (the forkserver too), so it can go
            try:
                (self.path.parent / "cgroup.procs").write_text(pid)
            except OSError:  # ended meanwhile
                pass
        self.path.rmdir()
        return seconds


def scene(seed: int, size: tuple[int, int] = SIZE) -> Image.Image:
    """A procedural picture: a smooth background and 6-13 random shapes (drawn on a 320 x 240 grid)."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(base)
    k = size[0] / SIZE[0]
    for _ in range(int(rng.integers(6, 14))):
        x0, y0 = rng.integers(-40, SIZE[0]), rng.integers(-40, SIZE[1])
        x1, y1 = x0 + rng.integers(20, 160), y0 + rng.integers(20, 120)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.ellipse((x0 * k, y0 * k, x1 * k, y1 * k), fill=colour)
        elif shape == 1:
            draw.rectangle((x0 * k, y0 * k, x1 * k, y1 * k), fill=colour)
        else:
            draw.polygon([tuple(float(v) * k for v in rng.integers(0, 320, 2)) for _ in range(3)], fill=colour)
    return base


def edited(image: Image.Image, edit: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = image.size
    if edit == "crop":
        left, top = int(w * 0.1 * rng.uniform(0.2, 0.8)), int(h * 0.1 * rng.uniform(0.2, 0.8))
        return image.crop((left, top, left + int(w * 0.9), top + int(h * 0.9))).resize(SIZE, Image.Resampling.BILINEAR)
    if edit == "mirror":
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if edit == "turn":
        return image.transpose(Image.Transpose.ROTATE_90)
    if edit == "watermark":
        out = image.copy()
        draw = ImageDraw.Draw(out, "RGBA")
        draw.rectangle((w - 90, h - 30, w - 8, h - 8), fill=(255, 255, 255, 160))
        draw.text((w - 86, h - 28), "(c) me", fill=(0, 0, 0, 255), font=ImageFont.load_default(size=14))
        return out
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=40)
    return Image.open(buffer).convert("RGB")


def job_path(job: tuple[int, int, int]) -> str:
    number, source, edit = job
    name = f"{number:07d}" if edit < 0 else f"{number:07d}-{EDITS[edit]}-of-{source:07d}"
    return f"/bench/{name}.jpg"


def make_row(job: tuple[int, int, int]) -> tuple[dict, bytes]:
    number, source, edit = job
    image = scene(source) if edit < 0 else edited(scene(source), EDITS[edit], number)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    row = {"path": job_path(job), "root": "/bench", "size": len(buffer.getvalue()),
           "mtime_ns": number, "status": "ok", "md5": f"{number:032x}", "width": image.width,
           "height": image.height, "format": "JPEG", "scanned_at": 0.0, "exif_tags": 0}
    _content_features(row, image)
    return row, buffer.getvalue()


def build(path: Path, n: int, workers: int) -> None:
    rng = np.random.default_rng(0)
    planted = n // 10
    sources = rng.choice(n - planted, size=planted, replace=False)
    jobs = [(k, k, -1) for k in range(n - planted)]
    jobs += [(n - planted + k, int(s), k % len(EDITS)) for k, s in enumerate(sources)]
    # interleaved, so that a catalog cut short (--build-only, killed) still holds planted pairs
    jobs = [jobs[k] for k in rng.permutation(len(jobs))]
    with Catalog(path) as cat, ProcessPoolExecutor(workers) as pool:
        there = {r["path"] for r in cat.files("ok")}  # a build cut short resumes where it stopped
        jobs = [job for job in jobs if job_path(job) not in there]
        print(f"  {len(there)} photos already built, {len(jobs)} to go", flush=True)
        batch: list[tuple[dict, bytes]] = []
        for done, item in enumerate(pool.map(make_row, jobs, chunksize=256), 1):
            batch.append(item)
            if len(batch) == 2500 or done == len(jobs):
                cat.record_files([r for r, _ in batch], thumbs={r["path"]: t for r, t in batch})
                batch = []
                print(f"  built {done}/{len(jobs)}", flush=True)


#: The stages of ``grouping.find_edges`` timed, by the functions it calls (wrapped in place, so the
#: command's own code runs); a stage's time excludes the stages it calls (the closure's pixel check is the
#: pixel check's).
STAGES = ((clu, "exact_pairs", "exact"), (clu, "dihedral_pairs", "perceptual + dihedral search"),
          (grouping, "framed_edges", "framed pages"), (grouping, "confirmed", "confirm upper band"),
          (grouping, "verified_edges", "verification (candidates + ORB)"),
          (grouping, "colour_signatures", "colour signatures"), (grouping, "proposed_edges", "colour proposals"),
          (grouping, "confirmed_by_pixels", "pixel check"), (grouping, "_closed", "closure (its own part)"))


def timed_stages(times: dict[str, float]) -> list[tuple]:
    """Wrap each of ``STAGES`` to add its exclusive seconds to ``times``; returns what to restore."""
    stack: list[float] = []   # the time spent in the stages each open stage called
    restore = []
    for module, name, label in STAGES:
        original = getattr(module, name)

        def wrapper(*args, _original=original, _label=label, **kwargs):
            stack.append(0.0)
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                inner = stack.pop()
                times[_label] = times.get(_label, 0.0) + spent - inner
                if stack:
                    stack[-1] += spent

        setattr(module, name, wrapper)
        restore.append((module, name, original))
    return restore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--catalog", default="/tmp/photodedup-verify-bench.sqlite")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--limit", type=int, default=0, help="group only the first LIMIT rows (0: all)")
    parser.add_argument("--unplanted-dir", type=Path, default=None,
                        help="write the thumbnails of up to 12 grouped pairs that were not planted, side by side")
    parser.add_argument("--cgroup", action="store_true",
                        help="also count the CPU exactly: run in a new cpuacct cgroup (cgroup v1, as root) and print "
                             "its usage, every worker included")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the groups (every member, its evidence and match) and edge counts as JSON, "
                             "to compare two versions' verdicts")
    args = parser.parse_args()
    path = Path(args.catalog)
    if not path.exists() or args.build_only:
        started = time.perf_counter()
        build(path, args.n, args.workers)
        print(f"built {args.n} synthetic photos in {time.perf_counter() - started:.0f}s", flush=True)
        if args.build_only:
            return

    params = GroupSettings()
    counter = CpuCgroup() if args.cgroup else None
    monitor = TreeMonitor()
    times: dict[str, float] = {}
    chosen: list = []
    patches = timed_stages(times)
    select_files = grouping_command.select_files

    def first_rows(cat, roots=()):  # --limit: the first LIMIT rows by id, in the order the command reads them
        rows = select_files(cat, roots)
        if args.limit:
            keep = {r["id"] for r in sorted(rows, key=lambda r: r["id"])[:args.limit]}
            rows = [r for r in rows if r["id"] in keep]
        chosen[:] = rows
        return rows

    grouping_command.select_files = first_rows
    started = time.perf_counter()
    try:
        with Catalog(path) as cat:  # the command's own path: photodedup.group.group (nothing stored)
            result = grouping_command.group(cat, params=params, store=False)
    finally:
        grouping_command.select_files = select_files
        for module, name, original in patches:
            setattr(module, name, original)
    total = time.perf_counter() - started
    monitor.stop()
    rows, groups = chosen, result.groups
    times["clustering, keepers, the rest"] = total - sum(times.values())
    n = len(rows)
    number = {int(Path(r["path"]).stem.split("-")[0]): k for k, r in enumerate(rows)}
    planted = {}  # (source row, copy row) -> edit
    for k, r in enumerate(rows):
        parts_of_name = Path(r["path"]).stem.split("-")
        if len(parts_of_name) == 4 and int(parts_of_name[3]) in number:
            planted[(number[int(parts_of_name[3])], k)] = parts_of_name[1]
    truth = {(min(a, b), max(a, b)) for a, b in planted}
    found = {(min(a, b), max(a, b)) for g in groups for a in [position for position in
             (number[int(Path(m.path).stem.split("-")[0])] for m in g.members)]
             for b in (number[int(Path(m.path).stem.split("-")[0])] for m in g.members) if a != b}
    by_edit = {e: [0, 0] for e in EDITS}
    for (a, b), edit in planted.items():
        by_edit[edit][0] += (min(a, b), max(a, b)) in found
        by_edit[edit][1] += 1
    print(f"n={n} planted pairs={len(truth)} groups={len(groups)}")
    for name, seconds in times.items():
        print(f"  {name:<34} {seconds:8.1f} s")
    print(f"  {'total':<34} {total:8.1f} s")
    print("edges: " + ", ".join(f"{k} {v}" for k, v in result.edges.items()))
    print(f"planted pairs found {len(found & truth)}/{len(truth)}; pairs not planted {len(found - truth)}")
    print("recall by edit: " + ", ".join(f"{e} {a}/{t}" for e, (a, t) in by_edit.items()))
    if args.out:
        verdicts = result.as_dict()
        args.out.write_text(json.dumps({"edges": verdicts["edges"], "groups": verdicts["groups"]}, indent=1,
                                       sort_keys=True))
    if args.unplanted_dir:
        show_unplanted(sorted(found - truth)[:12], rows, groups, args.unplanted_dir, Path(args.catalog))
    print(f"CPU: {sum(monitor.cpu.values()):.0f} s (this process and its workers, user + system)")
    if counter is not None:
        print(f"CPU, exactly: {counter.close():.1f} s (the cgroup: this process, the forkserver and every worker)")
    print(f"peak memory: {monitor.own / 1e9:.2f} GB this process, {monitor.worker / 1e9:.2f} GB the largest worker, "
          f"{monitor.tree / 1e9:.2f} GB the whole tree (shared pages counted in each process)")


def show_unplanted(pairs: list[tuple[int, int]], rows, groups, out: Path, catalog: Path) -> None:
    """Each pair's two thumbnails side by side (``out/pair-K.png``) and what joined each to its group."""
    out.mkdir(parents=True, exist_ok=True)
    how = {m.path: f"{m.evidence} {m.match.get('how', '')}".strip() for g in groups for m in g.members}
    with Catalog(catalog) as cat:
        for number, (a, b) in enumerate(pairs):
            images = [Image.open(io.BytesIO(cat.thumb(rows[k]["id"]))).convert("RGB") for k in (a, b)]
            sheet = Image.new("RGB", (sum(im.width for im in images) + 10, max(im.height for im in images)), "white")
            sheet.paste(images[0], (0, 0))
            sheet.paste(images[1], (images[0].width + 10, 0))
            sheet.save(out / f"pair-{number}.png")
            print(f"  unplanted pair {number}: " + " | ".join(f"{Path(rows[k]['path']).name} ({how[rows[k]['path']]})"
                                                         for k in (a, b)))


if __name__ == "__main__":
    main()
