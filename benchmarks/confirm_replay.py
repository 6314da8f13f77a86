"""The pixel check replayed, old code against new: CPU per pair and every verdict compared.

Takes a scanned catalog, finds its candidate pairs as ``group`` does (every evidence kind but exact
copies, no pixel check), and runs the pixel check over them (``confirm.confirm_pairs(..., workers=1)``,
then the second look at the files of camera-less duplicates, ``grouping._in_detail``) once with each
source tree, in a fresh process per run (``PYTHONPATH=<tree>``), runs of the two trees alternating. Prints
the CPU seconds of each run (process time: the machine's load does not count), the CPU per pair, and
the pairs whose ``Confirmation.as_dict()`` differs (``verdict`` and ``regions`` apart from the rest:
a moved verdict is what must not happen). Exit status 1 when a verdict moved.

    PYTHONPATH=. python benchmarks/confirm_replay.py --catalog C.sqlite --library L --old /tmp/base --new .
    git archive main | tar -x -C /tmp/base    # the baseline tree
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _pairs(catalog: Path, library: Path, out: Path) -> list[tuple[str, str]]:
    """The catalog's candidate pairs, their variants, rows and thumbnails, pickled to ``out``."""
    from photodedup import cluster as clu
    from photodedup.catalog import Catalog
    from photodedup.grouping import GroupSettings, find_edges, select_files
    from photodedup.grouping import _pairs as exact_pairs

    with Catalog(catalog) as cat:
        rows = select_files(cat, [library])
        parts = find_edges(rows, None, GroupSettings(check_pixels=False), thumbs=cat.thumb)
        same = exact_pairs(parts.get("exact", clu.Edges.empty()))
        merged = clu.combine(*[e for kind, e in parts.items() if kind != "exact" and len(e)])
        keep = [(a, b, v) for a, b, v in zip(merged.i.tolist(), merged.j.tolist(), merged.variant.tolist(),
                                             strict=True) if (a, b) not in same]
        items = sorted({k for a, b, _ in keep for k in (a, b)})
        thumbs = {k: cat.thumb(rows[k]["id"]) for k in items}
        plain = [dict(zip(row.keys(), tuple(row), strict=True)) for row in rows]
    out.write_bytes(pickle.dumps({"pairs": keep, "rows": plain, "thumbs": thumbs}))
    return [(Path(rows[a]["path"]).name, Path(rows[b]["path"]).name) for a, b, _ in keep]


def _child(data: Path) -> None:
    """One run of the tree on ``PYTHONPATH``: ``{"cpu": seconds, "checks": [as_dict or None]}`` on stdout."""
    import cv2

    from photodedup import confirm, grouping, verify

    job = pickle.loads(data.read_bytes())
    rows, pairs = job["rows"], job["pairs"]
    thumbs = {k: (None if jpeg is None else verify.Thumbnail.of(jpeg, rows[k])) for k, jpeg in job["thumbs"].items()}
    ecc = cv2.findTransformECC
    calls = [0]

    def counted(*args, **kwargs):
        calls[0] += 1
        return ecc(*args, **kwargs)

    cv2.findTransformECC = counted
    settings = confirm.ConfirmSettings()
    started = time.process_time()
    checks = confirm.confirm_pairs([(a, b) for a, b, _ in pairs], [v for _, _, v in pairs], thumbs.get, settings,
                                   workers=1)
    first = time.process_time() - started
    checks = grouping._in_detail(rows, [(a, b) for a, b, _ in pairs], [v for _, _, v in pairs], checks, settings)
    cpu = time.process_time() - started
    print(json.dumps({"cpu": cpu, "thumbnails_cpu": first, "ecc_runs": calls[0],
                      "checks": [None if c is None else c.as_dict() for c in checks]}))


def _run(tree: Path, data: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()))
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(data)], env=env,
                          capture_output=True, text=True, check=True, cwd=str(tree.resolve()))
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path)
    parser.add_argument("--library", type=Path)
    parser.add_argument("--old", type=Path, help="the baseline source tree")
    parser.add_argument("--new", type=Path, default=Path("."), help="the source tree to compare (default: .)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each tree (alternating)")
    parser.add_argument("--keep", type=Path, help="also keep the pairs' pickle here (for profiling a --child run)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "pairs.pickle"
        names = _pairs(args.catalog, args.library, data)
        count = len(names)
        if args.keep:
            args.keep.write_bytes(data.read_bytes())
        runs: dict[str, list[dict]] = {"old": [], "new": []}
        for _ in range(args.runs):
            for name, tree in (("old", args.old), ("new", args.new)):
                runs[name].append(_run(tree, data))
    old, new = runs["old"][0]["checks"], runs["new"][0]["checks"]
    moved = [n for n, (x, y) in enumerate(zip(old, new, strict=True))
             if (x is None) != (y is None) or x and (x["verdict"], x["regions"]) != (y["verdict"], y["regions"])]
    other = [n for n, (x, y) in enumerate(zip(old, new, strict=True)) if x != y and n not in moved]
    report = {"pairs": count}
    for name in ("old", "new"):
        cpus = [r["cpu"] for r in runs[name]]
        report[name] = {"cpu_s": [round(c, 2) for c in cpus], "ms_per_pair": round(1000 * min(cpus) / max(1, count), 1),
                        "thumbnail_check_cpu_s": [round(r["thumbnails_cpu"], 2) for r in runs[name]],
                        "ecc_runs": runs[name][0]["ecc_runs"]}
    report["verdicts_moved"] = len(moved)
    report["other_fields_differ"] = len(other)
    report["examples"] = [{"pair": names[n], "old": old[n], "new": new[n]} for n in (moved + other)[:8]]
    print(json.dumps(report, indent=1))
    sys.exit(1 if moved else 0)


if __name__ == "__main__":
    main()
