"""``photodedup eval``: score groupings against a ground truth, and sweep thresholds.

The truth is JSON with ``groups``: lists of paths that are duplicates of each other, relative to
``root`` (a key of the file, else the folder holding it) or absolute. Files not in any group are
singletons. The sample library's ``truth.json`` (which adds ``unrelated``, ``broken`` and ``kinds``)
and the labels export of ``photodedup review`` both have this shape.

Metrics: pairwise precision, recall and F1 (a pair is two files in one group), overall and for each
evidence kind alone; recall by transformation kind when the truth has ``kinds``; and the retrieval
metrics imagededup reports (MAP, NDCG, Jaccard: every file is a query, its group mates are what it
retrieves, ordered by evidence strength; computed the way imagededup's ``evaluation.py`` does).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations
from pathlib import Path

import numpy as np

from photodedup import cluster as clu
from photodedup.catalog import Catalog, open_catalog
from photodedup.errors import BadInputError
from photodedup.grouping import (
    GroupSettings,
    build_groups,
    find_edges,
    one_per_file,
    pick_model,
    select_files,
    semantic_vectors,
    shots,
)
from photodedup.text import printable

log = logging.getLogger(__name__)

SWEEPS = {"hash": "hash_threshold", "cosine": "cosine"}
DEFAULT_SWEEP_VALUES = {"hash": [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24],
                        "cosine": [0.80, 0.85, 0.90, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999]}


@dataclass
class Truth:
    root: Path
    groups: list[list[str]]                      # absolute paths
    kinds: dict[str, str] = field(default_factory=dict)  # absolute path -> transformation kind
    # The files the truth speaks of, when it lists its non-duplicates too (``unrelated``): a partial
    # review's labels then score only what was reviewed. ``None``: every file under ``root``.
    listed: set[str] | None = None
    originals: set[str] = field(default_factory=set)  # each group's original (and its RAW), where known
    # Look-alikes that must stay apart: (file, its look-alike, kind), e.g. half a photo stretched.
    negatives: list[tuple[str, str, str]] = field(default_factory=list)

    def pairs(self) -> set[tuple[str, str]]:
        return _pairs(self.groups)


def load_truth(path: Path | str) -> Truth:
    """Read a ground truth (sample library ``truth.json`` or a ``review`` labels export)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError(f"no ground truth at {path}") from None
    except (OSError, ValueError) as error:
        raise BadInputError(f"cannot read the ground truth {path}: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list) or not all(
            isinstance(g, list) and all(isinstance(p, str) for p in g) for g in data["groups"]):
        raise BadInputError(f"{path} is not a ground truth",
                            hint='expected JSON like {"groups": [["a.jpg", "b.jpg"], ...]} (paths relative '
                                 'to "root" or to the file\'s folder)')
    root = Path(data.get("root") or path.parent).expanduser().resolve()

    def absolute(p: str) -> str:
        return str(root / p) if not Path(p).is_absolute() else p

    groups = [[absolute(p) for p in g] for g in data["groups"] if len(g) > 1]
    kinds = {absolute(p): k for p, k in (data.get("kinds") or {}).items()}
    originals = {p for p, k in kinds.items() if k == "original"}
    named = data.get("original")  # one entry per group (or null): its camera original
    if isinstance(named, list):
        originals |= {absolute(p) for p in named if isinstance(p, str)}
    for pair in data.get("pairs") or []:  # [jpeg, raw]: the RAW of an original is the camera original too
        if isinstance(pair, list) and len(pair) == 2 and absolute(pair[0]) in originals:
            originals.add(absolute(pair[1]))
    listed = None
    if isinstance(data.get("unrelated"), list):
        listed = {absolute(p) for g in data["groups"] for p in g}
        listed |= {absolute(p) for key in ("unrelated", "broken") for p in data.get(key) or [] if isinstance(p, str)}
    negatives = [(absolute(a), absolute(b), kind[0] if kind else kinds.get(absolute(b), "negative"))
                 for a, b, *kind in (data.get("negatives") or []) if isinstance(a, str) and isinstance(b, str)]
    return Truth(root, groups, kinds, listed, originals & {p for g in groups for p in g}, negatives)


@dataclass
class Scores:
    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    groups: int

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}


