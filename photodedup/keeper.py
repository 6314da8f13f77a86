"""Which member of a duplicate group to keep: the camera original, by rules in a documented order.

Reference folders (``--prefer DIR``) come first and always: a file under one always wins, and no
file under one is ever proposed for the trash. Then the rules, in this order unless told otherwise
(``--keeper-rules``):

1. ``not-derivative``, which is seven rules in a row:
   ``raw-pair``: a RAW+JPEG pair (one shot the camera wrote as two files, kept or trashed together)
   over single files: the RAW is the original;
   ``provenance``: a file made from another member's pixels loses to it, by JPEG forensics
   (``photodedup.provenance``, on files of the same size): a file whose DCT sits on a JPEG member's
   quantization lattice (as is, or scaled by a contrast change) and holds its coefficients, or where
   clipping lost the lattice holds its decoded coefficients times one gain, was decoded
   from that JPEG (a PNG export, a re-save at a higher quality), and a JPEG whose DCT is a lossless
   member's rounded to its own table, at its nonzero lattice points (a zero agrees with any small value: a
   tone edit of the picture the camera saved is no source of the camera JPEG), was encoded from it (the JPEG
   copy of a screenshot, whatever EXIF it carries);
   ``colour``: a colour photo over a grayscale copy (when the group holds colour photos at all), when the
   copy holds no colour at all or the photo's colour is clear (``GREY_SPREAD``, ``CLEAR_COLOUR_SPREAD``);
   ``no-mark``: the clean picture over a copy with an added watermark or logo (``Member.added_mark``,
   set by the pixel-level pair check: the copy differs from another member in one small region that
   holds more edges on its side; ``photodedup.difference.mark_members``);
   ``no-border``: a photo without an added uniform border over one with (the scan measures the
   content inside uniform borders) when the border is explained by another member: a member without
   a border has as much content, or the bordered one's content is another member's whole picture, or its
   canvas is another member's with one margin all round (a photo's own uniform background trims like a
   border, and must not lose to a crop of it);
   ``camera-format``: a camera format (JPEG, HEIC, RAW: ``original`` in photodedup/formats.py) over an
   export (PNG, WebP, TIFF, GIF, BMP),
   unless the export is a graphic (a screenshot, a drawing: a lossless file under
   ``GRAPHIC_MAX_BYTES_PER_PIXEL``, where a photograph's noise takes more) and no member shows a
   camera (a RAW, or camera EXIF: make or model); then the JPEG is its copy, and ``lossless`` decides;
   and only when a camera-format member has at least the export's pixels (a smaller one cannot be the
   export's source);
   ``not-resaved``: any file over a JPEG re-saved at maximum quality (all-ones quantization tables,
   which cameras never write; such a re-save is larger than its original without being better).
2. ``resolution``: the most pixels of *content* (inside any border), not of the canvas; content sizes
   within 1% of each other are equal (trimming a border finds a few pixels more or less in each copy),
   and so are pictures on canvases of the same size (a border adds canvas); against a lossless file, a
   lossy file's trimmed content counts without its JPEG ringing (``RINGING_PX`` on each trimmed side).
3. ``exif``: camera EXIF (make and model, capture time) over none.
4. ``lossless``: a lossless file (PNG, BMP, TIFF) over a lossy one (JPEG, WebP, HEIC) of the same
   content resolution: the screenshot over its JPEG copy (every JPEG of it lost something).
5. ``quality``: the higher JPEG quality (of its quantization tables, libjpeg's scale) over a lower one
   by ``QUALITY_MARGIN`` or more, at the same content resolution: a re-save at a lower quality lost detail.
6. ``size``: the larger file, but only against files of the same format and content resolution, in
   either orientation (a bigger PNG or a bigger canvas says nothing about which is the original).
7. ``oldest``: the earliest capture time, then the earliest modification time.

Each rule keeps the members that score best on it and drops the rest; the first member by path
breaks a tie that survives every rule. The keeper's reason names every rule that dropped someone,
and each dropped member carries a note with the rule that decided against it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from photodedup import formats, hashing, provenance
from photodedup.capture_time import sort_key
from photodedup.errors import BadInputError

if TYPE_CHECKING:
    from photodedup.duplicate_groups import Member

RULES = ("raw-pair", "provenance", "colour", "no-mark", "no-border", "camera-format", "not-resaved", "resolution",
         "exif", "lossless", "quality", "size", "oldest")
ALIASES = {"not-derivative": ("raw-pair", "provenance", "colour", "no-mark", "no-border", "camera-format",
                              "not-resaved")}
DEFAULT_RULES = ("not-derivative", "resolution", "exif", "lossless", "quality", "size", "oldest")
#: A lossless file smaller than this many bytes a pixel is a graphic (a screenshot, a drawing: flat
#: colours and text compress to 0.05-0.3); a photograph's noise does not compress (1.1-3 as PNG, 0.6 for
#: a smooth picture upscaled 3x). Measured in docs/BENCHMARKS.md "Keeper accuracy".
GRAPHIC_MAX_BYTES_PER_PIXEL = 0.5
#: Quality estimates from the tables of two encoders at one setting differ by a point or two; a re-save
#: that loses detail (a messenger's 60-80 against a camera's 90-95) differs by far more.
QUALITY_MARGIN = 5
#: A border narrower than this share of the canvas (on one side or both together) is the photo's own
#: dark or flat edge, not an added border: natural photos trim by up to ~1% (24 px of 4000 on the
#: sample library), and added borders are wider.
BORDER_MIN_SHARE = 0.02
#: Two pictures have the same shape when their aspect ratios differ by less than this (a frame keeps
#: the shape of the picture inside it; a photo's own trimmed background rarely does, to 0.5%).
ASPECT_TOLERANCE = 0.005
#: A bordered member's content is another member's whole picture (a frame around it) when it holds at
#: least this share of that picture's pixels: a frame copy's own canvas, larger than the original, holds
#: the original's content whatever the original's own flat edge trims (the sample library's IMG_0026 at
#: seed 3: the original trimmed 2.6% of white page margin, 77% of the frame copy's canvas, and lost).
FRAMED_MIN_SHARE = 0.9
#: A frame's margins may differ by this many pixels between the two axes (a border of a share of the
#: picture, rounded; ``ImageOps.expand`` adds the same on every side).
FRAME_ROUNDING = 2
#: Content sizes closer than this share are the same resolution: a copy turned 90 degrees trims its
#: border a few pixels differently from the original (2784x3720 against 3720x2776 on the sample
#: library), which must not make it "higher resolution". A real resize changes the size far more.
RESOLUTION_TOLERANCE = 0.01
#: JPEG's ringing around an edge stays inside the block that holds the edge (16x16 pixels for colour at
#: 4:2:0 subsampling), so a lossy file's trimmed content can reach this many pixels past the picture's edge
#: on each trimmed side, into a uniform margin: at most 13 px measured (the look-alike library's PNG
#: screenshots, slides and tickets saved at quality 60-95; docs/BENCHMARKS.md). A lossy copy's trimmed content
#: is no larger than a lossless file's while it is larger by no more than that.
RINGING_PX = 16


def expand_rules(names: Sequence[str] | str) -> tuple[str, ...]:
    """Rule names (or ``not-derivative``) in order, comma-separated or a list, checked and expanded."""
    if isinstance(names, str):
        names = [n for n in names.split(",")]
    out: list[str] = []
    for name in (n.strip().lower() for n in names):
        if not name:
            continue
        for rule in ALIASES.get(name, (name,)):
            if rule not in RULES:
                raise BadInputError(f"unknown keeper rule {name!r}",
                                    hint=f"choose from: {', '.join([*ALIASES, *RULES])}")
            if rule in out:
                raise BadInputError(f"keeper rule {rule!r} is listed twice")
            out.append(rule)
    if not out:
        raise BadInputError("no keeper rules given", hint=f"the default is {','.join(DEFAULT_RULES)}")
    return tuple(out)


def reference_folders(folders: Sequence[str | Path]) -> tuple[str, ...]:
    """Absolute, normalised reference folders (``--prefer``); each must exist."""
    out = []
    for folder in folders:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise BadInputError(f"--prefer {folder}: no such folder")
        out.append(str(path))
    return tuple(dict.fromkeys(out))


def in_folders(path: str, folders: Sequence[str]) -> bool:
    """Whether ``path`` lies under one of ``folders`` (absolute, normalised)."""
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


@dataclass(frozen=True)
class Choice:
    keeper: int                                   # file id
    reason: str                                   # every rule that dropped someone, in order
    notes: dict[int, str] = field(default_factory=dict)  # file id -> why it is not the keeper


def choose(members: Sequence[Member], rules: Sequence[str] = DEFAULT_RULES,
           prefer: Sequence[str] = ()) -> Choice:
    """Apply reference folders then ``rules`` (see the module doc) to the members of one group."""
    steps = ([_reference(prefer)] if prefer else []) + [RULE_BY_NAME[name] for name in expand_rules(rules)]
    left = sorted(members, key=lambda m: m.path)
    decided: list[tuple[Rule, list[Member]]] = []  # each rule that dropped someone, with whom
    notes: dict[int, str] = {}
    for rule in steps:
        if len(left) == 1:
            break
        kept = rule.best(left)
        if len(kept) < len(left):
            dropped = [m for m in left if m not in kept]
            for m in dropped:
                notes[m.file_id] = rule.note(m, next((k for k in kept if rule.better(k, m)), kept[0]))
            decided.append((rule, dropped))
            left = kept
    keeper = left[0]
    reasons = [rule.reason(keeper, dropped) for rule, dropped in decided]
    if len(left) > 1:
        reasons.append("all else equal: first by path")
        for m in left[1:]:
            notes[m.file_id] = "equal to the keeper by every rule (the keeper comes first by path)"
    return Choice(keeper.file_id, "; ".join(reasons), notes)


@dataclass(frozen=True)
class Rule:
    """One keeper rule: a member stays unless another one ``better`` than it is in the group."""

    name: str
    better: Callable[[Member, Member], bool]     # whether a beats b on this rule
    reason: Callable[[Member, list[Member]], str]  # why this winner won (against the dropped members)
    note: Callable[[Member, Member], str]        # why this member lost, against a winner
    #: Instead of ``better``: which members stay, when that depends on all of them (``no-border``).
    select: Callable[[Sequence[Member]], list[Member]] | None = None

    def best(self, members: Sequence[Member]) -> list[Member]:
        if self.select is not None:
            return self.select(members)
        return [m for m in members if not any(self.better(other, m) for other in members)]


def lower(key: Callable[[Member], object]) -> Callable[[Member, Member], bool]:
    """``better`` for a rule that ranks by one key: the lower key wins."""
    return lambda a, b: key(a) < key(b)


def _reference(prefer: Sequence[str]) -> Rule:
    return Rule("reference", lower(lambda m: not in_folders(m.path, prefer)),
                lambda w, _: "in a reference folder (--prefer)", lambda m, w: "not in a reference folder (--prefer)")


def bordered(m: Member) -> bool:
    """Whether the scan found a uniform border around the content (wider than noise)."""
    if not (m.width and m.height and m.content_width and m.content_height):
        return False
    return (m.width - m.content_width > BORDER_MIN_SHARE * m.width
            or m.height - m.content_height > BORDER_MIN_SHARE * m.height)


def _without_added_borders(members: Sequence[Member]) -> list[Member]:
    """Drop the members whose border was added around another member's picture.

    A bordered member (``bordered``) counts as framed when a member without a border has at least
    as much content (a border adds canvas, never photo), or when its content has the shape and about
    the size (``FRAMED_MIN_SHARE``) of another member's whole canvas (a frame around that picture). A photo whose own
    background is uniform (a night sky, a studio backdrop) trims like a framed one; it stays when no
    other member explains its border: a crop that cut the background away has less content, and a
    frame added around it has the original's canvas as its content, not the other way round.
    """
    def framed(b: Member) -> bool:
        if not bordered(b):
            return False
        for a in members:
            if a is b or (a.width, a.height) == (b.width, b.height):
                continue
            if not bordered(a) and _pixels(a) * (1 + BORDER_MIN_SHARE) >= _pixels(b):
                return True
            if _frame_around(b, a):
                return True
            canvas = (a.width or 0) * (a.height or 0)
            if canvas and abs(_aspect(content_size(b)) / _aspect((a.width, a.height)) - 1) < ASPECT_TOLERANCE \
                    and canvas * FRAMED_MIN_SHARE <= _pixels(b) <= canvas * (1 + BORDER_MIN_SHARE):
                return True
        return False

    kept = [m for m in members if not framed(m)]
    return kept or list(members)


def _frame_around(b: Member, a: Member) -> bool:
    """``b``'s canvas is ``a``'s with one margin added all round (as wide on every side, a few pixels of
    rounding aside), and ``b``'s content is no more than ``a``'s whole canvas: a border drawn around ``a``.
    (A border of the picture's own colour trims into the picture's flat edge, so ``b``'s content can be
    less than ``a``'s canvas, and ``a`` can trim its own flat bars as a "border" too.)"""
    if not (a.width and a.height and b.width and b.height and b.content_width and b.content_height):
        return False
    wider, taller = b.width - a.width, b.height - a.height
    return (wider > BORDER_MIN_SHARE * b.width and abs(wider - taller) <= FRAME_ROUNDING
            and b.content_width <= a.width * (1 + BORDER_MIN_SHARE)
            and b.content_height <= a.height * (1 + BORDER_MIN_SHARE))


def _aspect(size: tuple[int | None, int | None]) -> float:
    width, height = size
    return (width or 1) / (height or 1)


def _pixels(m: Member) -> int:
    width, height = content_size(m)
    return width * height


def _more_pixels(a: Member, b: Member) -> bool:
    """``a`` has more content than ``b`` by more than the trimming noise (``RESOLUTION_TOLERANCE``).

    Two pictures on the same canvas (in either orientation) have the same resolution: a border adds
    canvas, and what trims differently on one canvas is the photo's own flat edge, partly covered in
    one copy (a caption, a watermark) or cut by JPEG noise. Against a lossless file, a lossy file's trimmed
    content counts without ``RINGING_PX`` on each trimmed side: its ringing trims as content.
    """
    if a.width and a.height and sorted((a.width, a.height)) == sorted((b.width or 0, b.height or 0)):
        return False
    pixels = _pixels(a)
    if bordered(a) and a.format and not formats.is_lossless(a.format) and formats.is_lossless(b.format):
        width, height = content_size(a)
        pixels = ((width - 2 * RINGING_PX * (width < (a.width or 0)))
                  * (height - 2 * RINGING_PX * (height < (a.height or 0))))
    return pixels > _pixels(b) * (1 + RESOLUTION_TOLERANCE)


def _larger_file_of_the_same_kind(a: Member, b: Member) -> bool:
    """``a`` is the larger file of the same format and content resolution (either orientation)."""
    return ((a.format or "").upper() == (b.format or "").upper() and _same_resolution(a, b)
            and (a.size or 0) > (b.size or 0))


def is_camera_format(fmt: str | None) -> bool:
    """A format cameras and phones write (``original`` in photodedup/formats.py)."""
    return formats.is_original(fmt)


def is_camera_photo(m: Member) -> bool:
    """A camera original by its look: a RAW, or a camera format with the camera's make or model."""
    fmt = (m.format or "").upper()
    return formats.is_raw(fmt) or (formats.is_original(fmt) and bool(m.camera))


def is_graphic(m: Member) -> bool:
    """A screenshot or a drawing by its look: a lossless file of under ``GRAPHIC_MAX_BYTES_PER_PIXEL``."""
    pixels = (m.width or 0) * (m.height or 0)
    return (formats.is_lossless(m.format) and pixels > 0
            and (m.size or 0) < GRAPHIC_MAX_BYTES_PER_PIXEL * pixels)


def _camera_formats(members: Sequence[Member]) -> list[Member]:
    """The members in a camera format, unless the group is a graphic and its copies: a lossless graphic
    (``is_graphic``) and no member that shows a camera (``is_camera_photo``)."""
    if any(is_graphic(m) for m in members) and not any(is_camera_photo(m) for m in members):
        return list(members)
    exports = [m for m in members if not is_camera_format(m.format)]
    if not any(is_camera_format(m.format) and _could_be_the_source(m, exports) for m in members):
        return list(members)
    return [m for m in members if is_camera_format(m.format)]


def _could_be_the_source(m: Member, exports: Sequence[Member]) -> bool:
    """A camera-format member is taken for the exports' source when it has at least the resolution of every
    export: a JPEG with fewer pixels than a PNG is its reduced copy, never the picture the PNG was exported
    from (an export does not add pixels), whatever EXIF it carries."""
    return not any(_more_pixels(e, m) for e in exports)


def _made_from(b: Member, a: Member) -> str:
    """How ``b`` was made from ``a``'s pixels, in words (``photodedup.provenance``): decoded from JPEG ``a`` (a
    re-save, an export, a contrast change), or a JPEG encoded from lossless ``a``; "" when not found. Only files
    of one upright size and different contents are read."""
    if (b.width, b.height) != (a.width, a.height) or not a.width or (a.md5 and a.md5 == b.md5):
        return ""
    if _jpeg(a) and (formats.is_lossless(b.format) or (_jpeg(b) and (b.jpeg_quality or 0) > (a.jpeg_quality or 0))):
        return _finding("decoded", _file(b), _file(a))
    if _jpeg(b) and formats.is_lossless(a.format):
        return _finding("encoded", _file(b), _file(a))
    return ""


def _jpeg(m: Member) -> bool:
    return (m.format or "").upper() == "JPEG" and bool(m.jpeg_quality)


def _file(m: Member) -> tuple[str, int, int, bool]:
    return m.path, m.size or 0, m.mtime_ns or 0, formats.is_lossless(m.format)


@lru_cache(maxsize=256)
def _finding(kind: str, b: tuple[str, int, int, bool], a: tuple[str, int, int, bool]) -> str:
    """One forensic finding between two files, in words (keyed by path, size and modification time: a changed
    file is read again)."""
    picture_b, picture_a = _picture(b), _picture(a)
    if picture_a is None or picture_b is None:
        return ""
    name = os.path.basename(a[0])
    if kind == "encoded":
        return (f"a JPEG of {name}'s pixels (its DCT is that file's, rounded to its own quantization)"
                if provenance.encoded_from(picture_b, picture_a) else "")
    found = provenance.fit(picture_b, picture_a)
    if found is None or not found.on_lattice:
        return ""
    if found.held:  # the lattice lost to clipping: b holds a's decoded pixels, clipped ones too
        return (f"a re-save of {name} (its DCT is that file's decoded DCT)" if found.gain == 1.0 else
                f"a re-save of {name} with its contrast changed (its DCT is that file's decoded DCT scaled by "
                f"{found.gain:.3f})")
    if found.gain == 1.0:
        return f"a re-save of {name} (its DCT fits that file's JPEG quantization)"
    return (f"a re-save of {name} with its contrast changed (its DCT fits that file's JPEG quantization "
            f"scaled by {found.gain:.3f})")


@lru_cache(maxsize=4)
def _picture(file: tuple[str, int, int, bool]) -> provenance.Picture | None:
    return provenance.read(file[0], file[3])


#: A grayscale copy holds no colour: one channel, or RGB channels that agree to JPEG rounding (the 99th
#: percentile of a pixel's channel spread at most this; a grey picture saved as RGB decodes to 0-2) ...
GREY_SPREAD = 2
#: ... unless the colour photo's colour is clear (a spread of at least this): a camera JPEG's 4:2:0 chroma
#: flattens a faint-colour picture below the scan's ``GRAY_TOLERANCE`` (13 to 5 on the sample library, a
#: messenger's copy to 0), and that JPEG is the original of its PNG export, not a grayscale copy of it.
CLEAR_COLOUR_SPREAD = 30
#: A picture with clear colour (``CLEAR_COLOUR_SPREAD``) in at least this percentage of its pixels is no
#: grayscale copy, whatever the scan's flag (read at the 99th percentile) says: a grey form with blue ink
#: over 0.4% of it. A grey picture saved as RGB JPEG decodes to a spread of 0-2 everywhere: no pixel of it
#: reaches clear colour.
SPARSE_COLOUR = 0.1


def _colour_over_grey(a: Member, b: Member) -> bool:
    """``a`` is in colour and ``b`` a grayscale copy of it: the scan says so (``grayscale``), ``b`` shows no
    clear colour anywhere (``SPARSE_COLOUR``), and ``b`` holds no colour at all or ``a``'s colour is clear.
    Pixels are read only for such pairs; an unreadable file leaves it to the scan's flags."""
    if a.grayscale == 1 or b.grayscale != 1:
        return False
    grey = _spread(*_file(b)[:3], formats.is_raw(b.format))
    if grey is None:
        return True
    if grey[1] >= CLEAR_COLOUR_SPREAD:   # blue ink on a grey form, a red stamp: colour, however little
        return False
    if grey[0] <= GREY_SPREAD:
        return True
    colour = _spread(*_file(a)[:3], formats.is_raw(a.format))
    return colour is None or colour[0] >= CLEAR_COLOUR_SPREAD


@lru_cache(maxsize=64)
def _spread(path: str, size: int, mtime_ns: int, raw: bool) -> tuple[float, float] | None:
    """The 99th percentile of a pixel's channel spread (max - min) at 512 pixels on the short side (a RAW: its
    preview), 0 for a one-channel picture, and the spread at ``SPARSE_COLOUR``'s percentile; None when the file
    cannot be read (keyed by size and modification time too: a changed file is read again)."""
    import numpy as np

    from photodedup.preprocess import load_oriented
    from photodedup.raw import load_raw

    try:
        image = load_raw(path) if raw else load_oriented(path, shortest=512)
    except Exception:  # noqa: BLE001 - a moved or broken file: the scan's flag decides
        return None
    found = np.percentile(hashing.channel_spread(np.asarray(image.convert("RGB"))), [99, 100 - SPARSE_COLOUR])
    return float(found[0]), float(found[1])


def _not_made_from_another(members: Sequence[Member]) -> list[Member]:
    kept = [m for m in members if not any(_made_from(m, other) for other in members if other is not m)]
    return kept or list(members)


def _same_resolution(a: Member, b: Member) -> bool:
    return not _more_pixels(a, b) and not _more_pixels(b, a)


def _lossless_over_lossy(a: Member, b: Member) -> bool:
    """``a`` is lossless, ``b`` lossy, at the same content resolution."""
    return (formats.is_lossless(a.format) and not formats.is_lossless(b.format)
            and _same_resolution(a, b))


def _higher_quality(a: Member, b: Member) -> bool:
    """Both JPEGs of the same content resolution, ``a`` of a quality higher by ``QUALITY_MARGIN`` or more."""
    return (bool(a.jpeg_quality and b.jpeg_quality) and a.jpeg_quality >= b.jpeg_quality + QUALITY_MARGIN
            and _same_resolution(a, b))


def content_size(m: Member) -> tuple[int, int]:
    """Width and height of the content inside an added border; the canvas when there is none.

    A trim narrower than ``BORDER_MIN_SHARE`` is the photo's own dark or flat edge, and it moves
    with every edit (brightening a copy trims it a few rows differently): counting it would make
    resolution a coin toss between equal copies.
    """
    if bordered(m):
        return (m.content_width or 0, m.content_height or 0)
    return (m.width or 0, m.height or 0)


def _shown(m: Member) -> str:
    return "{}x{}".format(*content_size(m))


def _exif_words(m: Member) -> str:
    return ", ".join(filter(None, [m.camera, f"taken {m.taken_at}" if m.taken_at else None])) or "none"


def _later(m: Member, winner: Member) -> str:
    if winner.taken_at and not m.taken_at:
        return "no capture time"
    if m.taken_at and winner.taken_at and sort_key(m.taken_at) != sort_key(winner.taken_at):
        return f"captured later (taken {m.taken_at})"
    return "modified later"


RULE_BY_NAME = {rule.name: rule for rule in [
    Rule("raw-pair", lower(lambda m: not any(c.evidence == "pair" for c in m.companions)),
         lambda w, _: "the camera's RAW+JPEG pair",
         lambda m, w: "a single file; the group has the camera's RAW+JPEG pair"),
    Rule("provenance", lambda a, b: bool(_made_from(b, a)), lambda w, _: "not made from another file's pixels",
         lambda m, w: _made_from(m, w) or "made from another file's pixels", select=_not_made_from_another),
    Rule("colour", lambda a, b: _colour_over_grey(a, b), lambda w, _: "colour (others are grayscale copies)",
         lambda m, w: "a grayscale copy of a colour photo"),
    Rule("no-mark", lower(lambda m: bool(m.added_mark)), lambda w, _: "no added watermark or logo",
         lambda m, w: f"an added watermark or logo ({m.added_mark})"
         if isinstance(m.added_mark, str) else "an added watermark or logo"),
    Rule("no-border", lower(bordered), lambda w, _: "no added border",
         lambda m, w: f"an added border (content {m.content_width}x{m.content_height} in a {m.width}x{m.height} "
                      "canvas)", select=lambda members: _without_added_borders(members)),
    Rule("camera-format", lambda a, b: is_camera_format(a.format) and not is_camera_format(b.format),
         lambda w, _: f"camera format ({w.format}) over an export",
         lambda m, w: f"an export ({m.format or 'unknown format'}); the group has the camera format {w.format}",
         select=lambda members: _camera_formats(members)),
    Rule("not-resaved", lower(lambda m: m.jpeg_quality == 100), lambda w, _: "not a maximum-quality re-save",
         lambda m, w: "a JPEG re-saved at maximum quality (quality-100 tables, which cameras do not write)"),
    Rule("resolution", _more_pixels, lambda w, _: f"highest resolution ({_shown(w)})",
         lambda m, w: f"lower resolution ({_shown(m)} against {_shown(w)})"),
    Rule("exif", lower(lambda m: -(bool(m.camera) + bool(m.taken_at))), lambda w, _: f"camera EXIF ({_exif_words(w)})",
         lambda m, w: f"less camera EXIF ({_exif_words(m)})"),
    Rule("lossless", _lossless_over_lossy, lambda w, _: f"lossless ({w.format}) over a lossy copy",
         lambda m, w: f"a lossy copy ({m.format or 'unknown format'}) of the lossless {w.format}"),
    Rule("quality", _higher_quality, lambda w, _: f"highest JPEG quality ({w.jpeg_quality})",
         lambda m, w: f"a lower JPEG quality ({m.jpeg_quality} against {w.jpeg_quality})"),
    Rule("size", _larger_file_of_the_same_kind,
         lambda w, _: f"largest file of its format and resolution ({human_size(w.size or 0)})",
         lambda m, w: "a smaller file of the same format and resolution ({} against {})".format(
             *human_sizes(m.size or 0, w.size or 0))),
    Rule("oldest", lower(lambda m: (sort_key(m.taken_at), m.mtime_ns or 0)),
         lambda w, dropped: f"oldest capture (taken {w.taken_at})"
         if w.taken_at and any(sort_key(m.taken_at) != sort_key(w.taken_at) for m in dropped)
         else "oldest file (modified first)", _later),
]}



def human_size(size: int) -> str:
    """1000-based, as file managers show sizes: ``2.5 MB``."""
    return _sized(size, 1)


def human_sizes(a: int, b: int) -> tuple[str, str]:
    """Two sizes with enough digits to tell them apart: ``4.31 MB`` and ``4.34 MB``, not ``4.3 MB`` twice."""
    for digits in range(1, 7):
        shown = _sized(a, digits), _sized(b, digits)
        if shown[0] != shown[1] or a == b:
            return shown
    return f"{a} B", f"{b} B"  # pragma: no cover (six digits tell any two sizes below a petabyte apart)


def _sized(size: int, digits: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.{digits}f} {unit}"
        value /= 1000
    return f"{value:.{digits}f} GB"  # pragma: no cover
