"""Look-alikes: pictures that look like each other but are different pictures, as labelled negatives.

A phone library is full of them: screenshots of one app with other numbers, pages and receipts from one
template, bursts, brackets, a stereo pair, memes with other text, a photo with an object removed, flat
scenes, solid frames. ``add_lookalikes`` writes ``pairs`` pictures of each kind in ``LOOKALIKES`` (every
picture of a kind is a different picture; all of them are listed as negatives of the first) under
``Lookalikes/``, plus true copies of some of them (``COPIES``: resized, re-encoded, another format,
EXIF-rotated, bordered, cropped up to 10%, grayscale, brightness/contrast, a small corner logo) that
must still be found. ``photodedup sample-library --lookalikes N`` adds them to the sample library's
``truth.json`` (``groups``, ``original``, ``negatives``, ``kinds``); ``eval`` scores them on its
"look-alikes kept apart" line and ``benchmarks/lookalikes.py`` counts what accept-all would lose.

Deterministic: everything follows from the seed. Photos come from ``photos`` (default: the sample
library's source photographs), so ``benchmarks/lookalikes_real.py`` can build a second set from others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from photodedup import formats

PHOTO = (1024, 768)
SCREEN = (540, 1170)
_CAMERA = ("Google", "Pixel 8")


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


class Maker:
    """What one look-alike kind draws from: a photo, a random generator, a capture time."""

    def __init__(self, photo: Image.Image, rng: np.random.Generator, taken: datetime) -> None:
        self.photo, self.rng, self.taken = photo, rng, taken

    def integer(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high))


# -- screens and documents (no camera: never similar shots) ---------------------------------------------
def _screen(title: str, colour: tuple[int, int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", SCREEN, (246, 246, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, SCREEN[0], 60), fill=(250, 250, 250))
    draw.text((24, 14), "9:41", fill=(0, 0, 0), font=_font(26))
    draw.rectangle((0, 60, SCREEN[0], 170), fill=colour)
    draw.text((30, 90), title, fill=(255, 255, 255), font=_font(40))
    return image, draw


def banking(m: Maker, k: int) -> Image.Image:
    image, draw = _screen("My Bank", (20, 90, 170))
    draw.text((40, 260), "Balance", fill=(90, 90, 90), font=_font(34))
    draw.text((40, 310), f"${m.integer(100, 9999):,}.{m.integer(10, 99)}", fill=(10, 10, 10), font=_font(96))
    for row in range(6):
        draw.line((30, 520 + row * 100, SCREEN[0] - 30, 520 + row * 100), fill=(220, 220, 225), width=2)
        draw.text((40, 540 + row * 100), f"Card payment {row + 1}", fill=(40, 40, 40), font=_font(30))
    return image


def chat(m: Maker, k: int) -> Image.Image:
    image, draw = _screen("Alex", (40, 160, 90))
    words = ["see you at", "running late", "ok!", "lunch?", "call me", "on my way", "thanks", "sounds good"]
    for row in range(5):
        right = row % 2
        text = words[(4 + k) % len(words)] if row == 4 else words[row]
        x0 = 200 if right else 30
        draw.rounded_rectangle((x0, 240 + row * 150, x0 + 310, 340 + row * 150), 24,
                               fill=(200, 240, 200) if right else (255, 255, 255))
        draw.text((x0 + 24, 268 + row * 150), text, fill=(0, 0, 0), font=_font(40))
    return image


def weather(m: Maker, k: int) -> Image.Image:
    image, draw = _screen("Weather", (60, 120, 200))
    draw.text((60, 260), f"{m.integer(-9, 35)}\u00b0", fill=(20, 20, 20), font=_font(200))
    for row in range(5):
        draw.text((60, 620 + row * 90), f"Day {row + 1}   {m.integer(0, 30)}\u00b0 / {m.integer(-5, 15)}\u00b0",
                  fill=(40, 40, 40), font=_font(40))
    return image


def feed(m: Maker, k: int) -> Image.Image:
    """A phone feed: the same layout showing other photos."""
    image, draw = _screen("Photos", (200, 60, 120))
    for row in range(3):
        tile = _photo_crop(m.photo, m.rng, (480, 260))
        image.paste(tile, (30, 200 + row * 320))
        draw.text((30, 465 + row * 320), f"{m.integer(1, 999)} likes", fill=(30, 30, 30), font=_font(28))
    return image


def lock_screen(m: Maker, k: int) -> Image.Image:
    image = m.photo.resize(SCREEN[::-1]).rotate(90, expand=True).resize(SCREEN)
    image = ImageEnhance.Brightness(image).enhance(0.6)
    draw = ImageDraw.Draw(image)
    draw.text((90, 180), f"{m.integer(0, 24):02d}:{m.integer(0, 60):02d}", fill=(255, 255, 255), font=_font(150))
    return image


def document(m: Maker, k: int) -> Image.Image:
    image = Image.new("RGB", (850, 1100), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.text((80, 70), "Quarterly report", fill=(0, 0, 0), font=_font(48))
    lines = ["revenue grew in every region", "costs fell after the move", "the new plant opens in May",
             "headcount is unchanged", "prices rise next quarter", "exports doubled", "the audit found nothing"]
    for row in range(14):
        draw.text((80, 180 + row * 60), lines[(row + k * 2) % len(lines)], fill=(30, 30, 30),
                  font=_font(34))
    draw.text((80, 1030), f"page {k + 1}", fill=(90, 90, 90), font=_font(26))
    return image


def slide(m: Maker, k: int) -> Image.Image:
    image = Image.new("RGB", (1280, 720), (250, 250, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 1280, 120), fill=(30, 50, 120))
    titles = ["Roadmap", "Results", "Next steps", "Budget", "Team", "Risks", "Timeline", "Summary"]
    draw.text((60, 30), titles[k % len(titles)], fill=(255, 255, 255), font=_font(60))
    for row in range(4):
        draw.text((100, 200 + row * 110), f"- point {row + 1}: {m.integer(10, 99)}%", fill=(20, 20, 20),
                  font=_font(54))
    return image


def receipt(m: Maker, k: int) -> Image.Image:
    image = Image.new("RGB", (600, 1000), (252, 250, 244))
    draw = ImageDraw.Draw(image)
    draw.text((170, 40), "CORNER SHOP", fill=(0, 0, 0), font=_font(44))
    total = 0
    for row in range(8):
        price = m.integer(100, 2000)
        total += price
        draw.text((50, 160 + row * 70), f"item {row + 1}", fill=(20, 20, 20), font=_font(36))
        draw.text((400, 160 + row * 70), f"{price / 100:6.2f}", fill=(20, 20, 20), font=_font(36))
    draw.text((50, 800), f"TOTAL  {total / 100:8.2f}", fill=(0, 0, 0), font=_font(56))
    return image


def form(m: Maker, k: int) -> Image.Image:
    image = Image.new("RGB", (850, 1100), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.text((80, 60), "Application form", fill=(0, 0, 0), font=_font(50))
    names = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Ken Thompson"]
    for row, label in enumerate(["Name", "City", "Date", "Signature"]):
        y = 200 + row * 140
        draw.text((80, y), label, fill=(60, 60, 60), font=_font(32))
        draw.rectangle((300, y - 10, 780, y + 60), outline=(0, 0, 0), width=3)
    draw.text((320, 200), names[k % len(names)], fill=(0, 0, 120), font=_font(40))
    draw.text((320, 340), ["Oslo", "Lima", "Pune", "Kyiv", "Accra"][m.integer(0, 5)], fill=(0, 0, 120), font=_font(40))
    for box in range(3):
        draw.rectangle((80, 800 + box * 80, 130, 850 + box * 80), outline=(0, 0, 0), width=3)
        if m.integer(0, 2):
            draw.line((85, 825 + box * 80, 125, 845 + box * 80), fill=(0, 0, 120), width=6)
    return image


def chart(m: Maker, k: int) -> Image.Image:
    image = Image.new("RGB", (1000, 700), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for bar in range(6):
        height = m.integer(80, 560)
        draw.rectangle((80 + bar * 150, 640 - height, 180 + bar * 150, 640), fill=(60, 120, 200))
    draw.line((60, 640, 960, 640), fill=(0, 0, 0), width=3)
    return image


def ticket(m: Maker, k: int) -> Image.Image:
    image = Image.new("RGB", (1000, 420), (255, 245, 220))
    draw = ImageDraw.Draw(image)
    draw.text((40, 30), "BOARDING PASS", fill=(120, 20, 20), font=_font(54))
    draw.text((40, 150), f"SEAT {m.integer(1, 40)}{'ABCDEF'[m.integer(0, 6)]}", fill=(0, 0, 0), font=_font(80))
    draw.text((560, 150), f"GATE {m.integer(1, 60)}", fill=(0, 0, 0), font=_font(80))
    return image


# -- photos (camera EXIF: one scene's other captures are similar shots) -------------------------------------
def _photo_crop(photo: Image.Image, rng, size: tuple[int, int]) -> Image.Image:
    w, h = photo.size
    cw, ch = int(w * 0.4), int(w * 0.4 * size[1] / size[0])
    x, y = int(rng.integers(0, max(1, w - cw))), int(rng.integers(0, max(1, h - ch)))
    return photo.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BICUBIC)


def _scene(m: Maker) -> Image.Image:
    return m.photo.resize(PHOTO, Image.Resampling.BICUBIC)


def _ball(image: Image.Image, x: float, y: float, r: float, colour=(230, 200, 30)) -> Image.Image:
    image = image.copy()
    w, h = image.size
    draw = ImageDraw.Draw(image)
    draw.ellipse((w * x - w * r, h * y - w * r, w * x + w * r, h * y + w * r), fill=colour, outline=(60, 40, 0),
                 width=3)
    return image


def burst_moved(m: Maker, k: int) -> Image.Image:
    """A ball that moves between frames (a burst)."""
    return _ball(_scene(m), 0.3 + 0.12 * k, 0.5 + 0.05 * (k % 2), 0.035)


def burst_blink(m: Maker, k: int) -> Image.Image:
    """A face whose eyes close in one frame."""
    image = _scene(m)
    draw = ImageDraw.Draw(image)
    draw.ellipse((380, 250, 640, 560), fill=(235, 190, 160))
    for x in (440, 540):
        if k % 3 == 1:  # eyes shut
            draw.line((x, 370, x + 50, 370), fill=(60, 30, 20), width=6)
        else:  # open, looking ahead (0) or aside (2)
            draw.ellipse((x, 345, x + 50, 395), fill=(255, 255, 255), outline=(60, 30, 20), width=3)
            draw.ellipse((x + 15 + 12 * (k % 3 // 2), 358, x + 35 + 12 * (k % 3 // 2), 382), fill=(40, 30, 20))
    draw.arc((470, 450, 550, 500), 0, 180, fill=(150, 40, 40), width=6)
    return image


def bracket(m: Maker, k: int) -> Image.Image:
    """Exposure brackets: -2, 0, +2 EV (clipped as a sensor clips)."""
    pixels = np.asarray(_scene(m), np.float32) * (2.0 ** (2 * (k % 3) - 2))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def stereo(m: Maker, k: int) -> Image.Image:
    """One of a stereo pair: the background shifts a little, a foreground object a lot (parallax)."""
    w, h = m.photo.size
    shift = int(w * 0.03 * k)
    background = m.photo.crop((shift, 0, shift + int(w * 0.9), h)).resize(PHOTO, Image.Resampling.BICUBIC)
    return _ball(background, 0.45 - 0.08 * k, 0.6, 0.08, colour=(40, 160, 220))


def retake(m: Maker, k: int) -> Image.Image:
    """A retake a minute later: two people (blocks) stand elsewhere."""
    image = _scene(m)
    draw = ImageDraw.Draw(image)
    for person in range(2):
        x = 200 + person * 380 + 70 * k
        draw.rectangle((x, 360, x + 90, 700), fill=(90 + 60 * person, 40, 140 - 50 * person))
        draw.ellipse((x + 10, 280, x + 80, 350), fill=(230, 190, 160))
    return image


def object_removed(m: Maker, k: int) -> Image.Image:
    """A photo with a sign in it, and the same photo with the sign painted out (inpainted)."""
    import cv2

    image = _ball(_scene(m), 0.3, 0.65, 0.04, colour=(200, 60, 200))
    draw = ImageDraw.Draw(image)
    sign = (600, 200, 760, 330)
    draw.rectangle(sign, fill=(250, 250, 240), outline=(0, 0, 0), width=4)
    draw.text((620, 235), "EXIT", fill=(200, 0, 0), font=_font(60))
    if k % 3 == 0:  # both objects; then the sign painted out; then the ball
        return image
    box = sign if k % 3 == 1 else (int(0.26 * PHOTO[0]), int(0.65 * PHOTO[1] - 0.04 * PHOTO[0]),
                                   int(0.34 * PHOTO[0]), int(0.65 * PHOTO[1] + 0.04 * PHOTO[0]))
    pixels = np.asarray(image)
    mask = np.zeros(pixels.shape[:2], np.uint8)
    mask[box[1] - 6:box[3] + 7, box[0] - 6:box[2] + 7] = 255
    return Image.fromarray(cv2.inpaint(pixels, mask, 5, cv2.INPAINT_TELEA))


def meme(m: Maker, k: int) -> Image.Image:
    """The same photo with other meme text (the first is the clean photo)."""
    image = _scene(m)
    if k == 0:
        return image
    texts = ["WHEN THE WIFI DROPS", "MONDAY AGAIN", "ME AT 3 AM", "NOT TODAY", "ONE MORE COFFEE"]
    draw = ImageDraw.Draw(image)
    draw.text((PHOTO[0] // 2, 20), texts[k % len(texts)], fill=(255, 255, 255), font=_font(80), anchor="mt",
              stroke_width=5, stroke_fill=(0, 0, 0))
    draw.text((PHOTO[0] // 2, PHOTO[1] - 20), "EVERY TIME", fill=(255, 255, 255), font=_font(80), anchor="mb",
              stroke_width=5, stroke_fill=(0, 0, 0))
    return image


def caption(m: Maker, k: int) -> Image.Image:
    """A photo, and copies with a caption bar above it (other text each)."""
    image = _scene(m)
    if k == 0:
        return image
    bar = Image.new("RGB", (PHOTO[0], PHOTO[1] + 160), (255, 255, 255))
    bar.paste(image, (0, 160))
    texts = ["my cat has opinions", "best day ever", "guess where I am", "no words", "the view today"]
    ImageDraw.Draw(bar).text((40, 40), texts[k % len(texts)], fill=(0, 0, 0), font=_font(70))
    return bar


def flat_scene(m: Maker, k: int) -> Image.Image:
    """A calm sea: sky and water meet at another height, a boat elsewhere."""
    image = Image.new("RGB", PHOTO, (0, 0, 0))
    pixels = np.zeros((PHOTO[1], PHOTO[0], 3), np.float32)
    horizon = 330 + 40 * k
    rows = np.arange(PHOTO[1], dtype=np.float32)[:, None]
    pixels[..., 0] = np.where(rows < horizon, 150 + rows * 0.1, 20 + rows * 0.05)
    pixels[..., 1] = np.where(rows < horizon, 190 + rows * 0.05, 80 + rows * 0.05)
    pixels[..., 2] = np.where(rows < horizon, 235, 140 - rows * 0.05)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    x = 150 + 230 * k
    draw.polygon([(x, horizon + 40), (x + 120, horizon + 40), (x + 100, horizon + 70), (x + 20, horizon + 70)],
                 fill=(80, 40, 20))
    return image


def solid(m: Maker, k: int) -> Image.Image:
    """Solid frames (a pocket shot, a blank slide) of other colours."""
    colours = [(200, 30, 30), (30, 30, 200), (30, 160, 60), (20, 20, 20), (240, 240, 240), (250, 200, 40)]
    return Image.new("RGB", PHOTO, colours[k % len(colours)])


def puzzle(m: Maker, k: int) -> Image.Image:
    """A game screen: the same grid with other numbers."""
    image = Image.new("RGB", (900, 900), (250, 248, 239))
    draw = ImageDraw.Draw(image)
    for row in range(4):
        for col in range(4):
            value = 2 ** m.integer(1, 11)
            x, y = 30 + col * 215, 30 + row * 215
            draw.rounded_rectangle((x, y, x + 195, y + 195), 12, fill=(238, 228, 218))
            draw.text((x + 40, y + 60), str(value), fill=(119, 110, 101), font=_font(64))
    return image


def calendar(m: Maker, k: int) -> Image.Image:
    image = Image.new("RGB", (1000, 800), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.text((40, 20), ["March", "April", "May", "June", "July"][k % 5], fill=(0, 0, 0), font=_font(60))
    for day in range(35):
        x, y = 40 + (day % 7) * 135, 120 + (day // 7) * 130
        draw.rectangle((x, y, x + 125, y + 120), outline=(200, 200, 200), width=2)
        draw.text((x + 10, y + 8), str(day % 31 + 1), fill=(60, 60, 60), font=_font(30))
    x, y = 40 + m.integer(0, 7) * 135, 120 + m.integer(0, 5) * 130
    draw.rectangle((x + 5, y + 50, x + 120, y + 110), fill=(90, 160, 240))
    return image


#: Look-alike kinds: name -> (maker of picture ``k`` of a set, from a camera). Every picture of a set is
#: a different picture; a camera set's pictures were taken seconds apart (the second category:
#: similar shots), the others have no camera (neither duplicates nor similar shots).
LOOKALIKES: dict[str, tuple[Callable[[Maker, int], Image.Image], bool]] = {
    "screenshot-numbers": (banking, False), "screenshot-chat": (chat, False), "screenshot-weather": (weather, False),
    "screenshot-feed": (feed, False), "lock-screen": (lock_screen, False), "game-numbers": (puzzle, False),
    "document-page": (document, False), "slide": (slide, False), "receipt": (receipt, False), "form": (form, False),
    "chart": (chart, False), "ticket": (ticket, False), "calendar": (calendar, False),
    "burst-moved": (burst_moved, True), "burst-blink": (burst_blink, True), "bracket": (bracket, True),
    "stereo-pair": (stereo, True), "retake": (retake, True), "object-removed": (object_removed, True),
    "meme-text": (meme, False), "caption-bar": (caption, False), "flat-scene": (flat_scene, True),
    "solid-colour": (solid, False),
}


# -- true copies (must still be found) -----------------------------------------------------------------------
def _bordered(image: Image.Image, rng) -> Image.Image:
    return ImageOps.expand(image, border=max(8, image.width // 20), fill=(255, 255, 255) if rng.integers(0, 2)
                           else (0, 0, 0))


def _cropped(image: Image.Image, rng) -> Image.Image:
    w, h = image.size
    share = float(rng.uniform(0.04, 0.10))
    left, top = int(w * share * rng.uniform(0.2, 0.8)), int(h * share * rng.uniform(0.2, 0.8))
    return image.crop((left, top, left + round(w * (1 - share)), top + round(h * (1 - share))))


def _logo(image: Image.Image, rng) -> Image.Image:
    from photodedup.sample_library import stamp_logo

    return stamp_logo(image, 0.6)


#: Copy kinds: name -> (transform, format, save options, keep camera EXIF).
COPIES: dict[str, tuple[Callable, str, dict, bool]] = {
    "resized": (lambda im, rng: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS), "JPEG",
                {"quality": 85}, True),
    "reencoded": (lambda im, rng: im, "JPEG", {"quality": 60}, False),
    "format-changed": (lambda im, rng: im, "WEBP", {"quality": 80}, False),
    "exif-rotated": (lambda im, rng: im.transpose(Image.Transpose.ROTATE_90), "JPEG", {"quality": 90}, True),
    "bordered": (_bordered, "JPEG", {"quality": 92}, False),
    "cropped": (_cropped, "JPEG", {"quality": 90}, True),
    "grayscale": (lambda im, rng: im.convert("L"), "JPEG", {"quality": 92}, True),
    "brightness-contrast": (lambda im, rng: ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(
        float(rng.uniform(1.05, 1.2)))).enhance(float(rng.uniform(0.85, 1.2))), "JPEG", {"quality": 90}, True),
    "watermark": (_logo, "JPEG", {"quality": 95}, False),
}


def _ext(fmt: str) -> str:
    """A format's usual extension, from the format table (``jpg`` for JPEG)."""
    return formats.by_name(fmt).extensions[0][1:]


