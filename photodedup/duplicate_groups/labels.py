"""Reviewed groups as labels for ``photodedup eval --truth`` (``review --export-labels``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from photodedup.catalog import Catalog
from photodedup.duplicate_groups import current_groups
from photodedup.text import private_file


def labels(cat: Catalog, *, root: Path | None = None) -> dict:
    """Reviewed groups as labels in the sample library's truth.json format (``photodedup eval --truth``).

    ``groups``: the members of every group a person reviewed (each member kept or trashed);
    ``unrelated``: the files of groups marked not duplicates, and members taken out of a group
    (identical copies among them still form a group). Paths are relative to ``root`` when given
    (files outside it are left out), else absolute. ``root`` is written too (else the folder all
    grouped files share), since ``eval`` scores the files under it. Unreviewed groups are left out.
    """
    def name(path: str) -> str | None:
        if root is None:
            return path
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            return None

    groups = current_groups(cat)
    paths = [f.path for g in groups for m in g.members + g.removed for f in m.files]
    common = Path(root) if root else Path(os.path.commonpath(paths)) if paths else None
    out: dict = {"groups": [], "unrelated": [], "root": str(common) if common else None,
                 "source": "photodedup review", "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for group in groups:
        apart = group.members if group.dismissed else group.removed
        by_content: dict[str, list[str]] = {}
        for m in apart:
            by_content.setdefault(m.md5 or m.path, []).append(m.path)
            if m.companions:  # a pair is one shot: its halves are labelled together
                out["groups"].append(sorted(n for n in (name(f.path) for f in m.files) if n))
        for same in by_content.values():
            names = [n for n in map(name, same) if n]
            if len(names) > 1:
                out["groups"].append(sorted(names))
            elif names:
                out["unrelated"].append(names[0])
        if not group.dismissed and group.state in ("reviewed", "applied"):
            names = [n for n in (name(f.path) for m in group.members if m.decision for f in m.files) if n]
            if len(names) > 1:
                out["groups"].append(sorted(names))
    out["groups"].sort()
    out["unrelated"].sort()
    return out


def write_labels(out: Path, *, catalog: Path | None = None, root: Path | None = None) -> int:
    """Write ``labels()`` to ``out`` as JSON; returns how many labelled groups it holds."""
    with Catalog(catalog, create=False) as cat:
        data = labels(cat, root=root)
    with private_file(out) as handle:
        handle.write(json.dumps(data, indent=1) + "\n")
    return len(data["groups"])