@dataclass
class EvalResult:
    truth: str
    files: int
    params: GroupSettings
    model: str | None
    overall: Scores
    by_evidence: dict[str, Scores]
    recall_by_kind: dict[str, float]
    retrieval: dict[str, float]
    warnings: list[str]
    keeper: dict = field(default_factory=dict)   # accuracy, correct, groups, wrong: [{keeper, original, reason}]
    apart: dict[str, list[int]] = field(default_factory=dict)  # negative kind -> [kept apart, total]

    def as_dict(self) -> dict:
        return {"truth": self.truth, "files": self.files, "model": self.model,
                "params": asdict(self.params),
                "overall": self.overall.as_dict(),
                "by_evidence": {k: s.as_dict() for k, s in self.by_evidence.items()},
                "recall_by_kind": {k: round(v, 4) for k, v in self.recall_by_kind.items()},
                "retrieval": {k: round(v, 4) for k, v in self.retrieval.items()},
                "keeper": self.keeper, "negatives_apart": self.apart, "warnings": self.warnings}

    def render(self) -> str:
        p = self.params
        lines = [f"Scored against {printable(self.truth)} ({self.files} files; {p.method} link, hash threshold "
                 f"{p.hash_threshold}, cosine {p.cosine}{', model ' + self.model if self.model else ''})",
                 f"{'evidence':<12} {'precision':>9} {'recall':>7} {'F1':>6} {'pairs':>7} {'true':>6} {'groups':>6}"]
        for name, s in [("all", self.overall), *self.by_evidence.items()]:
            lines.append(f"{name:<12} {s.precision:>9.3f} {s.recall:>7.3f} {s.f1:>6.3f} {s.predicted_pairs:>7} "
                         f"{s.true_pairs:>6} {s.groups:>6}")
        lines.append("retrieval: " + ", ".join(f"{k.upper()} {v:.3f}" for k, v in self.retrieval.items()))
        if self.recall_by_kind:
            lines.append("recall by kind: " + ", ".join(f"{k} {v:.2f}" for k, v in self.recall_by_kind.items()))
        if self.apart:
            lines.append("look-alikes kept apart: " + ", ".join(f"{k} {a}/{n}" for k, (a, n) in self.apart.items()))
        if self.keeper.get("groups"):
            k = self.keeper
            lines.append(f"keeper accuracy: {k['accuracy']:.3f} (the original is the keeper in {k['correct']} of the "
                         f"{k['groups']} groups that hold one; rules {','.join(p.keeper_rules)})")
            lines += [f"  kept {w['keeper']} over the original {w['original']}: {w['reason']}" for w in k["wrong"]]
        return "\n".join(lines)


def evaluate(catalog: Path | str | Catalog | None, truth_path: Path | str, *,
             params: GroupSettings | None = None) -> EvalResult:
    """Group the files under the truth's root in memory (nothing stored) and score the groups."""
    params = params or GroupSettings()
    truth = load_truth(truth_path)
    with open_catalog(catalog) as cat:
        rows, parts, model, warnings, pairs = _evidence(cat, truth, params)
    if not rows:
        raise BadInputError(f"the catalog has no files under {truth.root}",
                            hint=f"run `photodedup scan {truth.root}` first")
    # Similar shots are not claims of duplication: only duplicate groups are scored.
    groups = [g for g in build_groups(rows, clu.combine(*parts.values()), params, pairs=pairs)
              if g.category == "duplicate"]
    overall = score_pairs([_paths(g) for g in groups], truth)
    by_evidence = {}
    for kind, edges in parts.items():
        if kind == "similar":
            continue
        kind_groups = build_groups(rows, clu.combine(edges), params, pairs=pairs)
        by_evidence[kind] = score_pairs([_paths(g) for g in kind_groups], truth)
    edge_order = _edge_order(rows, clu.combine(*parts.values()))
    return EvalResult(str(truth_path), len(rows), params, model, overall, by_evidence,
                      recall_by_kind(groups, truth),
                      retrieval_metrics(groups, truth, {row["path"] for row in rows}, edge_order), warnings,
                      keeper_accuracy(groups, truth), kept_apart(groups, truth))


