"""Mutation testing: make small deliberate bugs in a module, run its tests, count the bugs they notice.

    python benchmarks/mutate.py --module keeper                 # every mutant of photodedup/keeper.py
    python benchmarks/mutate.py --module apply --max 20 --seed 1  # a random 20 of them
    python benchmarks/mutate.py --module verify --list          # only list the mutants

Each mutant is one change to the module's syntax tree: a comparison flipped (``<`` to ``<=``, ``==`` to
``!=``...), a number off by one, ``and`` for ``or``, a ``not`` dropped, ``True`` for ``False``, an
``os.fsync``/``_fsync_dir`` call dropped. The mutated module is written into a copy of the repository
(never this checkout), and the module's tests run there with ``-x`` and a time limit: a failure or a
time-out kills the mutant, a pass lets it survive. Survivors are the tests' blind spots: print them.

The score is killed / (killed + survived); a mutant whose tests did not even start (the module
fails to import) is counted apart, as are the equivalent mutants listed in ``EQUIVALENT`` (no test can
tell them from the module: each entry names the mutant by its function, the code it changes and the
change, so it stays valid when lines move, and says why in one line). An equivalent mutant is not run.

Habit: after changing a module, run ``--module X --max 40 --seed 1``; a survivor is a blind spot (write
the test that kills it) or equivalent (add it to ``EQUIVALENT`` with its reason).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import functools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Module (under photodedup/) -> the test files that should notice a bug in it: fast ones (no export, no
#: server, seconds each), the module's unit-level ``*_rules.py`` first: with ``-x``, one file after the other,
#: most mutants die in it within seconds. The slower files that also cover a module (tests/test_group.py,
#: test_matching.py, test_review.py, test_apply.py, test_apply_faults.py: a minute or more each) can be added
#: with ``--tests`` for a run on a quiet machine.
TARGETS: dict[str, tuple[str, list[str]]] = {
    "keeper": ("photodedup/keeper.py", ["tests/test_keeper_rules.py", "tests/test_keeper_mutants.py",
                                        "tests/test_keeper.py"]),
    "verify": ("photodedup/verify.py", ["tests/test_verify_rules.py", "tests/test_verify_mutants.py"]),
    "cluster": ("photodedup/cluster.py", ["tests/test_cluster_rules.py", "tests/test_cluster_mutants.py"]),
    "apply": ("photodedup/apply.py", ["tests/test_apply_rules.py", "tests/test_apply_mutants.py",
                                      "tests/test_moves_rules.py"]),
    "moves": ("photodedup/moves.py", ["tests/test_moves_rules.py", "tests/test_apply_rules.py"]),
    "groups": ("photodedup/duplicate_groups/__init__.py", ["tests/test_groups_rules.py",
                                                           "tests/test_groups_mutants.py"]),
    "decisions": ("photodedup/duplicate_groups/decisions.py", ["tests/test_groups_rules.py"]),
    "compare": ("photodedup/duplicate_groups/compare.py", ["tests/test_groups_rules.py"]),
    "security": ("photodedup/review/security.py", ["tests/test_review_security_rules.py",
                                                   "tests/test_review_security.py"]),
    "review": ("photodedup/review/app.py", ["tests/test_review_security.py", "tests/test_review.py"]),
    "limits": ("photodedup/service/limits.py", ["tests/test_limits_rules.py", "tests/test_service.py"]),
    "confirm": ("photodedup/confirm.py", ["tests/test_confirm_mutants.py", "tests/test_confirm.py",
                                          "tests/test_confirm_alignment.py"]),
    "provenance": ("photodedup/provenance.py", ["tests/test_provenance_mutants.py", "tests/test_provenance.py"]),
}

_SAME_VERDICTS = ("in process or in worker processes, and how the pairs are cut into chunks: the same verdicts in "
                  "the same order (RANSAC is reseeded before every pair)")
#: Mutants no test can kill, per module: ``"function | code | change"`` (as ``--list`` prints it) -> why.
EQUIVALENT: dict[str, dict[str, str]] = {
    "keeper": {
        "_without_added_borders.framed | a.height or 0 | 0 -> 1": "reached only for a member with a width and no "
                                                                   "height: the scan records both or neither",
        "_more_pixels | b.width or 0 | 0 -> 1": "reached only for a member with a height and no width: the scan "
                                                "records both or neither",
        "<module> | is_camera_format(a.format) and (not is_camera_format(b.format)) | not X -> X": "camera-format "
            "keeps members by select; better only picks the winner a note names, and every kept member beats "
            "every dropped one, so the first kept is named either way",
        "_without_added_borders.framed | abs(_aspect(content_size(b)) / _aspect((a.width, a.height)) - 1) < "
        "ASPECT_TOLERANCE | Lt -> LtE": "x - 1 for x in [1, 2) is a multiple of 2**-52, 1 - x for x in [0.5, 1) "
            "of 2**-53, and the float 0.005 is an odd multiple of 2**-60: no ratio lands on the edge",
        "<module> | is_camera_format(a.format) and (not is_camera_format(b.format)) | And -> Or": "camera-format "
            "keeps members by select (camera formats only, or everyone); better only picks the winner a note names, "
            "and the first kept member is named either way",
        "<module> | w.taken_at and any((sort_key(m.taken_at) != sort_key(w.taken_at) for m in dropped)) | And -> Or":
            "a keeper without a capture time won the oldest rule only over members without one (a known time sorts "
            "first), whose sort keys all equal its own",
        "content_size | m.width or 0 | 0 -> 1":
            "reached only for a member with one side and not the other: the scan records both or neither",
        "content_size | m.height or 0 | 0 -> 1":
            "reached only for a member with one side and not the other: the scan records both or neither",
        "_without_added_borders.framed | a.width or 0 | 0 -> 1":
            "reached only for a member with one side and not the other: the scan records both or neither",
        "_more_pixels | b.height or 0 | 0 -> 1":
            "reached only for a member with one side and not the other: the scan records both or neither",
        "content_size | m.content_width or 0 | 0 -> 1":
            "unreachable: only a bordered member's content is read, and bordered checks it has both sides",
        "content_size | m.content_height or 0 | 0 -> 1":
            "unreachable: only a bordered member's content is read, and bordered checks it has both sides",
        "_more_pixels | a.width or 0 | 0 -> 1":
            "unreachable: the ringing is counted only for a bordered member, which has both sides",
        "_more_pixels | a.height or 0 | 0 -> 1":
            "unreachable: the ringing is counted only for a bordered member, which has both sides",
        "_aspect | width or 1 | 1 -> 2": "unreachable: _aspect reads only a bordered member's content and a canvas "
                                          "that has both sides (bordered and framed's canvas check them)",
        "_aspect | height or 1 | 1 -> 2": "unreachable: _aspect reads only a bordered member's content and a canvas "
                                           "that has both sides (bordered and framed's canvas check them)",
        "<module> | w.size or 0 | 0 -> 1": "the size rule names a keeper only when its size beats another's "
            "(a.size or 0) > (b.size or 0): it has one",
        "is_graphic | pixels > 0 | 0 -> 1": "differs only for a 1-pixel file of under half a byte: no image file is "
            "that small (a PNG is at least 67 bytes), and the scan records every file's size",
    },
    "cluster": {
        "near_pairs | n < 2 or k < 1 or high <= low | Or -> And": "a shortcut: with one item its only pair is "
            "itself (dropped), with k < 1 no pair is among the best, with high <= low no distance is in the band; "
            "the search returns the same empty arrays, dtypes too (tried with faiss and the brute force)",
        "near_pairs | high <= low | LtE -> Lt": "high == low: no distance is both > low and <= high, the search "
                                                "finds nothing either way",
        "near_pairs | range(0, n, 8192) | 8192 -> 8193": "chunk size: every chunk is searched against all hashes",
        "near_pairs | start + 8192 | 8192 -> 8193": "overlapping chunks: np.unique drops the repeated pairs",
        "Edges.of | i <= j | LtE -> Lt": "a self-pair (i == j) has no direction to turn, and no caller makes one "
                                         "(every search drops them; grouping maps pairs through an injective index)",
        "exact_pairs | len(members) > 1 | Gt -> GtE": "a digest held by one item: combinations of one member make no "
                                                      "pair either way",
        "near_pairs | (np.zeros(0, np.int64),) * 3 | 3 -> 4 #2": "unreachable: with n >= 2 the loop fills codes",
        "_cosine_faiss | np.zeros(0, np.int64) | 0 -> 1": "unreachable: with n >= 2 the loop fills codes",
        "hamming_cross | 1 << 22 | 1 -> 2": "block size of the brute force: the same pairs in other blocks",
        "hamming_cross | 1 << 22 | 22 -> 23": "block size of the brute force: the same pairs in other blocks",
        "_rowwise_dot | start + 65536 | 65536 -> 65537": "overlapping slices write the same dot products",
        "_cosine_faiss | start + 20000 | 20000 -> 20001": "overlapping query chunks: np.unique drops the repeats",
        "_cosine_exact | sims >= threshold - slack | GtE -> Gt": "a candidate band (slack); the exact rescoring "
                                                                 "decides, and no float lands on its edge",
        "Edges.moved | i <= j | LtE -> Lt": "i == j is a self-loop, dropped by keep",
        "hamming_cross | queries[start:start + 50000].view(np.uint8).reshape(-1, 8) | 1 -> 2": "numpy reads any "
            "negative dimension as the unknown one: reshape(-2, 8) is reshape(-1, 8)",
        "_cosine_exact | slack = 1e-05 | 1e-05 -> 1.1000000000000001e-05": "a wider candidate band: the exact "
            "rescoring (_rowwise_dot) decides every pair it lets through",
        "nearest_pairs | labels.reshape(-1) | 1 -> 2": "numpy reads any negative dimension as the unknown one: "
                                                       "reshape(-2) is reshape(-1)",
        "cosine_pairs | n <= EXACT_MAX | LtE -> Lt": "at exactly 10,000 vectors faiss (rescored exactly) finds "
                                                     "the pairs the exact product finds: a speed choice",
        "<module> | 32 * 1024 * 1024 | 1024 -> 1025": "block size of the exact products (BLOCK_FLOATS): the same "
                                                       "pairs in other blocks",
        "<module> | 32 * 1024 | 32 -> 33": "block size of the exact products (BLOCK_FLOATS): the same pairs in other "
                                           "blocks",
        "<module> | 32 * 1024 | 1024 -> 1025": "block size of the exact products (BLOCK_FLOATS): the same pairs in "
                                               "other blocks",
        "_cosine_exact | max(1, BLOCK_FLOATS // n) | 1 -> 2": "reached only above 33 million rows (BLOCK_FLOATS // "
                                                              "n == 0), whose products no memory holds",
        "nearest_pairs | max(1, BLOCK_FLOATS // n) | 1 -> 2": "reached only above 33 million rows, and the exact "
                                                              "search ends at EXACT_MAX",
        "hamming_cross | len(queries) * len(base) > brute_max * brute_max // 16 | Gt -> GtE": "where faiss's exact "
            "binary index takes over from the numpy blocks: the same pairs either way (callers sort them)",
        "hamming_cross | brute_max * brute_max // 16 | 16 -> 17": "where faiss's exact binary index takes over "
            "from the numpy blocks: the same pairs either way (callers sort them)",
        "hamming_cross | faiss is not None | IsNot -> Is": "the numpy blocks instead of faiss's exact binary index: "
            "the same pairs (test_hamming_cross_through_faiss_finds_what_the_brute_force_finds), slower",
        "hamming_cross | max(1, (1 << 22) // len(base)) | 1 -> 2": "block size of the brute force, reached only "
            "above 4 million base hashes: the same pairs in other blocks",
        "hamming_cross | base.view(np.uint8).reshape(-1, 8) | 1 -> 2": "numpy reads any negative dimension as the "
            "unknown one: reshape(-2, 8) is reshape(-1, 8)",
        "dihedral_pairs | np.asarray(variants, np.uint64).reshape(-1, 8) | 1 -> 2": "numpy reads any negative "
            "dimension as the unknown one: reshape(-2, 8) is reshape(-1, 8)",
        "Edges.of | np.asarray(distance, np.float64).reshape(-1) | 1 -> 2": "numpy reads any negative dimension as "
            "the unknown one: reshape(-2) is reshape(-1)",
        "near_pairs | hashes: np.ndarray, low: int, high: int, k: int, *, second: np.ndarray | None=None, sec... | "
        "64 -> 65": "the default second_max: two 64-bit hashes differ by at most 64 bits, so 64 and 65 admit all",
        "near_pairs | np.zeros(0, np.int64) | 0 -> 1 #2": "unreachable: with n >= 2 the loop fills codes",
        "bounded_radius | range(65) | 65 -> 66": "r = 65 is reached only when radius >= 64 fits, and then returns "
            "64 = radius, what the loop's end returns",
        "_complete_link | zip(edge_i, edge_j, strict=True) | True -> False": "both lists come from the same edges: "
            "always of one length",
        "cluster | zip(edge_i, edge_j, strict=True) | True -> False": "both lists come from the same edges: always "
            "of one length",
        "_complete_link | size[ra] >= size[rb] | GtE -> Gt": "which root names two merged clusters of equal size: "
            "the same members, the same cross-pair counts",
        "nearest_pairs | max(1, min(n // 40, int(2 * np.sqrt(n)))) | 1 -> 2": "unreachable: the index serves more "
            "than EXACT_MAX (10,000) rows, where n // 40 >= 250",
        "_cosine_faiss | np.random.default_rng(0) | 0 -> 1": "another fixed seed for the quantizer's training rows: "
            "deterministic either way; their number and distinctness are tested (test_cluster_mutants.py)",
        "nearest_pairs | np.random.default_rng(0) | 0 -> 1": "another fixed seed for the quantizer's training rows: "
            "deterministic either way; their number and distinctness are tested (test_cluster_mutants.py)",
    },
    "verify": {
        "_agreement | cv2.warpPerspective(np.ones_like(a.small), warp, (width, height), flags=cv2.INTER_NEARE... | "
        "Gt -> GtE": "a nearest-neighbour warp of ones holds only 0 and 1: > 0.5 and >= 0.5 agree",
        "_covered | cv2.perspectiveTransform(corners, h).reshape(-1, 2) | 1 -> 2": "numpy reads any negative "
            "dimension as the unknown one: reshape(-2, 2) is reshape(-1, 2)",
        "map_pairs | os.cpu_count() or 1 | Or -> And": "the number of worker processes: the same verdicts in the "
                                                       "same order whatever it is",
        "map_pairs | len(pending) >= 2 * workers | GtE -> Gt": "how many chunks are in flight (a memory bound, "
            "two a worker): the same verdicts in the same order whatever it is",
        "map_pairs | 2 * workers | 2 -> 3": "how many chunks are in flight (a memory bound, two a worker): the "
                                            "same verdicts in the same order whatever it is",
        "_covered | np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], np.float64).reshape(-1, 1, 2) | 1 -> 2": "cv2."
            "perspectiveTransform maps each 2-channel element: (2, 2, 2) holds the same four corners as (4, 1, 2), "
            "and the result is reshaped to (-1, 2)",
        "features | np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2) | 1 -> 2": "numpy reads any "
            "negative dimension as the unknown one: reshape(-2, 2) is reshape(-1, 2)",
        "_covered | np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], np.float64).reshape(-1, 1, 2) | 1 -> 2 #2": "numpy "
            "reads any negative dimension as the unknown one: reshape(-2, 1, 2) is reshape(-1, 1, 2)",
        "_covered | mapped.astype(np.float32).reshape(-1, 1, 2) | 1 -> 2 #2": "numpy reads any negative dimension "
            "as the unknown one: reshape(-2, 1, 2) is reshape(-1, 1, 2)",
        "_clip.inside | p[a] <= v | LtE -> Lt": "a vertex exactly on an edge counted outside: the crossing adds it "
            "back (t = 0 or 1), the same clipped area (tried on 39,384 convex quadrilaterals on a grid through the "
            "edges)",
        "_clip.inside | p[a] >= v | GtE -> Gt": "a vertex exactly on an edge counted outside: the crossing adds it "
            "back (t = 0 or 1), the same clipped area (tried on 39,384 convex quadrilaterals on a grid through the "
            "edges)",
        "map_pairs | workers <= 1 | LtE -> Lt":
            _SAME_VERDICTS,
        "map_pairs | workers <= 1 | 1 -> 2":
            _SAME_VERDICTS,
        "map_pairs | max(200, len(pairs) // (workers * 8)) | 200 -> 201":
            _SAME_VERDICTS,
        "verify_pairs | min(4, os.cpu_count() or 1) | 4 -> 5":
            _SAME_VERDICTS,
        "map_pairs | len(pairs) < INLINE_PAIRS | Lt -> LtE":
            _SAME_VERDICTS,
        "<module> | INLINE_PAIRS = 400 | 400 -> 401":
            _SAME_VERDICTS,
        "_verdicts | cv2.setNumThreads(1) | 1 -> 2":
            "OpenCV's threads in a worker: the same features and matches",
        "_stored_features | cv2.setNumThreads(1) | 1 -> 2":
            "OpenCV's threads in a worker: the same features",
        "map_pairs | workers * 8 | 8 -> 9":
            _SAME_VERDICTS,
        "map_pairs | min(4, os.cpu_count() or 1) | 4 -> 5":
            _SAME_VERDICTS,
        "map_pairs | os.cpu_count() or 1 | 1 -> 2":
            _SAME_VERDICTS,
        "map_pairs.collect | zip(chunk, future.result(), strict=True) | True -> False":
            "a chunk's work returns one result per pair: always of one length",
        "map_pairs | zip(chunks, jobs(), strict=True) | True -> False":
            "jobs() yields one job per chunk: always of one length",
        "_agreement | cv2.warpPerspective(np.ones_like(a.small), warp, (width, height), flags=cv2.INTER_NEARE... "
        "| 0.5 -> 0.55":
            "a nearest-neighbour warp of ones holds only 0 and 1: > 0.5 and > 0.55 agree",
        "homography | int(mask.sum()) if mask is not None else 0 | 0 -> 1": "OpenCV's findHomography returns a "
            "mask (all zeros when it finds none: tried with coincident, collinear, NaN and infinite points) for "
            "4 points or more, and it gets 20 or more: no input reaches the None branch",
    },
    "apply": {
        "plan | changed = True | True -> False #2": "a second pass never drops more: dropping a candidate only adds "
                                                    "survivors, so every group the first pass kept still passes",
        "undo | Catalog(catalog, create=False) | False -> True #2": "the first Catalog(create=False) above has "
                                                                    "already refused a missing catalog",
        "_same_file | (f['dev'], f['ino']) == identity | Eq -> NotEq": "each name is re-checked by its identity "
                                                                       "now (_identity(p) == identity): the "
                                                                       "catalog's filter only saves lstat calls",
    },
    "moves": {
        "_make_folders | not os.path.isdir(folder) and folder != folder.parent | And -> Or": "existing folders "
            "join the list, and their mkdir (FileExistsError) skips them",
        "_rename_noreplace | (-100, 1) | 100 -> 101": "the directory fd is ignored for absolute paths, and every "
                                                      "path moved is absolute (trash_folder, the catalog)",
        "_move | shutil.copystat(src, temp, follow_symlinks=False) | False -> True": "src was checked to be a "
                                                                                     "regular file, no link",
        "_move | os.link(src, dst, follow_symlinks=False) | False -> True": "src was checked to be a regular "
                                                                           "file, no link",
        "_rename_noreplace | ctypes.CDLL(None, use_errno=True) | True -> False": "errno is read only when "
            "renameat2 fails, which needs a file at a fresh random name (a race no test can make)",
        "_make_folders | os.mkdir(path, 448) | 448 -> 449": "the folder is chmodded to its final mode on the "
            "next line; 0700 only closes the moment between (no test can stop there)",
        "Journal.append | json.dumps(entry, sort_keys=True) | True -> False": "readers parse each line as JSON; "
            "the order of its keys is for people reading the journal",
    },
    "confirm": {
        "_orb | fa is None or fb is None | Or -> And": "unreachable with one None: every caller's features are "
            "verify.features' (a Features, never None) or none at all (both computed here)",
        "_score | greys or _Greys(a, b) | Or -> And": "_score is only called with its pair's cache (_Greys.score "
            "passes itself): the mutant makes a fresh cache of the same two pictures, the same score recomputed",
        "_residual | found[_either(open_a[0], open_b[0])] = 0 | 0 -> 1": "a clipped pixel's colour difference "
            "set to 1 level instead of 0: a pixel counts only above the threshold, which is at least min_level (28)",
        "_align.small | scale < 1 | Lt -> LtE": "at scale 1 the picture is resized to its own size, and cv2.resize "
            "(INTER_AREA) to its own size is an exact copy (tried on float32 and uint8 pictures of 3 shapes)",
        "_crop_search | max(1, round(h * _SCORE_WIDTH / w)) | 1 -> 2": "differs only where the outer picture's "
            "small copy would be 1 row high (2 with the mutant): every window needs 8 rows or more and fewer than "
            "it, so none is searched either way",
    },
    "provenance": {
        "_spikes | step < 0 | Lt -> LtE": "step is -1 or 1: step <= 0 is step < 0",
        "_spikes | step < 0 | 0 -> 1": "step is -1 or 1: step < 1 is step < 0",
        "_spikes | step < 0 | Lt -> LtE #2": "step is -1 or 1: step <= 0 is step < 0",
        "_spikes | step < 0 | 0 -> 1 #2": "step is -1 or 1: step < 1 is step < 0",
        "_fits_at | lattices > 2 * tolerance | Gt -> GtE": "at a lattice of exactly twice the tolerance no value is "
            "more than half a step (the tolerance) from a lattice point: nothing is forbidden, and the position "
            "is skipped either way",
    },
    "limits": {
        "media_type | (content_type or '').split(';', 1) | 1 -> 2": "only the part before the first ';' is used",
    },
    "compare": {
        "_same_frame | abs(a.content_width / a.width - b.content_width / b.width) <= 0.02 | LtE -> Lt": "no two "
            "ratios of pixel counts differ by exactly the float 0.02 (none up to 300 px)",
        "_same_frame | abs(a.content_height / a.height - b.content_height / b.height) <= 0.02 | LtE -> Lt": "no two "
            "ratios of pixel counts differ by exactly the float 0.02 (none up to 300 px)",
        "differences | abs(ca[0] / ca[1] - cb[0] / cb[1]) > 0.02 | Gt -> GtE": "no two aspect ratios of pixel "
            "counts differ by exactly the float 0.02",
        "differences | abs(ca[0] / ca[1] - cb[1] / cb[0]) > 0.02 | Gt -> GtE": "no two aspect ratios of pixel "
            "counts differ by exactly the float 0.02",
    },
}

FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
DROPPED_CALLS = {"fsync", "_fsync_dir", "flush"}


@dataclass
class Mutant:
    number: int
    line: int
    what: str
    key: str = ""  # "function | code | change": names the mutant whatever line it moves to


def _is_docstring(node: ast.AST, parents: dict) -> bool:
    parent = parents.get(node)
    return isinstance(parent, ast.Expr) and isinstance(node, ast.Constant) and isinstance(node.value, str)


def _sites(tree: ast.Module) -> list[tuple[int, str]]:
    """Every place a mutation applies, as (index of the node in ``ast.walk`` order, kind)."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    decorations = {id(n) for node in ast.walk(tree) for d in getattr(node, "decorator_list", ())
                   for n in ast.walk(d)}  # @dataclass(frozen=True): no behaviour a test could see
    sites = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in decorations:
            continue
        if isinstance(node, ast.Compare):
            sites += [(index, f"cmp{k}") for k, op in enumerate(node.ops) if type(op) in FLIP]
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float) and not _is_docstring(node, parents):
            if not isinstance(parents.get(node), ast.Subscript | ast.Slice):  # indices: mostly plain crashes
                sites.append((index, "num"))
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            sites.append((index, "bool"))
        elif isinstance(node, ast.BoolOp):
            sites.append((index, "boolop"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            sites.append((index, "not"))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func = node.value.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in DROPPED_CALLS:
                sites.append((index, "drop"))
    return sites


def _apply(tree: ast.Module, index: int, kind: str) -> tuple[ast.Module, str]:
    """A copy of ``tree`` with one mutation; returns it and what changed."""
    tree = copy.deepcopy(tree)
    node = list(ast.walk(tree))[index]
    if kind.startswith("cmp"):
        k = int(kind[3:])
        old = type(node.ops[k])
        node.ops[k] = FLIP[old]()
        what = f"{old.__name__} -> {FLIP[old].__name__}"
    elif kind == "num":
        old = node.value
        node.value = old + 1 if isinstance(old, int) else (old * 1.1 if old else 0.1)
        what = f"{old!r} -> {node.value!r}"
    elif kind == "bool":
        node.value = not node.value
        what = f"{not node.value} -> {node.value}"
    elif kind == "boolop":
        old = type(node.op)
        node.op = ast.Or() if old is ast.And else ast.And()
        what = f"{old.__name__} -> {type(node.op).__name__}"
    elif kind == "not":
        parents = {child: p for p in ast.walk(tree) for child in ast.iter_child_nodes(p)}
        parent = parents[node]
        for field, value in ast.iter_fields(parent):
            if value is node:
                setattr(parent, field, node.operand)
            elif isinstance(value, list):
                parent.__dict__[field] = [node.operand if v is node else v for v in value]
        what = "not X -> X"
    else:  # drop
        call = node.value
        name = ast.unparse(call.func)
        node.value = ast.Constant(None)
        what = f"{name}(...) dropped"
    return ast.fix_missing_locations(tree), what


def _describe(node: ast.AST, kind: str) -> str:
    """What the mutation of ``kind`` at ``node`` changes, in words (as ``_apply`` does it)."""
    if kind.startswith("cmp"):
        old = type(node.ops[int(kind[3:])])
        return f"{old.__name__} -> {FLIP[old].__name__}"
    if kind == "num":
        old = node.value
        return f"{old!r} -> {old + 1 if isinstance(old, int) else (old * 1.1 if old else 0.1)!r}"
    if kind == "bool":
        return f"{node.value} -> {not node.value}"
    if kind == "boolop":
        return "And -> Or" if isinstance(node.op, ast.And) else "Or -> And"
    if kind == "not":
        return "not X -> X"
    return f"{ast.unparse(node.value.func)}(...) dropped"


def _where(parents: dict, node: ast.AST) -> tuple[str, str]:
    """The function (``Class.method``, ``<module>``) holding ``node``, and the code a mutation there changes:
    the node itself, or for a number or a flag the expression around it."""
    names, up = [], parents.get(node)
    while up is not None:
        if isinstance(up, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(up.name)
        up = parents.get(up)
    shown = node
    while isinstance(shown, ast.Constant) or (isinstance(shown, ast.UnaryOp | ast.keyword)
                                              and isinstance(parents.get(shown), ast.expr | ast.keyword)):
        shown = parents.get(shown, shown)
        if not isinstance(shown, ast.expr | ast.keyword):
            break
    code = " ".join(ast.unparse(shown).split())
    return ".".join(reversed(names)) or "<module>", code if len(code) <= 90 else code[:87] + "..."


def mutants(source: str) -> list[tuple[Mutant, Callable[[], str]]]:
    """Every mutant of ``source``: its description, and a function that makes the mutated module's source."""
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    parents = {child: node for node in nodes for child in ast.iter_child_nodes(node)}
    out, seen = [], {}
    for number, (index, kind) in enumerate(_sites(tree), 1):
        node = nodes[index]
        function, code = _where(parents, node)
        what = _describe(node, kind)
        key = f"{function} | {code} | {what}"
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:  # the same change twice in one expression: number the later ones
            key += f" #{seen[key]}"
        make = functools.partial(lambda i, k: ast.unparse(_apply(tree, i, k)[0]), index, kind)
        out.append((Mutant(number, getattr(node, "lineno", 0), what, key), make))
    return out


def run_tests(work: Path, tests: list[str], timeout: float) -> str:
    """``killed``, ``survived`` or ``timeout`` for the tests in the copy ``work``: one file after the other,
    fastest first, until one fails (the module's own unit tests kill most mutants in seconds; the slower
    files run only for the mutants that survive them)."""
    outcome = "survived"
    for test in tests:
        outcome = _pytest(work, [test], timeout)
        if outcome != "survived":
            break
    return outcome


PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not slow"]
#: ``--fork``: pytest runs in a child forked from this process, which imported these once (never
#: photodedup itself, which the child imports fresh from the mutated copy): most of a run's CPU is imports.
PRELOAD = ("numpy", "PIL.Image", "cv2", "fastapi", "fastapi.testclient", "httpx", "typer", "pytest")
FORK = False


def _outcome(returncode: int, output: str) -> str:
    """``survived``, ``broken``, or ``killed by <the first failing test>``."""
    if returncode == 0:
        return "survived"
    if returncode in (4, 5) or "ImportError" in output[-2000:] and "error" in output[-300:]:
        return "broken"  # nothing ran / the module does not import / usage error: not a test's merit
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return f"killed by {failed.group(1)}" if failed else "killed"


def _pytest(work: Path, tests: list[str], timeout: float) -> str:
    if FORK:
        return _pytest_forked(work, tests, timeout)
    command = [sys.executable, "-m", "pytest", *PYTEST_ARGS, *tests]
    try:
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return _outcome(done.returncode, done.stdout)


def _pytest_forked(work: Path, tests: list[str], timeout: float) -> str:
    log = work / ".mutate-output"
    pid = os.fork()
    if pid == 0:  # the child: run the tests of the copy, exit with pytest's status
        code = 3
        try:
            os.setpgid(0, 0)
            os.chdir(work)
            sys.path.insert(0, str(work))
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, 1)
            os.dup2(out, 2)
            import pytest

            code = int(pytest.main([*PYTEST_ARGS, *tests]))
            sys.stdout.flush()
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.05)
    return _outcome(os.waitstatus_to_exitcode(status), log.read_text(errors="replace") if log.exists() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", required=True, choices=sorted(TARGETS))
    parser.add_argument("--tests", nargs="*", help="test files to run [default: the module's own]")
    parser.add_argument("--max", type=int, default=0, help="at most this many mutants (a random sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=int, nargs="+", metavar="N", help="only these mutants (numbers as listed)")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds per mutant's test run, at least [default: 120, or 3 times the baseline's]")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--fork", action="store_true",
                        help="run each mutant's pytest in a process forked from a warm one (several times faster)")
    args = parser.parse_args()
    # a mutant can keep its module's size (0 -> 1): a .pyc written in the same second would be taken for it
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    if args.fork:
        global FORK
        FORK = True
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # no thread pools in the parent that forks
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        for name in PRELOAD:
            with contextlib.suppress(ImportError):
                __import__(name)

    path, default_tests = TARGETS[args.module]
    tests = args.tests or default_tests
    everything = mutants((REPO / path).read_text())
    chosen, total = everything, len(everything)
    if args.only:
        chosen = [m for m in everything if m[0].number in set(args.only)]
    elif args.max and args.max < total:
        chosen = sorted(random.Random(args.seed).sample(chosen, args.max), key=lambda m: m[0].number)
    equivalent = EQUIVALENT.get(args.module, {})
    unknown = set(equivalent) - {m.key for m, _ in everything}
    if unknown:  # the code changed: an entry that names no mutant any more must go
        sys.exit("EQUIVALENT names mutants that no longer exist: " + "; ".join(sorted(unknown)))
    if args.list:
        for mutant, _ in chosen:
            note = f"   [equivalent: {equivalent[mutant.key]}]" if mutant.key in equivalent else ""
            print(f"#{mutant.number} {path}:{mutant.line} {mutant.key}{note}")
        print(f"{len(chosen)} of {total} mutants")
        return

    with tempfile.TemporaryDirectory(prefix="photodedup-mutate-") as tmp:
        work = Path(tmp) / "repo"
        shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.sqlite"))
        original = (work / path).read_text()
        started = time.monotonic()
        if run_tests(work, tests, 10 * args.timeout) != "survived":
            sys.exit(f"the tests of {args.module} do not pass unmutated: fix them first")
        baseline = time.monotonic() - started
        timeout = max(args.timeout, 3 * baseline)  # a mutant that makes them 3 times slower hangs
        print(f"baseline: {' '.join(tests)} pass in {baseline:.0f} s; a mutant's time limit {timeout:.0f} s",
              flush=True)
        results = []
        for mutant, source in chosen:
            if mutant.key in equivalent:
                outcome = "equivalent"
            else:
                (work / path).write_text(source())
                outcome = run_tests(work, tests, timeout)
                (work / path).write_text(original)
            results.append({"number": mutant.number, "line": mutant.line, "key": mutant.key, "outcome": outcome})
            print(f"#{mutant.number:<4} {path}:{mutant.line:<5} {mutant.key}  {outcome}", flush=True)
    counts = {k: sum(r["outcome"].split(" ")[0] == k for r in results)
              for k in ("killed", "timeout", "survived", "broken", "equivalent")}
    judged = counts["killed"] + counts["timeout"] + counts["survived"]
    score = (counts["killed"] + counts["timeout"]) / judged if judged else 0.0
    print(f"{args.module}: {counts['killed'] + counts['timeout']} of {judged} mutants killed ({score:.0%}); "
          f"{counts['survived']} survived, {counts['equivalent']} equivalent, {counts['broken']} did not import; "
          f"{len(chosen)} of {total} mutants tried")
    if args.json:
        args.json.write_text(json.dumps({"module": args.module, "tests": tests, "total": total, "score": score,
                                         "counts": counts, "results": results}, indent=2))


if __name__ == "__main__":
    main()
