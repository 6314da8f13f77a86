"""Candidate pairs and clustering (photodedup/cluster.py) at their edges: inclusive thresholds, empty and
tiny inputs, both search paths agreeing, complete link needing every cross pair. Unit level on arrays:
what ``benchmarks/mutate.py --module cluster`` runs first."""

from __future__ import annotations

import numpy as np
import pytest

from photodedup import cluster as c
from photodedup.cluster import (
    Edges,
    bounded_radius,
    combine,
    cosine_pairs,
    dihedral_pairs,
    exact_pairs,
    hamming_cross,
    near_pairs,
    popcount64,
)


def pairs(edges: Edges) -> list[tuple[int, int, int, float]]:
    columns = zip(edges.i, edges.j, edges.kind, edges.distance, strict=True)
    return [(int(i), int(j), int(k), float(d)) for i, j, k, d in columns]


def test_the_registry_and_the_documented_defaults():
    assert [(k.name, k.rank, k.category) for k in c.KINDS] == [
        ("exact", 0, "duplicate"), ("perceptual", 1, "duplicate"), ("verified", 2, "duplicate"),
        ("semantic", 3, "duplicate"), ("similar", 4, "similar")]
    assert (c.EXACT, c.PERCEPTUAL, c.VERIFIED, c.SEMANTIC, c.SIMILAR) == (0, 1, 2, 3, 4)
    assert (c.DEFAULT_METHOD, c.DEFAULT_HASH_THRESHOLD, c.DEFAULT_COSINE) == ("complete", 12, 0.99)
    assert (c.EXACT_MAX, c.BRUTE_MAX, c.BLOCK_FLOATS) == (10_000, 4096, 32 * 1024 * 1024)


@pytest.mark.parametrize("value", [0, 1, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF, 0x0F0F0F0F0F0F0F0F,
                                   0x123456789ABCDEF0, 0xFF00000000000001, 0x00FF00FF00FF00FF])
def test_popcount_counts_every_bit(value):
    assert popcount64(np.array([value], np.uint64)).tolist() == [bin(value).count("1")]


def test_empty_edges_are_empty():
    empty = Edges.empty()
    assert len(empty) == 0
    assert (empty.i.shape, empty.j.shape, empty.kind.shape, empty.distance.shape) == ((0,), (0,), (0,), (0,))
    assert len(combine(empty, empty)) == 0


def test_exact_pairs_join_equal_digests_only():
    assert pairs(exact_pairs(["a", "b", "a", None, "", None, "", "a"])) == [
        (0, 2, 0, 0.0), (0, 7, 0, 0.0), (2, 7, 0, 0.0)]
    assert len(exact_pairs(["a", "b", None, None])) == 0


def test_hamming_cross_is_inclusive_and_empty_inputs_give_nothing():
    base = np.array([0b0, 0b111, 0b1111], np.uint64)
    q, b, d = hamming_cross(np.array([0], np.uint64), base, 3)
    assert (q.tolist(), b.tolist(), d.tolist()) == ([0, 0], [0, 1], [0, 3])
    for queries, against, radius in ((np.zeros(0, np.uint64), base, 3), (base, np.zeros(0, np.uint64), 3),
                                     (base, base, -1)):
        assert [x.tolist() for x in hamming_cross(queries, against, radius)] == [[], [], []]


def test_hamming_cross_through_faiss_finds_what_the_brute_force_finds():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, 60, dtype=np.int64).view(np.uint64)
    queries = base ^ np.uint64(0b1011)  # 3 bits off each
    brute = hamming_cross(queries, base, 3)
    indexed = hamming_cross(queries, base, 3, brute_max=4)  # 60*60 > 4*4/16: the faiss index
    as_set = lambda t: sorted(zip(*(x.tolist() for x in t), strict=True))  # noqa: E731
    assert as_set(indexed) == as_set(brute)
    assert sorted((q, b) for q, b, _ in as_set(brute)) >= [(n, n) for n in range(60)]
    assert all(dist == 3 for q, b, dist in as_set(brute) if q == b)


def test_dihedral_pairs_use_the_threshold_as_is_and_the_turned_radius_for_variants():
    # item 1 is item 0 mirrored: its hash is item 0's variant 1; item 2 is 2 bits from item 0 as is
    variants = np.zeros((3, 8), np.uint64)
    variants[0] = [0, 0xFFFF, 7, 7, 7, 7, 7, 7]
    variants[1] = [0xFFFF, 0, 7, 7, 7, 7, 7, 7]
    variants[2] = [0b11, 0xFF, 7, 7, 7, 7, 7, 7]
    found = dihedral_pairs(variants, 2, turned=0)
    assert pairs(found) == [(0, 1, 1, 0.0), (0, 2, 1, 2.0)]
    assert found.variant.tolist() == [1, 0]
    assert pairs(dihedral_pairs(variants, 1, turned=0)) == [(0, 1, 1, 0.0)]  # as is: 2 bits > 1
    assert pairs(dihedral_pairs(variants, 2, turned=-1)) == [(0, 2, 1, 2.0)]  # no variants searched
    assert pairs(dihedral_pairs(variants[:2], 0)) == [(0, 1, 1, 0.0)]  # two items are enough
    assert len(dihedral_pairs(variants[:1], 64)) == 0 and len(dihedral_pairs(variants, -1)) == 0


