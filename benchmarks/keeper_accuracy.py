"""Keeper accuracy on a second, independent set: does the suggested keeper find the camera original?

The sample library (``photodedup eval``) is one measure; this is another, built differently: other
photographs (the sample sources in reverse order), another camera, originals at quality 95, file
times shuffled (so "oldest file" cannot decide by the order of writing), and the derivatives the
issue names: grayscale and watermarked copies saved at quality 100 with the camera's EXIF, added
borders, full-resolution PNG/WebP exports, plain quality-100 re-saves, downscaled copies; plus three
that the rules cannot tell (a quality-98 re-save with the EXIF copied, a 1.5x upscale, black bars
above and below only), reported apart so that the limits are visible.

Issue 21 added copies that differ from the original only in what they lost: a corner watermark and a
studio logo at the original's quality with the EXIF copied (told by the pixel check's added-mark
evidence, ``photodedup.difference.mark_members`` over the catalog's thumbnails), an EXIF-stripped copy
at the same quality, a quality-75 re-save with the EXIF copied (4:4:4, larger than the original); and
screenshots (PNG, no camera) with their JPEG and WebP copies, where the lossless file is the original.

Grouping is taken from the truth (each original with all its derivatives, and each original with
one derivative), so the number measures the keeper rules alone. "before" is the rule the tool had
until this change (highest canvas resolution, then largest file of any format, then most EXIF tags,
then oldest), computed on the same files in the same run.

    PYTHONPATH=. .venv/bin/python benchmarks/keeper_accuracy.py [--photos 8] [--megapixels 2]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from photodedup.catalog import Catalog
from photodedup.difference import mark_members
from photodedup.duplicate_groups import Member
from photodedup.keeper import choose
from photodedup.sample_library import source_photos, stamp_logo
from photodedup.scan import scan

KINDS = ["grayscale_q100", "watermark_q100", "resave_q100", "white_border", "black_border", "png_full", "webp_full",
         "downscaled", "resave_q98", "upscaled", "letterbox", "watermark_q95", "logo_q95", "stripped_q95",
         "resave_q75", "shot_jpeg_q70", "shot_jpeg_q92", "shot_webp"]
#: Screenshot kinds: the original is a PNG screenshot (no camera), these its lossy copies.
SHOT_KINDS = ["shot_jpeg_q70", "shot_jpeg_q92", "shot_webp"]
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
        with Image.open(original) as saved:
            decoded = saved.convert("RGB")
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
            # an export is made from the saved file (the picture before encoding is the JPEG's own source)
            "png_full": (decoded, "png", {}),
            "webp_full": (photo, "webp", {"quality": 95}),
            "downscaled": (photo.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "jpg",
                           {"quality": 90, "exif": camera}),
            "resave_q98": (photo, "jpg", {"quality": 98, "exif": camera}),
            "upscaled": (photo.resize((w * 3 // 2, h * 3 // 2), Image.Resampling.BICUBIC), "jpg",
                         {"quality": 90, "exif": camera}),
            "letterbox": (bars, "jpg", {"quality": 92}),
            "watermark_q95": (marked, "jpg", {"quality": 95, "exif": camera}),
            "logo_q95": (stamp_logo(photo), "jpg", {"quality": 95, "exif": camera}),
            "stripped_q95": (photo, "jpg", {"quality": 95}),
            "resave_q75": (photo, "jpg", {"quality": 75, "subsampling": 0, "exif": camera}),
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
        shot = _screenshot(rng, n)
        screenshot = folder / f"Screenshot_{n:04d}.png"
        shot.save(screenshot)
        truth[str(screenshot)] = {}
        copies = {"shot_jpeg_q70": ("jpg", {"quality": 70}), "shot_jpeg_q92": ("jpg", {"quality": 92}),
                  "shot_webp": ("webp", {"quality": 90})}
        for kind, (ext, options) in copies.items():
            path = folder / "exports" / f"Screenshot_{n:04d}_{kind}.{ext}"
            shot.save(path, **options)
            truth[str(screenshot)][kind] = str(path)
    return truth


def _screenshot(rng, n: int) -> Image.Image:
    """A phone screenshot: a flat app bar, rows of text and coloured buttons on white (PNG, no EXIF)."""
    image = Image.new("RGB", (750, 1334), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    colour = tuple(int(c) for c in rng.integers(0, 200, 3))
    draw.rectangle((0, 0, 750, 120), fill=colour)
    draw.text((30, 50), f"Messages {n}", fill=(255, 255, 255))
    for row in range(14):
        y = 150 + row * 80
        draw.ellipse((30, y, 90, y + 60), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw.text((110, y + 10), f"Contact {row} {int(rng.integers(0, 10**6))}", fill=(20, 20, 20))
        draw.text((110, y + 35), "see you at " + str(int(rng.integers(1, 12))) + " pm", fill=(110, 110, 110))
    return image


def _thumb(cat: Catalog, file_id: int) -> Image.Image | None:
    data = cat.thumb(file_id)
    return Image.open(io.BytesIO(data)).convert("RGB") if data else None


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
        # before right, after right, groups
        tally = {kind: [0, 0, 0] for kind in [*KINDS, "all together", "all together (screenshot)"]}
        wrong: list[str] = []
        for original, derived in truth.items():
            together = [original, *(p for k, p in derived.items() if k not in LIMITS)]
            whole = "all together (screenshot)" if set(derived) <= set(SHOT_KINDS) else "all together"
            for kind, members in [*((k, [original, p]) for k, p in derived.items()), (whole, together)]:
                group = [rows[p] for p in members]
                candidates = [Member.from_row(r, evidence="perceptual", score=1.0) for r in group]
                with Catalog(work / "c.sqlite") as cat:
                    mark_members(candidates, lambda m: _thumb(cat, m.file_id))
                choice = choose(candidates)
                right = rows[original]["id"]
                counts = tally[kind]
                counts[0] += before(group) == right
                counts[1] += choice.keeper == right
                counts[2] += 1
                if choice.keeper != right and kind not in LIMITS:
                    wrong.append(f"{kind}: kept {Path(next(r['path'] for r in group if r['id'] == choice.keeper)).name}"
                                 f" ({choice.reason})")
        print(f"{args.photos} originals of {args.megapixels} MP, each with {len(KINDS) - len(SHOT_KINDS)} derivatives, "
              f"and {args.photos} screenshots with {len(SHOT_KINDS)} (pairs: the original and one derivative; all "
              "together: the original and all but the limits)")
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
