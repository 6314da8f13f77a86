"""A realistic, deterministic sample library built from photographs shipped inside installed packages.

Originals at phone resolution (JPEG with EXIF: camera, date taken), near-duplicates of them (the
``DERIVATIVES`` table: resized, re-encoded, 6% and 10% crops, EXIF-rotated, turned without a tag,
mirrored, brightened, bordered, watermarked, grayscale with the camera's EXIF, full-resolution exports,
PNG/WebP conversions, burst shifts, exact copies under other names), camera RAW+JPEG pairs (a DNG beside
every fourth original, from the second: with an embedded preview, every other one without), unrelated
photos, look-alikes that are not duplicates (``NEGATIVES``: half a photo stretched to the full size,
beside every fourth original from the third) and broken files, plus ``truth.json``::

    {"groups": [[relative paths]], "original": [each group's camera original], "unrelated": [...],
     "negatives": [[original, look-alike]], "broken": [...], "kinds": {path: kind}, "pairs": [[jpeg, raw]]}

Everything follows from the seed; sizes from a few dozen files (tests) to thousands (benchmarks). Pictures
that look alike and are not copies (``sample-library --lookalikes``) are made by ``lookalikes.py`` beside it.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from photodedup.dng import require_pidng, write_dng
from photodedup.errors import BadInputError
from photodedup.executor import worker_pool

#: Sources used whole only: repeating textures (any two pieces look alike) and the retina (its quarters
#: are mirror images of each other).
_ONCE = {"brick", "grass", "gravel", "retina"}
_CAMERAS = [("Apple", "iPhone 14 Pro"), ("samsung", "SM-S918B"), ("Google", "Pixel 8"), ("Canon", "EOS R6"),
            ("FUJIFILM", "X-T5"), ("SONY", "ILCE-7M4")]


def source_photos() -> list[Path]:
    """Photographs shipped inside installed packages (scikit-image, scikit-learn, matplotlib), found where the
    packages are installed without importing them (scikit-learn's import alone is a second of CPU)."""
    import importlib.util

    found: list[Path] = []
    for package, folder, names in [
        ("skimage", "data", ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg",
                             "motorcycle_left.png", "retina.jpg", "ihc.png", "camera.png", "moon.png", "coins.png",
                             "brick.png", "grass.png", "gravel.png", "horse.png", "page.png"]),
        ("sklearn", "datasets/images", ["china.jpg", "flower.jpg"]),
        ("matplotlib", "", ["mpl-data/sample_data/grace_hopper.jpg"]),
    ]:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        base = Path(next(iter(spec.submodule_search_locations))) / folder
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
        with worker_pool(workers) as pool:
            results = list(pool.map(_make_original, jobs))
    else:
        results = [_make_original(job) for job in jobs]

    truth: dict = {"groups": [], "original": [], "unrelated": [], "negatives": [], "broken": [], "kinds": {},
                   "pairs": []}
    for members, kinds, negatives in results:
        truth["kinds"].update(kinds | negatives)
        truth["pairs"] += [[members[0], p] for p in members if kinds[p] == "raw"]
        if len(members) > 1:
            truth["groups"].append(members)
            truth["original"].append(members[0])
        else:
            truth["unrelated"].append(members[0])
        truth["unrelated"] += list(negatives)
        truth["negatives"] += [[members[0], p] for p in negatives]
    truth["broken"] = _broken_files(out, seed)
    truth["kinds"].update({p: "broken" for p in truth["broken"]})
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    files = sum(len(m) + len(n) for m, _, n in results) + len(truth["broken"])
    return {"root": str(out), "truth": str(out / "truth.json"), "files": files,
            "groups": len(truth["groups"]), "unrelated": len(truth["unrelated"]), "broken": len(truth["broken"])}


def _make_original(job) -> tuple[list[str], dict[str, str], dict[str, str]]:
    out, sources, index, megapixels, seed = job
    out = Path(out)
    rng = np.random.default_rng([seed, index])
    photo = original_photo(sources, index, rng)
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
        return members, kinds, {}
    if index % 4 == 1:  # shot RAW+JPEG: the DNG beside the JPEG is the same shot
        rel_raw = f"DCIM/{year}/IMG_{index:04d}.dng"
        preview = None if index % 8 == 5 else 1620
        write_dng(out / rel_raw, photo, make=make, model=model, taken=taken, preview=preview)
        members.append(rel_raw)
        kinds[rel_raw] = "raw"
    shot = Shot(out, rel_original, photo, exif, rotated_exif, f"IMG_{index:04d}", rng)
    count = int(rng.integers(2, 5))
    for kind in rng.choice(sorted(DERIVATIVES), size=count, replace=False):
        rel = DERIVATIVES[str(kind)](shot)
        members.append(rel)
        kinds[rel] = str(kind)
    negatives = {}
    if index % 4 == 2:
        for kind, make in NEGATIVES.items():
            negatives[make(shot)] = kind
    return members, kinds, negatives