def _exif(taken: datetime, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = *_CAMERA, orientation
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    return exif.tobytes()


def add_lookalikes(out: Path | str, *, pairs: int = 3, seed: int = 0, photos: Sequence[Path | str] | None = None,
                   kinds: Sequence[str] | None = None, folder: str = "Lookalikes") -> dict:
    """Write ``pairs`` (at least 2) pictures of each look-alike kind, and copies of some, under ``out/folder``.

    Returns truth in the sample library's form: ``groups`` (a picture and its true copies, the picture
    first), ``original``, ``unrelated`` (pictures without copies), ``negatives`` ([picture, look-alike of
    it, the kind]), ``kinds`` (path -> kind; "original" for a picture with copies).
    """
    from photodedup.sample_library import source_photos

    out = Path(out)
    sources = [Path(p) for p in (photos or source_photos())]
    kinds = list(kinds or LOOKALIKES)
    pairs = max(2, pairs)
    truth: dict = {"groups": [], "original": [], "unrelated": [], "negatives": [], "kinds": {}}
    copy_names = sorted(COPIES)
    copy_turn = 0
    for number, kind in enumerate(kinds):
        make, camera = LOOKALIKES[kind]
        rng = np.random.default_rng([seed, number])
        photo = _distinct(Image.open(sources[(number + seed) % len(sources)]).convert("RGB"), number)
        taken = datetime(2024, 1, 1) + timedelta(days=number * 3 + seed, hours=int(rng.integers(8, 20)))
        rels = []
        for k in range(pairs):
            maker = Maker(photo, np.random.default_rng([seed, number, k]), taken)
            picture = make(maker, k)
            when = taken + timedelta(seconds=k)
            fmt = "JPEG" if camera else "PNG"
            rel = f"{folder}/{kind}/{kind}_{k + 1:02d}.{_ext(fmt)}"
            _save(out / rel, picture, fmt, exif=_exif(when) if camera else None)
            rels.append(rel)
            truth["kinds"][rel] = kind
            members = [rel]
            # every other picture gets a true copy (kinds in turn), so copies of look-alikes are found too
            if k % 2 == 0:
                name = copy_names[copy_turn % len(copy_names)]
                copy_turn += 1
                transform, copy_fmt, options, keep_exif = COPIES[name]
                # a copy is made from the file, as any real copy is (never from a better picture than the file)
                with Image.open(out / rel) as saved:
                    copy = transform(saved.convert("RGB"), maker.rng)
                copy_rel = f"{folder}/{kind}/copies/{kind}_{k + 1:02d}_{name}.{_ext(copy_fmt)}"
                orientation = 6 if name == "exif-rotated" else 1
                exif = _exif(when, orientation) if (keep_exif and camera) or name == "exif-rotated" else None
                _save(out / copy_rel, copy, copy_fmt, exif=exif, **options)
                truth["kinds"][copy_rel] = name
                members.append(copy_rel)
            if len(members) > 1:
                truth["groups"].append(members)
                truth["original"].append(rel)
                truth["kinds"][rel] = "original"
            else:
                truth["unrelated"].append(rel)
        truth["negatives"] += [[a, b, kind] for i, a in enumerate(rels) for b in rels[i + 1:]]
    return truth


def _distinct(photo: Image.Image, number: int) -> Image.Image:
    """A picture no sample-library original is a copy of: a mirrored window of 70%, channels reordered."""
    w, h = photo.size
    x, y = int(w * 0.3 * ((number * 7) % 5) / 4), int(h * 0.3 * ((number * 3) % 5) / 4)
    window = photo.crop((x, y, x + int(w * 0.7), y + int(h * 0.7))).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    channels = window.split()
    return Image.merge("RGB", [channels[i] for i in [(1, 2, 0), (2, 0, 1), (2, 1, 0)][number % 3]])


def _save(path: Path, image: Image.Image, fmt: str, *, exif: bytes | None = None, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if exif is not None:
        options["exif"] = exif
    if fmt == "PNG":
        options.setdefault("compress_level", 1)
    image.save(path, fmt, **options)


def make_library(out: Path | str, *, originals: int = 12, megapixels: float = 12.0, seed: int = 0,
                 lookalikes: int = 0) -> dict:
    """``sample_library.make_library``, then ``lookalikes`` pictures of each look-alike kind added to the
    library and its ``truth.json`` (``photodedup sample-library --lookalikes N``)."""
    import json

    from photodedup import sample_library

    summary = sample_library.make_library(out, originals=originals, megapixels=megapixels, seed=seed)
    if not lookalikes:
        return summary
    path = Path(summary["truth"])
    truth = json.loads(path.read_text())
    added = add_lookalikes(out, pairs=lookalikes, seed=seed)
    for key, value in added.items():
        truth[key] = truth.get(key, {}) | value if isinstance(value, dict) else truth.get(key, []) + value
    path.write_text(json.dumps(truth, indent=1) + "\n")
    return summary | {"files": summary["files"] + len(added["kinds"]),
                      "groups": summary["groups"] + len(added["groups"]),
                      "unrelated": summary["unrelated"] + len(added["unrelated"]), "lookalikes": len(added["kinds"])}


def distinct_pictures(truth: dict) -> list[list[str]]:
    """Every distinct picture of a truth as the list of its files (a group, or one file)."""
    grouped = {p for g in truth["groups"] for p in g}
    singles = {p for p in truth.get("unrelated", []) if p not in grouped}
    singles |= {p for pair in truth.get("negatives", []) for p in pair if p not in grouped}
    return [list(g) for g in truth["groups"]] + [[p] for p in sorted(singles)]

