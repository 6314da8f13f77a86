"""Matching that survives common edits, through the real scan and group path on generated images."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from photodedup import cluster as clu
from photodedup import hashing, verify
from photodedup.group import GroupSettings, group
from photodedup.sample_library import (
    DERIVATIVES,
    NEGATIVES,
    Shot,
    _add_sensor_noise,
    _crop,
    _exif,
    plain_backdrop,
    source_photos,
    stamp_logo,
)
from photodedup.scan import scan

EDITS = ("mirrored", "turned", "bordered", "watermarked", "grayscale", "export", "cropped10", "rotated", "png")


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    """One camera original, one copy per edit kind, half of it stretched (not a duplicate), another photo."""
    root = tmp_path_factory.mktemp("edits")
    sources = source_photos()
    photo = Image.open(sources[1]).convert("RGB").resize((1200, 900), Image.Resampling.BICUBIC)
    photo = _add_sensor_noise(photo, np.random.default_rng(0))
    exif = _exif("Canon", "EOS R6", datetime(2021, 5, 1, 10, 0, 0))
    shot = Shot(root, "DCIM/IMG_0001.jpg", photo, exif, _exif("Canon", "EOS R6", datetime(2021, 5, 1), 6), "IMG_0001",
                np.random.default_rng(1))
    shot.save(shot.rel_original, photo, quality=92)
    paths = {"original": shot.rel_original}
    paths |= {kind: DERIVATIVES[kind](shot) for kind in EDITS}
    paths["cropped20"] = _crop(shot, 0.2, "Edited/IMG_0001_crop20.jpg")  # beyond any hash threshold
    paths["different-crop"] = NEGATIVES["different-crop"](shot)
    other = Image.open(sources[2]).convert("RGB").resize((1200, 900), Image.Resampling.BICUBIC)
    paths["other"] = shot.save("DCIM/IMG_0002.jpg", other, quality=92)
    catalog = root / "c.sqlite"
    scan([root], catalog=catalog, workers=1)
    return root, catalog, paths


def _groups(root: Path, result) -> list[dict[str, object]]:
    return [{str(Path(m.path).relative_to(root)): m for m in g.members} for g in result.groups]


@pytest.fixture(scope="module")
def grouped(edited) -> list[dict[str, object]]:
    """The default grouping of ``edited`` (seconds: the pixel check and the keeper's provenance over every
    pair), made once for the tests that read it; ``group(store=False)`` leaves the catalog as it was."""
    root, catalog, _ = edited
    return _groups(root, group(catalog, store=False))


def test_every_edit_kind_joins_the_original_and_the_look_alike_stays_apart(edited, grouped):
    root, catalog, paths = edited
    groups = grouped
    assert len(groups) == 1, [sorted(g) for g in groups]
    members = groups[0]
    assert set(members) == {paths[k] for k in ("original", "cropped20", *EDITS)}
    by_kind = {kind: members[paths[kind]] for kind in EDITS}
    assert by_kind["mirrored"].match["variant"] in ("mirrored",) and "mirrored" in by_kind["mirrored"].match["how"]
    assert by_kind["turned"].match["variant"].startswith("turned")
    assert by_kind["cropped10"].evidence in ("perceptual", "verified")
    for m in members.values():
        if m.evidence == "verified":
            assert m.match["inliers"] >= verify.VerifySettings().min_inliers
            assert m.match["coverage"] >= verify.VerifySettings().min_coverage


def test_each_new_evidence_kind_can_be_turned_off(edited, grouped):
    root, catalog, paths = edited
    full = grouped[0]
    verified = {p for p, m in full.items() if m.evidence == "verified"}
    assert verified, "the edits include one that only local features confirm"
    no_verify = _groups(root, group(catalog, store=False, params=GroupSettings(
        evidence=("exact", "perceptual", "dihedral"))))
    assert not any(verified & set(g) for g in no_verify)
    turned = {paths["mirrored"], paths["turned"]}
    plain = _groups(root, group(catalog, store=False, params=GroupSettings(evidence=("exact", "perceptual"))))
    assert not any(turned & set(g) for g in plain)
    assert any(paths["original"] in g for g in plain)  # the rest still groups


def test_group_json_says_what_joined_each_member(edited):
    root, catalog, paths = edited
    done = run_cli("group", "--catalog", str(catalog), "--json")
    assert done.returncode == 0, done.stderr
    members = {str(Path(m["path"]).relative_to(root)): m for m in json.loads(done.stdout)["groups"][0]["members"]}
    assert members[paths["mirrored"]]["match"]["how"].startswith("perceptual, mirrored")
    assert all(m["match"]["kind"] == m["evidence"] for m in members.values() if not m["keeper"])
    text = run_cli("group", "--catalog", str(catalog))
    assert "perceptual, mirrored (" in text.stdout


def test_stretched_half_is_refuted_and_a_crop_accepted():
    photo = np.asarray(Image.open(source_photos()[0]).convert("L").resize((320, 240)))
    original = verify.features(photo)
    crop = np.asarray(Image.fromarray(photo[12:228, 16:304]).resize((288, 216)))
    stretched = np.asarray(Image.fromarray(photo[:, :160]).resize((320, 240)))
    accepted = verify.verify(original, verify.features(crop))
    assert accepted.accepted and accepted.coverage >= 0.95 and 0.7 < accepted.other < 0.9
    refused = verify.verify(original, verify.features(stretched))
    assert not refused.accepted and refused.refutes


def test_a_logo_two_different_photos_share_does_not_make_them_duplicates():
    def feats(image: Image.Image) -> verify.Features:
        return verify.features(np.asarray(image.convert("L")))

    photo = Image.open(source_photos()[3]).convert("RGB").resize((320, 240), Image.Resampling.BICUBIC)
    copy = verify.verify(feats(photo), feats(stamp_logo(photo, 1.6)))  # the photographer's watermarked export
    assert copy.accepted, copy.reason
    # a photo and a plain backdrop with the same logo: the features that agree sit in the logo only
    small_patch = (feats(stamp_logo(photo, 1.6)), feats(stamp_logo(plain_backdrop(5), 1.6)))
    refused = verify.verify(*small_patch)
    assert not refused.accepted and refused.refutes and "cover" in refused.reason
    assert verify.verify(*small_patch, verify.VerifySettings(min_spread=0, min_agreement=0)).accepted
    # two backdrops with a large logo: it is all they have, so its features spread, but nothing else agrees
    backdrops = (feats(stamp_logo(plain_backdrop(1), 2.5)), feats(stamp_logo(plain_backdrop(2), 2.5)))
    refused = verify.verify(*backdrops)
    assert not refused.accepted and refused.refutes and "agree in" in refused.reason
    assert verify.verify(*backdrops, verify.VerifySettings(min_agreement=0)).accepted


def test_smooth_backdrops_with_one_logo_do_not_agree_by_chance():
    """Backdrops share nothing but a large logo; their smooth gradients correlate loosely everywhere.
    At a tile correlation of 0.5 three of these pairs verified as duplicates; none may."""
    logo = {seed: verify.features(np.asarray(stamp_logo(plain_backdrop(seed), 2.5).convert("L"))) for seed in range(6)}
    verdicts = {(a, b): verify.verify(logo[a], logo[b]) for a in range(6) for b in range(a + 1, 6)}
    assert [pair for pair, verdict in verdicts.items() if verdict.accepted] == []
    assert all("agree in" in verdicts[pair].reason for pair in [(0, 2), (1, 5), (3, 5)])


def test_dihedral_search_finds_each_variant_and_names_it():
    rng = np.random.default_rng(5)
    images = [Image.fromarray(rng.integers(0, 256, (6, 8), dtype=np.uint8)).resize((64, 48), Image.Resampling.BICUBIC)
              for _ in range(3)]
    base = np.asarray(images[0])
    hashes = [hashing.dihedral_phashes(im) for im in images]
    hashes += [hashing.dihedral_phashes(Image.fromarray(hashing.apply_variant(base, v))) for v in range(1, 8)]
    edges = clu.dihedral_pairs(np.array(hashes), 4)
    found = {(int(i), int(j)): int(v) for i, j, v in zip(edges.i, edges.j, edges.variant, strict=True) if i == 0}
    assert {j: hashing.variant_name(v) for (_, j), v in found.items()} == {
        2 + v: hashing.variant_name(v) for v in range(1, 8)}
    assert len(clu.dihedral_pairs(np.array(hashes), 4, -1)) < len(edges)


def test_near_pairs_keeps_each_items_nearest_by_both_hashes():
    rng = np.random.default_rng(9)
    first = rng.integers(0, 2**63, 300, dtype=np.int64).view(np.uint64)
    second = rng.integers(0, 2**63, 300, dtype=np.int64).view(np.uint64)
    i, j, bits = clu.near_pairs(first, 20, 30, 2, second=second, second_max=34)
    got = set(zip(i.tolist(), j.tolist(), strict=True))
    d1 = clu.popcount64(first[:, None] ^ first[None, :])
    d2 = clu.popcount64(second[:, None] ^ second[None, :])
    ok = (d1 > 20) & (d1 <= 30) & (d2 <= 34) & ~np.eye(300, dtype=bool)
    assert all(ok[a, b] for a, b in got) and (bits == d1[i, j]).all()
    for a in range(300):  # each item's two best (by the sum, ties by index) are in
        best = sorted(np.nonzero(ok[a])[0].tolist(), key=lambda b: (d1[a, b] + d2[a, b], b))[:2]
        assert all((min(a, b), max(a, b)) in got for b in best)
    assert clu.bounded_radius(100_000, 32) < clu.bounded_radius(1_000, 32) <= 32