def test_near_pairs_lie_beyond_low_up_to_high_inclusive():
    hashes = np.array([0, 0b1, 0b111, 0b11111], np.uint64)
    i, j, bits = near_pairs(hashes, 1, 3, k=10)
    assert list(zip(i.tolist(), j.tolist(), bits.tolist(), strict=True)) == [(0, 2, 3), (1, 2, 2), (2, 3, 2)]
    i, j, bits = near_pairs(hashes[:2], 0, 1, k=1)  # two items are enough
    assert (i.tolist(), j.tolist(), bits.tolist()) == ([0], [1], [1])
    for args in ((hashes, 3, 3, 10), (hashes, 1, 3, 0), (hashes[:1], 0, 64, 5)):
        assert [x.tolist() for x in near_pairs(*args[:3], k=args[3])] == [[], [], []]


def test_near_pairs_keep_each_item_s_k_nearest_and_the_second_hash_bounds_them():
    hashes = np.array([0, 0b11, 0b1111, 0b111111], np.uint64)
    i, j, _ = near_pairs(hashes, 0, 64, k=1)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 1), (1, 2), (2, 3)]
    second = np.array([0, 0xFFFF, 0, 0], np.uint64)
    i, j, bits = near_pairs(hashes, 0, 64, k=1, second=second, second_max=4)
    assert list(zip(i.tolist(), j.tolist(), bits.tolist(), strict=True)) == [(0, 2, 4), (2, 3, 2)]


def test_bounded_radius_keeps_the_radius_for_small_libraries_and_bounds_large_ones():
    assert [bounded_radius(n, 20) for n in (2, 1000, 100_000, 10_000_000)] == [20, 20, 20, 16]
    assert [bounded_radius(n, 64) for n in (2, 1000, 100_000)] == [64, 30, 20]
    assert bounded_radius(2, 0) == 0


def test_cosine_pairs_are_inclusive_and_two_vectors_are_enough():
    vectors = np.array([[1, 0], [0.6, 0.8], [0, 1], [1, 0]], np.float32)
    found = cosine_pairs(vectors, 0.6)
    assert [(i, j, k) for i, j, k, _ in pairs(found)] == [(0, 1, 3), (0, 3, 3), (1, 2, 3), (1, 3, 3)]
    assert found.distance.tolist() == pytest.approx([0.4, 0.0, 0.2, 0.4], abs=1e-6)
    assert [(i, j) for i, j, _, _ in pairs(cosine_pairs(vectors[:2], 0.5))] == [(0, 1)]
    assert len(cosine_pairs(vectors[:1], 0.0)) == 0
    with pytest.raises(ValueError, match="unknown search method 'nearest'"):
        cosine_pairs(vectors, 0.5, method="nearest")


def test_cosine_pairs_through_faiss_find_the_exact_pairs():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(100, 16)).astype(np.float32)
    near = base[:50] + rng.normal(scale=0.05, size=(50, 16)).astype(np.float32)
    vectors = np.vstack([base, near])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact, indexed = cosine_pairs(vectors, 0.95, method="exact"), cosine_pairs(vectors, 0.95, method="faiss")
    assert pairs(indexed) == pairs(exact)
    assert {(i, j) for i, j, _, _ in pairs(exact)} >= {(n, 100 + n) for n in range(50)}


def test_combine_keeps_the_strongest_evidence_per_pair():
    exact = Edges.of([1], [0], c.EXACT, [0.0])
    perceptual = Edges.of([0, 2], [1, 1], c.PERCEPTUAL, [3.0, 5.0], variant=[2, 0])
    assert pairs(combine(perceptual, exact)) == [(0, 1, 0, 0.0), (1, 2, 1, 5.0)]


def test_moving_edges_drops_self_loops_and_turns_variants():
    edges = Edges.of([0, 1], [1, 2], c.PERCEPTUAL, [1.0, 2.0], variant=[4, 1])
    moved = edges.moved(np.array([3, 2]), np.array([1, 2]))
    assert pairs(moved) == [(1, 3, 1, 1.0)]
    assert moved.variant.tolist() == [5]  # turned 90 seen the other way round is turned 270


def chain() -> Edges:
    return Edges.of([0, 1], [1, 2], c.PERCEPTUAL, [1.0, 2.0])


def test_single_link_chains_and_complete_link_does_not():
    assert c.cluster(4, chain(), [10, 11, 12, 13], method="single") == [[0, 1, 2]]
    assert c.cluster(4, chain(), [10, 11, 12, 13]) == [[0, 1]]
    with pytest.raises(ValueError, match="unknown clustering method 'average'"):
        c.cluster(3, chain(), [1, 2, 3], method="average")


def test_complete_link_counts_the_cross_pairs_a_merged_cluster_inherits():
    # D = {0,1} and A = {2,3} form first; A has one edge to 4; D and A merge (4 cross pairs, A into D);
    # the merged cluster then needs 4 edges to 4 and has seen 3: 4 stays out
    i = [0, 2, 2, 0, 0, 1, 1, 0, 1]
    j = [1, 3, 4, 2, 3, 2, 3, 4, 4]
    d = [1, 1, 2, 3, 3, 3, 3, 4, 4]
    edges = Edges.of(i, j, c.PERCEPTUAL, d)
    assert c.cluster(5, edges, [0, 1, 2, 3, 4]) == [[0, 1, 2, 3]]
    more = Edges.of([*i, 3], [*j, 4], c.PERCEPTUAL, [*d, 4])
    assert c.cluster(5, more, [0, 1, 2, 3, 4]) == [[0, 1, 2, 3, 4]]


def test_groups_are_sorted_by_key_whatever_the_input_order():
    edges = Edges.of([0, 2], [3, 1], c.EXACT, [0.0, 0.0])
    assert c.cluster(4, edges, [40, 10, 30, 20]) == [[1, 2], [3, 0]]
