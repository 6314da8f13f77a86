"""The pixel check's verdict on pairs of a scanned catalog, and what its mark test reads there.

For each pair of files (paths relative to the library): the verdict (``confirm.Confirmation.as_dict()``)
on the stored thumbnails, and for the first differing region of the pair as compared (the alignment the
check tried first): its box, whether its shape is a mark's, the edge energy of each side
(``mark_energy`` compares them) and the plate test's readings each way (``confirm._plate_readings``:
docs/DECISIONS.md "A watermark on texture").

    PYTHONPATH=. python benchmarks/mark_pair.py --catalog C.sqlite --library L DCIM/IMG_1.jpg Shared/IMG_1_wm.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _energy(rgb: np.ndarray) -> float:
    """The mean absolute Laplacian of a region's luminance (what ``mark_energy`` compares)."""
    import cv2

    from photodedup.confirm import _luma

    return float(np.abs(cv2.Laplacian(_luma(rgb).astype(np.float32), cv2.CV_32F)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("paths", nargs="+", help="pairs of paths relative to the library: A B [A B ...]")
    args = parser.parse_args()
    from photodedup import confirm as cf
    from photodedup import verify
    from photodedup.catalog import Catalog
    from photodedup.grouping import select_files

    settings = cf.ConfirmSettings()
    with Catalog(args.catalog) as cat:
        rows = {r["path"]: r for r in select_files(cat, [args.library])}

        def pixels(rel: str) -> np.ndarray:
            row = rows[str(args.library / rel)]
            return cf._prepared(verify.Thumbnail.of(cat.thumb(row["id"]), row).rgb(), settings)

        for first, second in zip(args.paths[::2], args.paths[1::2], strict=True):
            a, b = pixels(first), pixels(second)
            print(f"{first} | {second}\n  verdict: {cf._checked(a, b, settings, None).as_dict()}")
            pair = cf._compare(a, b, settings, None)
            regions = [] if isinstance(pair, cf.Confirmation) else cf._regions(pair.residual > pair.threshold, settings)
            if not regions:
                continue
            x0, y0, x1, y1, _ = regions[0]
            height, width = pair.residual.shape
            box = (x0 / width, y0 / height, x1 / width, y1 / height)

            inside = pair.inside[y0:y1, x0:x1]
            pa, pb = pair.a[y0:y1, x0:x1][inside], pair.b[y0:y1, x0:x1][inside]
            print(f"  compared {pair.how}, {len(regions)} region(s); the first: box {[round(v, 3) for v in box]}, "
                  f"a mark's shape: {cf._is_mark(box, settings)}, edges {_energy(pair.a[y0:y1, x0:x1]):.1f} (first) "
                  f"{_energy(pair.b[y0:y1, x0:x1]):.1f} (second), marked: {cf._marked(pair, regions[0], settings)!r}")
            for name, under, over in (("second over first", pa, pb), ("first over second", pb, pa)):
                found = cf._plate_readings(under, over, settings)
                shown = found and {k: round(v, 2) if isinstance(v, float) else [round(c, 1) for c in v]
                                   for k, v in found.items()}
                print(f"  plate, {name}: {shown}; a plate: {cf._plate(under, over, settings)}")


if __name__ == "__main__":
    main()
