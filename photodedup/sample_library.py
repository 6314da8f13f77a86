"""A realistic, deterministic sample library built from photographs shipped inside installed packages.

Originals at phone resolution (JPEG with EXIF: camera, date taken), near-duplicates of them
(resized, re-encoded, cropped, EXIF-rotated, brightened, PNG/WebP conversions, burst shifts), exact
copies under other names, camera RAW+JPEG pairs (a DNG beside every fourth original, from the second:
with an embedded preview, every other one without), unrelated photos and broken files, plus
``truth.json``::

    {"groups": [[relative paths]], "unrelated": [...], "broken": [...], "kinds": {path: kind},
     "pairs": [[jpeg, raw]]}

Everything follows from the seed; sizes from a few dozen files (tests) to thousands (benchmarks).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from photodedup.dng import require_pidng, write_dng
from photodedup.errors import BadInputError

_CAMERAS = [("Apple", "iPhone 14 Pro"), ("samsung", "SM-S918B"), ("Google", "Pixel 8"), ("Canon", "EOS R6"),
            ("FUJIFILM", "X-T5"), ("SONY", "ILCE-7M4")]
_DERIVATIVES = ["resized", "reencoded", "cropped", "rotated", "brightened", "png", "webp", "burst", "copy"]


def source_photos() -> list[Path]:
    """Photographs shipped inside installed packages (scikit-image, scikit-learn, matplotlib)."""
    found: list[Path] = []
    for module, names in [
        ("skimage.data", ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
                          "motorcycle_left.png", "retina.jpg", "ihc.png", "camera.png", "moon.png", "coins.png",
                          "brick.png", "grass.png", "gravel.png", "horse.png", "page.png"]),
        ("sklearn.datasets.images", ["china.jpg", "flower.jpg"]),
        ("matplotlib", ["mpl-data/sample_data/grace_hopper.jpg"]),
    ]:
        try:
            base = Path(__import__(module, fromlist=["_"]).__file__).parent
        except ImportError:
            continue
        found += [base / name for name in names if (base / name).exists()]
    if not found:
        raise BadInputError("no sample photographs found", hint="install scikit-image (pip install scikit-image)")
    return found


def make_library(out: Path | str, *, originals: int = 12, megapixels: float = 12.0, seed: int = 0,
                 workers: int | None = None) -> dict:
    """Write the library into ``out`` (which must be empty or absent) and return a summary."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise BadInputError(f"{out} exists and is not empty", hint="choose a new folder")
    if originals < 1 or megapixels <= 0:
        raise BadInputError("--originals must be >= 1 and --megapixels > 0")
    if originals > 1:
        require_pidng()  # before writing anything
    out.mkdir(parents=True, exist_ok=True)
    sources = [str(p) for p in source_photos()]
    jobs = [(str(out), sources, i, megapixels, seed) for i in range(originals)]
    workers = workers or min(os.cpu_count() or 1, 4)
    if workers > 1 and originals > 2:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_make_original, jobs))
    else:
        results = [_make_original(job) for job in jobs]

    truth: dict = {"groups": [], "unrelated": [], "broken": [], "kinds": {}, "pairs": []}
    for members, kinds in results:
        truth["kinds"].update(kinds)
        truth["pairs"] += [[members[0], p] for p in members if kinds[p] == "raw"]
        (truth["groups"] if len(members) > 1 else truth["unrelated"]).append(
            members if len(members) > 1 else members[0])
    truth["broken"] = _broken_files(out, seed)
    truth["kinds"].update({p: "broken" for p in truth["broken"]})
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    files = sum(len(m) for m, _ in results) + len(truth["broken"])
    return {"root": str(out), "truth": str(out / "truth.json"), "files": files,
            "groups": len(truth["groups"]), "unrelated": len(truth["unrelated"]), "broken": len(truth["broken"])}


def _make_original(job) -> tuple[list[str], dict[str, str]]:
    out, sources, index, megapixels, seed = job
    out = Path(out)
    rng = np.random.default_rng([seed, index])
    photo = _distinct_photo(sources, index, rng)
    width = int(math.sqrt(megapixels * 1e6 * 4 / 3))
    size = (width, int(width * 3 / 4)) if photo.width >= photo.height else (int(width * 3 / 4), width)
    photo = _add_sensor_noise(photo.resize(size, Image.Resampling.BICUBIC), rng)
    make, model = _CAMERAS[index % len(_CAMERAS)]
    taken = datetime(2019, 1, 1) + timedelta(days=int(rng.integers(0, 1800)), seconds=int(rng.integers(0, 86400)))
    exif = _exif(make, model, taken)
    rotated_exif = _exif(make, model, taken, orientation=6)
    year = taken.year
    rel_original = f"DCIM/{year}/IMG_{index:04d}.jpg"
    _save(out / rel_original, photo, "JPEG", quality=92, exif=exif.tobytes())
    members, kinds = [rel_original], {rel_original: "original"}
    if index % 4 == 3:  # every fourth photo has no duplicate: an unrelated photo
        return members, kinds
    if index % 4 == 1:  # shot RAW+JPEG: the DNG beside the JPEG is the same shot
        rel_raw = f"DCIM/{year}/IMG_{index:04d}.dng"
        preview = None if index % 8 == 5 else 1620
        write_dng(out / rel_raw, photo, make=make, model=model, taken=taken, preview=preview)
        members.append(rel_raw)
        kinds[rel_raw] = "raw"
    count = int(rng.integers(2, 5))
    for kind in rng.choice(_DERIVATIVES, size=count, replace=False):
        rel = _derive(out, rel_original, photo, (exif, rotated_exif), str(kind), index, rng)
        members.append(rel)
        kinds[rel] = str(kind)
    return members, kinds


