"""``photodedup group``: group the catalog's files (``photodedup.grouping``) and store the run, or write it as CSV.

Groups are stored in the catalog (tables ``group_runs``, ``groups``, ``group_members``); the latest
run is the current one, read back with ``photodedup.duplicate_groups.load_groups``.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from photodedup import cluster as clu
from photodedup.catalog import Catalog, display, open_catalog
from photodedup.duplicate_groups import Group, Member
from photodedup.grouping import (
    GroupResult,
    GroupSettings,
    build_groups,
    find_edges,
    one_per_file,
    pick_model,
    quality_source,
    same_files,
    select_files,
    semantic_vectors,
    shots,
)
from photodedup.paths import canonical_path
from photodedup.progress import ProgressCallback, no_progress
from photodedup.text import csv_cell, private_file


# -- the library function --------------------------------------------------------------------------
def group(catalog: Path | str | Catalog | None = None, *, roots: Sequence[Path | str] = (),
          params: GroupSettings | None = None, store: bool = True,
          progress: ProgressCallback | None = None) -> GroupResult:
    """Group the catalog's OK files (only those under ``roots`` when given) and store the run."""
    params = params or GroupSettings()
    progress = progress or no_progress
    started = time.perf_counter()
    with open_catalog(catalog) as cat:
        known = cat.roots()  # folders named as the scan records them (a bind mount by the path scanned first)
        roots = [canonical_path(root, known) for root in roots]
        if params.prefer:
            params = replace(params, prefer=tuple(str(canonical_path(f, known)) for f in params.prefer))
        every = select_files(cat, roots)
        rows, names = one_per_file(every)
        progress(0, 3)
        model, warnings = pick_model(cat, params)
        vectors = semantic_vectors(cat, rows, model) if model else None
        parts = find_edges(rows, vectors, params, thumbs=cat.thumb)
        progress(1, 3)
        groups = build_groups(rows, clu.combine(*parts.values()), params, pairs=shots(cat, every, rows, names),
                              names=names,
                              quality=quality_source(rows, cat.thumb))
        progress(2, 3)
        counts = {kind: len(edges) for kind, edges in parts.items()}
        result = GroupResult(groups, params, len(rows), counts, model, warnings, time.perf_counter() - started,
                             same_files=same_files(rows, names))
        if store and cat.readonly:
            warnings.append(f"the catalog {cat.path} is read-only: these groups are not stored, so review "
                            "and apply do not see them")
        elif store:
            result.run_id = store_groups(cat, result)
        progress(3, 3)
    return result


# -- persistence -----------------------------------------------------------------------------------
def store_groups(cat: Catalog, result: GroupResult) -> int:
    """Write one run with its groups in one transaction; returns the run id. Group ids become the stored ids."""
    params = asdict(result.params) | {"model_used": result.model}
    run_id, ids = cat.store_group_run(params, [
        (g.kind, g.keeper, g.keeper_reason,
         [(m.file_id, m.evidence, m.score, m.note, _match_json(m)) for m in g.members], g.category)
        for g in result.groups])
    for g, group_id in zip(result.groups, ids, strict=True):
        g.id = group_id
    return run_id


def _match_json(m: Member) -> str:
    return json.dumps(m.match) if m.match else ""


def write_csv(groups: Sequence[Group], out: Path | str) -> Path:
    """One row per file (a pair's JPEG has role ``pair``): group, kind, role, path, evidence, score,
    resolution, size, format, camera, capture time, reference, the keeper's reason, why this member
    is not the keeper, and the group's category (duplicate, or similar: shots of one scene)."""
    out = Path(out)
    with private_file(out, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "kind", "role", "path", "evidence", "score", "width", "height", "size",
                         "format", "camera", "taken_at", "reference", "keeper_reason", "why_not_keeper", "category"])
        for g in groups:
            for m in g.members:
                for f in m.files:  # a RAW+JPEG pair: the JPEG follows its RAW, role "pair"
                    role = "pair" if f is not m else "keeper" if m.file_id == g.keeper else "candidate"
                    writer.writerow(map(csv_cell, [
                        g.id, g.kind, role, display(f.path), f.evidence, f.score, f.width, f.height, f.size, f.format,
                        f.camera, f.taken_at, int(f.reference), g.keeper_reason, m.note, g.category]))
    return out
