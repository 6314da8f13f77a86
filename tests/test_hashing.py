"""Per-image matching features: borders, grayscale, dihedral pHashes; and what scan stores of them."""

from __future__ import annotations

import subprocess
import sys

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from photodedup import hashing
from photodedup.catalog import Catalog
from photodedup.sample_library import source_photos
from photodedup.scan import scan
from tests.helpers import REPO, cli_env


def _photo(size=(640, 480)) -> Image.Image:
    return Image.open(source_photos()[0]).convert("RGB").resize(size, Image.Resampling.BICUBIC)


def _bits(a, b) -> int:
    return bin((int(a) ^ int(b)) & (2**64 - 1)).count("1")


def test_variant_zero_is_imagehash_phash():
    photo = _photo()
    assert int(hashing.dihedral_phashes(photo)[0]) == int(str(imagehash.phash(photo)), 16)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), variant=st.integers(0, 7))
def test_hash_of_a_turned_image_is_the_matching_variant_hash(seed, variant):
    # The law: hashing the turned/mirrored pixels gives (within resampling error) the variant hash.
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((64, 64), Image.Resampling.BICUBIC)
    turned = Image.fromarray(hashing.apply_variant(np.asarray(image), variant))
    assert _bits(hashing.dihedral_phashes(turned)[0], hashing.dihedral_phashes(image)[variant]) <= 4
    assert hashing.INVERSE[hashing.INVERSE[variant]] == variant


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (40, 90, 160)])
def test_uniform_borders_are_trimmed(colour):
    photo = np.asarray(_photo())
    framed = np.empty((480 + 60, 640 + 100, 3), dtype=np.uint8)
    framed[:] = colour
    framed[20:500, 70:710] = photo
    left, top, right, bottom = hashing.trim_box(framed)
    assert abs(left - 70) <= 2 and abs(top - 20) <= 2 and abs(right - 710) <= 2 and abs(bottom - 500) <= 2
    left, top, right, bottom = hashing.trim_box(photo)
    assert (right - left, bottom - top) == (640, 480)
    pillarbox = np.empty((480, 640 + 160, 3), dtype=np.uint8)  # bars on two sides only
    pillarbox[:] = colour
    pillarbox[:, 80:720] = photo
    left, top, right, bottom = hashing.trim_box(pillarbox)
    assert abs(left - 80) <= 2 and abs(right - 720) <= 2 and (top, bottom) == (0, 480)


def test_grayscale():
    photo = _photo()
    assert not hashing.is_grayscale(photo)
    assert hashing.is_grayscale(photo.convert("L"))
    assert hashing.is_grayscale(photo.convert("L").convert("RGB"))


def test_scan_stores_content_size_grayscale_and_hashes_of_the_content(tmp_path):
    photo = _photo((1200, 900))
    root = tmp_path / "lib"
    root.mkdir()
    photo.save(root / "a.jpg", quality=92)
    ImageOps.expand(photo, border=(90, 60), fill=(0, 0, 0)).save(root / "a_framed.jpg", quality=92)
    photo.convert("L").save(root / "a_gray.jpg", quality=92)
    photo.transpose(Image.Transpose.ROTATE_90).save(root / "a_turned.jpg", quality=92)
    scan([root], catalog=tmp_path / "c.sqlite", workers=1)
    with Catalog(tmp_path / "c.sqlite") as cat:
        rows = {r["path"].rsplit("/", 1)[1]: r for r in cat.files()}
    original, framed = rows["a.jpg"], rows["a_framed.jpg"]
    assert (original["content_width"], original["content_height"]) == (1200, 900)
    assert (framed["width"], framed["height"]) == (1380, 1020)
    assert abs(framed["content_width"] - 1200) <= 16 and abs(framed["content_height"] - 900) <= 16
    assert abs(framed["content_left"] - 90) <= 16 and abs(framed["content_top"] - 60) <= 16
    assert _bits(original["phash"], framed["phash"]) <= 4
    assert (original["grayscale"], framed["grayscale"], rows["a_gray.jpg"]["grayscale"]) == (0, 0, 1)
    turned = hashing.unpack(rows["a_turned.jpg"]["phashes"])
    assert _bits(hashing.unpack(original["phashes"])[4], turned[0]) <= 4
    assert _bits(original["phash"], turned[0]) > 12


