import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from photodedup import cluster as clu
from photodedup.catalog import Catalog
from photodedup.duplicate_groups import load_groups
from photodedup.errors import BadInputError
from photodedup.group import GroupSettings, group, write_csv
from photodedup.report import write_report
from photodedup.scan import scan


# -- clustering laws (hypothesis) -----------------------------------------------------------------
def _hash_groups(hashes, keys, threshold, method):
    hashes = clu.to_uint64(hashes)
    qi, bj, dist = clu.hamming_cross(hashes, hashes, threshold)
    keep = qi < bj
    edges = clu.Edges.of(qi[keep], bj[keep], clu.PERCEPTUAL, dist[keep])
    groups = clu.cluster(len(hashes), edges, keys, method=method)
    return {frozenset(int(keys[i]) for i in g) for g in groups}


# 16 random bits in the low half: many pairs within a few bits, so groups form and compete
hash_lists = st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=40)


@settings(max_examples=60, deadline=None)
@given(hash_lists, st.integers(0, 8), st.sampled_from(clu.METHODS), st.randoms(use_true_random=False))
def test_groups_are_a_partition_independent_of_input_order(values, threshold, method, rnd):
    keys = np.arange(100, 100 + len(values))
    groups = _hash_groups(values, keys, threshold, method)
    members = [k for g in groups for k in g]
    assert len(members) == len(set(members)) and all(len(g) >= 2 for g in groups)
    order = list(range(len(values)))
    rnd.shuffle(order)
    shuffled = _hash_groups([values[i] for i in order], keys[order], threshold, method)
    assert shuffled == groups


@settings(max_examples=60, deadline=None)
@given(hash_lists, st.integers(0, 7), st.integers(1, 4), st.sampled_from(clu.METHODS))
def test_a_stricter_threshold_only_splits_groups(values, strict, extra, method):
    keys = np.arange(len(values))
    fine = _hash_groups(values, keys, strict, method)
    coarse = _hash_groups(values, keys, strict + extra, method)
    for g in fine:
        assert any(g <= c for c in coarse), (g, coarse)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=30), st.floats(0.90, 0.995), st.floats(0.001, 0.05))
def test_a_higher_cosine_only_splits_groups(angles, loose, step):
    # points on a circle arc: cosine between i and j is cos(angle_i - angle_j)
    theta = np.asarray(angles) * 0.6
    vectors = np.stack([np.cos(theta), np.sin(theta)], axis=1).astype(np.float32)
    keys = np.arange(len(theta))

    def groups(t):
        return {frozenset(g) for g in clu.cluster(len(theta), clu.cosine_pairs(vectors, t, method="exact"), keys)}

    coarse, fine = groups(loose), groups(min(0.9999, loose + step))
    for g in fine:
        assert any(g <= c for c in coarse)


def test_complete_link_does_not_chain_a_burst_but_single_link_does():
    # a burst drifting 3 bits per frame: neighbours are within 4 bits, the ends 27 bits apart
    frames = [(1 << (3 * k)) - 1 for k in range(10)]
    keys = np.arange(10)
    single = _hash_groups(frames, keys, 4, "single")
    complete = _hash_groups(frames, keys, 4, "complete")
    assert single == {frozenset(range(10))}
    assert all(len(g) == 2 for g in complete) and len(complete) == 5
    for g in complete:  # every member within the threshold of every other
        a, b = sorted(g)
        assert bin(frames[a] ^ frames[b]).count("1") <= 4


