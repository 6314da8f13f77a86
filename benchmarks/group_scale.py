"""Grouping at scale: planted near-duplicate embeddings, photodedup's search + clustering vs scikit-learn.

    PYTHONPATH=. .venv/bin/python benchmarks/group_scale.py --n 100000            # with scikit-learn
    PYTHONPATH=. .venv/bin/python benchmarks/group_scale.py --n 1000000 --no-sklearn

Vectors are random unit 512-d rows; a tenth of them get a planted near-duplicate (cosine ~0.995, above
the 0.99 default). Prints time, recall of the planted pairs, and peak memory (max RSS) after each step.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from photodedup import cluster as clu


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def planted(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - start), dim), dtype=np.float32)
        vectors[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    m = n // 10
    sources = rng.choice(n - m, size=m, replace=False)
    for start in range(0, m, 100_000):
        src = sources[start:start + 100_000]
        noisy = vectors[src] + 0.0045 * rng.standard_normal((len(src), dim), dtype=np.float32)
        vectors[n - m + start:n - m + start + len(src)] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return vectors, {(int(s), n - m + k) for k, s in enumerate(sources)}


def recall(found: set, truth: set) -> float:
    return len(found & truth) / len(truth)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--cosine", type=float, default=0.99)
    parser.add_argument("--search", default="auto", choices=["auto", "exact", "faiss"])
    parser.add_argument("--no-sklearn", action="store_true")
    args = parser.parse_args()

    vectors, truth = planted(args.n, args.dim)
    print(f"n={args.n} dim={args.dim} planted pairs={len(truth)} cosine>={args.cosine} "
          f"(vectors {vectors.nbytes / 1e9:.2f} GB, peak so far {peak_gb():.2f} GB)", flush=True)

    started = time.perf_counter()
    edges = clu.cosine_pairs(vectors, args.cosine, method=args.search)
    search_s = time.perf_counter() - started
    groups = clu.cluster(args.n, edges, np.arange(args.n), method="complete")
    total_s = time.perf_counter() - started
    ours = set(zip(edges.i.tolist(), edges.j.tolist(), strict=True))
    print(f"photodedup ({args.search}): search {search_s:.1f}s + complete-link {total_s - search_s:.1f}s = "
          f"{total_s:.1f}s, {len(edges)} pairs, {len(groups)} groups, recall of planted pairs "
          f"{recall(ours, truth):.4f}, peak RSS {peak_gb():.2f} GB", flush=True)

    if not args.no_sklearn:
        from sklearn.neighbors import NearestNeighbors

        started = time.perf_counter()
        radius = float(np.sqrt(2 - 2 * args.cosine))  # unit vectors: |a-b|^2 = 2 - 2 cos
        index = NearestNeighbors(radius=radius, algorithm="brute").fit(vectors)
        neighbours = index.radius_neighbors(vectors, return_distance=False)
        reference = {(i, int(j)) for i, row in enumerate(neighbours) for j in row if j > i}
        sk_s = time.perf_counter() - started
        print(f"scikit-learn NearestNeighbors(brute).radius_neighbors: {sk_s:.1f}s, {len(reference)} pairs, "
              f"recall of planted pairs {recall(reference, truth):.4f}; photodedup finds "
              f"{recall(ours, reference):.4f} of its pairs; time ratio sklearn/photodedup "
              f"{sk_s / total_s:.1f}x, peak RSS {peak_gb():.2f} GB", flush=True)


if __name__ == "__main__":
    main()
