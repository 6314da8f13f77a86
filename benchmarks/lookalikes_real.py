"""The second, untuned look-alike set: the same kinds made from other real photographs.

Photos: scikit-image's sample photos that the sample library does not use (the real stereo pair
motorcycle_left/right among them, added as its own look-alike pair) and any decodable photo of at least
400 px in ``--photos DIR``. Nothing was tuned on this set. Prints what ``benchmarks/lookalikes.py`` prints.

    PYTHONPATH=. python benchmarks/lookalikes_real.py --out /tmp/lookalikes-real [--photos DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from PIL import Image

from photodedup.sample_library.lookalikes import add_lookalikes


def real_photos(extra: Path | None) -> list[Path]:
    import skimage.data

    base = Path(skimage.data.__file__).parent
    names = ["motorcycle_right.png", "cell.png", "microaneurysms.png", "clock_motion.png", "color.png",
             "text.png", "phantom.png", "logo.png"]
    found = [base / n for n in names if (base / n).exists()]
    for path in sorted(extra.rglob("*")) if extra else []:
        try:
            with Image.open(path) as image:
                if min(image.size) >= 400:
                    image.convert("RGB").load()
                    found.append(path)
        except Exception:  # noqa: BLE001 - undecodable files are skipped
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photos", type=Path)
    parser.add_argument("--lookalikes", type=int, default=3)
    args = parser.parse_args()
    import skimage.data

    from benchmarks.lookalikes import measure

    library = args.out / "library"
    if not library.exists():
        photos = real_photos(args.photos)
        truth = add_lookalikes(library, pairs=args.lookalikes, seed=7, photos=photos, folder="Real")
        base = Path(skimage.data.__file__).parent
        for name in ("motorcycle_left.png", "motorcycle_right.png"):  # a real stereo pair (camera-less PNGs)
            shutil.copyfile(base / name, library / name)
        truth["negatives"].append(["motorcycle_left.png", "motorcycle_right.png", "real-stereo-pair"])
        truth["broken"] = []
        (library / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        print(f"{len(photos)} photos")
    print(json.dumps(measure(library, args.out / "catalog.sqlite"), indent=1))


if __name__ == "__main__":
    main()