def test_faiss_search_finds_the_planted_pairs_the_exact_search_finds():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((6000, 64)).astype(np.float32)
    vectors[3000:] = vectors[:3000] + 0.01 * rng.standard_normal((3000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = clu.cosine_pairs(vectors, 0.99, method="exact")
    approx = clu.cosine_pairs(vectors, 0.99, method="faiss")
    planted = {(i, i + 3000) for i in range(3000)}
    assert set(zip(exact.i.tolist(), exact.j.tolist(), strict=True)) == planted
    found = set(zip(approx.i.tolist(), approx.j.tolist(), strict=True))
    assert found <= planted and len(found) >= 0.99 * len(planted)
    assert np.all(approx.distance <= 0.01 + 1e-6)


def test_popcount_matches_python():
    values = np.array([0, 1, 0xFF, -1, 0x5555555555555555, -(2**63)], dtype=np.int64)
    assert clu.popcount64(clu.to_uint64(values)).tolist() == [bin(int(v) & (2**64 - 1)).count("1") for v in values]


# -- on a scanned library --------------------------------------------------------------------------
@pytest.fixture
def scanned(tiny_library, tmp_path):
    catalog = tmp_path / "c.sqlite"
    scan([tiny_library["root"]], catalog=catalog, workers=1)
    truth = json.loads(Path(tiny_library["truth"]).read_text())
    return {"catalog": catalog, "root": Path(tiny_library["root"]), "truth": truth}


def _rel(scanned, group):
    return sorted(os.path.relpath(p, scanned["root"]) for p in group.paths)  # a RAW+JPEG pair: both files


def test_group_finds_the_planted_groups_and_stores_them(scanned):
    result = group(scanned["catalog"])
    truth_groups = [set(g) for g in scanned["truth"]["groups"]]
    kinds = scanned["truth"]["kinds"]
    assert result.groups and result.run_id is not None
    assert result.files == sum(1 for k in kinds.values() if k != "broken")
    for g in result.groups:  # precision: every group lies inside one true group
        assert any(set(_rel(scanned, g)) <= t for t in truth_groups), _rel(scanned, g)
        assert g.keeper in [m.file_id for m in g.members]
        assert [m.evidence for m in g.members].count("keeper") == 1
        assert all(m.evidence in ("exact", "perceptual", "verified") for m in g.members if m.file_id != g.keeper)
        assert all(m.match["kind"] == m.evidence and m.match["how"] for m in g.members if not m.keeper)
    found = {p for g in result.groups for p in _rel(scanned, g)}
    assert {p for t in truth_groups for p in t} <= found  # every planted variant, crops included
    stored = load_groups(scanned["catalog"])
    assert [(g.id, g.kind, g.keeper, g.keeper_reason,
             [(m.file_id, m.evidence, m.score, m.match) for m in g.members]) for g in stored] == [
        (g.id, g.kind, g.keeper, g.keeper_reason, [(m.file_id, m.evidence, m.score, m.match) for m in g.members])
        for g in result.groups]
    assert result.warnings == ["semantic evidence skipped: no embeddings in the catalog (run `photodedup embed`)"]


def test_exact_copies_are_exact_evidence(scanned):
    result = group(scanned["catalog"], params=GroupSettings(evidence=("exact",)))
    copies = [p for p, k in scanned["truth"]["kinds"].items() if k == "copy"]
    assert len(result.groups) == len(copies)
    assert all(g.kind == "exact" and len(g.members) == 2 for g in result.groups)
    assert {p for g in result.groups for p in _rel(scanned, g)} >= set(copies)


def _add_embeddings(catalog, model_id, *, is_random, same_vector=True):
    with Catalog(catalog) as cat:
        ids = [row["id"] for row in cat.files()]
        cat.register_model(model_id, weights="random" if is_random else "test", is_random=is_random, dim=512)
        vectors = np.ones((len(ids), 512), np.float32) / np.sqrt(512)  # all identical: one semantic group
        cat.add_embeddings(model_id, ids, vectors, backend="test")
    return ids


def test_random_embeddings_are_never_evidence_unless_allowed(scanned):
    ids = _add_embeddings(scanned["catalog"], "ViT-B-32/random-seed0", is_random=True)
    result = group(scanned["catalog"])
    assert result.model is None and "semantic" not in result.edges
    assert result.warnings == ["semantic evidence skipped: the only embeddings (ViT-B-32/random-seed0) come from "
                               "random weights and carry no meaning (--allow-random uses them anyway)"]
    # identical vectors for different photos: the mechanics only, without the pixel check that refutes them
    allowed = group(scanned["catalog"], params=GroupSettings(allow_random=True, check_pixels=False))
    assert allowed.model == "ViT-B-32/random-seed0"
    assert allowed.warnings[0].startswith("USING RANDOM-WEIGHT EMBEDDINGS (ViT-B-32/random-seed0) AS EVIDENCE")
    assert allowed.edges["semantic"] == len(ids) * (len(ids) - 1) // 2
    assert len(allowed.groups) == 1 and len(allowed.groups[0].paths) == len(ids)  # identical vectors
    with pytest.raises(BadInputError, match="has random weights"):
        group(scanned["catalog"], params=GroupSettings(model="ViT-B-32/random-seed0"))


def test_pretrained_embeddings_are_used_by_default(scanned):
    _add_embeddings(scanned["catalog"], "ViT-B-32/test", is_random=False)
    result = group(scanned["catalog"], params=GroupSettings(evidence=("semantic",), check_pixels=False))
    assert result.model == "ViT-B-32/test" and result.warnings == []
    assert len(result.groups) == 1 and result.groups[0].kind == "semantic"
    assert all(m.score == pytest.approx(1.0, abs=1e-5) for m in result.groups[0].members)


def test_csv_and_self_contained_html(scanned, tmp_path):
    result = group(scanned["catalog"])
    rows = write_csv(result.groups, tmp_path / "g.csv").read_text().splitlines()
    assert rows[0] == ("group,kind,role,path,evidence,score,width,height,size,format,camera,taken_at,reference,"
                       "keeper_reason,why_not_keeper,category")
    assert len(rows) == 1 + sum(len(g.paths) for g in result.groups)  # one row per file, pairs' JPEGs too
    with Catalog(scanned["catalog"]) as cat:
        page = write_report(result.groups, tmp_path / "r.html", catalog=cat).read_text()
    assert page.count("data:image/jpeg;base64,") == sum(len(g.members) for g in result.groups)
    assert page.count("class='keeper'") == len(result.groups)
    files = sum(len(g.members) for g in result.groups)
    for label in ("format", "dimensions", "camera", "taken", "evidence"):  # per file
        assert page.count(f"<dt>{label}</dt>") == files, label
    assert page.count("<dt>not kept</dt>") == files - len(result.groups)
    assert " of 64 pHash bits differ)" in page and "exact copy (same bytes)" in page
    assert f"photodedup review --catalog {scanned['catalog']} --open" in page
    assert "http://" not in page and "https://" not in page and "src='/" not in page


def test_cli_group_json_and_errors(scanned, tmp_path):
    done = run_cli("group", "--catalog", str(scanned["catalog"]), "--json", "--html", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["groups"] and set(data["groups"][0]) >= {"id", "kind", "keeper", "members"}
    assert set(data["groups"][0]["members"][0]) >= {"path", "score", "evidence"}
    assert f"HTML report: {tmp_path / 'r.html'}" in done.stderr
    missing = run_cli("group", "--catalog", str(tmp_path / "none.sqlite"))
    assert missing.returncode == 4
    assert missing.stderr.splitlines()[0] == f"Error: no catalog at {tmp_path / 'none.sqlite'}"
    bad = run_cli("group", "--catalog", str(scanned["catalog"]), "--evidence", "vibes")
    assert (bad.returncode, bad.stderr.splitlines()[0]) == (3, "Error: unknown evidence vibes")
    unknown = run_cli("group", "--catalog", str(scanned["catalog"]), "--model", "ViT-B-32/nope")
    assert (unknown.returncode, unknown.stderr.splitlines()[0]) == (
        3, "Error: no embeddings for model 'ViT-B-32/nope' in the catalog")


def test_cli_prefer_a_reference_folder_and_change_the_rule_order(scanned, tmp_path):
    shared = scanned["root"] / "Shared"  # WhatsApp re-encodes: smaller, worse, no EXIF
    assert shared.is_dir()
    done = run_cli("group", "--catalog", str(scanned["catalog"]), "--json", "--prefer", str(shared))
    assert done.returncode == 0, done.stderr
    groups = json.loads(done.stdout)["groups"]
    with_shared = [g for g in groups if any(m["path"].startswith(f"{shared}/") for m in g["members"])]
    assert with_shared
    for g in with_shared:
        assert g["keeper"].startswith(f"{shared}/") and g["keeper_reason"].startswith("in a reference folder")
        assert all(m["reference"] == m["path"].startswith(f"{shared}/") for m in g["members"])
        assert all(m["note"] == "not in a reference folder (--prefer)" for m in g["members"] if not m["reference"])
    bad = run_cli("group", "--catalog", str(scanned["catalog"]), "--keeper-rules", "resolution,biggest")
    assert (bad.returncode, bad.stderr.splitlines()[0]) == (3, "Error: unknown keeper rule 'biggest'")
    missing = run_cli("group", "--catalog", str(scanned["catalog"]), "--prefer", str(tmp_path / "nowhere"))
    assert (missing.returncode, missing.stderr.splitlines()[0]) == (3, f"Error: --prefer {tmp_path / 'nowhere'}: "
                                                                       "no such folder")


def test_within_n_bits_is_inclusive(tmp_path):
    """A pair exactly ``--hash-threshold`` bits apart groups; one bit more does not (every search path)."""
    from helpers import write_photo
    from PIL import Image

    n = 12
    root = tmp_path / "photos"
    for k, (name, copy) in enumerate((("a.jpg", "b.jpg"), ("c.jpg", "d.jpg"))):  # copies: the pixel check agrees
        write_photo(root / name, pattern=k, color=(120 * k, 90, 200 - 120 * k))
        Image.open(root / name).save(root / copy, quality=70)
    catalog = tmp_path / "c.sqlite"
    scan([root], catalog=catalog, workers=1)
    everything = (1 << 64) - 1  # a-b: n bits apart, c-d: n + 1; a and b are 39 or more from c and d
    hashes = {"a.jpg": 0, "b.jpg": (1 << n) - 1,
              "c.jpg": everything, "d.jpg": everything ^ (((1 << (n + 1)) - 1) << 40)}
    with Catalog(catalog) as cat:
        for name, value in hashes.items():
            signed = int(np.uint64(value).view(np.int64))
            cat.conn.execute("UPDATE files SET phash = ?, phashes = NULL WHERE path = ?", (signed, str(root / name)))
        cat.conn.commit()
    result = run_cli("group", "--catalog", catalog, "--evidence", "perceptual", "--hash-threshold", n, "--json")
    assert result.returncode == 0, result.stderr
    groups = [sorted(Path(m["path"]).name for m in g["members"]) for g in json.loads(result.stdout)["groups"]]
    assert groups == [["a.jpg", "b.jpg"]]
    values = np.array(list(hashes.values()), np.uint64)
    for brute_max in (clu.BRUTE_MAX, 1):  # numpy blocks, and faiss's index
        qi, bj, dist = clu.hamming_cross(values, values, n, brute_max=brute_max)
        assert sorted(zip(qi.tolist(), bj.tolist(), dist.tolist(), strict=True)) == [
            (0, 0, 0), (0, 1, n), (1, 0, n), (1, 1, 0), (2, 2, 0), (3, 3, 0)]
