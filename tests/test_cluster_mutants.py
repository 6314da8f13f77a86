"""Blind spots a held-out mutation sample found in photodedup/cluster.py (``benchmarks/mutate.py --module
cluster --max 15 --seed 3``): the k-nearest search on its smallest inputs and at the exact search's
documented limit, and the faiss Hamming search across its query chunks. Unit level on arrays."""

from __future__ import annotations

import numpy as np
import pytest

from photodedup import cluster as c
from photodedup.cluster import hamming_cross, nearest_pairs


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def as_list(found) -> list[tuple]:
    return sorted(zip(*(x.tolist() for x in found), strict=True))


def test_nearest_pairs_of_two_rows_and_of_one_neighbour_each():
    two = unit([[1.0, 0.0], [1.0, 0.1]])
    i, j, sim = nearest_pairs(two, k=1, threshold=0.9)
    assert (i.tolist(), j.tolist()) == ([0], [1]) and abs(float(sim[0]) - float(two[0] @ two[1])) < 1e-6
    three = unit([[1.0, 0.0], [1.0, 0.05], [1.0, 0.3]])
    i, j, _ = nearest_pairs(three, k=1, threshold=0.0)  # each row's one nearest: 0-1 (twice), 2-1
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 1), (1, 2)]
    for rows, k in ((two[:1], 1), (two, 0)):  # one row, or no neighbour asked: nothing
        assert [x.tolist() for x in nearest_pairs(rows, k=k, threshold=-1.0)] == [[], [], []]


def test_nearest_pairs_are_exact_up_to_the_limit_inclusive(monkeypatch):
    # EXACT_MAX rows of random directions (the limit lowered to 400: the same comparison, in milliseconds):
    # each row's true 2 nearest, as a brute-force product finds them; the IVF index above the limit,
    # probing 4 of its 10 cells, misses some of these
    monkeypatch.setattr(c, "EXACT_MAX", 400)
    vectors = unit(np.random.default_rng(5).standard_normal((400, 16)))
    i, j, _ = nearest_pairs(vectors, k=2, threshold=-1.0)
    expected = set()
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    for row, near in enumerate(np.argsort(-sims, axis=1)[:, :2]):
        expected.update((min(row, n), max(row, n)) for n in near.tolist())
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == expected
    monkeypatch.setattr(c, "EXACT_MAX", 399)
    i, j, _ = nearest_pairs(vectors, k=2, threshold=-1.0)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) != expected  # the index: an approximate search


def test_hamming_cross_through_faiss_searches_every_query_across_its_chunks():
    # more than one faiss query chunk (50,000): the queries at and around the chunk edge are searched too
    rng = np.random.default_rng(4)
    queries = rng.integers(0, 2**63, 100_003, dtype=np.int64).view(np.uint64)
    picked = [0, 1, 2, 3, 4, 49_999, 50_000, 50_001, 100_000, 100_001, 100_002]
    base = queries[picked] ^ np.uint64(0b101)  # 2 bits off each
    indexed = hamming_cross(queries, base, 2)  # 100,003 x 11 comparisons > BRUTE_MAX**2 / 16: faiss
    assert len(queries) * len(base) > c.BRUTE_MAX ** 2 // 16
    assert as_list(indexed) == as_list(hamming_cross(queries, base, 2, brute_max=10**6))
    assert [(q, b) for q, b, d in as_list(indexed) if d == 2] == [(q, b) for b, q in enumerate(picked)]


def test_nearest_pairs_keep_a_similarity_of_exactly_the_threshold():
    rows = np.array([[1.0, 0.0], [0.5, np.sqrt(0.75)]], np.float32)  # their product: 0.5 exactly
    i, j, sim = nearest_pairs(rows, k=1, threshold=0.5)
    assert (i.tolist(), j.tolist(), sim.tolist()) == ([0], [1], [0.5])


