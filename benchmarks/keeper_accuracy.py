"""Keeper accuracy on a second, independent set: does the suggested keeper find the camera original?

The sample library (``photodedup eval``) is one measure; this is another, built differently: other
photographs (the sample sources in reverse order), another camera, originals at quality 95, file
times shuffled (so "oldest file" cannot decide by the order of writing), and the derivatives the
issue names: grayscale and watermarked copies saved at quality 100 with the camera's EXIF, added
borders, full-resolution PNG/WebP exports, plain quality-100 re-saves, downscaled copies; plus three
that the rules cannot tell (a quality-98 re-save with the EXIF copied, a 1.5x upscale, black bars
above and below only), reported apart so that the limits are visible.

Grouping is taken from the truth (each original with all its derivatives, and each original with
one derivative), so the number measures the keeper rules alone. "before" is the rule the tool had
until this change (highest canvas resolution, then largest file of any format, then most EXIF tags,
then oldest), computed on the same files in the same run.

    PYTHONPATH=. .venv/bin/python benchmarks/keeper_accuracy.py [--photos 8] [--megapixels 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from photodedup.catalog import Catalog
from photodedup.groups import Member
from photodedup.keeper import choose
from photodedup.sample_library import source_photos
from photodedup.scan import scan

KINDS = ["grayscale_q100", "watermark_q100", "resave_q100", "white_border", "black_border", "png_full", "webp_full",
         "downscaled", "resave_q98", "upscaled", "letterbox"]
#: What the rules cannot tell from the original: a re-save below quality 100 with the EXIF copied is
#: larger and otherwise equal; an upscale has more pixels. (Letterbox bars, on two sides only, were a
#: limit until the scan trimmed each side on its own.)
LIMITS = {"resave_q98": "larger, nothing else differs", "upscaled": "more pixels"}


def make(out: Path, photos: int, megapixels: float, seed: int) -> dict[str, dict[str, str]]:
    """Write the set; returns {original path: {kind: derivative path}}."""
    rng = np.random.default_rng(seed)
    sources = [p for p in source_photos()[::-1] if _colourful(p)]
    truth: dict[str, dict[str, str]] = {}
    for n in range(photos):
        photo = Image.open(sources[n % len(sources)]).convert("RGB")
        scale = (megapixels * 1e6 / (photo.width * photo.height)) ** 0.5
        photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)
        noise = rng.integers(-6, 7, size=(photo.height, photo.width, 3))
        photo = Image.fromarray(np.clip(np.asarray(photo, np.int16) + noise, 0, 255).astype(np.uint8))
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "NIKON CORPORATION", "NIKON Z 6_2"
        exif.get_ifd(0x8769)[0x9003] = f"2022:0{1 + n % 9}:1{n % 10} 09:30:00"
        camera = exif.tobytes()
        folder = out / f"shoot{n:02d}"
        folder.mkdir(parents=True)
        original = folder / f"DSC_{n:04d}.JPG"
        photo.save(original, "JPEG", quality=95, exif=camera)
        w, h = photo.size
        marked = photo.copy()
        ImageDraw.Draw(marked).rectangle((w - w // 5, h - h // 12, w - 10, h - 10), fill=(255, 255, 255))
        bars = Image.new("RGB", (w, h + 2 * (h // 10)), (0, 0, 0))  # letterbox: above and below
        bars.paste(photo, (0, h // 10))
        derived = {
            "grayscale_q100": (ImageOps.grayscale(photo), "jpg", {"quality": 100, "exif": camera}),
            "watermark_q100": (marked, "jpg", {"quality": 100, "exif": camera}),
            "resave_q100": (photo, "jpg", {"quality": 100, "exif": camera}),
            "white_border": (ImageOps.expand(photo, border=max(w, h) // 25, fill=(255, 255, 255)), "jpg",
                             {"quality": 95, "exif": camera}),
            "black_border": (ImageOps.expand(photo, border=max(w, h) // 20, fill=(0, 0, 0)), "jpg", {"quality": 92}),
            "png_full": (photo, "png", {}),
            "webp_full": (photo, "webp", {"quality": 95}),
            "downscaled": (photo.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "jpg",
                           {"quality": 90, "exif": camera}),
            "resave_q98": (photo, "jpg", {"quality": 98, "exif": camera}),
            "upscaled": (photo.resize((w * 3 // 2, h * 3 // 2), Image.Resampling.BICUBIC), "jpg",
                         {"quality": 90, "exif": camera}),
            "letterbox": (bars, "jpg", {"quality": 92}),
        }
        truth[str(original)] = {}
        base = original.stat().st_mtime
        for kind, (image, ext, options) in derived.items():
            path = folder / "exports" / f"DSC_{n:04d}_{kind}.{ext}"
            path.parent.mkdir(exist_ok=True)
            image.save(path, **options)
            when = base + float(rng.uniform(-86400, 86400))  # before or after the original
            os.utime(path, (when, when))
            truth[str(original)][kind] = str(path)
    return truth


def _colourful(path: Path) -> bool:
    """A colour photograph (several sample sources are grayscale scans)."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB").resize((64, 64)), np.int16)
    return float((rgb.max(axis=-1) - rgb.min(axis=-1)).mean()) > 20


