"""A second near-duplicate set, unlike the sample library, to check the defaults were not tuned to it.

    PYTHONPATH=. .venv/bin/python benchmarks/second_set.py /tmp/second --originals 60
    PYTHONPATH=. .venv/bin/python -m photodedup scan /tmp/second --catalog /tmp/second.sqlite
    PYTHONPATH=. .venv/bin/python -m photodedup eval --catalog /tmp/second.sqlite --truth /tmp/second/truth.json

Different content (procedural scenes: smooth backgrounds and random shapes, not photographs), other
edit strengths and a different mix: crops of 8-18% off one corner, mirrors, flips, turns of 90/270
degrees without a tag, coloured borders of 2-10% on some sides only, a caption watermark at the top
left, grayscale, a 40% resize re-encoded at quality 70, contrast and saturation edits, a PNG export. The
look-alikes that must stay apart: the top half of a scene stretched to the full size, and a 45%
corner of it enlarged. ``truth.json`` has the sample library's shape (groups, original, unrelated,
negatives, kinds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from group_verify_scale import scene
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

SIZE = (1600, 1200)


def _save(root: Path, rel: str, image: Image.Image, **options) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return rel


def _corner_crop(image: Image.Image, rng) -> Image.Image:
    share = rng.uniform(0.08, 0.18)
    w, h = image.size
    x, y = (0 if rng.integers(0, 2) else int(w * share)), (0 if rng.integers(0, 2) else int(h * share))
    return image.crop((x, y, x + int(w * (1 - share)), y + int(h * (1 - share))))


def _border(image: Image.Image, rng) -> Image.Image:
    w, h = image.size
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    side = int(w * rng.uniform(0.02, 0.10))
    top = int(h * rng.uniform(0.02, 0.10)) if rng.integers(0, 2) else 0
    return ImageOps.expand(image, border=(side, top, side, top), fill=colour)


def _caption(image: Image.Image) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out, "RGBA")
    w, h = out.size
    draw.rectangle((int(w * 0.02), int(h * 0.02), int(w * 0.35), int(h * 0.09)), fill=(0, 0, 0, 120))
    draw.text((int(w * 0.03), int(h * 0.025)), "holiday 2024", fill=(255, 255, 255, 230),
              font=ImageFont.load_default(size=int(h * 0.05)))
    return out


EDITS = {
    "crop": lambda im, rng: _corner_crop(im, rng),
    "mirror": lambda im, rng: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "flip": lambda im, rng: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "turn": lambda im, rng: im.transpose(
        Image.Transpose.ROTATE_90 if rng.integers(0, 2) else Image.Transpose.ROTATE_270),
    "border": _border,
    "caption": lambda im, rng: _caption(im),
    "gray": lambda im, rng: im.convert("L"),
    "small": lambda im, rng: im.resize((im.width * 2 // 5, im.height * 2 // 5), Image.Resampling.BILINEAR),
    "contrast": lambda im, rng: ImageEnhance.Color(ImageEnhance.Contrast(im).enhance(1.3)).enhance(0.7),
}
LOOK_ALIKES = {
    "top-half-stretched": lambda im: im.crop((0, 0, im.width, im.height // 2)).resize(im.size),
    "corner-enlarged": lambda im: im.crop((0, 0, int(im.width * 0.45), int(im.height * 0.45))).resize(im.size),
}


def make(root: Path, originals: int, seed: int = 11) -> dict:
    truth: dict = {"groups": [], "original": [], "unrelated": [], "negatives": [], "kinds": {}}
    for index in range(originals):
        rng = np.random.default_rng([seed, index])
        photo = scene(seed * 100_000 + index, SIZE)
        noise = rng.integers(-5, 6, (SIZE[1], SIZE[0], 1))
        photo = Image.fromarray(np.clip(np.asarray(photo, np.int16) + noise, 0, 255).astype(np.uint8))
        original = _save(root, f"camera/P{index:04d}.JPG", photo, quality=90)
        truth["kinds"][original] = "original"
        if index % 5 == 4:
            truth["unrelated"].append(original)
            continue
        members = [original]
        for kind in rng.choice(sorted(EDITS), size=int(rng.integers(2, 5)), replace=False):
            edited = EDITS[str(kind)](photo, rng)
            if kind == "contrast" and rng.integers(0, 2):
                rel = _save(root, f"edits/P{index:04d}_{kind}.png", edited)
            else:
                rel = _save(root, f"edits/P{index:04d}_{kind}.jpg", edited, quality=70 if kind == "small" else 88)
            members.append(rel)
            truth["kinds"][rel] = str(kind)
        truth["groups"].append(members)
        truth["original"].append(original)
        if index % 3 == 0:
            name = sorted(LOOK_ALIKES)[index // 3 % len(LOOK_ALIKES)]
            rel = _save(root, f"other/P{index:04d}_{name}.jpg", LOOK_ALIKES[name](photo), quality=88)
            truth["unrelated"].append(rel)
            truth["negatives"].append([original, rel])
            truth["kinds"][rel] = name
    (root / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--originals", type=int, default=60)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    truth = make(args.out, args.originals, args.seed)
    files = sum(len(g) for g in truth["groups"]) + len(truth["unrelated"])
    print(f"{files} files, {len(truth['groups'])} groups, {len(truth['negatives'])} look-alikes in {args.out}")


if __name__ == "__main__":
    main()
