"""Colour proposals (issue 21): copies no hash and no local feature brings close are proposed by their
colours and decided by the pixel check, through the real scan and group path on generated images."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from photodedup import cluster as clu
from photodedup import verify
from photodedup.group import GroupSettings, group
from photodedup.sample_library import source_photos, stamp_logo
from photodedup.scan import scan


def _photo(name: str) -> Image.Image:
    return Image.open(next(p for p in source_photos() if p.name == name)).convert("RGB")


def _corner_crop(image: Image.Image, share: float) -> Image.Image:
    w, h = image.size
    return image.crop((int(w * share), int(h * share), w, h))


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A photo and its copies that no hash reaches (a 16% one-corner crop; a grayscale copy, which only
    the closure joins to the crop), a solid frame and its copy with a small logo, look-alikes."""
    root = tmp_path_factory.mktemp("proposals")
    coffee = _photo("coffee.png")
    crop = _corner_crop(coffee, 0.16)
    files = {"original": ("coffee.png", coffee), "crop": ("coffee_crop.jpg", crop),
             "gray": ("coffee_gray.jpg", coffee.convert("L")),
             "other": ("chelsea.jpg", _photo("chelsea.png")), "astronaut": ("astronaut.jpg", _photo("astronaut.png")),
             "frame": ("frame.png", Image.new("RGB", (640, 480), (40, 90, 160)))}
    files["frame-logo"] = ("frame_logo.jpg", stamp_logo(files["frame"][1], 0.6))
    files["red-frame"] = ("red_frame.png", Image.new("RGB", (640, 480), (190, 40, 40)))
    for name, image in files.values():
        image.save(root / name, quality=92) if name.endswith(".jpg") else image.save(root / name)
    catalog = root / "c.sqlite"
    scan([root], catalog=catalog, workers=1)
    return root, catalog, {kind: name for kind, (name, _) in files.items()}


def _groups(root: Path, result) -> list[dict]:
    return [{Path(m.path).name: m for m in g.members} for g in result.groups if g.category == "duplicate"]


def test_the_crop_no_hash_reaches_is_proposed_by_colour_and_confirmed_by_pixels(library):
    root, catalog, names = library
    # the premise: the crop's pHash lies beyond the verification radius (32 bits), so no hash proposes it
    crop, original = (imagehash.phash(Image.open(root / names[kind])) for kind in ("crop", "original"))
    assert crop - original > 32
    groups = _groups(root, group(catalog, store=False))
    coffee = next(g for g in groups if names["original"] in g)
    assert set(coffee) == {names["original"], names["crop"], names["gray"]}
    crop = coffee[names["crop"]]
    assert crop.evidence == "verified" and crop.match["inliers"] == 0
    assert crop.match["how"].startswith("verified by the pixels alone (proposed by colour")
    assert "pixels: no difference above the pair's noise floor (a crop" in crop.match["how"]


def test_a_small_logo_on_a_flat_frame_is_a_copy_and_another_colour_is_not(library):
    root, catalog, names = library
    groups = _groups(root, group(catalog, store=False))
    frame = next(g for g in groups if names["frame"] in g)
    assert set(frame) == {names["frame"], names["frame-logo"]}
    assert frame[names["frame-logo"]].added_mark and not frame[names["frame-logo"]].keeper
    assert not any(names["red-frame"] in g for g in groups)
    assert not any(names["other"] in g or names["astronaut"] in g for g in groups)


def test_proposals_can_be_turned_off(library):
    root, catalog, names = library
    groups = _groups(root, group(catalog, store=False, params=GroupSettings(propose_neighbours=0)))
    assert not any(names["crop"] in g or names["frame-logo"] in g for g in groups)


def test_a_colour_proposal_the_pixels_refute_is_no_similar_shot(tmp_path):
    """Colour says nothing of one scene: a crop with a changed middle, from the same camera second, is
    proposed by colour, refuted by the pixels, and then neither a duplicate nor a similar shot."""
    from datetime import datetime

    from PIL import ImageDraw

    from photodedup.sample_library import _exif

    coffee = _photo("coffee.png")
    exif = _exif("Canon", "EOS R6", datetime(2021, 5, 1, 10, 0, 0))
    coffee.save(tmp_path / "coffee.jpg", quality=92, exif=exif)
    changed = _corner_crop(coffee, 0.16)
    ImageDraw.Draw(changed).ellipse((230, 150, 262, 182), fill=(230, 20, 20))
    changed.save(tmp_path / "changed.jpg", quality=92, exif=exif)
    scan([tmp_path], catalog=tmp_path / "c.sqlite", workers=1)
    result = group(tmp_path / "c.sqlite", store=False)
    assert [[Path(m.path).name for m in g.members] for g in result.groups] == []


