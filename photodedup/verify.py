"""Verified evidence: local features confirm a candidate pair that the strict hash threshold missed.

Crops, overlays (watermarks, captions) and heavier edits move a pHash by more than the threshold, but
they keep most of the picture's local structure. For a bounded set of candidate pairs (each file's few
nearest hashes beyond the threshold, ``cluster.near_pairs``), this module:

1. takes each file's stored thumbnail (the catalog's, 320 px, EXIF-oriented), trims its uniform border
   (the scan's content box) and finds ORB keypoints (OpenCV; cached per file);
2. matches descriptors (Hamming, Lowe's ratio test) and fits a homography with RANSAC;
3. accepts the pair only when the geometry is a plausible edit and the match covers the pictures:
   - at least ``min_inliers`` matches agree with the homography;
   - the transform keeps the aspect ratio (``max_anisotropy``): a crop stretched to a new shape is a
     different picture, not a copy;
   - the overlap covers ``min_coverage`` of the smaller picture (the crop lies inside the original)
     and ``min_other`` of the larger one (half a photo is not a duplicate of the whole);
   - the agreeing features are spread over the picture (``min_spread``): a watermark or a logo that two
     different photos share matches in one small patch, and its homography "covers" them both.

Deterministic: RANSAC's random generator is reseeded before every pair.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from photodedup.executor import worker_pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifySettings:
    """What a verified pair must show (defaults measured on the sample library; docs/BENCHMARKS.md)."""

    min_inliers: int = 20
    min_coverage: float = 0.8
    min_other: float = 0.6
    max_anisotropy: float = 1.15
    features: int = 300
    ratio: float = 0.8
    #: Aligned by the homography, the pictures must agree in this share of their tiles (``_agreement``):
    #: a logo two different photos share matches, the photos around it do not.
    min_agreement: float = 0.5
    #: The convex hull of the inliers must cover this share of its picture (in one of the two). Measured
    #: (``benchmarks/verify_margins.py``): different pictures sharing a logo 0.002-0.045 (the larger logos
    #: are refused by ``min_agreement``); true pairs ORB accepts at least 0.030 on four libraries.
    min_spread: float = 0.015


@dataclass
class Features:
    points: np.ndarray        # float32 [N, 2] in content pixels
    descriptors: np.ndarray   # uint8 [N, 32]
    size: tuple[int, int]     # content width, height in thumbnail pixels
    small: np.ndarray | None = None  # float32 grey picture AGREE_WIDTH px wide, for the agreement check


@dataclass(frozen=True)
class Thumbnail:
    """A file's stored thumbnail (JPEG bytes) and its content box, decoded where the features are
    computed: a worker gets ~10 KB per file instead of the ~77 KB of its grey pixels."""

    jpeg: bytes
    box: dict  # width, height, content_left, content_top, content_width, content_height

    @classmethod
    def of(cls, jpeg: bytes, row) -> Thumbnail:
        return cls(jpeg, {key: row[key] for key in ("width", "height", "content_left", "content_top",
                                                    "content_width", "content_height")})

    def gray(self) -> np.ndarray | None:
        """The content's grey pixels; None when the thumbnail cannot be decoded."""
        try:
            return content_pixels(self.jpeg, self.box)
        except ValueError:
            return None

    def rgb(self) -> np.ndarray | None:
        """The content's RGB pixels ``uint8 [H, W, 3]``; None when the thumbnail cannot be decoded."""
        try:
            return content_pixels(self.jpeg, self.box, colour=True)
        except ValueError:
            return None


def content_pixels(jpeg: bytes, row, *, colour: bool = False) -> np.ndarray:
    """The thumbnail as grey ``uint8 [H, W]`` (``colour``: RGB ``[H, W, 3]``) cut to the file's content
    box (borders trimmed)."""
    import cv2

    gray = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise ValueError("cannot decode the thumbnail")
    if colour:
        gray = cv2.cvtColor(gray, cv2.COLOR_BGR2RGB)
    box = content_box(row, gray.shape[1], gray.shape[0])
    if box:
        left, top, right, bottom = box
        gray = gray[top:bottom, left:right]  # (slicing stops at the picture's edge)
    return np.ascontiguousarray(gray)