def before(rows: list) -> int:
    """The keeper rule before this change: canvas resolution, file size, EXIF tags, oldest, path."""
    return min(rows, key=lambda r: (-(r["width"] or 0) * (r["height"] or 0), -(r["size"] or 0), -(r["exif_tags"] or 0),
                                    r["taken_at"] is None, r["taken_at"] or "", r["mtime_ns"], r["path"]))["id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--megapixels", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="keeper-"))
    try:
        truth = make(work / "lib", args.photos, args.megapixels, args.seed)
        scan([work / "lib"], catalog=work / "c.sqlite")
        with Catalog(work / "c.sqlite") as cat:
            rows = {r["path"]: r for r in cat.files()}
        tally = {kind: [0, 0, 0] for kind in [*KINDS, "all together"]}  # before right, after right, groups
        wrong: list[str] = []
        for original, derived in truth.items():
            together = [original, *(p for k, p in derived.items() if k not in LIMITS)]
            for kind, members in [*((k, [original, p]) for k, p in derived.items()), ("all together", together)]:
                group = [rows[p] for p in members]
                choice = choose([Member.from_row(r, evidence="perceptual", score=1.0) for r in group])
                right = rows[original]["id"]
                counts = tally[kind]
                counts[0] += before(group) == right
                counts[1] += choice.keeper == right
                counts[2] += 1
                if choice.keeper != right and kind not in LIMITS:
                    wrong.append(f"{kind}: kept {Path(next(r['path'] for r in group if r['id'] == choice.keeper)).name}"
                                 f" ({choice.reason})")
        print(f"{args.photos} originals of {args.megapixels} MP, each with {len(KINDS)} derivatives "
              "(pairs: the original and one derivative; all together: the original and all but the limits)")
        print(f"{'derivative':<16} {'before':>7} {'after':>7}")
        for kind, (old, new, total) in tally.items():
            note = f"  (a limit: {LIMITS[kind]})" if kind in LIMITS else ""
            print(f"{kind:<16} {old:>3}/{total:<3} {new:>3}/{total:<3}{note}")
        counted = [k for k in KINDS if k not in LIMITS]
        for label, kinds in [("pairs the rules can tell", counted), ("all pairs", KINDS)]:
            old = sum(tally[k][0] for k in kinds)
            new = sum(tally[k][1] for k in kinds)
            total = sum(tally[k][2] for k in kinds)
            print(f"{label}: before {old / total:.3f}, after {new / total:.3f} ({total} groups)")
        for line in wrong:
            print("  wrong:", line)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
