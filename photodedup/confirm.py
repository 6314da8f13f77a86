"""Pixel confirmation: is a candidate pair the same picture, judged from *where* the pixels differ?

Hashes, embeddings and local features propose pairs; none of them can tell a screenshot from the
same screen with another number, a burst frame from the next one, or a photo from the same photo
with a caption. This module decides, on the two pictures' content (borders trimmed) at the stored
thumbnails' resolution (320 px on the long side: docs/DECISIONS.md "What a duplicate is"):

1. **align**: turn/mirror the first as the hash match said (``variant``), then map it onto the second
   by the better of a plain rescale and the homography its ORB features agree on (crops, borders,
   small shifts);
2. **tone**: fit the luminance of one to the other (gain and offset, robustly; clipped highlights
   allowed), and the chroma the same way unless one picture is grayscale. A brightness, contrast,
   grayscale or mild colour edit is a copy; a fit outside plausible edits is not (two solid frames
   of different colours are different pictures);
3. **difference**: per pixel, how far each picture lies outside the other's values within one pixel
   (a sub-pixel misalignment or resampling costs nothing), in luminance and chroma;
4. **noise floor from the pair**: the robust spread (MAD) of the plain difference: a heavy
   re-encode raises it, a clean resize lowers it. Pixels above it (and above ``min_level``) are hot;
   specks smaller than ``min_blob`` pixels are dropped; hot pixels close together form regions;
5. **where**: no region: a duplicate (differs a little everywhere, or not at all). One small region in
   a corner or along an edge (``mark_area``), where one picture is the other under a translucent plate
   or has clearly more edges: a duplicate with an added mark (watermark, logo); the member that shows it
   is named. Anything else: different ("differs in 2 regions, 4% of the picture").
   One picture showing much more than the other (``max_uncovered``), or a band the other lacks that is
   a flat field with text on it (a caption bar), is different too.

``classify`` adds the second category: a pair that fails but is one scene (both from a camera, taken
within ``SCENE_SECONDS``, aligned by one global transform) is ``similar`` (bursts, brackets, retakes,
a stereo pair). ``heat`` gives the review page (``photodedup.difference``) the picture of where two files differ.
Arrays in, verdicts out: no catalog, no files.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, replace

import numpy as np

from photodedup import hashing, verify

DUPLICATE, SIMILAR, DIFFERENT = "duplicate", "similar", "different"
#: Two captures of one scene: both files name a camera and were taken at most this far apart.
SCENE_SECONDS = 600.0


@dataclass(frozen=True)
class ConfirmSettings:
    """What a confirmed pair must show (measured on the look-alike library: docs/BENCHMARKS.md)."""

    side: int = 320               # compare at most this many pixels on the long side (the thumbnails)
    min_level: float = 28.0       # a pixel is hot above this many grey levels ...
    noise_k: float = 6.0          # ... and above this many robust sigmas of the pair's own difference ...
    max_noise: float = 48.0       # ... which counts up to this many levels (a pair that differs everywhere)
    min_blob: int = 6             # hot specks smaller than this many pixels are noise
    mark_area: float = 0.04       # an added mark: one region of at most this share of the picture ...
    mark_span: float = 0.5        # ... at most this share of the width and of the height ...
    edge_margin: float = 0.08     # ... within this share of the size from an edge, in one quarter ...
    mark_energy: float = 1.5      # ... where one picture has this many times the other's edges (added),
    # ... or is the other seen through a translucent plate (``_plate``): its texture shows through, fainter:
    plate_gain: tuple[float, float] = (0.1, 0.85)  # the texture kept at this share (1 - the plate's opacity) ...
    plate_tolerance: float = 8.0  # ... within this many levels ...
    plate_share: float = 0.4      # ... on at least this share of the region (the rest: the mark's own ink) ...
    plate_lead: float = 1.5       # ... and this many times the share an opaque patch or no change fits
    edge_slack: float = 0.2       # a pixel may also lie this share of the local contrast outside (ringing)
    max_uncovered: float = 0.45   # one shows more than this share the other lacks: different (crop > ~25%)
    gain: tuple[float, float] = (0.55, 1.8)   # plausible tone edits: luminance gain ...
    max_offset: float = 70.0                  # ... and offset (levels)
    #: Pairs of camera-less files (screenshots, documents, exports) that pass at ``side`` are checked again
    #: on the files decoded at this many pixels (their text is small: a word is ~1% of a phone screen)
    detail_side: int = 1024
    detail_mark_energy: float = 1.25
    chroma_shift: float = 14.0    # colour edits: chroma offset (levels) at most
    flat_std: float = 4.0         # a picture with less luminance spread than this is flat ...
    flat_shift: float = 10.0      # ... and its colour is its content: tone and chroma shifts at most this


@dataclass
class Confirmation:
    """The verdict on a pair ``(a, b)`` and what it rests on (``box`` in fractions of ``b``'s content)."""

    verdict: str                  # duplicate | different (``classify`` adds similar)
    reason: str                   # in words: "differs in one region, 3% of the picture"
    share: float = 0.0            # share of the picture inside differing regions
    regions: int = 0
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 of all differing regions
    mark: str = ""                # "a" or "b": that picture has an added mark (watermark, logo) the other lacks
    aligned: bool = False         # one global transform maps one onto the other
    how: str = ""                 # the transform: "rescaled", "homography (52 features)"
    noise: float = 0.0            # the pair's noise floor (grey levels)
    variant: int = 0              # the dihedral variant of the first picture compared (a mirrored retry's)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["box"] = None if self.box is None else [round(v, 4) for v in self.box]
        out["share"], out["noise"] = round(self.share, 4), round(self.noise, 2)
        return out


# -- one pair ------------------------------------------------------------------------------------------
def confirm(a: np.ndarray, b: np.ndarray, *, variant: int = 0, settings: ConfirmSettings = ConfirmSettings(),
            features: tuple | None = None) -> Confirmation:
    """Whether ``b`` shows the same picture as ``a`` (RGB or grey ``uint8`` arrays, borders trimmed).

    ``variant``: the dihedral variant of ``a`` that looks like ``b`` (``photodedup.hashing.VARIANTS``).
    ``features``: ORB features of (``a`` as turned, ``b``) when the caller has them cached.
    """
    a, b = _prepared(hashing.apply_variant(_rgb(a), variant), settings), _prepared(_rgb(b), settings)
    return _checked(a, b, settings, features)


def heat(a: np.ndarray, b: np.ndarray, *, variant: int = 0,
         settings: ConfirmSettings = ConfirmSettings()) -> np.ndarray:
    """Where ``b`` differs from ``a``: ``uint8 [H, W]`` over ``b``'s content (at most ``settings.side``
    pixels on the long side), 0 within the pair's noise floor, 255 at four times it or more; 0 also
    where ``a`` does not reach. What the review page's compare view overlays."""
    a, b = _prepared(hashing.apply_variant(_rgb(a), variant), settings), _prepared(_rgb(b), settings)
    pair = _compare(a, b, settings, None)
    if isinstance(pair, Confirmation):
        return np.zeros(b.shape[:2], np.uint8)
    import cv2

    above = pair.residual > pair.threshold
    scaled = np.clip(pair.residual / (4 * pair.threshold), 0, 1) * (pair.inside & above)
    found = np.where(above, np.maximum(1, scaled * 255), 0).astype(np.uint8)
    if found.shape != b.shape[:2]:  # compared at the smaller picture's scale
        found = cv2.resize(found, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_NEAREST)
    return found


def detailed(settings: ConfirmSettings) -> ConfirmSettings:
    """The settings of the second look at ``detail_side`` pixels (specks scale with the area)."""
    scale = settings.detail_side / settings.side
    # Fine texture survives at full resolution (the thumbnails' JPEG smooths it): an added mark stands out
    # less (1.35x on the sample library's watermark against 2x at 320 px), a changed word not at all (0.96x).
    return replace(settings, side=settings.detail_side, min_blob=round(settings.min_blob * scale * scale),
                   mark_energy=settings.detail_mark_energy)


def photo_like(rgb: np.ndarray) -> bool:
    """A photograph rather than a screen or a page: under 30% of it is flat (5 x 5 spread under 2 levels).
    Screens and pages are mostly flat, and a changed word on them looks like an added mark at 320 px."""
    import cv2

    grey = np.ascontiguousarray(_luma(_rgb(rgb).astype(np.float32)))
    kernel = np.ones((5, 5), np.uint8)
    spread = cv2.dilate(grey, kernel) - cv2.erode(grey, kernel)
    return bool((spread < 2).mean() < 0.3)


def classify(result: Confirmation, a: dict, b: dict) -> str:
    """``result``'s verdict with the second category: a failed pair from one scene is ``similar``.

    ``a``, ``b``: the files' metadata (``camera``, ``taken_at`` ISO strings). One scene: both name the
    same camera, were taken within ``SCENE_SECONDS`` of each other, and one global transform aligns
    them. Screenshots and documents (no camera) are never similar shots. A duplicate whose only
    difference is a mark, from two captures taken at different times, is a similar shot too (a thing
    that moved near an edge looks like a mark)."""
    scene = _same_scene(a, b) and result.aligned
    if result.verdict == DUPLICATE:
        if result.mark and scene and a.get("taken_at") != b.get("taken_at"):
            return SIMILAR
        return DUPLICATE
    return SIMILAR if scene else DIFFERENT


def _same_scene(a: dict, b: dict) -> bool:
    from datetime import datetime

    if not (a.get("camera") and b.get("camera") and a.get("taken_at") and b.get("taken_at")):
        return False
    if a["camera"] != b["camera"]:
        return False
    try:
        seconds = abs((datetime.fromisoformat(a["taken_at"]) - datetime.fromisoformat(b["taken_at"])).total_seconds())
    except ValueError:
        return False
    return seconds <= SCENE_SECONDS


# -- the steps -----------------------------------------------------------------------------------------
def _rgb(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    return pixels[:, :, :3]


def _prepared(rgb: np.ndarray, settings: ConfirmSettings) -> np.ndarray:
    """At most ``settings.side`` pixels on the long side (area-averaged), float32."""
    import cv2

    height, width = rgb.shape[:2]
    scale = settings.side / max(height, width)
    if scale < 1:
        rgb = cv2.resize(np.ascontiguousarray(rgb), (max(1, round(width * scale)), max(1, round(height * scale))),
                         interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb, dtype=np.float32)


@dataclass
class _Pair:
    residual: np.ndarray     # float32 [H, W] over b: how far outside each other's values (levels)
    inside: np.ndarray       # bool [H, W]: where a reaches
    threshold: float
    noise: float
    a: np.ndarray            # a warped onto b, tone-fitted (float32 RGB)
    b: np.ndarray
    uncovered_a: float       # share of a that b does not show
    uncovered_b: float
    a_only: np.ndarray       # a's own pixels where b does not reach (bool mask over a), for the caption test
    b_only: np.ndarray       # b's pixels where a does not reach
    a_raw: np.ndarray
    how: str


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _chroma(rgb: np.ndarray, luma: np.ndarray) -> np.ndarray:
    return np.stack([(rgb[..., 2] - luma) * 0.564, (rgb[..., 0] - luma) * 0.713], axis=-1)


def _rescale(a: np.ndarray, b: np.ndarray, *, loose: bool = False) -> np.ndarray | None:
    """The plain rescale from ``a``'s pixels to ``b``'s, when their shapes agree (within 3%; ``loose``:
    whatever their shapes)."""
    (ha, wa), (hb, wb) = a.shape[:2], b.shape[:2]
    return np.diag([wb / wa, hb / ha, 1.0]) if loose or abs((wa / ha) / (wb / hb) - 1) <= 0.03 else None


def _orb(a: np.ndarray, b: np.ndarray, features) -> tuple[np.ndarray, str] | None:
    """The homography ORB features agree on (a plausible one: no stretch), or None."""
    fa, fb = features() if callable(features) else features if features is not None else (_features(a), _features(b))
    if fa is None or fb is None:
        return None
    fit = verify.homography(fa, fb)
    if isinstance(fit, verify.Verdict):
        return None
    h, _, _, keep = fit
    if verify._anisotropy(h, fa.size) > 1.15 or verify._covered(h, fa.size, fb.size) is None:
        return None
    return h, f"homography ({int(keep.sum())} matching features)"


def _features(rgb: np.ndarray):
    grey = np.clip(_luma(rgb), 0, 255).astype(np.uint8)
    return verify.features(grey)


#: Width of the small grey pictures the alignment candidates are scored on.
_SCORE_WIDTH = 96
#: A rescale that leaves less than this mean difference (levels, small pictures, after a tone fit) is
#: taken without looking for features.
_GOOD_FIT = 5.0


class _Greys:
    """What aligning one pair ``(a, b)`` looks at more than once, made once: the grey pictures (ECC, the
    crop search), their small copies (scores), each candidate's score, and the candidates the search
    found (``_checked`` aligns a pair a second time without the plain rescale). Caching only: every
    value is what recomputing it would give."""

    def __init__(self, a: np.ndarray, b: np.ndarray, sides: tuple[dict, dict] | None = None):
        """``sides``: a cache for each picture's own values, shared by the pairs of one picture (the
        caller's promise: the same pixels each time)."""
        self.a, self.b = a, b
        self.searched: list | None = None     # the refined candidates of the search (rescale or not)
        self.inner: _Greys | None = None      # a large pair's small copies (``_align``)
        self.refined: dict = {}               # a large pair's full-size refinement per estimate
        self._cache: dict = {}
        self._sides = {"a": sides[0], "b": sides[1]} if sides is not None else {"a": {}, "b": {}}

    def _get(self, key, make, which: str | None = None):
        cache = self._cache if which is None else self._sides[which]
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def luma(self, which: str) -> np.ndarray:
        return self._get("luma", lambda: _luma(self.a if which == "a" else self.b), which)

    def grey(self, which: str) -> np.ndarray:
        """The luma as float32 (the same array when it is float32 already)."""
        luma = self.luma(which)
        return luma if luma.dtype == np.float32 else self._get("grey", lambda: luma.astype(np.float32), which)

    def small(self, which: str, size: tuple[int, int], *, grey: bool = False) -> np.ndarray:
        """The luma (``grey``: as float32) resized to ``size``, area-averaged."""
        import cv2

        source = self.grey(which) if grey else self.luma(which)
        return self._get(("small", source.dtype.str, size),
                         lambda: cv2.resize(source, size, interpolation=cv2.INTER_AREA), which)

    def spread(self, which: str, size: tuple[int, int]) -> float:
        """The standard deviation of ``small(which, size, grey=True)`` (a crop search's window)."""
        return self._get(("spread", size), lambda: self.small(which, size, grey=True).std(), which)

    def score(self, h: np.ndarray) -> float:
        return self._get(("score", h.dtype.str, h.tobytes()), lambda: _score(self.a, self.b, h, self))


def _score(a: np.ndarray, b: np.ndarray, h: np.ndarray, greys: _Greys | None = None) -> float:
    """Mean absolute luminance difference of ``a`` mapped by ``h`` onto ``b``, on small copies, after a
    least-squares tone fit (lower is better; inf when they hardly overlap)."""
    import cv2

    greys = greys or _Greys(a, b)
    (ha, wa), (hb, wb) = a.shape[:2], b.shape[:2]
    sa, sb = _SCORE_WIDTH / wa, _SCORE_WIDTH / wb
    small_b = greys.small("b", (_SCORE_WIDTH, max(1, round(hb * sb))))
    small_a = greys.small("a", (_SCORE_WIDTH, max(1, round(ha * sa))))
    warp = np.diag([sb, sb, 1.0]) @ h @ np.diag([1 / sa, 1 / sa, 1.0])
    size = (small_b.shape[1], small_b.shape[0])
    moved = cv2.warpPerspective(small_a, warp, size, flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.ones_like(small_a), warp, size, flags=cv2.INTER_NEAREST) > 0.5
    if inside.mean() < 0.3:
        return float("inf")
    x, y = moved[inside].astype(np.float64), small_b[inside].astype(np.float64)
    var = x.var()
    gain = float(np.clip(((x - x.mean()) * (y - y.mean())).mean() / var, 0.5, 2.0)) if var > 1 else 1.0
    return float(np.abs(y - (gain * (x - x.mean()) + y.mean())).mean())


def _compare(a: np.ndarray, b: np.ndarray, settings: ConfirmSettings, features, *,
             rescale: bool = True, greys: _Greys | None = None, retry: bool = False) -> _Pair | Confirmation:
    """Align (the better of a rescale and the ORB homography), then the residual of the aligned pair.
    ``greys``: the pair's cached grey pictures and candidates (``_Greys`` of ``a``, ``b``); ``retry``: a
    mirrored retry (``_align``)."""
    import cv2

    found = _align(a, b, features, rescale=rescale, greys=greys, retry=retry)
    if isinstance(found, Confirmation):
        return found
    if found[1] == "rescaled" and a.shape[0] * a.shape[1] < 0.9 * b.shape[0] * b.shape[1]:
        # a resized copy is compared at the smaller picture's scale: upsampling blurs the drawn edges
        # (stripes, text, graphics) the larger one still has sharp
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    pair = _residual(a, b, *found, settings)
    if pair is None:
        return Confirmation(DIFFERENT, "the two pictures hardly overlap once aligned")
    return pair


#: Pictures larger than this (the second look at a file's pixels) are aligned on copies of this size,
#: then refined at their own: ORB and ECC find a crop reliably at thumbnail scale.
_ALIGN_SIDE = 320


def _align(a: np.ndarray, b: np.ndarray, features, *, rescale: bool = True,
           greys: _Greys | None = None, retry: bool = False) -> tuple[np.ndarray, str] | Confirmation:
    """``(homography from a's pixels to b's, how)``, or why the two cannot be aligned.

    ``retry``: a mirrored retry of a pair that failed as proposed (``_confirm_chunk``), which counts only
    as a duplicate: when the rescale does not fit and neither ORB's features nor the crop search find the
    turned picture in the other, it cannot be a copy of it, and the rescale is not refined (ECC from a
    rescale that does not fit is what most retries cost, and never made one a duplicate: docs/DECISIONS.md
    "The mirrored retry looks only where something matched")."""
    import cv2

    greys = greys or _Greys(a, b)

    scale_a, scale_b = (min(1.0, _ALIGN_SIDE / max(p.shape[:2])) for p in (a, b))
    if min(scale_a, scale_b) < 0.75:  # a large pair: align small copies, then refine at full size
        def small(p: np.ndarray, scale: float) -> np.ndarray:
            size = (max(1, round(p.shape[1] * scale)), max(1, round(p.shape[0] * scale)))
            return cv2.resize(p, size, interpolation=cv2.INTER_AREA) if scale < 1 else p

        if greys.inner is None:
            greys.inner = _Greys(small(a, scale_a), small(b, scale_b))
        sa, sb = greys.inner.a, greys.inner.b
        found = _align(sa, sb, None, rescale=rescale, greys=greys.inner, retry=retry)
        if isinstance(found, Confirmation) or found[1] == "rescaled":
            return found if isinstance(found, Confirmation) else (_rescale(a, b, loose=True), found[1])
        ratio_a = np.diag([sa.shape[1] / a.shape[1], sa.shape[0] / a.shape[0], 1.0])
        ratio_b = np.diag([b.shape[1] / sb.shape[1], b.shape[0] / sb.shape[0], 1.0])
        h = ratio_b @ found[0] @ ratio_a
        h = h / h[2, 2]
        key = h.tobytes()
        if key not in greys.refined:
            greys.refined[key] = _refined(a, b, h, greys)
        return greys.refined[key], found[1]
    candidates = []
    plain = _rescale(a, b)
    if plain is not None and rescale:
        candidates.append((greys.score(plain), plain, "rescaled"))
    if not candidates or candidates[0][0] > _GOOD_FIT:
        # the rescale failed or does not apply: every other estimate, each refined by the pictures' own
        # correlation (ECC) before it is scored (once per pair: the same with or without the rescale)
        if greys.searched is None:
            found = [(plain, "rescaled and aligned")] if plain is not None else []
            if (orb := _orb(a, b, features)) is not None:
                found.append(orb)
            if (crop := _crop_search(a, b, greys)) is not None:
                found.append((crop, "a crop found by search"))
            greys.searched = []
            if retry and len(found) == (plain is not None):   # the rescale alone: nothing matched
                return Confirmation(DIFFERENT, "the turned picture matches neither by features nor as a crop")
            for h, how in found:
                h = _refined(a, b, h, greys)
                greys.searched.append((greys.score(h), h, how))
        candidates.extend(greys.searched)
    candidates = [c for c in candidates if np.isfinite(c[0])]
    if not candidates:
        return Confirmation(DIFFERENT, "the two pictures cannot be aligned (different shapes, no common features)")
    _, h, how = min(candidates, key=lambda c: c[0])
    return h, how


#: A crop is searched among windows of this share of the other picture's width (a crop of up to ~25% of
#: the area per side: ``max_uncovered`` refutes more), in steps of about one pixel of the small pictures.
_CROP_SHARES = (0.7, 1.0)


def _crop_search(a: np.ndarray, b: np.ndarray, greys: _Greys | None = None) -> np.ndarray | None:
    """The scale-and-shift from ``a`` to ``b`` when one is a crop of the other, found by normalised
    cross-correlation of the small grey pictures over window sizes (``_CROP_SHARES``) and places: ORB's
    few features on smooth or drawn pictures often miss a crop, or shear it. None when nothing correlates."""
    import cv2

    greys = greys or _Greys(a, b)
    grey_a, grey_b = greys.grey("a"), greys.grey("b")  # once, not once per window width
    best = (0.0, None, False)
    for outer, inner, forward in ((grey_a, grey_b, True), (grey_b, grey_a, False)):
        h, w = outer.shape[:2]  # the size ``small(outer, _SCORE_WIDTH)`` makes
        big = greys.small("a" if forward else "b", (_SCORE_WIDTH, max(1, round(h * _SCORE_WIDTH / w))), grey=True)
        wo = outer.shape[1]
        wi = inner.shape[1]
        low, high = (round(_SCORE_WIDTH * share) for share in _CROP_SHARES)
        h, w = inner.shape[:2]
        for width in range(low, high):
            which, size = "b" if forward else "a", (width, max(1, round(h * width / w)))
            template = greys.small(which, size, grey=True)
            if not 8 <= template.shape[0] < big.shape[0] or greys.spread(which, size) < 1:
                continue
            found = cv2.matchTemplate(big, template, cv2.TM_CCOEFF_NORMED)
            _, score, _, (x, y) = cv2.minMaxLoc(found)
            if score > best[0]:
                scale = wo / _SCORE_WIDTH    # small pixels of the outer picture -> its own
                # the inner picture's pixels -> the outer's: its width spans ``width`` small pixels at (x, y)
                k = width * scale / wi
                to_outer = np.array([[k, 0, x * scale], [0, k, y * scale], [0, 0, 1]], np.float64)
                best = (score, to_outer, forward)
    if best[0] < 0.8:
        return None
    return np.linalg.inv(best[1]) if best[2] else best[1]  # inverted once, for the best window only


def _refined(a: np.ndarray, b: np.ndarray, h: np.ndarray, greys: _Greys | None = None) -> np.ndarray:
    """The homography refined to sub-pixel accuracy by maximising the correlation of the grey pictures
    (OpenCV's ECC, from ORB's estimate): ORB's few features leave a pixel or two of error at the rim."""
    import cv2

    greys = greys or _Greys(a, b)
    warp = np.linalg.inv(h).astype(np.float32)
    warp /= warp[2, 2]
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-4)
    try:
        _, warp = cv2.findTransformECC(greys.grey("b"), greys.grey("a"), warp,
                                       cv2.MOTION_HOMOGRAPHY, criteria, None, 5)
    except cv2.error:
        return h
    refined = np.linalg.inv(warp.astype(np.float64))
    refined /= refined[2, 2]
    # a plausible correction only: no stretch, corners within 15% of the picture of where they were (ORB's
    # few features on a crop can leave a shear of several pixels), and a better fit of the pixels
    height, width = a.shape[:2]
    corners = np.array([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]], np.float64).T
    before, after = h @ corners, refined @ corners
    moved = np.abs(after[:2] / after[2] - before[:2] / before[2]).max()
    if verify._anisotropy(refined, (width, height)) > 1.05 or moved > 0.15 * max(b.shape[:2]):
        return h
    if moved > 0.05 * max(b.shape[:2]) and not greys.score(refined) < greys.score(h):
        return h
    return refined