def test_rows_scanned_before_the_features_are_read_again(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    _photo().save(root / "a.jpg")
    scan([root], catalog=tmp_path / "c.sqlite", workers=1)
    with Catalog(tmp_path / "c.sqlite") as cat:
        cat.conn.execute("UPDATE files SET content_width = NULL, phashes = NULL")
    summary = scan([root], catalog=tmp_path / "c.sqlite", workers=1)
    assert (summary.updated, summary.unchanged) == (1, 0)
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert cat.files()[0]["content_width"] == 640
    assert scan([root], catalog=tmp_path / "c.sqlite", workers=1).unchanged == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=80), st.sampled_from([50, 98, 99]),
       st.integers(0, 12), st.booleans())
def test_percentile_at_most_is_numpys_answer(values, q, limit, halves):
    """The shortcut that border and grayscale checks take (counting instead of sorting) answers what
    ``np.percentile(values, q) <= limit`` answers, at every rank and tie, on integer and half values."""
    array = np.array(values, dtype=np.float64) / 2 if halves else np.array(values, dtype=np.uint8)
    assert hashing.percentile_at_most(array, q, limit) == bool(np.percentile(array, q) <= limit)


def test_grayscale_of_the_pixel_array_is_that_of_the_image():
    photo = _photo((300, 200))
    grey = ImageOps.grayscale(photo).convert("RGB")
    tinted = Image.fromarray(np.clip(np.asarray(grey).astype(np.int16) + [0, 0, 11], 0, 255).astype(np.uint8))
    for image, expected in ((photo, False), (grey, True), (tinted, False)):
        assert hashing.is_grayscale(image) is expected
        assert hashing.is_grayscale_rgb(np.asarray(image)) is expected


def _scipy_dihedral_phashes(image: Image.Image) -> list[int]:
    """The eight hashes as first written: scipy.fftpack's DCT and one median per variant."""
    import scipy.fftpack

    pixels = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS))
    low = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)[:8, :8]
    hashes = []
    for transpose, flip_rows, flip_cols, _ in hashing.VARIANTS:
        block = low.T if transpose else low
        block = block * (hashing._SIGNS[:, None] if flip_rows else 1) * (hashing._SIGNS[None, :] if flip_cols else 1)
        hashes.append(int("".join("1" if v else "0" for v in (block > np.median(block)).reshape(-1)), 2))
    return hashes


@pytest.mark.parametrize("kind", ["photo", "flat", "stripes", "symmetric", "noise"])
def test_dihedral_phashes_equal_scipys_bit_for_bit(kind):
    """The DCT is scipy's pocketfft loaded without scipy.fft: the same bits, also where coefficients tie
    (a flat or symmetric picture, whose hashes are decided by rounding)."""
    rng = np.random.default_rng(3)
    pictures = {
        "photo": _photo((504, 378)),
        "flat": Image.new("RGB", (300, 200), (40, 90, 160)),
        "stripes": Image.fromarray((np.indices((120, 90)).sum(0) % 7 * 30).astype(np.uint8)),
        "symmetric": Image.fromarray(np.tile(np.abs(np.arange(-50, 51)), (80, 1)).astype(np.uint8) * 2),
        "noise": Image.fromarray(rng.integers(0, 256, (61, 47, 3), dtype=np.uint8)),
    }
    image = pictures[kind]
    assert [int(h) for h in hashing.dihedral_phashes(image)] == _scipy_dihedral_phashes(image)
    values = rng.integers(0, 256, (32, 32)).astype(np.uint8)
    import scipy.fftpack

    expected = scipy.fftpack.dct(scipy.fftpack.dct(values, axis=0), axis=1)
    assert np.array_equal(hashing.dct_2d(values), expected)
    floats = values.astype(np.float64)
    assert np.array_equal(hashing.dct_2d(floats), expected)
    assert np.array_equal(floats, values)  # the caller's array is left as it was


def test_hashing_does_not_import_scipy_fft(tmp_path):
    """scipy.fft's import (a third of a second) is paid by no process that scans: not the scan's own,
    not its forkserver's workers."""
    Image.new("RGB", (64, 48), (10, 20, 30)).save(tmp_path / "a.jpg")
    loaded = "[m for m in __import__('sys').modules if m.startswith('scipy.fft')]"
    picture = "__import__('PIL.Image').Image.new('L', (40, 40))"
    in_worker = f"(__import__('photodedup.hashing').hashing.dihedral_phashes({picture}), {loaded})[1]"
    code = ("from photodedup.scan import scan; from photodedup import executor\n"
            "if __name__ == '__main__':\n"
            f"    scan([{str(tmp_path)!r}], catalog={str(tmp_path / 'c.sqlite')!r}, workers=1)\n"
            "    with executor.worker_pool(1) as pool:\n"
            f"        print({loaded}, pool.submit(eval, {in_worker!r}).result())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=REPO, env=cli_env(), timeout=300)
    assert result.stdout.strip() == "[] []"
