"""Look-alike benchmark: would accepting every suggested keeper lose a picture?

Builds a sample library with look-alikes (``sample-library --lookalikes``), scans and groups it (no
embeddings), accepts every suggestion as the review page's "Accept suggested keepers" does
(``duplicate_groups.decisions.accept_suggestions``), plans ``apply --dry-run``, and prints: pictures left with no copy
(goal 0), originals moved (goal 0), pairwise precision of duplicate groups (goal >= 0.99), recall on the
true copies (goal >= 0.95), look-alikes kept apart by kind, and the pixel check's cost per pair.

    PYTHONPATH=. python benchmarks/lookalikes.py --out /tmp/lookalikes --originals 8 --lookalikes 3
    PYTHONPATH=. python benchmarks/lookalikes_real.py --out /tmp/lookalikes-real   # the untuned second set
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from photodedup import apply
from photodedup import cluster as clu
from photodedup.catalog import Catalog
from photodedup.confirm import confirm_pairs
from photodedup.duplicate_groups.decisions import accept_suggestions
from photodedup.eval import evaluate
from photodedup.group import group
from photodedup.grouping import GroupSettings, _pixel_source, find_edges, select_files
from photodedup.sample_library.lookalikes import COPIES, distinct_pictures
from photodedup.scan import scan


def measure(library: Path, catalog: Path) -> dict:
    """Scan, group, accept all, plan apply; the numbers of the module docstring."""
    scan([library], catalog=catalog)
    started = time.perf_counter()
    result = group(catalog, roots=[library])
    grouping = time.perf_counter() - started
    with Catalog(catalog) as cat:
        accept_suggestions(cat, [g.id for g in result.groups])
        moves, _ = apply.plan(cat)
        rows = select_files(cat, [library])
        parts = find_edges(rows, None, GroupSettings(check_pixels=False), thumbs=cat.thumb)
        merged = clu.combine(*[e for kind, e in parts.items() if kind != "exact"])
        pairs = list(zip(merged.i.tolist(), merged.j.tolist(), strict=True))
        started = time.process_time()  # CPU time: the machine's load does not count
        checks = confirm_pairs(pairs, merged.variant.tolist(), _pixel_source(rows, cat.thumb), workers=1)
        per_pair = (time.process_time() - started) / max(1, len(pairs))
    truth = json.loads((library / "truth.json").read_text())
    moved = {Path(m["path"]).relative_to(library).as_posix() for m in moves}
    pictures = distinct_pictures(truth)
    lost = [files for files in pictures if set(files) <= moved]
    originals = set(truth["original"])
    scores = evaluate(catalog, library / "truth.json")
    copies = {k: v for k, v in scores.recall_by_kind.items() if k in COPIES or k in (
        "resized", "reencoded", "png", "webp", "rotated", "bordered", "cropped", "cropped10", "grayscale",
        "brightened")}
    return {"files": result.files, "pictures": len(pictures), "lost": len(lost), "lost_examples": lost[:5],
            "originals_moved": sorted(moved & originals), "moves": len(moves),
            "precision": round(scores.overall.precision, 4), "recall": round(scores.overall.recall, 4),
            "recall_copies": copies, "kept_apart": scores.apart,
            "similar_groups": sum(g.category == "similar" for g in result.groups),
            "duplicate_groups": sum(g.category == "duplicate" for g in result.groups),
            "group_seconds": round(grouping, 1), "pairs_checked": len(pairs),
            "pairs_passing": sum(c is not None and c.verdict == "duplicate" for c in checks),
            "check_cpu_ms_per_pair": round(1000 * per_pair, 1), "keeper": scores.keeper.get("accuracy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--originals", type=int, default=8)
    parser.add_argument("--lookalikes", type=int, default=3)
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from photodedup.sample_library.lookalikes import make_library

    library = args.out / "library"
    if not library.exists():
        make_library(library, originals=args.originals, megapixels=args.megapixels, seed=args.seed,
                     lookalikes=args.lookalikes)
    print(json.dumps(measure(library, args.out / "catalog.sqlite"), indent=1))


if __name__ == "__main__":
    main()
