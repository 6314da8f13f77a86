"""Where two pictures of a pair differ: a difference map, its regions in words, and which file has an added mark.

``difference_map`` is the review page's view of the pixel check's own difference (``photodedup.confirm.heat``:
the pair aligned by the transform it finds, tones matched, the pair's own noise floor): one implementation
for the check and the page. Here it is read in cells and regions, in words.

``added_mark`` reads a difference as a watermark or logo added to one side: one small region along an
edge or in a corner, whose outline is sharp on that side only (a logo, a box, text drawn over a photo
has edges all around it; under it, the clean photo just goes on). ``mark_members`` sets
``Member.added_mark`` for the keeper rule ``no-mark``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from photodedup.duplicate_groups import Member

#: The longer side of the compared pictures (thumbnails are 256-320 px).
SIZE = 256
#: The map is read in cells of this many pixels: a cell differs when a fifth of its pixels do.
CELL = 8
#: A mark covers at most this share of the picture ("a few percent", issue 21) ...
MARK_MAX_SHARE = 0.08
#: ... and reaches to within this share of an edge of the picture (a corner or along an edge).
MARK_EDGE_SHARE = 0.15
#: A mark the pixel check finds (``confirm``: its hot regions at 320 px) is wider than the pair's alignment
#: error on its narrow side: a thinner region (under ~5 px at 320) is a sliver along a strong edge that a
#: transform off by a pixel or two leaves (a frame copy of a white-margin picture: 0.008 x 0.06), not a logo
#: (the sample library's: 0.2-0.27 x 0.04-0.15; 0.04 where a crop cuts it) ...
MARK_MIN_SIDE = 0.015
#: ... and covers at least this share of the picture (under ~10 x 10 px at 320 is a speck, not a mark
#: a person would miss; issue 21: "a few percent of the picture").
MARK_MIN_SHARE = 0.001


@dataclass
class Difference:
    """How two pictures differ: ``share`` of the picture in ``regions`` (boxes, 0-1 of width and height)."""

    share: float
    regions: list[tuple[float, float, float, float]] = field(default_factory=list)
    areas: list[float] = field(default_factory=list)  # each region's share of the picture
    heat: np.ndarray | None = None   # uint8 HxW: 0 same .. 255 differs most, at SIZE
    mask: np.ndarray | None = None   # bool HxW: the pixels that differ beyond the noise

    @property
    def words(self) -> str:
        """``differs in one region, 3% of the picture`` and the like."""
        if not self.regions:
            return "no visible difference (resampling or compression noise only)"
        if self.share >= 0.5:
            return f"differs almost everywhere, {_percent(self.share)} of the picture"
        count = "one region" if len(self.regions) == 1 else f"{len(self.regions)} regions"
        return f"differs in {count}, {_percent(self.share)} of the picture"

    def as_dict(self) -> dict:
        return {"share": round(self.share, 4), "regions": [[round(v, 4) for v in r] for r in self.regions],
                "words": self.words}


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 else "under 1%"


def _pixels(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def difference_map(a: Image.Image, b: Image.Image, *, size: int = SIZE) -> Difference:
    """Compare ``b`` with ``a`` as the pixel check does (``photodedup.confirm.heat``: aligned, tones matched,
    noise floor from the pair), at ``a``'s shape at most ``size`` pixels on the long side."""
    import cv2

    from photodedup import confirm

    scale = size / max(a.size)
    shape = (max(1, round(a.width * scale)), max(1, round(a.height * scale)))
    heat = confirm.heat(np.asarray(b.convert("RGB")), np.asarray(a.convert("RGB")),
                        settings=confirm.ConfirmSettings(side=size))
    heat = cv2.resize(heat, shape, interpolation=cv2.INTER_NEAREST)
    mask = heat > 0
    h, w = mask.shape
    rows, cols = max(1, h // CELL), max(1, w // CELL)
    cells = mask[: rows * CELL, : cols * CELL].reshape(rows, CELL, cols, CELL).mean(axis=(1, 3)) > 0.2
    if not cells.any():
        return Difference(0.0, [], [], heat, mask)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cells.astype(np.uint8), connectivity=8)
    regions = [(x / cols, y / rows, (x + bw) / cols, (y + bh) / rows) for x, y, bw, bh, _ in stats[1:count]]
    areas = [float(area) / cells.size for area in stats[1:count, 4]]
    return Difference(float(cells.mean()), regions, areas, heat, mask)


def added_mark(a: Image.Image, b: Image.Image, difference: Difference | None = None) -> str | None:
    """Which of ``a`` and ``b`` carries a watermark or logo the other lacks: ``"a"``, ``"b"`` or None."""
    import cv2

    difference = difference or difference_map(a, b)
    if not 0 < difference.share <= MARK_MAX_SHARE:
        return None
    main = int(np.argmax(difference.areas))
    if sum(difference.areas) - difference.areas[main] > 0.2 * difference.areas[main]:
        return None  # differs in several places: content, not one mark
    x0, y0, x1, y1 = difference.regions[main]
    if min(x0, y0, 1 - x1, 1 - y1) > MARK_EDGE_SHARE:
        return None  # in the middle of the picture: content, not a mark
    mask = difference.mask.astype(np.uint8)
    outline = cv2.dilate(mask, np.ones((5, 5), np.uint8)) - cv2.erode(mask, np.ones((3, 3), np.uint8))
    shape = mask.shape[::-1]
    edges = []
    for image in (a, b):
        gray = cv2.cvtColor(_pixels(image, shape).astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
        gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
        edges.append(float(np.hypot(gx, gy)[outline > 0].mean()) if outline.any() else 0.0)
    if max(edges) < 1.5 * min(edges) + 1e-6:
        return None  # both as sharp there: a change of content, not a mark laid over it
    return "a" if edges[0] > edges[1] else "b"


def legible_mark(box: tuple[float, float, float, float] | None, share: float) -> bool:
    """Whether a region the pixel check took for an added mark (``box`` in fractions of the picture, ``share``
    of it) can be one: at least ``MARK_MIN_SIDE`` on its narrow side and ``MARK_MIN_SHARE`` of the picture.
    (The check's verdict stands: the pair is a duplicate either way; only which file carries a mark moves.)"""
    if box is None:
        return False
    return min(box[2] - box[0], box[3] - box[1]) >= MARK_MIN_SIDE and share >= MARK_MIN_SHARE


def where(region: tuple[float, float, float, float]) -> str:
    """``lower right`` and the like, for a region's box."""
    x0, y0, x1, y1 = region
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    vertical = "upper" if cy < 1 / 3 else "lower" if cy > 2 / 3 else "middle"
    horizontal = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    return "centre" if (vertical, horizontal) == ("middle", "centre") else f"{vertical} {horizontal}"


def mark_members(members: Sequence[Member], picture: Callable[[Member], Image.Image | None]) -> None:
    """Set ``added_mark`` ("lower right, 2% of the picture") on each member that carries a mark another lacks."""
    images = [(m, picture(m)) for m in members]
    for i, (ma, ia) in enumerate(images):
        for mb, ib in images[i + 1:]:
            if ia is None or ib is None:
                continue
            difference = difference_map(ia, ib)
            side = added_mark(ia, ib, difference)
            if side:
                marked = ma if side == "a" else mb
                main = difference.regions[int(np.argmax(difference.areas))]
                marked.added_mark = f"{where(main)}, {_percent(difference.share)} of the picture"