def test_layouts_agree_on_a_crop_and_not_on_another_photo():
    def layout(image: Image.Image) -> np.ndarray:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=80)
        row = {"width": image.width, "height": image.height, "content_left": 0, "content_top": 0,
               "content_width": image.width, "content_height": image.height}
        return verify.signatures(verify.Thumbnail(buffer.getvalue(), row))[1]

    coffee = _photo("coffee.png").resize((320, 213))
    original = layout(coffee)
    assert verify.layouts_agree(original, layout(_corner_crop(coffee, 0.16)))
    assert verify.layouts_agree(layout(_corner_crop(coffee, 0.16).convert("L").convert("RGB")), original)
    assert not verify.layouts_agree(original, layout(_photo("chelsea.png").resize((320, 213))))
    assert not verify.layouts_agree(original, layout(coffee.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def test_nearest_pairs_keeps_each_rows_nearest_above_the_threshold():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((5, 16)).astype(np.float32)
    near = base + 0.05 * rng.standard_normal((5, 16)).astype(np.float32)
    vectors = np.concatenate([base, near, rng.standard_normal((20, 16)).astype(np.float32)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    i, j, sim = clu.nearest_pairs(vectors, 1, 0.9)
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == [(k, k + 5) for k in range(5)]
    assert (sim >= 0.9).all()
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1)
    i, j, sim = clu.nearest_pairs(vectors, 3, -1.0)
    expected = {(min(a, int(b)), max(a, int(b))) for a in range(30) for b in np.argsort(-sims[a])[:3]}
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == expected
    assert np.allclose(sim, sims[i, j], atol=1e-6)
    assert len(expected) <= 3 * 30


def test_a_copy_whose_logo_keeps_the_margin_the_original_loses_to_the_trim_is_found(tmp_path):
    """A receipt on its own paper margin: the border trim cuts the margin from the original, while its copy
    with a logo in the corner keeps it (the trim stops at the logo). Their contents are two different cuts
    (no hash and no layout of the contents agree); the whole pictures' layouts do, so colour proposes the
    pair and the pixel check confirms it. The look-alike receipt (other prices) stays apart."""
    from datetime import datetime

    from photodedup.sample_library.lookalikes import Maker, receipt

    photo = _photo("coffee.png")
    made = [receipt(Maker(photo, np.random.default_rng([7, k]), datetime(2024, 1, 1)), k) for k in range(2)]
    made[0].save(tmp_path / "receipt.png")
    made[1].save(tmp_path / "receipt_other.png")
    stamp_logo(made[0], 0.6).save(tmp_path / "receipt_logo.jpg", quality=95)
    scan([tmp_path], catalog=tmp_path / "c.sqlite", workers=1)
    result = group(tmp_path / "c.sqlite", store=False)
    groups = [sorted(Path(m.path).name for m in g.members) for g in result.groups if g.category == "duplicate"]
    assert groups == [["receipt.png", "receipt_logo.jpg"]]
    copy = next(m for g in result.groups for m in g.members if Path(m.path).name == "receipt_logo.jpg")
    assert copy.match["how"].startswith("verified by the pixels alone (proposed by colour")


def test_a_copy_behind_three_look_alikes_in_colour_is_still_proposed():
    """Dark pictures crowd each other's colours (the sample library's star field: each of its copies had three
    other dark photos nearer in colour than the copy, and none was proposed): a file's fourth nearest colour
    signature is proposed too, when the layouts agree."""
    from photodedup.grouping import proposed_edges

    rng = np.random.default_rng(11)
    original = rng.random(64).astype(np.float32)
    copy = original + 0.35 * rng.random(64).astype(np.float32)
    original, copy = (v / np.linalg.norm(v) for v in (original, copy))
    crowd = [original + copy + 0.02 * rng.random(64).astype(np.float32) for _ in range(3)]
    colours = np.stack([original, copy, *(v / np.linalg.norm(v) for v in crowd)])
    sims = colours @ colours.T
    assert sims[0, 1] >= 0.85 and all(sims[0, k] > sims[0, 1] and sims[1, k] > sims[0, 1] for k in (2, 3, 4))
    textures = [np.repeat(rng.integers(0, 256, (1, 24, 24), dtype=np.uint8), 2, axis=0) for _ in range(4)]
    layouts = np.stack([textures[0], *textures])   # the original and its copy: one layout; the crowd: others
    edges = proposed_edges((colours, layouts), {}, GroupSettings())
    assert (0, 1) in set(zip(edges.i.tolist(), edges.j.tolist(), strict=True))


def test_a_crop_joins_the_mirrored_copy_its_original_connects_it_to(tmp_path):
    """Complete link needs every pair of a group, and no evidence proposes a crop against its original's
    mirrored copy: a mirrored hash match counts within 4 bits, and the crop is 5-12 bits from the original.
    The closure checks that pair, turned as the path through the original says, so the three are one group
    (the sample library's seed 5 left such a crop out of its group)."""
    from photodedup.hashing import compose

    chelsea = _photo("chelsea.png")
    chelsea.save(tmp_path / "chelsea.jpg", quality=92)
    chelsea.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "chelsea_mirror.jpg", quality=92)
    _corner_crop(chelsea, 0.06).save(tmp_path / "chelsea_crop.jpg", quality=92)
    scan([tmp_path], catalog=tmp_path / "c.sqlite", workers=1)
    # local features and colour find the crop in the mirrored copy here; in a library they look at a few
    # neighbours of each file only, which need not include it (as on seed 5): here, hashes alone propose
    result = group(tmp_path / "c.sqlite", store=False,
                   params=GroupSettings(evidence=("exact", "perceptual", "dihedral")))
    groups = [sorted(Path(m.path).name for m in g.members) for g in result.groups if g.category == "duplicate"]
    assert groups == [["chelsea.jpg", "chelsea_crop.jpg", "chelsea_mirror.jpg"]]
    members = {Path(m.path).name: m for g in result.groups for m in g.members}
    crop = members["chelsea_crop.jpg"]
    # the premise: the crop is a hash match of the original as is, beyond a mirrored match's 4 bits
    assert crop.evidence == "perceptual" and 4 < crop.match["bits"] <= 12
    # the composition the closure turns by: mirrored then mirrored is the picture as is; a turn and its
    # inverse likewise; a turn by 90 twice is a turn by 180
    assert compose(1, 1) == 0 and compose(4, 5) == 0 and compose(4, 4) == 3 and compose(0, 6) == 6


def test_the_closure_checks_again_a_pair_refused_as_another_turn(tmp_path):
    """A crop of a photo against the photo's turned copy: local features propose the pair as is (their
    homography finds the turn) and on seed 5 the check refused it for slivers along a thin pole, while the
    pixels turned as the path through the original says pass. The closure checks such a pair again, turned."""
    from photodedup import grouping, hashing
    from photodedup.catalog import open_catalog
    from photodedup.group import one_per_file, select_files

    chelsea = _photo("chelsea.png")
    chelsea.save(tmp_path / "chelsea.jpg", quality=92)
    chelsea.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "chelsea_turned.jpg", quality=92)
    _corner_crop(chelsea, 0.06).save(tmp_path / "chelsea_crop.jpg", quality=92)
    scan([tmp_path], catalog=tmp_path / "c.sqlite", workers=1)
    params = GroupSettings(evidence=("exact", "perceptual", "dihedral"))
    with open_catalog(tmp_path / "c.sqlite") as cat:
        rows, _ = one_per_file(select_files(cat, []))
        pixels = grouping._pixel_source(rows, cat.thumb)
        k = {Path(row["path"]).name: n for n, row in enumerate(rows)}
        hashed = grouping.find_edges(rows, None, replace(params, check_pixels=False), thumbs=cat.thumb)
        original, crop, turned = k["chelsea.jpg"], k["chelsea_crop.jpg"], k["chelsea_turned.jpg"]
        found = {(a, b): v for a, b, v in zip(hashed["perceptual"].i.tolist(), hashed["perceptual"].j.tolist(),
                                              hashed["perceptual"].variant.tolist(), strict=True)}
        assert set(found) == {tuple(sorted((original, crop))), tuple(sorted((original, turned)))}
        confirmed = grouping.confirmed_by_pixels(rows, hashed, params, pixels)
        assert len(confirmed["perceptual"]) == 2
        a, b = sorted((crop, turned))
        refused = clu.Edges.of([a], [b], clu.VERIFIED, [0.5], variant=[0])   # checked as is, not a duplicate
        closed = grouping._closed(rows, confirmed, clu.combine(hashed["perceptual"], refused), None, params, pixels)
    verified = closed.get("verified", clu.Edges.empty())
    again = {(i, j): v for i, j, v in zip(verified.i.tolist(), verified.j.tolist(), verified.variant.tolist(),
                                          strict=True)}

    def turn(x: int, y: int) -> int:   # the variant of x that looks like y, as the hashes said
        return found[x, y] if (x, y) in found else hashing.INVERSE[found[y, x]]

    # checked again turned as the path a -> the original -> b says, and confirmed
    assert again == {(a, b): hashing.compose(turn(a, original), turn(original, b))} and again[a, b] != 0


@pytest.mark.xfail(strict=True, reason="open (session 9's check of issue 21): the crop search passes a stretched "
                                       "half of a smooth sky as a crop of the photo with a small added mark")
def test_a_stretched_half_of_a_sky_photo_is_not_grouped_with_the_photo(tmp_path):
    """`sample-library --originals 80 --megapixels 2 --seed 11`'s IMG_0046 (a pink sky, a tree at the right
    edge) and its different-crop look-alike (the left half stretched to the full width: no tree): colour
    proposes the pair, and the pixel check must refuse it; it passed as "a crop found by search" with "an
    added mark bottom left, under 1%" (eval precision 0.989 on that library)."""
    from photodedup.sample_library import _make_original

    root = tmp_path / "lib"
    _, _, negatives = _make_original((root, [str(p) for p in source_photos()], 46, 2.0, 11))
    assert negatives == {"Edited/IMG_0046_detail.jpg": "different-crop"}
    scan([root], catalog=tmp_path / "c.sqlite", workers=1)
    groups = _groups(root, group(tmp_path / "c.sqlite", store=False))
    assert any("IMG_0046.jpg" in g for g in groups)  # the photo and its copies are one group
    assert not any("IMG_0046.jpg" in g and "IMG_0046_detail.jpg" in g for g in groups)
