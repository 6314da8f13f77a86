"""Path identity: which path the catalog names a file or folder by (symlinks resolved, bind mounts
named by the path the catalog already knows). Shared by `scan` (its roots) and `group` (its ROOTS and
``--prefer``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path


def canonical_roots(roots: Sequence[Path], known: Iterable[str] = ()) -> tuple[list[Path], list[str]]:
    """``(roots, notes)``: each root named by one path, so that a folder is recorded under one path only.

    A root's symlinks are resolved; a root whose folder (or a folder above it) the catalog knows under
    another path (``known``: the roots of earlier scans), or an earlier root of this scan, is named by
    that path (a bind mount has no symlink to resolve, but the same device and inode); a root inside
    another root, or given twice, is dropped. ``notes`` says each of these in words (the scan summary).
    """
    anchors: dict[tuple[int, int], Path] = {}
    for folder in known:
        _anchor(anchors, Path(folder))
    named: list[tuple[Path, Path]] = []  # (given, canonical)
    for given in roots:
        path = _known_as(Path(os.path.realpath(given)), anchors)
        _anchor(anchors, path)
        named.append((given, path))
    out: list[Path] = []
    notes: list[str] = []
    for given, path in named:
        outer = next((p for _, p in named if p != path and under_any(str(path), [p])), None)
        if path in out:
            notes.append(f"{given} was given twice: scanned once" if given == path else
                         f"{given} is {path} (reached by another path): scanned once")
        elif outer is not None:
            notes.append(f"{given} is inside {outer}: scanned once, as part of it")
        else:
            out.append(path)
            if path != given:
                what = "the folder" if path.is_dir() else "the file"
                notes.append(f"{given} is {what} {path} (reached by another path): its files are recorded once, "
                             f"under {path}")
    return out, notes


def canonical_path(path: Path | str, known: Iterable[str]) -> Path:
    """``path`` as the catalog names it: symlinks resolved, and a folder the catalog knows under another
    path (``known``: its roots; a bind mount of one) named by that path (``--prefer``, ``group ROOTS``)."""
    anchors: dict[tuple[int, int], Path] = {}
    for folder in known:
        _anchor(anchors, Path(folder))
    return _known_as(Path(os.path.realpath(Path(path).expanduser())), anchors)


def _anchor(anchors: dict[tuple[int, int], Path], folder: Path) -> None:
    """Name the folder at ``folder``'s device and inode by it, unless it holds a symlink (an earlier
    version recorded symlinked roots as given: such a path never names a folder)."""
    try:
        if os.path.realpath(folder) != str(folder):
            return
        st = os.stat(folder)
    except OSError:
        return
    anchors.setdefault((st.st_dev, st.st_ino), folder)


def _known_as(path: Path, anchors: dict[tuple[int, int], Path]) -> Path:
    """``path`` through the anchor folder that is it or holds it under another path, else itself."""
    for folder in (path, *path.parents):
        try:
            st = os.stat(folder)
        except OSError:
            continue
        anchor = anchors.get((st.st_dev, st.st_ino))
        if anchor is not None and anchor != folder:
            return anchor / path.relative_to(folder)
    return path


def under_any(path: str, roots: Sequence[Path | str]) -> bool:
    return any(path == str(r) or path.startswith(str(r).rstrip("/") + "/") for r in roots)