def _residual(a: np.ndarray, b: np.ndarray, h: np.ndarray, how: str, settings: ConfirmSettings) -> _Pair | None:
    import cv2

    hb, wb = b.shape[:2]
    ha, wa = a.shape[:2]
    if how == "rescaled":  # the common case: a resize, nothing uncovered
        shrink = wb * hb < wa * ha
        warped = cv2.resize(a, (wb, hb), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        reach, back = np.ones((hb, wb), bool), np.ones((ha, wa), bool)
    else:
        warped = cv2.warpPerspective(a, h, (wb, hb), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        reach = cv2.warpPerspective(np.ones((ha, wa), np.uint8), h, (wb, hb), flags=cv2.INTER_NEAREST) > 0
        back = cv2.warpPerspective(np.ones((hb, wb), np.uint8), np.linalg.inv(h), (wa, ha),
                                   flags=cv2.INTER_NEAREST) > 0
    inside = cv2.erode(reach.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # resampling spoils the rim ...
    inside[:2], inside[-2:], inside[:, :2], inside[:, -2:] = False, False, False, False  # ... of both pictures
    if inside.mean() < 0.3:
        return None
    ya, yb = _luma(warped), _luma(b)
    ca, cb = _chroma(warped, ya), _chroma(b, yb)
    sample = np.zeros_like(inside)
    sample[::3, ::3] = inside[::3, ::3]  # every ninth pixel is plenty for the fits
    grey = _grey(ca[sample]) or _grey(cb[sample])
    flat = _flat(ya[sample], yb[sample], settings)
    gain, offset = _tone_fit(ya[sample], yb[sample], flat, settings)
    channels = [(np.clip(ya * gain + offset, 0, 255), yb)]
    # Clipped pixels of the picture the tone edit brightened (or darkened) past the range: its true value
    # lies anywhere beyond what it shows, so only the other side counts (a brightened copy's blown
    # highlights), and their colour says nothing (one channel clipped turns the hue)
    open_a, open_b = _clipped(warped, gain, offset, towards="a"), _clipped(b, gain, offset, towards="b")
    if not grey:  # saturation edits scale the chroma on their own: a gain of its own, a small offset
        limit = settings.flat_shift if flat else settings.chroma_shift
        x, y = ca[sample].reshape(-1), cb[sample].reshape(-1)
        var = float(x.var())
        saturation = float(np.clip((x * y).mean() / (x * x).mean(), *settings.gain)) if var > 4 and not flat else 1.0
        for k in range(2):
            shift = float(np.median(cb[..., k][sample] - ca[..., k][sample] * saturation))
            channels.append((ca[..., k] * saturation + float(np.clip(shift, -limit, limit)), cb[..., k]))
    kernel = np.ones((3, 3), np.uint8)
    residual = np.zeros((hb, wb), np.float32)
    for n, (x, y) in enumerate(channels):
        x, y = x.astype(np.float32), y.astype(np.float32)
        # outside the other's values within one pixel, both ways: sub-pixel shifts and resampling cost nothing;
        # and by a share of the local contrast: ringing around an edge both pictures have costs nothing either
        ranges = (_span(x, *open_a), _span(y, *open_b)) if n == 0 else ((x, x), (y, y))
        found = np.maximum(_outside(ranges[1], ranges[0], x, kernel, settings.edge_slack),
                           _outside(ranges[0], ranges[1], y, kernel, settings.edge_slack))
        # and by what each holds within one pixel: resampling at another scale or phase moves a thin line's or
        # a stroke's ink between neighbouring pixels (its peak depends on where the pixel grid falls) but
        # keeps the ink; a changed, added or removed stroke changes it
        found = np.minimum(found, np.abs(cv2.blur(x, (3, 3)) - cv2.blur(y, (3, 3))))
        if n and (open_a[0] is not None or open_b[0] is not None):
            found[_either(open_a[0], open_b[0])] = 0
        residual = np.maximum(residual, found)
    residual[~inside] = 0
    # The pair's noise floor: a robust sigma (MAD) of the plain luminance difference, so a
    # heavy re-encode raises the bar and a clean resize lowers it; never above max_noise (a pair that
    # differs everywhere must not hide its differences under its own "noise").
    signed = (channels[0][0] - channels[0][1])[sample]
    noise = settings.noise_k * 1.4826 * float(np.median(np.abs(signed - np.median(signed))))
    threshold = float(np.clip(noise, settings.min_level, settings.max_noise))
    return _Pair(residual, inside, threshold, noise, warped, b, float((~back).mean()), float(1 - reach.mean()),
                 ~back, ~reach, a, how)


def _outside(y: tuple[np.ndarray, np.ndarray], x: tuple[np.ndarray, np.ndarray], values: np.ndarray,
             kernel: np.ndarray, slack: float) -> np.ndarray:
    """How far each pixel's range ``y`` (low, high) lies outside the range of ``x`` within one pixel,
    widened by ``slack`` times the local contrast of ``values`` (x's own values)."""
    import cv2

    high, low = cv2.dilate(x[1], kernel), cv2.erode(x[0], kernel)
    # a range that is x's own values (no clipped pixels: ``_span``) has that very dilate and erode
    top = high if x[1] is values else cv2.dilate(values, kernel)
    bottom = low if x[0] is values else cv2.erode(values, kernel)
    margin = slack * (top - bottom)
    return np.maximum(y[0] - high - margin, low - margin - y[1])


#: A channel at or beyond these levels is clipped (blown out, crushed).
_CLIP_HIGH, _CLIP_LOW = 250, 5


def _clipped(rgb: np.ndarray, gain: float, offset: float, *, towards: str) -> tuple:
    """``(high, low)`` masks of the pixels whose true value may lie above (below) what ``rgb`` shows:
    a channel clipped in the picture that the tone fit says was pushed past the range (the brighter one
    at the top, the darker one at the bottom); None where the fit says it was not (a plain copy)."""
    top, bottom = gain * 255 + offset, offset   # where the first picture's extremes land on the second's
    if towards == "a":   # the first is brighter (its 255 maps below 255) / darker (its 0 maps above 0)
        pushed_high, pushed_low = top < 255 - 3, bottom > 3
    else:
        pushed_high, pushed_low = top > 255 + 3, bottom < -3
    high = (rgb >= _CLIP_HIGH).any(axis=2) if pushed_high else None
    low = (rgb <= _CLIP_LOW).any(axis=2) if pushed_low else None
    return high, low


def _span(values: np.ndarray, high: np.ndarray | None, low: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's possible range: its value, open upwards where clipped ``high`` and downwards where ``low``."""
    top = values if high is None else np.where(high, np.float32(1e4), values)
    bottom = values if low is None else np.where(low, np.float32(-1e4), values)
    return bottom, top


def _either(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray:
    return b if a is None else a if b is None else a | b


def _grey(chroma: np.ndarray) -> bool:
    """No colour: the 99th percentile of the chroma magnitude under the scan's grey tolerance."""
    magnitude = np.maximum(np.abs(chroma[:, 0]), np.abs(chroma[:, 1]))
    return bool(np.percentile(magnitude, 99) <= hashing.GRAY_TOLERANCE / 2)


def _flat(x: np.ndarray, y: np.ndarray, settings: ConfirmSettings) -> bool:
    return bool(x.std() < settings.flat_std or y.std() < settings.flat_std)


def _tone_fit(x: np.ndarray, y: np.ndarray, flat: bool, settings: ConfirmSettings) -> tuple[float, float]:
    """``(gain, offset)`` with ``y ~ clip(gain x + offset)``, robust (two reweighted passes, clipped
    pixels left out); flat pictures keep gain 1. Outside plausible edits, the implausible fit is kept
    (the residual then shows the difference)."""
    usable = (y > 2) & (y < 253)
    if usable.sum() < 0.2 * len(y):
        usable = np.ones_like(y, bool)
    xs, ys = x[usable].astype(np.float64), y[usable].astype(np.float64)
    if flat:
        shift = float(np.median(ys - xs))
        return 1.0, float(np.clip(shift, -settings.flat_shift, settings.flat_shift))
    weights = np.ones_like(xs)
    gain, offset = 1.0, 0.0
    for _ in range(3):
        w = weights
        mx, my = np.average(xs, weights=w), np.average(ys, weights=w)
        var = np.average((xs - mx) ** 2, weights=w)
        gain = float(np.average((xs - mx) * (ys - my), weights=w) / var) if var > 1e-6 else 1.0
        offset = my - gain * mx
        r = np.abs(ys - (gain * xs + offset))
        scale = max(2.0, 1.4826 * float(np.median(r)))
        weights = (r < 3 * scale).astype(np.float64) + 1e-6
    gain = float(np.clip(gain, *settings.gain))
    offset = float(np.clip(np.median(ys - gain * xs), -settings.max_offset, settings.max_offset))
    # A few flat colours (a chart, a document) make the regression ill-posed: keep the plain offset
    # unless the fit explains the pixels clearly better (clipping counted, over every pixel).
    plain = float(np.clip(np.median(y - x), -settings.max_offset, settings.max_offset))

    def error(g: float, o: float) -> float:
        return float(np.median(np.abs(y - np.clip(g * x + o, 0, 255))))

    return (gain, offset) if error(gain, offset) < 0.8 * error(1.0, plain) else (1.0, plain)


def _regions(hot: np.ndarray, settings: ConfirmSettings) -> list[tuple[int, int, int, int, int]]:
    """Hot pixels as regions ``(x0, y0, x1, y1, hot pixels)``: specks below ``min_blob`` dropped, the
    rest joined when within ~3% of the picture's size of each other."""
    import cv2

    if not hot.any():
        return []
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hot.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= settings.min_blob
    kept = keep[labels]
    if not kept.any():
        return []
    reach = max(3, round(0.03 * max(hot.shape)))
    joined = cv2.dilate(kept.astype(np.uint8), np.ones((reach, reach), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    out = []
    for k in range(1, count):
        mask = (labels == k) & kept
        ys, xs = np.nonzero(mask)
        out.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, int(mask.sum())))
    return sorted(out, key=lambda r: -(r[2] - r[0]) * (r[3] - r[1]))


def _judge(pair: _Pair, settings: ConfirmSettings) -> Confirmation:
    height, width = pair.residual.shape
    base = {"aligned": True, "how": pair.how, "noise": pair.noise}
    shown_more = max(pair.uncovered_a, pair.uncovered_b)
    if shown_more > settings.max_uncovered:
        return Confirmation(DIFFERENT, f"one shows {shown_more:.0%} of its picture that the other lacks", **base)
    caption = _caption(pair)
    if caption:
        return Confirmation(DIFFERENT, caption, **base)
    regions = _regions(pair.residual > pair.threshold, settings)
    if not regions:
        words = "no difference above the pair's noise floor"
        if shown_more > 0.01:
            words += f" (a crop: {shown_more:.0%} of one is outside the other)"
        return Confirmation(DUPLICATE, words, **base)
    x0, y0 = min(r[0] for r in regions), min(r[1] for r in regions)
    x1, y1 = max(r[2] for r in regions), max(r[3] for r in regions)
    box = (x0 / width, y0 / height, x1 / width, y1 / height)
    share = sum((r[2] - r[0]) * (r[3] - r[1]) for r in regions) / float(width * height)
    place = where(box)
    mark = _marked(pair, regions[0], settings) if len(regions) == 1 and _is_mark(box, settings) else ""
    if mark:
        return Confirmation(DUPLICATE, f"the same picture with an added mark {place}, {percent(share)} of the picture",
                            share, 1, box, mark, **base)
    count = "one region" if len(regions) == 1 else f"{len(regions)} regions"
    return Confirmation(DIFFERENT, f"differs in {count}, {percent(share)} of the picture ({place})",
                        share, len(regions), box, **base)


def percent(share: float) -> str:
    """A share of the picture in words."""
    return f"{share:.0%}" if share >= 0.01 else "under 1%"


def where(box: tuple[float, float, float, float] | None) -> str:
    """Where a box (fractions of the picture) lies, in words: "bottom right", "in the centre"."""
    if box is None:
        return "somewhere"
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    if box[2] - box[0] > 0.6 and box[3] - box[1] > 0.6:
        return "all over"
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    return "in the centre" if (row, col) == ("middle", "centre") else f"{row} {col}".replace("middle ", "")


def _is_mark(box: tuple[float, float, float, float], settings: ConfirmSettings) -> bool:
    """Small, near an edge, and within one quarter of the picture (meme text runs across the middle)."""
    w, h = box[2] - box[0], box[3] - box[1]
    margin = settings.edge_margin
    at_edge = box[0] <= margin or box[1] <= margin or box[2] >= 1 - margin or box[3] >= 1 - margin
    one_quarter = (box[2] <= 0.5 or box[0] >= 0.5) and (box[3] <= 0.5 or box[1] >= 0.5)
    return at_edge and one_quarter and w * h <= settings.mark_area and w <= settings.mark_span \
        and h <= settings.mark_span


def _marked(pair: _Pair, region: tuple[int, int, int, int, int], settings: ConfirmSettings) -> str:
    """Which picture shows an *added* mark: the one that is the other seen through a translucent plate
    (``_plate``), else the one with ``mark_energy`` times the fine structure (edges) of the other inside
    the region; "" when neither (a changed label or number in a corner: both pictures have their own
    text there)."""
    import cv2

    x0, y0, x1, y1, _ = region

    scale = min(1.0, 320 / max(pair.b.shape[:2]))  # measured at thumbnail scale: JPEG blocks are finer

    def energy(rgb: np.ndarray) -> float:
        grey = _luma(rgb[y0:y1, x0:x1]).astype(np.float32)
        if not grey.size:
            return 0.0
        if scale < 1:
            size = (max(3, round(grey.shape[1] * scale)), max(3, round(grey.shape[0] * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())

    # a translucent plate first: the texture under it shows through (on a busy background, gravel, grass or
    # foliage, the plate hides about as many edges as its own ink adds: docs/DECISIONS.md "A watermark on
    # texture"); and it names the right side where the edges do not (a darkened corner has fewer edges)
    inside = pair.inside[y0:y1, x0:x1]
    pa, pb = pair.a[y0:y1, x0:x1][inside], pair.b[y0:y1, x0:x1][inside]
    plated = [name for name, under, over in (("a", pb, pa), ("b", pa, pb)) if _plate(under, over, settings)]
    if len(plated) == 1:
        return plated[0]
    ea, eb = energy(pair.a), energy(pair.b)
    return "a" if ea >= settings.mark_energy * eb else "b" if eb >= settings.mark_energy * ea else ""


def _plate(under: np.ndarray, over: np.ndarray, settings: ConfirmSettings) -> bool:
    """Whether ``over`` (one region's RGB pixels) is ``under`` seen through a translucent plate: one colour
    laid over it at one opacity, ``over = (1 - opacity) * under + opacity * colour``, on a good share of
    the region (the rest is the mark's own text and logo). The texture under the plate shows through,
    fainter: such a blend fits clearly more pixels than both an opaque patch (``over`` one colour, nothing
    of ``under`` left) and no change (``over`` = ``under``: a changed label or number, where both sides'
    own ink lies on one background), and it keeps one opacity in every colour channel (a recoloured object
    does not). A moved or removed object is no blend of the other's pixels; over a flat region every
    blend fits alike (the edge test decides there)."""
    found = _plate_readings(under, over, settings)
    return bool(found and found["share"] >= settings.plate_share
                and found["share"] >= settings.plate_lead * max(found["opaque"], found["unchanged"])
                and max(found["spread"]) <= settings.plate_tolerance
                and -20 <= min(found["colour"]) and max(found["colour"]) <= 275)


def _plate_readings(under: np.ndarray, over: np.ndarray, settings: ConfirmSettings = ConfirmSettings()) -> dict | None:
    """What ``_plate`` reads (``under``, ``over``: one region's RGB pixels, ``N x 3``): for the kept share
    ``gain`` (1 - opacity) of 0.1 ... 0.85 that fits most, the ``share`` of pixels within ``plate_tolerance``
    of one ``over - gain * under``; the shares an ``opaque`` patch (gain 0) and ``unchanged`` pixels (gain 1)
    fit; the plate's ``colour`` and, per channel, the ``spread`` of what it adds on the fitting pixels.
    None for fewer than 16 pixels. (A mode search, not a regression: a small logo's ink is half its box.)"""
    x, y = _luma(under).astype(np.float32), _luma(over).astype(np.float32)
    if len(x) < 16:
        return None
    width = 2 * settings.plate_tolerance

    def fitting(gain: float) -> tuple[float, float]:
        """The share of pixels within the tolerance of one ``over - gain * under``, and that value."""
        rest = np.sort(y - gain * x)
        counts = np.searchsorted(rest, rest + width) - np.arange(len(rest))
        best = int(np.argmax(counts))
        return counts[best] / len(rest), float(rest[best] + settings.plate_tolerance)

    fits = {g: fitting(g) for g in np.round(np.arange(0.0, 1.0001, 0.05), 2).tolist()}
    low, high = settings.plate_gain
    gain = max((g for g in fits if low <= g <= high), key=lambda g: fits[g][0])
    share, level = fits[gain]
    # one opacity in every channel: what the plate adds, ``over - gain * under``, is one colour on those pixels
    keep = np.abs(y - gain * x - level) <= settings.plate_tolerance
    added = over[keep] - gain * under[keep]
    centre = np.median(added, axis=0)
    spread = 1.4826 * np.median(np.abs(added - centre), axis=0)
    return {"gain": gain, "share": float(share), "opaque": float(fits[0.0][0]), "unchanged": float(fits[1.0][0]),
            "colour": [float(v) for v in centre / (1 - gain)], "spread": [float(v) for v in spread]}


def _caption(pair: _Pair) -> str:
    """A caption bar: the part of one picture the other does not show is a band along an edge, mostly
    one flat colour, with text-like edges on it."""
    import cv2

    for name, rgb, only in (("first", pair.a_raw, pair.a_only), ("second", pair.b, pair.b_only)):
        # thin slivers along the rim are the warp's rounding, not content
        only = cv2.morphologyEx(only.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(only, connectivity=4)
        if count < 2:
            continue
        only = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))  # the largest piece
        share = float(only.mean())
        if share < 0.03:
            continue
        ys, xs = np.nonzero(only)
        box_w, box_h = xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
        if only.sum() < 0.85 * box_w * box_h or max(box_w / only.shape[1], box_h / only.shape[0]) < 0.9:
            continue  # not a band along one side (a crop leaves a frame or an L)
        pixels = rgb[only]
        dominant = np.median(pixels, axis=0)
        flat = float((np.abs(pixels - dominant).max(axis=1) < 10).mean())
        grey = _luma(rgb).astype(np.float32)
        edges = np.abs(cv2.Laplacian(grey, cv2.CV_32F)) > 60
        text = float(edges[only].mean())
        if flat >= 0.6 and text >= 0.01:
            return f"the {name} picture adds a caption band ({share:.0%} of it: a flat field with text)"
    return ""


# -- the best shot of similar ones -------------------------------------------------------------------
def shot_quality(rgb: np.ndarray) -> dict:
    """What helps choose among shots of one scene: ``sharpness`` (variance of the Laplacian of the grey
    picture: focus and motion blur) and ``clipped`` (share of pixels blown out or crushed: exposure)."""
    import cv2

    grey = np.clip(_luma(_rgb(np.asarray(rgb)).astype(np.float32)), 0, 255).astype(np.uint8)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    clipped = float(((grey >= 250) | (grey <= 5)).mean())
    return {"sharpness": round(sharpness, 1), "clipped": round(clipped, 4)}


def best_shot(scores: dict[int, dict | None]) -> tuple[int, str, dict[int, str]]:
    """``(best item, why, {item: why not})`` among shots of one scene: the least clipped ones (within a
    point of the least), then the sharpest. Without scores: the first, as a plain listing."""
    items = list(scores)
    known = {k: v for k, v in scores.items() if v}
    if not known:
        return items[0], "similar shots of one scene (no quality measured): nothing suggested for the trash", {}
    least = min(v["clipped"] for v in known.values())
    exposed = [k for k, v in known.items() if v["clipped"] <= least + 0.01]
    best = max(exposed, key=lambda k: (known[k]["sharpness"], -items.index(k)))
    top = known[best]
    reason = (f"best shot of these similar shots: sharpest (sharpness {top['sharpness']:.0f}) with "
              f"{percent(top['clipped'])} clipped; a hint only, nothing is suggested for the trash")
    notes = {}
    for k in items:
        if k == best:
            continue
        v = scores.get(k)
        if not v:
            notes[k] = "another shot of the scene (quality not measured)"
        elif k not in exposed:
            notes[k] = f"another shot of the scene: {percent(v['clipped'])} clipped against {percent(top['clipped'])}"
        else:
            notes[k] = f"another shot of the scene: less sharp ({v['sharpness']:.0f} against {top['sharpness']:.0f})"
    return best, reason, notes


# -- many pairs ------------------------------------------------------------------------------------------
def confirm_pairs(pairs, variants, pixels, settings: ConfirmSettings = ConfirmSettings(), *,
                  workers: int | None = None) -> list[Confirmation | None]:
    """A confirmation per ``(item a, item b)`` pair (``variants``: the dihedral variant of ``a`` that
    looks like ``b``, one per pair); ``pixels(item)`` gives a ``verify.Thumbnail`` (None: unknown, and
    the pair's confirmation is None). Decoding and features are done once per item per chunk, in
    worker processes for many pairs (``verify.map_pairs``)."""
    pairs = [(int(a), int(b), int(v)) for (a, b), v in zip(pairs, variants, strict=True)]
    triples = {(a, b): v for a, b, v in pairs}
    return verify.map_pairs([(a, b) for a, b, _ in pairs], pixels, _confirm_chunk, (settings, triples),
                            workers=workers)


def _confirm_chunk(job) -> list[Confirmation | None]:
    import cv2

    cv2.setNumThreads(1)
    pairs, pixels, (settings, variants) = job
    cache: dict = {}
    orb: dict = {}
    sides: OrderedDict = OrderedDict()  # each picture's grey copies (``_Greys``), the most recent few

    def side(key) -> dict:
        if key not in sides:
            sides[key] = {}
            if len(sides) > 32:
                sides.popitem(last=False)
        sides.move_to_end(key)
        return sides[key]

    def load(k: int, variant: int = 0):
        if (k, variant) not in cache:
            thumb = pixels.get(k)
            rgb = None if thumb is None else thumb.rgb()
            # kept as uint8 (a quarter of float32): a chunk holds hundreds of files' pixels
            cache[k, variant] = None if rgb is None else np.clip(
                _prepared(hashing.apply_variant(rgb, variant), settings), 0, 255).astype(np.uint8)
        found = cache[k, variant]
        return None if found is None else found.astype(np.float32)

    def feats(key):
        if key not in orb:
            orb[key] = _features(cache[key].astype(np.float32))
        return orb[key]

    out: list[Confirmation | None] = []
    for a, b in pairs:
        variant = variants.get((a, b), 0)
        pa, pb = load(a, variant), load(b)
        if pa is None or pb is None:
            out.append(None)
            continue
        result = replace(_checked(pa, pb, settings, lambda a=a, b=b, v=variant: (feats((a, v)), feats((b, 0))),
                                  (side((a, variant)), side((b, 0)))), variant=variant)
        for turn in (1, 2) if result.verdict != DUPLICATE and variant == 0 else ():
            # local features match a mirrored or flipped copy too (verification's mirrored retry): try it so
            again = _checked(load(a, turn), pb, settings, lambda a=a, b=b, t=turn: (feats((a, t)), feats((b, 0))),
                             (side((a, turn)), side((b, 0))), retry=True)
            if again.verdict == DUPLICATE:
                result = replace(again, variant=turn)
                break
        out.append(result)
    return out


def _checked(a: np.ndarray, b: np.ndarray, settings: ConfirmSettings, features,
             sides: tuple[dict, dict] | None = None, greys: _Greys | None = None, *,
             retry: bool = False) -> Confirmation:
    # the second look below aligns the same pair again: what it shares is made once (``sides``: each
    # picture's grey copies, shared with its other pairs; ``greys``: the pair's, when the caller has it);
    # ``retry``: a mirrored retry (``_align``)
    greys = greys or _Greys(a, b, sides)
    pair = _compare(a, b, settings, features, greys=greys, retry=retry)
    result = pair if isinstance(pair, Confirmation) else _judge(pair, settings)
    if result.verdict != DUPLICATE and result.how == "rescaled":  # a crop can look like a rescale when small
        pair = _compare(a, b, settings, features, rescale=False, greys=greys, retry=retry)
        if not isinstance(pair, Confirmation) and (found := _judge(pair, settings)).verdict == DUPLICATE:
            return found
    if result.verdict != DUPLICATE and result.aligned:
        # The search's other global alignments, judged too: the best-scoring one is the lowest mean difference
        # on 96-pixel copies, and ECC can settle a rescale into a slightly sheared fit that scores a little
        # better there than the true crop (a crop against a framed copy: 5.62 against 5.80) yet leaves
        # its edges a pixel or two off at 320 px. A copy is a copy under any one plausible alignment; a
        # changed region differs under each.
        for _, h, how in sorted(greys.searched or [], key=lambda c: c[0]):
            if how == result.how:
                continue  # judged above
            pair = _residual(a, b, h, how, settings)
            if pair is not None and (found := _judge(pair, settings)).verdict == DUPLICATE:
                return found
    return result