def original_photo(sources: list[str], index: int, rng) -> Image.Image:
    """A photo unlike every other index: each source once, then quarters of them, recoloured and tilted,
    then scenes drawn from the rng (at any size, no two alike).

    The ``r``-th reuse takes quarter ``r // len(varied)`` of source ``r % len(varied)``: quarters do not
    overlap, and one covers too little of its whole photo to be a crop of it (``_ONCE`` sources are used
    whole only). Past four quarters of every source, any further piece of a photo would overlap one
    used already (the same picture twice, and the library's truth wrong): each further original is a
    scene of its own (``_scene``).
    """
    if index < len(sources):
        return Image.open(sources[index]).convert("RGB")
    varied = [s for s in sources if Path(s).stem not in _ONCE]
    reuse = index - len(sources)
    if index >= first_scene(sources):
        return _scene(rng, index - first_scene(sources))
    photo = Image.open(varied[reuse % len(varied)]).convert("RGB")
    w, h = photo.size
    quarter = reuse // len(varied)
    fx, fy = (quarter % 2) * 0.5, (quarter // 2) * 0.5
    photo = photo.crop((int(fx * w), int(fy * h), int((fx + 0.5) * w), int((fy + 0.5) * h)))
    channels = photo.split()
    order = [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1), (1, 0, 2), (0, 2, 1)][reuse % 6]
    photo = Image.merge("RGB", [channels[i] for i in order])
    angle = float(rng.uniform(-8, 8))
    turned = photo.rotate(angle, resample=Image.Resampling.BICUBIC)
    # without the black corners the turn leaves: every quarter had them in the same places, which drew
    # the hashes of different quarters together (a moon and a cat 12 bits apart)
    width, height = _inside_turned(turned.width, turned.height, math.radians(angle))
    left, top = (turned.width - width) // 2, (turned.height - height) // 2
    return turned.crop((left, top, left + width, top + height))


def _inside_turned(w: int, h: int, angle: float) -> tuple[int, int]:
    """The largest upright rectangle inside a ``w`` x ``h`` picture turned by ``angle`` (radians)."""
    sin_a, cos_a = abs(math.sin(angle)), abs(math.cos(angle))
    long, short = max(w, h), min(w, h)
    if short <= 2 * sin_a * cos_a * long or abs(sin_a - cos_a) < 1e-10:
        half = 0.5 * short
        width, height = (half / sin_a, half / cos_a) if w >= h else (half / cos_a, half / sin_a)
    else:
        cos_2a = cos_a * cos_a - sin_a * sin_a
        width, height = (w * cos_a - h * sin_a) / cos_2a, (h * cos_a - w * sin_a) / cos_2a
    return int(width) - 1, int(height) - 1


def first_scene(sources: list[str]) -> int:
    """The index of the first original that is a scene: past every source whole and every quarter."""
    return len(sources) + 4 * sum(Path(s).stem not in _ONCE for s in sources)


#: The generator polynomial of the binary BCH code of length 31 with 11 message bits, minimum
#: distance 11 (octal 5423325, the roots alpha^1..alpha^10 of GF(32)): any two of its 2,048 codewords
#: differ in at least 11 of 31 bits.
_BCH_31_11 = 0o5423325
SCENE_CODES = 2048


def scene_bits(number: int, rng) -> np.ndarray:
    """The 64 pHash bits scene ``number`` is drawn to have: 1 for the DC term (always above the median),
    then the 31 bits of a BCH codeword each as a pair (bit, not bit), then 0: always 32 ones, so the
    median splits them exactly, and two scenes differ in at least 22 bits (twice the code's distance).
    Past ``SCENE_CODES`` scenes the word is drawn from ``rng`` (distinct with high probability only)."""
    if number < SCENE_CODES:
        word, generator = 0, _BCH_31_11
        while number:  # the codeword: number(x) * g(x) over GF(2)
            if number & 1:
                word ^= generator
            number, generator = number >> 1, generator << 1
    else:
        word = int(rng.integers(0, 2**31))
    code = [(word >> i) & 1 for i in range(31)]
    return np.array([1, *(b for bit in code for b in (bit, 1 - bit)), 0], dtype=np.int8)