def test_cosine_pairs_score_every_pair_past_the_dot_products_chunk():
    # 400 rows: 79,800 pairs, more than one chunk (65,536) of the row-wise products; each pair scored
    vectors = unit(np.random.default_rng(6).standard_normal((400, 8)))
    edges = c.cosine_pairs(vectors, -1.0)
    assert len(edges.i) == 400 * 399 // 2
    assert np.allclose(edges.distance, 1.0 - np.einsum("ij,ij->i", vectors[edges.i], vectors[edges.j]), atol=1e-6)


@pytest.mark.parametrize("variant", [1, 2, 3, 4, 6, 7])
def test_dihedral_pairs_search_every_variant_but_the_turn_by_270(variant):
    # item 0's variant hash equals item 1's hash as is; every other hash of both is far from every other
    hashes = np.random.default_rng(variant).integers(0, 2**63, (2, 8), dtype=np.int64).view(np.uint64)
    hashes[0, variant] = hashes[1, 0]
    edges = c.dihedral_pairs(hashes, 0)
    assert (edges.i.tolist(), edges.j.tolist(), edges.variant.tolist()) == ([0], [1], [variant])
    hashes[0, 5], hashes[0, variant] = hashes[1, 0], ~hashes[1, 0]  # variant 5: found as variant 4 the other way
    assert len(c.dihedral_pairs(hashes, 0).i) == 0


# -- session 6: the documented parameters of the two faiss IVF searches --------------------------------
@pytest.fixture
def ivf_spy(monkeypatch):
    """The real faiss IVF indexes, recorded: each index made, the rows it was trained on, and what it was
    asked (range search radius, k). A spy, not a mock: every call goes to faiss."""
    faiss = pytest.importorskip("faiss")
    seen: dict = {"indexes": [], "trained": [], "radius": [], "k": [], "queried": 0}

    def spy(cls):
        class Spy(cls):
            def train(self, x):
                seen["trained"].append(np.array(x))
                return super().train(x)

            def range_search(self, x, radius):
                seen["radius"].append(radius)
                seen["queried"] += len(x)
                return super().range_search(x, radius)

            def search(self, x, k, *args, **kw):
                seen["k"].append(k)
                seen["queried"] += len(x)
                return super().search(x, k, *args, **kw)

        def make(*args):
            seen["indexes"].append(Spy(*args))
            return seen["indexes"][-1]
        return make

    monkeypatch.setattr(faiss, "IndexIVFScalarQuantizer", spy(faiss.IndexIVFScalarQuantizer))
    monkeypatch.setattr(faiss, "IndexIVFFlat", spy(faiss.IndexIVFFlat))
    return seen


def trained_rows(trained: np.ndarray, vectors: np.ndarray) -> set[int]:
    rows = {row.tobytes(): n for n, row in enumerate(vectors)}
    return {rows[row.tobytes()] for row in trained}


@pytest.mark.parametrize("n, lists", [(20, 1), (3000, 75), (20_003, 282)])  # max(1, min(n // 40, 2 sqrt(n)))
def test_the_faiss_cosine_search_uses_the_documented_index(ivf_spy, n, lists):
    # "2*sqrt(n) lists, 10 k-means iterations on 40 points a list (distinct rows), 4 lists probed", and a
    # range search 0.01 below the threshold (the 8-bit codes' error; the pairs are rescored exactly) of
    # every row once, across the query chunks (20,000)
    vectors = unit(np.random.default_rng(n).standard_normal((n, 4)))
    c.cosine_pairs(vectors, 0.999, method="faiss")
    (index,), (trained,) = ivf_spy["indexes"], ivf_spy["trained"]
    assert (index.nlist, index.cp.niter, index.nprobe) == (lists, 10, min(4, lists))
    assert len(trained) == min(n, 40 * lists) == len(trained_rows(trained, vectors))
    assert ivf_spy["radius"] and all(r == pytest.approx(0.989) for r in ivf_spy["radius"])
    assert ivf_spy["queried"] == n