def content_box(row, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``(left, top, right, bottom)`` of the content inside any border (the scan's ``content_*`` of ``row``), in
    a copy of the picture ``width`` x ``height`` pixels; None when the scan measured none."""
    if not (row["content_width"] and row["width"] and row["height"]):
        return None
    sx, sy = width / row["width"], height / row["height"]
    left, top = round((row["content_left"] or 0) * sx), round((row["content_top"] or 0) * sy)
    return left, top, left + max(1, round(row["content_width"] * sx)), top + max(1, round(row["content_height"] * sy))


#: The colour signature's bins per channel (4 x 4 x 4 = 64 bins of RGB).
SIGNATURE_BINS = 4
#: The layout signature: the content's grey picture at this many pixels a side (shape ignored).
LAYOUT_SIDE = 24


def signatures(thumb: Thumbnail | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(colour float32 [64], layouts uint8 [2, 24, 24])`` of a file's thumbnail decoded at a quarter (JPEG's
    own DCT scaling: fast); None when it cannot be decoded.

    ``colour``: of the content (borders trimmed), the square roots of the RGB histogram (4 bins a channel),
    a unit vector, so the inner product of two is their Bhattacharyya coefficient. Where a picture's colours
    lie, not where its pixels are: a crop, a small mark or a border barely move it, while the pHash moves
    20-34 bits for a one-corner crop and a flat picture's hash is noise. ``layouts``: the grey picture
    of the content and of the whole thumbnail, for ``layouts_agree``: a picture with a margin of its own
    (a receipt or a form on white) loses it to the border trim, a copy with a logo in that margin or a
    frame of another colour keeps it, so their contents are not the same cut while the whole pictures are
    (or the one's whole picture is the other's content)."""
    import cv2

    if thumb is None:
        return None
    whole = cv2.imdecode(np.frombuffer(thumb.jpeg, np.uint8), cv2.IMREAD_REDUCED_COLOR_4)
    if whole is None:
        return None
    rgb = whole
    box = content_box(thumb.box, rgb.shape[1], rgb.shape[0])
    if box:
        left, top, right, bottom = box
        cut = rgb[top:bottom, left:right]
        rgb = cut if cut.size else rgb
    q = (rgb // (256 // SIGNATURE_BINS)).astype(np.int32)  # OpenCV's BGR order: the same for every file
    index = (q[..., 0] * SIGNATURE_BINS + q[..., 1]) * SIGNATURE_BINS + q[..., 2]
    counts = np.bincount(index.ravel(), minlength=SIGNATURE_BINS ** 3).astype(np.float32)
    layouts = [cv2.resize(cv2.cvtColor(np.ascontiguousarray(picture), cv2.COLOR_BGR2GRAY), (LAYOUT_SIDE, LAYOUT_SIDE),
                          interpolation=cv2.INTER_AREA) for picture in (rgb, whole)]
    return np.sqrt(counts / counts.sum()), np.stack(layouts)


#: ``layouts_agree``: the middle of one layout, at these scales, must correlate this well somewhere in the other.
LAYOUT_SCALES, LAYOUT_NCC = (1.0, 0.9, 0.8), 0.95


def layouts_agree(a: np.ndarray, b: np.ndarray, threshold: float = LAYOUT_NCC) -> bool:
    """Whether two files' layouts (``signatures``: ``[2, 24, 24]``, the content and the whole picture; or
    one ``[24, 24]`` each) agree, in any pairing of the one's with the other's (``_layout_agrees``): a
    border trim that cut a margin from one file and not from its copy does not part them."""
    return any(_layout_agrees(x, y, threshold) for x in _distinct(a) for y in _distinct(b))


def _distinct(layouts: np.ndarray) -> list[np.ndarray]:
    """A file's layouts without repeats (a file without a border: its content is its whole picture)."""
    if layouts.ndim == 2:
        return [layouts]
    return [layouts[0], *(x for x in layouts[1:] if not np.array_equal(x, layouts[0]))]


def _layout_agrees(a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    """Whether the middle two thirds of one layout signature (at 100%, 90% and 80%: a crop of up to ~20%
    a side) correlate with some place of the other's at ``threshold`` (normalised: tone and grayscale
    edits do not count), either way round. The cheap gate for colour proposals (tens of microseconds):
    measured on the second set, every true crop pair passes at 0.95 and no other proposal does
    (docs/BENCHMARKS.md). A flat layout (no structure to compare) agrees: the pixel check decides it."""
    import cv2

    a, b = a.astype(np.float32), b.astype(np.float32)
    if a.std() < 2 or b.std() < 2:
        return True
    side = a.shape[0]
    lo, hi = side // 6, side - side // 6
    for x, y in ((a, b), (b, a)):
        middle = y[lo:hi, lo:hi]
        for scale in LAYOUT_SCALES:
            size = max(4, round((hi - lo) * scale))
            template = middle if size == hi - lo else cv2.resize(middle, (size, size), interpolation=cv2.INTER_AREA)
            if template.std() < 2:
                return True
            if float(cv2.matchTemplate(x, template, cv2.TM_CCOEFF_NORMED).max()) >= threshold:
                return True
    return False


#: ORB finds no keypoint within its edge threshold (15 px) of a side, and its image pyramid fails on a
#: picture 1 px wide: a smaller picture has no features (a 1x1 spacer, a 1xN line).
ORB_EDGE = 15
MIN_FEATURE_SIDE = 2 * ORB_EDGE + 1


def features(gray: np.ndarray, params: VerifySettings = VerifySettings()) -> Features:
    import cv2

    if min(gray.shape[:2]) < MIN_FEATURE_SIDE:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), (gray.shape[1], gray.shape[0]))
    orb = cv2.ORB_create(nfeatures=params.features, scaleFactor=1.2, nlevels=6, edgeThreshold=ORB_EDGE,
                         patchSize=15, fastThreshold=10)
    keypoints, descriptors = orb.detectAndCompute(gray, None)
    points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
    if descriptors is None:
        descriptors = np.zeros((0, 32), np.uint8)
    return Features(points, descriptors, (gray.shape[1], gray.shape[0]), _blurred(_small(gray)))


def _small(gray: np.ndarray) -> np.ndarray:
    """The grey picture ``AGREE_WIDTH`` pixels wide, area-averaged (``uint8``)."""
    import cv2

    height = max(1, round(AGREE_WIDTH * gray.shape[0] / gray.shape[1]))
    return cv2.resize(gray, (AGREE_WIDTH, height), interpolation=cv2.INTER_AREA)


def _blurred(small: np.ndarray) -> np.ndarray:
    """The agreement check's small grey picture from its ``uint8`` resize: blurred, float32."""
    import cv2

    # what survives a sub-pixel misalignment: no fine texture
    return cv2.GaussianBlur(small.astype(np.float32), (5, 5), 1.0)


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    inliers: int
    coverage: float       # share of the smaller picture the overlap covers
    other: float          # share of the larger picture it covers
    reason: str

    @property
    def refutes(self) -> bool:
        """Evidence against the pair: rejected although both pictures had features to compare."""
        return not self.accepted and self.reason != TOO_FEW_FEATURES


TOO_FEW_FEATURES = "too few features"
#: Width of the small grey picture the agreement check compares (a few thousand pixels).
AGREE_WIDTH = 64
#: A tile agrees when the correlation of its grey levels reaches this; a tile is flat below this spread.
TILE_NCC, FLAT_STD = 0.8, 2.0


def verify(a: Features, b: Features, params: VerifySettings = VerifySettings()) -> Verdict:
    """Whether ``b`` is ``a`` (or a crop of it, or it of ``b``) with local edits, and the measures."""
    fit = homography(a, b, params)
    if isinstance(fit, Verdict):
        return fit
    homography_, src, dst, keep = fit
    inliers = int(keep.sum())
    return _judge(homography_, src, dst, keep, inliers, a, b, params)


def homography(a: Features, b: Features, params: VerifySettings = VerifySettings()):
    """``(H, src, dst, inlier mask)``: the homography from ``a``'s content pixels to ``b``'s that the
    matched features agree on, or a rejecting ``Verdict`` saying why there is none."""
    import cv2

    if len(a.descriptors) < params.min_inliers or len(b.descriptors) < params.min_inliers:
        return Verdict(False, 0, 0.0, 0.0, TOO_FEW_FEATURES)
    # Each descriptor of a's two nearest of b's (Hamming), kept when the nearest is clearly nearer (Lowe's
    # ratio test). ``BFMatcher.knnMatch`` is this very call, then a DMatch object per neighbour: the same
    # matches in the same order, without 600 Python objects a pair (a fifth of the matching's time).
    dist, nearest = cv2.batchDistance(a.descriptors, b.descriptors, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2)
    if dist is None or dist.shape[1] < 2:  # b has one descriptor or none: no second neighbour to compare
        good = np.zeros(0, np.intp)
    else:
        good = np.flatnonzero(dist[:, 0] < params.ratio * dist[:, 1])
    if len(good) < params.min_inliers:
        return Verdict(False, len(good), 0.0, 0.0, "too few matches")
    src = a.points[good]
    dst = b.points[nearest[good, 0]]
    cv2.setRNGSeed(0)
    # USAC_FAST (OpenCV's USAC framework, PROSAC sampling + local optimisation): the same inliers as
    # classic RANSAC here at ~1/70 of its time on pairs that do not match (docs/BENCHMARKS.md).
    found, mask = cv2.findHomography(src, dst, cv2.USAC_FAST, 3.0)
    inliers = int(mask.sum()) if mask is not None else 0
    if found is None or inliers < params.min_inliers:
        return Verdict(False, inliers, 0.0, 0.0, "too few inliers")
    return found, src, dst, mask.ravel().astype(bool)


def _judge(homography: np.ndarray, src: np.ndarray, dst: np.ndarray, keep: np.ndarray, inliers: int,
           a: Features, b: Features, params: VerifySettings) -> Verdict:
    spread = max(_hull_share(src[keep], a.size), _hull_share(dst[keep], b.size))
    if spread < params.min_spread:
        return Verdict(False, inliers, 0.0, 0.0, f"the matching features cover {spread:.0%} of the picture")
    anisotropy = _anisotropy(homography, a.size)
    if anisotropy > params.max_anisotropy:
        return Verdict(False, inliers, 0.0, 0.0, f"stretched {anisotropy:.2f}x")
    cover_b = _covered(homography, a.size, b.size)           # of b, by a's picture
    cover_a = _covered(np.linalg.inv(homography), b.size, a.size)
    if cover_a is None or cover_b is None:
        return Verdict(False, inliers, 0.0, 0.0, "implausible geometry")
    small, large = max(cover_a, cover_b), min(cover_a, cover_b)
    accepted = small >= params.min_coverage and large >= params.min_other
    reason = "" if accepted else f"covers {small:.0%} of the smaller and {large:.0%} of the larger picture"
    if accepted:
        agreement = _agreement(homography, a, b)
        if agreement is not None and agreement < params.min_agreement:
            accepted, reason = False, f"the aligned pictures agree in {agreement:.0%} of their tiles"
    return Verdict(accepted, inliers, round(small, 4), round(large, 4), reason)


def _agreement(h: np.ndarray, a: Features, b: Features) -> float | None:
    """The share of ``b``'s tiles (4 x 4 over its small grey picture) in which ``a``, warped onto it,
    agrees (normalised cross-correlation >= ``TILE_NCC``: brightness, contrast and grayscale edits do
    not count). Tiles mostly outside the overlap, or flat in both pictures, are not judged; None when
    fewer than 4 are. A watermark spoils a tile or two; a logo shared by two different photos agrees
    in its own tile only."""
    import cv2

    if a.small is None or b.small is None:
        return None
    warp = _to_small(b) @ h @ np.linalg.inv(_to_small(a))
    height, width = b.small.shape
    warped = cv2.warpPerspective(a.small, warp, (width, height), flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.ones_like(a.small), warp, (width, height), flags=cv2.INTER_NEAREST) > 0.5
    judged = agreed = 0
    for rows in np.array_split(np.arange(height), 4):
        for cols in np.array_split(np.arange(width), 4):
            tile = np.ix_(rows, cols)
            mask = inside[tile]
            if mask.mean() < 0.8:
                continue
            x, y = warped[tile][mask], b.small[tile][mask]
            x, y = x - x.mean(), y - y.mean()
            flat_x, flat_y = x.std() < FLAT_STD, y.std() < FLAT_STD
            if flat_x and flat_y:
                continue
            judged += 1
            if not (flat_x or flat_y):
                agreed += float((x * y).sum()) / float(np.sqrt((x * x).sum() * (y * y).sum())) >= TILE_NCC
    return agreed / judged if judged >= 4 else None


def _to_small(f: Features) -> np.ndarray:
    """The scaling from a picture's content pixels to its small grey copy, as a homography."""
    return np.diag([f.small.shape[1] / f.size[0], f.small.shape[0] / f.size[1], 1.0])


def _hull_share(points: np.ndarray, size: tuple[int, int]) -> float:
    """Area of the convex hull of ``points`` as a share of a ``size`` picture."""
    import cv2

    if len(points) < 3:
        return 0.0
    return float(cv2.contourArea(cv2.convexHull(points.astype(np.float32)))) / float(size[0] * size[1])


def _anisotropy(h: np.ndarray, size: tuple[int, int]) -> float:
    """Ratio of the largest to the smallest local scale of the transform at the picture's centre."""
    x, y = size[0] / 2, size[1] / 2
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    if abs(w) < 1e-9:
        return float("inf")
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    jac = np.array([[h[0, 0] - u * h[2, 0], h[0, 1] - u * h[2, 1]],
                    [h[1, 0] - v * h[2, 0], h[1, 1] - v * h[2, 1]]]) / w
    s = np.linalg.svd(jac, compute_uv=False)
    return float(s[0] / s[1]) if s[1] > 1e-9 else float("inf")


def _covered(h: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> float | None:
    """Share of the destination picture covered by the source picture mapped through ``h``."""
    import cv2

    sw, sh = src_size
    dw, dh = dst_size
    corners = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], np.float64).reshape(-1, 1, 2)
    mapped = cv2.perspectiveTransform(corners, h).reshape(-1, 2)
    if not np.isfinite(mapped).all() or not cv2.isContourConvex(mapped.astype(np.float32).reshape(-1, 1, 2)):
        return None
    return _area(_clip(mapped.tolist(), dw, dh)) / float(dw * dh)


def _clip(polygon: list, width: float, height: float) -> list:
    """Sutherland-Hodgman: the part of a polygon inside the rectangle [0, width] x [0, height]."""
    for axis, limit, keep_below in ((0, 0.0, False), (0, width, True), (1, 0.0, False), (1, height, True)):
        def inside(p, a=axis, v=limit, below=keep_below) -> bool:
            return p[a] <= v if below else p[a] >= v

        out = []
        for k, current in enumerate(polygon):
            previous = polygon[k - 1]
            if inside(current) != inside(previous):
                t = (limit - previous[axis]) / (current[axis] - previous[axis])
                out.append([previous[0] + t * (current[0] - previous[0]), previous[1] + t * (current[1] - previous[1])])
            if inside(current):
                out.append(current)
        polygon = out
        if not polygon:
            break
    return polygon


def _area(polygon: list) -> float:
    if len(polygon) < 3:
        return 0.0
    x, y = np.array(polygon).T
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


# -- many pairs --------------------------------------------------------------------------------------
#: Fewer pairs than this are verified in this process, in one chunk (``map_pairs``).
INLINE_PAIRS = 400


def verify_pairs(pairs: Sequence[tuple[int, int]], pixels: Callable[[int], Thumbnail | None],
                 params: VerifySettings = VerifySettings(), *, mirrored: bool = False,
                 workers: int | None = None) -> list[Verdict | None]:
    """A verdict per ``(item a, item b)`` pair; ``pixels(item)`` gives its stored thumbnail, decoded where
    its features are computed (None: unknown).

    ``mirrored``: a pair that fails is tried again with ``b`` mirrored (ORB copes with turning, not with
    mirroring), for pairs whose partners were joined by a mirrored match.

    Pairs are processed in item order and, above a few hundred, in worker processes (chunks of pairs
    with what they need, two per worker in flight). Features are computed once per item: in one chunk
    for few pairs; for many, first each item's once, by the workers, written to a temporary folder
    (``_stored_features``: about 12 KB a file), then the chunks of pairs read the ones they need (a file
    has pairs in about three chunks, and computing its features was most of the stage's time: docs/DECISIONS.md
    "Features once per file"). The mirrored retry (few pairs: the closure's) decodes again instead.
    """
    pairs = list(pairs)
    workers = workers or min(4, os.cpu_count() or 1)
    if mirrored or workers <= 1 or len(pairs) < INLINE_PAIRS:
        return map_pairs(pairs, pixels, _verify_chunk, (params, mirrored), workers=workers)
    import tempfile

    items = sorted({x for p in pairs for x in p})
    try:
        with tempfile.TemporaryDirectory(prefix="photodedup-features-") as folder:
            places = map_pairs([(k, k) for k in items], pixels, _stored_features, (params, folder),
                               workers=workers)
            return map_pairs(pairs, dict(zip(items, places, strict=True)).get, _verify_stored_chunk, params,
                             workers=workers)
    except OSError as error:  # a full or unwritable temporary folder: the same verdicts, features per chunk
        log.warning("the verification's features could not be stored in %s (%s); computing them per chunk",
                    tempfile.gettempdir(), error.strerror or error)
        return map_pairs(pairs, pixels, _verify_chunk, (params, False), workers=workers)


def map_pairs(pairs: Sequence[tuple[int, int]], pixels: Callable, work: Callable, extra, *,
              workers: int | None = None) -> list:
    """``work((chunk of pairs, {item: pixels(item)}, extra))`` over every pair, one result per pair.

    Pairs are processed in item order and, from ``INLINE_PAIRS`` on, in worker processes (chunks of pairs
    with the pixels they need, two per worker in flight, so memory stays bounded). ``work`` must be a
    module-level function (it crosses to the workers).
    """
    pairs = list(pairs)
    if not pairs:
        return []
    workers = workers or min(4, os.cpu_count() or 1)
    if workers <= 1 or len(pairs) < INLINE_PAIRS:
        return work((pairs, {k: pixels(k) for k in sorted({x for p in pairs for x in p})}, extra))
    order = sorted(range(len(pairs)), key=lambda n: pairs[n])
    size = max(200, len(pairs) // (workers * 8))
    chunks = [order[s:s + size] for s in range(0, len(order), size)]

    def jobs():
        for chunk in chunks:
            wanted = sorted({x for n in chunk for x in pairs[n]})
            yield [pairs[n] for n in chunk], {k: pixels(k) for k in wanted}, extra

    out: list = [None] * len(pairs)

    def collect(chunk: list[int], future) -> None:
        for n, result in zip(chunk, future.result(), strict=True):
            out[n] = result

    with worker_pool(workers) as pool:
        pending: deque = deque()
        for chunk, job in zip(chunks, jobs(), strict=True):
            pending.append((chunk, pool.submit(work, job)))
            if len(pending) >= 2 * workers:
                collect(*pending.popleft())
        while pending:
            collect(*pending.popleft())
    return out


def _verify_chunk(job) -> list[Verdict | None]:
    pairs, pixels, (params, mirrored) = job

    def made(k: int, mirror: bool) -> Features | None:
        # decoded again for the rare mirrored retry rather than keeping every file's pixels in memory
        thumb = pixels.get(k)
        gray = None if thumb is None else thumb.gray()
        return None if gray is None else features(gray[:, ::-1].copy() if mirror else gray, params)

    return _verdicts(pairs, made, params, mirrored)


def _stored_features(job) -> list[tuple[str, int, int] | None]:
    """Each item's ``features``, appended to one new file in the folder ``extra`` names: its ``(file, offset,
    length)`` (None: no thumbnail, or one that cannot be decoded). ``_verify_stored_chunk`` reads them."""
    import pickle
    import tempfile

    import cv2

    cv2.setNumThreads(1)
    pairs, pixels, (params, folder) = job
    out: list[tuple[str, int, int] | None] = []
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".features", delete=False) as file:
        for k, _ in pairs:
            thumb = pixels.get(k)
            gray = None if thumb is None else thumb.gray()
            if gray is None:
                out.append(None)
                continue
            found = features(gray, params)
            # the small picture as its uint8 resize (a quarter of the float32 blurred one), blurred on reading
            small = None if found.small is None else _small(gray)
            data = pickle.dumps((found.points, found.descriptors, found.size, small), protocol=pickle.HIGHEST_PROTOCOL)
            out.append((file.name, file.tell(), len(data)))
            file.write(data)
    return out


def _verify_stored_chunk(job) -> list[Verdict | None]:
    """``_verify_chunk`` on features ``_stored_features`` wrote (``pixels``: item -> where they are)."""
    import pickle

    pairs, places, params = job

    def made(k: int, _mirror: bool) -> Features | None:
        place = places.get(k)
        if place is None:
            return None
        name, offset, length = place
        with open(name, "rb") as file:
            file.seek(offset)
            points, descriptors, size, small = pickle.loads(file.read(length))
        return Features(points, descriptors, size, None if small is None else _blurred(small))

    return _verdicts(pairs, made, params, False)


def _verdicts(pairs: list[tuple[int, int]], made: Callable[[int, bool], Features | None], params: VerifySettings,
              mirrored: bool) -> list[Verdict | None]:
    """A verdict per pair, the features of each item (``made(item, mirrored)``) made once."""
    import cv2

    cv2.setNumThreads(1)
    cache: dict[tuple[int, bool], Features | None] = {}

    def feats(k: int, mirror: bool = False) -> Features | None:
        if (k, mirror) not in cache:
            cache[k, mirror] = made(k, mirror)
        return cache[k, mirror]

    out: list[Verdict | None] = []
    for a, b in pairs:
        fa, fb = feats(a), feats(b)
        verdict = None if fa is None or fb is None else verify(fa, fb, params)
        if verdict is not None and not verdict.accepted and mirrored:
            verdict = verify(fa, feats(b, True), params)
        out.append(verdict)
    return out