def _evidence(cat: Catalog, truth: Truth, params: GroupSettings):
    every = [row for row in select_files(cat, [truth.root]) if truth.listed is None or row["path"] in truth.listed]
    rows, names = one_per_file(every)  # a file under several paths is one item, as `group` sees it
    model, warnings = pick_model(cat, params)
    vectors = semantic_vectors(cat, rows, model) if model else None
    # a RAW+JPEG pair (a Live Photo) is one item, as `group` sees it: its keeper rule and its edges are the RAW's
    return rows, find_edges(rows, vectors, params, thumbs=cat.thumb), model, warnings, shots(cat, every, rows, names)


def _paths(group) -> list[str]:
    """Every file of a group: each member's path and its companions' (a RAW+JPEG pair is one member)."""
    return [f.path for m in group.members for f in m.files]


def sweep(catalog: Path | str | Catalog | None, truth_path: Path | str, *, name: str = "hash",
          values: Sequence[float] | None = None, params: GroupSettings | None = None) -> list[dict]:
    """Precision and recall for each value of one threshold (``hash`` or ``cosine``), others fixed."""
    if name not in SWEEPS:
        raise BadInputError(f"unknown sweep {name!r}", hint=f"choose one of: {', '.join(SWEEPS)}")
    values = sorted(values or DEFAULT_SWEEP_VALUES[name])
    params = params or GroupSettings()
    loosest = values[-1] if name == "hash" else values[0]
    truth = load_truth(truth_path)
    with open_catalog(catalog) as cat:
        rows, parts, model, _, pairs = _evidence(cat, truth, replace(params, **{SWEEPS[name]: loosest}))
    if name == "cosine" and model is None:
        raise BadInputError("no usable embeddings to sweep the cosine threshold",
                            hint="run `photodedup embed` (or pass --allow-random to test the mechanics)")
    kind = "perceptual" if name == "hash" else "semantic"
    out = []
    for value in values:
        limit = value if name == "hash" else 1.0 - value
        trimmed = {k: e.where(e.distance <= limit + 1e-9) if k == kind else e for k, e in parts.items()}
        groups = [g for g in build_groups(rows, clu.combine(*trimmed.values()), params, pairs=pairs)
                  if g.category == "duplicate"]
        scores = score_pairs([_paths(g) for g in groups], truth)
        out.append({"value": value} | scores.as_dict())
    return out


