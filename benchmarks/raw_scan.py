"""Scan rate on camera RAW (DNG) with and without an embedded preview, against JPEG, side by side.

    nice python benchmarks/raw_scan.py --photos 16 --megapixels 12 --repeats 3

The same photos (the sample library's sources at phone resolution, with sensor noise) are written as
camera JPEGs (quality 92, EXIF), as DNGs with a 1620 px JPEG preview (what most cameras embed), as DNGs
with a full-size preview, and as DNGs without one (LibRaw must decode the sensor data at half size).
Each kind sits in its own folder and is scanned into a fresh catalog with the default workers; the
kinds take turns in every round, so machine noise hits them alike. Prints medians over the rounds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from photodedup.catalog import Catalog
from photodedup.dng import write_dng
from photodedup.sample_library import _add_sensor_noise, _exif, original_photo, source_photos
from photodedup.scan import scan

KINDS = {  # name: (extension, DNG preview size: None = none, 0 = full size; JPEG has no preview)
    "JPEG": (".jpg", None),
    "DNG, 1620 px preview": (".dng", 1620),
    "DNG, full-size preview": (".dng", 0),
    "DNG, no preview": (".dng", None),
}


def write_photos(folder: Path, photos: int, megapixels: float) -> dict[str, Path]:
    sources = [str(p) for p in source_photos()]
    width = int(math.sqrt(megapixels * 1e6 * 4 / 3))
    taken = datetime(2023, 7, 14, 18, 30, 5)
    out = {name: folder / f"kind{k}" for k, name in enumerate(KINDS)}
    for path in out.values():
        path.mkdir(parents=True)
    for i in range(photos):
        rng = np.random.default_rng([11, i])
        photo = original_photo(sources, i, rng)
        photo = _add_sensor_noise(photo.resize((width, width * 3 // 4), Image.Resampling.BICUBIC), rng)
        for name, (ext, preview) in KINDS.items():
            path = out[name] / f"IMG_{i:04d}{ext}"
            if ext == ".jpg":
                photo.save(path, "JPEG", quality=92, exif=_exif("Canon", "EOS R6", taken).tobytes())
            else:
                write_dng(path, photo, taken=taken, preview=None if preview is None else preview or max(photo.size))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="photodedup-bench-raw-") as work:
        folders = write_photos(Path(work), args.photos, args.megapixels)
        rates: dict[str, list[float]] = {name: [] for name in KINDS}
        decoded: dict[str, str] = {}
        for repeat in range(args.repeats):
            for name, folder in folders.items():
                db = Path(work) / f"{repeat}-{folder.name}.sqlite"
                summary = scan([folder], catalog=db)
                assert summary.new == args.photos and summary.errors == 0, summary
                rates[name].append(summary.new / summary.seconds)
                with Catalog(db) as cat:
                    decoded[name] = ",".join(sorted({r["raw_decode"] or "-" for r in cat.files()}))
        jpeg = statistics.median(rates["JPEG"])
        print(f"{args.photos} photos of {args.megapixels} MP, {args.repeats} rounds, medians (images/s)")
        for name, folder in folders.items():
            size = sum(p.stat().st_size for p in folder.iterdir()) / args.photos / 1e6
            rate = statistics.median(rates[name])
            print(f"{name:<24} {rate:6.1f} images/s  {size:5.1f} MB/file  {rate * size:6.1f} MB/s  "
                  f"{jpeg / rate:4.2f}x JPEG time  decode={decoded[name]}  runs {[round(r, 1) for r in rates[name]]}")


if __name__ == "__main__":
    main()