def _scene(rng, number: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A picture of its own: a smooth field whose low frequencies spell ``scene_bits`` (its perceptual
    hash, so no two scenes are near), in two colours from ``rng``, under small shapes (local features)."""
    import scipy.fftpack

    bits = scene_bits(number, rng)
    ramp = 1 + np.linspace(0, 0.5, 64)[rng.permutation(64)]  # distinct magnitudes: a stable median
    coefficients = np.where(bits == 1, ramp, -ramp).reshape(8, 8)
    coefficients[0, 0] = 0  # the DC term: the brightness, set by the colours below
    low = np.zeros((32, 32))
    low[:8, :8] = coefficients
    pattern = scipy.fftpack.idct(scipy.fftpack.idct(low, axis=0), axis=1)
    pattern = (pattern - pattern.min()) / (np.ptp(pattern) or 1.0)
    dark, light = _two_colours(rng)
    field = (dark + (light - dark) * pattern[..., None]).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(field).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    w, h = size
    # shapes in pairs, one each side of the background's colour: edges for local features, and no change
    # of the low frequencies (the pair's mean is the background), so the hash stays the scene's own
    for _ in range(int(rng.integers(20, 30))):
        extent = w * float(rng.uniform(0.02, 0.07))
        x, y = float(rng.uniform(0.02, 0.9)) * w, float(rng.uniform(0.02, 0.9)) * h
        ground = field[min(int(y * 32 / h), 31), min(int(x * 32 / w), 31)].astype(np.float64)
        step = rng.uniform(-90, 90, 3)
        step *= min(1.0, *(((255 - ground) / np.maximum(np.abs(step), 1e-6)).tolist()),
                    *((ground / np.maximum(np.abs(step), 1e-6)).tolist()))  # both colours in range
        shape, stretch, corners = int(rng.integers(0, 3)), float(rng.uniform(0.4, 1.6)), int(rng.integers(3, 7))
        angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
        for sign, dx in ((1, 0.0), (-1, extent * 1.1)):
            colour = tuple(int(round(c)) for c in ground + sign * step)
            left = x + dx
            if shape == 0:
                draw.ellipse((left, y, left + extent, y + extent * stretch), fill=colour)
            elif shape == 1:
                draw.rectangle((left, y, left + extent, y + extent * stretch), fill=colour)
            else:
                draw.polygon([(left + extent / 2 * (1 + float(np.cos(a))), y + extent / 2 * (1 + float(np.sin(a))))
                              for a in angles], fill=colour)
    return image


def _two_colours(rng) -> tuple[np.ndarray, np.ndarray]:
    """A dark and a light colour of any hue, far apart in luminance (the field's pattern must show in grey)."""
    luma = np.array([0.299, 0.587, 0.114])
    while True:
        dark, light = rng.integers(0, 256, 3).astype(np.float64), rng.integers(0, 256, 3).astype(np.float64)
        if luma @ light - luma @ dark > 110:
            return dark, light


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


@dataclass
class Shot:
    """What a derivative is made from: the original's pixels and metadata, where to write, the rng."""

    out: Path
    rel_original: str
    photo: Image.Image
    exif: Image.Exif
    rotated_exif: Image.Exif      # the same, with orientation 6 (turn 90 clockwise to display)
    stem: str
    rng: np.random.Generator

    def save(self, rel: str, image: Image.Image, fmt: str = "JPEG", *, camera_exif: bool = True,
             **options) -> str:
        _save(self.out / rel, image, fmt, **({"exif": self.exif.tobytes()} if camera_exif else {}), **options)
        return rel


def _copy(s: Shot) -> str:
    rel = f"Backup/old phone/{s.stem} (1).jpg"
    (s.out / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(s.out / s.rel_original, s.out / rel)
    return rel


def _crop(s: Shot, share: float, rel: str) -> str:
    """Cut ``share`` of the width and of the height, split between the sides at random."""
    w, h = s.photo.size
    left, top = int(w * share * s.rng.uniform(0.2, 0.8)), int(h * share * s.rng.uniform(0.2, 0.8))
    box = (left, top, left + round(w * (1 - share)), top + round(h * (1 - share)))
    return s.save(rel, s.photo.crop(box), quality=90)


def _burst(s: Shot) -> str:
    w, h = s.photo.size
    shift = int(w * float(s.rng.uniform(0.015, 0.03)))
    burst = s.photo.crop((shift, 0, w, h)).resize((w, h), Image.Resampling.BICUBIC)
    return s.save(f"DCIM/burst/{s.stem}_BURST002.jpg", burst, quality=92)


def _bordered(s: Shot) -> str:
    w, h = s.photo.size
    colour = [(0, 0, 0), (255, 255, 255), (38, 38, 42)][int(s.rng.integers(0, 3))]
    border = (int(w * s.rng.uniform(0.03, 0.08)), int(h * s.rng.uniform(0.03, 0.08)))
    return s.save(f"Edited/{s.stem}_frame.jpg", ImageOps.expand(s.photo, border=border, fill=colour), quality=95)


def _watermarked(s: Shot) -> str:
    """A corner logo and caption, saved at quality 100 (bigger than the original) by a tool that drops EXIF."""
    return s.save(f"Shared/Instagram/{s.stem}_wm.jpg", stamp_logo(s.photo), camera_exif=False, quality=100)


def stamp_logo(photo: Image.Image, scale: float = 1.0) -> Image.Image:
    """A copy with a studio's logo and caption in the lower right corner (the same on every photo);
    ``scale`` makes it larger than the sample library's."""
    image = photo.copy()
    w, h = image.size
    draw = ImageDraw.Draw(image, "RGBA")
    box_w, box_h = int(w * 0.24 * scale), int(h * 0.08 * scale)
    x0, y0 = w - box_w - int(w * 0.03), h - box_h - int(h * 0.03)
    draw.rectangle((x0, y0, x0 + box_w, y0 + box_h), fill=(255, 255, 255, 150))
    draw.ellipse((x0 + box_h // 6, y0 + box_h // 6, x0 + box_h * 5 // 6, y0 + box_h * 5 // 6), fill=(200, 30, 30, 220))
    font = ImageFont.load_default(size=max(10, box_h // 2))
    draw.text((x0 + box_h, y0 + box_h // 5), "(c) studio", fill=(20, 20, 20, 230), font=font)
    return image


def plain_backdrop(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A smooth colour field with no detail of its own (a sky, a studio wall)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)


def _different_crop(s: Shot) -> str:
    """Not a duplicate: one half of the photo stretched back to the full size (another picture)."""
    w, h = s.photo.size
    half = (0, 0, w // 2, h) if s.rng.integers(0, 2) else (w - w // 2, 0, w, h)
    return s.save(f"Edited/{s.stem}_detail.jpg", s.photo.crop(half).resize((w, h), Image.Resampling.BICUBIC),
                  quality=92)


#: Derivative kinds: name -> maker (writes one file, returns its path relative to the library). Each
#: group draws 2-4 of them. To add a kind, add an entry (and a line to the module docstring).
DERIVATIVES: dict[str, Callable[[Shot], str]] = {
    "copy": _copy,
    "resized": lambda s: s.save(f"Exports/{s.stem}_small.jpg", s.photo.resize(
        (s.photo.width // 2, s.photo.height // 2), Image.Resampling.LANCZOS), quality=85),
    "reencoded": lambda s: s.save(f"Shared/WhatsApp/{s.stem}-WA.jpg", s.photo, camera_exif=False, quality=60),
    "cropped": lambda s: s.save(f"Edited/{s.stem}_crop.jpg", s.photo.crop((
        int(s.photo.width * 0.06), int(s.photo.height * 0.06), s.photo.width - int(s.photo.width * 0.06),
        s.photo.height - int(s.photo.height * 0.06))), quality=90),
    "cropped10": lambda s: _crop(s, 0.10, f"Edited/{s.stem}_crop10.jpg"),
    # Pixels stored rotated, with an EXIF orientation that turns them back: displays the same.
    "rotated": lambda s: _save_rel(s, f"DCIM/rotated/{s.stem}_r.jpg", s.photo.transpose(Image.Transpose.ROTATE_90),
                                   exif=s.rotated_exif.tobytes()),
    # Pixels turned and no orientation tag: displays turned (an editor's "rotate" saved as pixels).
    "turned": lambda s: s.save(f"Edited/{s.stem}_turned.jpg", s.photo.transpose(
        [Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_180][
            int(s.rng.integers(0, 3))]), quality=90),
    "mirrored": lambda s: s.save(f"Edited/{s.stem}_mirror.jpg", s.photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                                 quality=90),
    "brightened": lambda s: s.save(f"Edited/{s.stem}_bright.jpg", ImageEnhance.Brightness(s.photo).enhance(1.15),
                                   quality=90),
    "bordered": _bordered,
    "watermarked": _watermarked,
    # A black-and-white edit that kept the camera's EXIF, saved at quality 100 (bigger than the original).
    "grayscale": lambda s: s.save(f"Edited/{s.stem}_bw.jpg", s.photo.convert("L"), quality=100),
    # An editor's full-resolution export at quality 100 without the camera's EXIF.
    "export": lambda s: s.save(f"Exports/full/{s.stem}_export.jpg", s.photo, camera_exif=False, quality=100,
                               subsampling=0),
    "png": lambda s: s.save(f"Exports/{s.stem}.png", _longest(s.photo, 1024), "PNG", camera_exif=False,
                            compress_level=1),
    "webp": lambda s: s.save(f"Exports/{s.stem}.webp", _longest(s.photo, 1280), "WEBP", camera_exif=False,
                             quality=80),
    "burst": _burst,
}
#: Files that look related but are not duplicates (listed under ``unrelated``; grouping them with their
#: source is a precision error). Added beside every fourth original, from the third.
NEGATIVES: dict[str, Callable[[Shot], str]] = {"different-crop": _different_crop}


def _save_rel(s: Shot, rel: str, image: Image.Image, **options) -> str:
    _save(s.out / rel, image, "JPEG", quality=90, **options)
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
