"""How far the verification checks sit from true pairs and from pairs that only share a logo.

    PYTHONPATH=. .venv/bin/python benchmarks/verify_margins.py --library /tmp/lib --catalog /tmp/lib.sqlite

For every pair of files in one true group of the library (``truth.json``, as ``sample-library`` and
``benchmarks/second_set.py`` write it) that ORB accepts with the spread and agreement checks off, it
prints the distribution of the two measures the checks use: the share of the picture that the inliers'
convex hull covers (``min_spread``) and the share of tiles in which the aligned pictures agree
(``min_agreement``). Then the same for constructed pairs of *different* pictures that share a
logo (``sample_library.stamp_logo`` at 1, 1.6 and 2.5 times its size): a photo and a plain backdrop,
two plain backdrops, two photos (``--logos`` of each).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from PIL import Image

from photodedup import verify
from photodedup.catalog import Catalog
from photodedup.sample_library import plain_backdrop, source_photos, stamp_logo

OFF = verify.VerifySettings(min_spread=0.0, min_agreement=0.0)


def measures(a: verify.Features, b: verify.Features) -> tuple[float, float | None] | None:
    """(hull share, tile agreement) of an accepted pair; None when ORB does not accept it."""
    import cv2

    if not verify.verify(a, b, OFF).accepted:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < OFF.ratio * m[1].distance]
    src, dst = a.points[[m.queryIdx for m in good]], b.points[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)
    homography, mask = cv2.findHomography(src, dst, cv2.USAC_FAST, 3.0)
    keep = mask.ravel().astype(bool)
    spread = max(verify._hull_share(src[keep], a.size), verify._hull_share(dst[keep], b.size))
    return spread, verify._agreement(homography, a, b)


def true_pairs(library: Path, catalog: Path) -> list[tuple[float, float | None]]:
    truth = json.loads((library / "truth.json").read_text())
    out = []
    with Catalog(catalog) as cat:
        rows = {r["path"]: r for r in cat.files("ok")}
        cache: dict[str, verify.Features | None] = {}

        def feats(path: str) -> verify.Features | None:
            if path not in cache:
                row, jpeg = rows.get(path), None
                jpeg = cat.thumb(row["id"]) if row is not None else None
                gray = verify.Thumbnail.of(jpeg, row).gray() if jpeg else None
                cache[path] = None if gray is None else verify.features(gray)
            return cache[path]

        for group in truth["groups"]:
            for a, b in itertools.combinations([str(library / name) for name in group], 2):
                fa, fb = feats(a), feats(b)
                found = measures(fa, fb) if fa is not None and fb is not None else None
                if found is not None:
                    out.append(found)
    return out


def logo_pairs(count: int) -> dict[str, list[tuple[float, float | None]]]:
    """Different pictures with the same logo, at the sample library's size and 1.6 and 2.5 times it."""
    photos = [Image.open(p).convert("RGB").resize((320, 240), Image.Resampling.BICUBIC) for p in source_photos()]
    kinds = {"a photo and a backdrop": [(photos[k % len(photos)], plain_backdrop(100 + k)) for k in range(count)],
             "two backdrops": [(plain_backdrop(2 * k), plain_backdrop(2 * k + 1)) for k in range(count)],
             "two photos": [(photos[k % len(photos)], photos[(k + 1) % len(photos)]) for k in range(count)]}
    out = {}
    for scale in (1.0, 1.6, 2.5):
        def feats(image: Image.Image, scale: float = scale) -> verify.Features:
            return verify.features(np.asarray(stamp_logo(image, scale).convert("L")))

        for kind, pairs in kinds.items():
            out[f"{kind}, logo x{scale}"] = [m for a, b in pairs if (m := measures(feats(a), feats(b))) is not None]
    return out


def describe(name: str, found: list[tuple[float, float | None]]) -> None:
    if not found:
        print(f"{name}: none accepted by ORB alone")
        return
    spread = np.array([s for s, _ in found])
    agree = np.array([a for _, a in found if a is not None])
    line = f"{name}: {len(found)} accepted by ORB alone; hull share min {spread.min():.3f}"
    line += f", 1% {np.percentile(spread, 1):.3f}, median {np.median(spread):.3f}, max {spread.max():.3f}"
    if len(agree):
        line += f"; tile agreement min {agree.min():.2f}, 1% {np.percentile(agree, 1):.2f}, max {agree.max():.2f}"
    settings = verify.VerifySettings()
    passed = sum(s >= settings.min_spread and (a is None or a >= settings.min_agreement) for s, a in found)
    print(line + f" (not judged: {len(found) - len(agree)}); accepted with the defaults: {passed}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--library", type=Path, action="append", default=[])
    parser.add_argument("--catalog", type=Path, action="append", default=[])
    parser.add_argument("--logos", type=int, default=20)
    args = parser.parse_args()
    settings = verify.VerifySettings()
    print(f"defaults: min_spread {settings.min_spread}, min_agreement {settings.min_agreement}")
    for library, catalog in zip(args.library, args.catalog, strict=True):
        describe(f"true pairs of {library}", true_pairs(library, catalog))
    for kind, found in logo_pairs(args.logos).items():
        describe(f"different pictures, one logo: {kind}", found)


if __name__ == "__main__":
    main()