def _distinct_photo(sources: list[str], index: int, rng) -> Image.Image:
    """A photo unlike every other index: a source, then (on reuse) another region, flip and colours."""
    photo = Image.open(sources[index % len(sources)]).convert("RGB")
    use = index // len(sources)
    if use:
        w, h = photo.size
        fx, fy = [(0, 0), (0.4, 0), (0, 0.4), (0.4, 0.4), (0.2, 0.2)][use % 5]
        photo = photo.crop((int(fx * w), int(fy * h), int((fx + 0.6) * w), int((fy + 0.6) * h)))
        if use % 2:
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        channels = photo.split()
        order = [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1), (1, 0, 2), (0, 2, 1)][use % 6]
        photo = Image.merge("RGB", [channels[i] for i in order])
        photo = photo.rotate(float(rng.uniform(-8, 8)) + 180 * (use // 6 % 2), resample=Image.Resampling.BICUBIC)
    return photo


def _add_sensor_noise(photo: Image.Image, rng) -> Image.Image:
    """Tile one small noise block over the image (cheap) so JPEGs have a phone's size."""
    tile = rng.integers(-7, 8, size=(256, 256, 3), dtype=np.int16)
    pixels = np.asarray(photo, dtype=np.int16)
    reps = (math.ceil(pixels.shape[0] / 256), math.ceil(pixels.shape[1] / 256), 1)
    noise = np.tile(tile, reps)[: pixels.shape[0], : pixels.shape[1]]
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def _exif(make: str, model: str, taken: datetime, orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = make, model, orientation
    exif[0x0131] = "photodedup sample-library"
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    return exif


def _derive(out: Path, rel_original: str, photo: Image.Image, exifs: tuple[Image.Exif, Image.Exif], kind: str,
            index: int, rng) -> str:
    exif, rotated_exif = exifs
    stem = f"IMG_{index:04d}"
    w, h = photo.size
    if kind == "copy":
        rel = f"Backup/old phone/{stem} (1).jpg"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / rel_original, out / rel)
        return rel
    if kind == "resized":
        rel = f"Exports/{stem}_small.jpg"
        _save(out / rel, photo.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "JPEG", quality=85,
              exif=exif.tobytes())
    elif kind == "reencoded":
        rel = f"Shared/WhatsApp/{stem}-WA.jpg"
        _save(out / rel, photo, "JPEG", quality=60)
    elif kind == "cropped":
        dx, dy = int(w * 0.06), int(h * 0.06)
        rel = f"Edited/{stem}_crop.jpg"
        _save(out / rel, photo.crop((dx, dy, w - dx, h - dy)), "JPEG", quality=90, exif=exif.tobytes())
    elif kind == "rotated":
        # Pixels stored rotated, with an EXIF orientation that turns them back: displays the same.
        rel = f"DCIM/rotated/{stem}_r.jpg"
        _save(out / rel, photo.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90,
              exif=rotated_exif.tobytes())
    elif kind == "brightened":
        rel = f"Edited/{stem}_bright.jpg"
        _save(out / rel, ImageEnhance.Brightness(photo).enhance(1.15), "JPEG", quality=90, exif=exif.tobytes())
    elif kind == "png":
        rel = f"Exports/{stem}.png"
        _save(out / rel, _longest(photo, 1024), "PNG", compress_level=1)
    elif kind == "webp":
        rel = f"Exports/{stem}.webp"
        _save(out / rel, _longest(photo, 1280), "WEBP", quality=80)
    elif kind == "burst":
        shift = int(w * float(rng.uniform(0.015, 0.03)))
        burst = photo.crop((shift, 0, w, h)).resize((w, h), Image.Resampling.BICUBIC)
        rel = f"DCIM/burst/{stem}_BURST002.jpg"
        _save(out / rel, burst, "JPEG", quality=92, exif=exif.tobytes())
    else:  # pragma: no cover
        raise ValueError(kind)
    return rel


def _broken_files(out: Path, seed: int) -> list[str]:
    """Zero bytes, a truncated JPEG, text with an image extension."""
    broken = {"Broken/empty.jpg": b"", "Broken/notes.jpg": b"shopping list: milk, eggs\n" * 20}
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 120, 40)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    broken["Broken/truncated.jpg"] = data[: len(data) // 3]
    for rel, content in broken.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(content)
    return sorted(broken)


def _longest(photo: Image.Image, longest: int) -> Image.Image:
    scale = min(1.0, longest / max(photo.size))  # exports never upscale
    return photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)


def _save(path: Path, image: Image.Image, fmt: str, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **options)