def plot_sweep(points: Sequence[dict], name: str, out: Path | str) -> Path:
    """Precision and recall against the threshold, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    x = [p["value"] for p in points]
    for key in ("precision", "recall", "f1"):
        ax.plot(x, [p[key] for p in points], marker="o", label=key)
    ax.set_xlabel("pHash Hamming distance threshold" if name == "hash" else "cosine similarity threshold")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("photodedup eval --sweep " + name)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


# -- metrics ---------------------------------------------------------------------------------------
def _pairs(groups: Sequence[Sequence[str]]) -> set[tuple[str, str]]:
    return {pair for g in groups for pair in combinations(sorted(set(g)), 2)}


def score_pairs(predicted: Sequence[Sequence[str]], truth: Truth) -> Scores:
    """Pairwise precision, recall and F1 of predicted groups (lists of paths) against the truth."""
    true, found = truth.pairs(), _pairs(predicted)
    correct = len(true & found)
    precision = correct / len(found) if found else 1.0
    recall = correct / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, len(true), len(found), correct, len(predicted))


def recall_by_kind(groups, truth: Truth) -> dict[str, float]:
    """For each transformation kind: the share of (original, variant) pairs found in one group."""
    if not truth.kinds:
        return {}
    found = _pairs([_paths(g) for g in groups])
    tally: dict[str, list[int]] = {}
    for g in truth.groups:
        originals = [p for p in g if truth.kinds.get(p) == "original"]
        for original in originals:
            for other in g:
                if other != original:
                    counts = tally.setdefault(truth.kinds.get(other, "unknown"), [0, 0])
                    counts[0] += tuple(sorted((original, other))) in found
                    counts[1] += 1
    return {kind: hit / total for kind, (hit, total) in sorted(tally.items())}


def keeper_accuracy(groups, truth: Truth) -> dict:
    """Of the found groups that hold a true original, the share whose suggested keeper is that original:
    the file itself, its RAW (a RAW+JPEG pair is one shot), or a member that carries it as a companion."""
    shot = {p: number for number, g in enumerate(truth.groups) for p in g}
    wrong, scored = [], 0
    for g in groups:
        holders = {m.file_id: m for m in g.members
                   if {m.path, *(c.path for c in m.companions)} & truth.originals}
        shots = {shot[p] for m in holders.values() for p in {m.path, *(c.path for c in m.companions)}
                 & truth.originals}
        if len(shots) != 1:
            continue  # no original, or two groups' originals merged (a precision error, scored there)
        scored += 1
        if g.keeper not in holders:
            keeper = next(m for m in g.members if m.file_id == g.keeper)
            original = next(iter(holders.values()))
            wrong.append({"keeper": _relative(keeper.path, truth.root),
                          "original": _relative(original.path, truth.root),
                          "reason": g.keeper_reason, "original_note": original.note})
    correct = scored - len(wrong)
    return {"accuracy": round(correct / scored, 4) if scored else None, "correct": correct, "groups": scored,
            "wrong": wrong}


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def kept_apart(groups, truth: Truth) -> dict[str, list[int]]:
    """For each kind of look-alike: how many were not grouped with the file they resemble, of how many."""
    where = {path: g.id for g in groups for path in _paths(g)}
    out: dict[str, list[int]] = {}
    for a, b, kind in truth.negatives:
        counts = out.setdefault(kind, [0, 0])
        counts[0] += where.get(a, -1) != where.get(b, -2)
        counts[1] += 1
    return out


def _edge_order(rows, edges: clu.Edges) -> dict[tuple[str, str], tuple[int, float]]:
    paths = [row["path"] for row in rows]
    order = {}
    for a, b, rank, dist in zip(edges.i.tolist(), edges.j.tolist(), edges.kind.tolist(),
                                edges.distance.tolist(), strict=True):
        order[(paths[a], paths[b])] = order[(paths[b], paths[a])] = (rank, dist)
    return order


def retrieval_metrics(groups, truth: Truth, universe: set[str],
                      edge_order: dict[tuple[str, str], tuple[int, float]]) -> dict[str, float]:
    """Mean AP, NDCG and Jaccard over every file, as imagededup's evaluation computes them."""
    true_map = {p: set(g) - {p} for g in truth.groups for p in g}
    found_map = {path: [o for o in _paths(g) if o != path] for g in groups for path in _paths(g)}
    queries = sorted(universe | set(true_map))
    sums = {"map": 0.0, "ndcg": 0.0, "jaccard": 0.0}
    for query in queries:
        correct = true_map.get(query, set())
        retrieved = sorted(found_map.get(query, []),
                           key=lambda other: (edge_order.get((query, other), (9, math.inf)), other))
        sums["map"] += _average_precision(correct, retrieved)
        sums["ndcg"] += _ndcg(correct, retrieved)
        sums["jaccard"] += _jaccard(correct, retrieved)
    return {k: v / len(queries) if queries else 1.0 for k, v in sums.items()}


def _average_precision(correct: set[str], retrieved: list[str]) -> float:
    if not correct and not retrieved:
        return 1.0
    if not correct or not retrieved:
        return 0.0
    relevance = np.array([r in correct for r in retrieved], dtype=float)
    precision_at = np.cumsum(relevance) / np.arange(1, len(relevance) + 1)
    return float((precision_at * relevance).sum() / len(correct))


def _ndcg(correct: set[str], retrieved: list[str]) -> float:
    if not correct and not retrieved:
        return 1.0
    if not correct or not retrieved:
        return 0.0
    relevance = np.array([r in correct for r in retrieved], dtype=float)
    discounts = np.log2(np.arange(2, len(relevance) + 2))
    dcg = float(((2 ** relevance - 1) / discounts).sum())
    if dcg == 0:
        return 0.0
    ideal = float(((2 ** np.sort(relevance)[::-1] - 1) / discounts).sum())
    return dcg / ideal


def _jaccard(correct: set[str], retrieved: list[str]) -> float:
    if not correct and not retrieved:
        return 1.0
    if not correct or not retrieved:
        return 0.0
    return len(correct & set(retrieved)) / len(correct | set(retrieved))
