"""photodedup as a library: scan, embed, group, and read the groups, in a dozen lines.

    python examples/python_api.py LIBRARY [--catalog FILE] [--weights random]

Each CLI verb is a function of the same name; this is what `photodedup run` does, minus the report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from photodedup.backends import get_backend
from photodedup.embed import embed
from photodedup.export_onnx import export_onnx
from photodedup.group import GroupSettings, group
from photodedup.duplicate_groups import load_groups
from photodedup.scan import scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", type=Path)
    parser.add_argument("--catalog", type=Path, default=Path("example-catalog.sqlite"))
    parser.add_argument("--weights", default="random", help="open_clip tag, checkpoint file, or 'random'")
    args = parser.parse_args()

    print(scan([args.library], catalog=args.catalog).render())
    model_dir = export_onnx(args.weights, precision="int8")           # reused when it already exists
    backend = get_backend("onnx", model_dir=model_dir)
    try:
        print(embed(backend, catalog=args.catalog).render())
    finally:
        backend.close()
    # Random weights carry no meaning: allow them here only so the example shows semantic evidence.
    params = GroupSettings(allow_random=args.weights == "random", model=backend.embedding_id)  # model + precision
    result = group(args.catalog, roots=[args.library], params=params)
    for g in load_groups(args.catalog):
        print(f"group {g.id} ({g.kind}): keep {g.keeper_path} because {g.keeper_reason}")
        for m in g.members:
            if m.file_id != g.keeper:
                print(f"    candidate {m.path}  [{m.evidence} {m.score:.3f}]")
    print(f"{len(result.groups)} groups")


if __name__ == "__main__":
    main()