def test_the_faiss_nearest_search_uses_the_documented_index(ivf_spy, monkeypatch):
    monkeypatch.setattr(c, "EXACT_MAX", 100)  # the index above the limit, on a few thousand rows
    for n, lists in ((3000, 75), (20_003, 282)):  # past one query chunk (20,000)
        vectors = unit(np.random.default_rng(n).standard_normal((n, 4)))
        nearest_pairs(vectors, k=3, threshold=0.99)
        index, trained = ivf_spy["indexes"][-1], ivf_spy["trained"][-1]
        assert (index.nlist, index.cp.niter, index.nprobe) == (lists, 10, 4)
        assert len(trained) == min(n, 40 * lists) == len(trained_rows(trained, vectors))
    assert set(ivf_spy["k"]) == {4} and ivf_spy["queried"] == 3000 + 20_003  # each row's 3 nearest and itself


# -- session 6: pairs seen from one side only, and the edges of the bounds ----------------------------
def test_nearest_pairs_keep_a_pair_only_the_far_row_ranks_nearest():
    # row 0's nearest is row 1; row 2's nearest is row 0 (0.3 away), which does not rank row 2 first
    rows = unit([[1.0, 0.0], [1.0, 0.1], [1.0, -0.3]])
    i, j, _ = nearest_pairs(rows, k=1, threshold=0.0)
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 1), (0, 2)]


def test_near_pairs_keep_a_pair_only_the_first_item_ranks_nearest():
    # item 0's nearest is item 1 (3 bits); item 1's is item 2 (1 bit), and item 2's is item 1
    hashes = np.array([0b0, 0b111, 0b1111], np.uint64)
    i, j, bits = c.near_pairs(hashes, 0, 64, k=1)
    assert list(zip(i.tolist(), j.tolist(), bits.tolist(), strict=True)) == [(0, 1, 3), (1, 2, 1)]


def test_near_pairs_admit_exactly_the_second_hash_s_limit():
    hashes = np.array([0, 0b1], np.uint64)
    second = np.array([0, 0b1111], np.uint64)  # 4 bits apart
    assert [x.tolist() for x in c.near_pairs(hashes, 0, 64, k=1, second=second, second_max=4)] == [[0], [1], [1]]
    assert [x.tolist() for x in c.near_pairs(hashes, 0, 64, k=1, second=second, second_max=3)] == [[], [], []]


def test_bounded_radius_at_the_exact_edge_of_its_pair_budget():
    from fractions import Fraction
    from math import comb

    def oracle(n, radius, per_item=200):  # the largest r <= radius whose expected pairs per item fit
        fits = [r for r in range(radius + 1)
                if Fraction(sum(comb(64, k) for k in range(r + 1)), 2**64) * (n - 1) / 2 <= per_item]
        return fits[-1] if fits else 0

    lo, hi = 2, 10**7  # the least library size at which radius 20 no longer fits
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if oracle(mid, 64) < 20 else (mid + 1, hi)
    assert oracle(lo, 64) == 19 and oracle(lo - 1, 64) == 20
    assert (c.bounded_radius(lo, 64), c.bounded_radius(lo - 1, 64)) == (19, 20)
    # a budget of exactly the expected pairs at radius 2 (2081 * 2**65 / 2**64 / 2, no rounding) still fits
    assert c.bounded_radius(2**65 + 1, 64, per_item=2081) == 2


def test_a_negative_threshold_finds_nothing_whatever_the_turned_radius():
    # (--seed 6) item 0 turned 90 degrees is item 1: found with any threshold, never with a negative one
    hashes = np.random.default_rng(9).integers(0, 2**63, (2, 8), dtype=np.int64).view(np.uint64)
    hashes[0, 1] = hashes[1, 0]
    assert c.dihedral_pairs(hashes, 0, 64).variant.tolist() == [1]
    assert len(c.dihedral_pairs(hashes, -1, 64)) == 0
