"""Preprocessing: parity with open_clip's eval transform, the fast draft path, stored crops."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from photodedup.preprocess import (
    PreprocessConfig,
    center_crop_array,
    crop_from_source,
    decode_crop,
    draft_for_shortest_side,
    encode_jpeg,
    load_oriented,
)


def _photo(size, mode="RGB", seed=0) -> Image.Image:
    """Smooth structure plus noise, so resampling differences would show."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.arange(h, dtype=np.int32)[:, None], np.arange(w, dtype=np.int32)[None, :]
    # built from a row and a column (a 2400 x 1800 picture as whole int64 planes took seconds of CPU)
    base = np.empty((h, w, 3), dtype=np.int16)
    base[..., 0], base[..., 1] = xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1)
    base[..., 2] = (xx + yy) * 7 % 256
    base += rng.integers(0, 40, (h, w, 3)).astype(np.int16)
    return Image.fromarray(base.clip(0, 255).astype(np.uint8)).convert(mode)


def _open_clip_transform(cfg: PreprocessConfig):
    import open_clip

    return open_clip.image_transform(cfg.size, is_train=False, mean=cfg.mean, std=cfg.std,
                                     interpolation=cfg.interpolation, resize_mode=cfg.resize_mode)


@pytest.mark.parametrize("size,mode", [
    ((640, 480), "RGB"), ((480, 640), "RGB"), ((1001, 333), "RGB"), ((225, 224), "RGB"), ((224, 224), "RGB"),
    ((100, 60), "RGB"), ((300, 200), "L"), ((300, 200), "RGBA"), ((300, 200), "P"), ((3000, 2000), "RGB"),
])
def test_parity_with_open_clip_eval_transform(size, mode):
    """Same decoded image through open_clip's transform and ours, then the same normalisation.

    Tolerance 1e-6: both resize with the same PIL call and crop at the same offsets, so the uint8
    crops are identical; the only difference is float32 rounding in ToTensor/Normalize.
    """
    cfg = PreprocessConfig()
    image = _photo(size, mode)
    want = _open_clip_transform(cfg)(image).numpy()
    crop = center_crop_array(image, cfg)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    ours = ((crop.astype(np.float32) / 255.0 - np.array(cfg.mean, np.float32)) / np.array(cfg.std, np.float32))
    np.testing.assert_allclose(ours.transpose(2, 0, 1), want, atol=1e-6, rtol=0)


def test_exif_orientation_is_applied(tmp_path):
    """A portrait photo stored landscape with EXIF orientation 6 yields the portrait crop."""
    upright = _photo((300, 400))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    path = tmp_path / "rotated.png"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif.tobytes())
    assert load_oriented(path, fast=False).size == (300, 400)
    np.testing.assert_array_equal(crop_from_source(path, fast=False), center_crop_array(upright))


def test_draft_keeps_shortest_side_and_stays_close(tmp_path):
    """The fast path decodes a 2400x1800 JPEG at 1/8 scale (300x225) and lands near the full decode."""
    path = tmp_path / "big.jpg"
    _photo((2400, 1800)).save(path, quality=92)
    with Image.open(path) as image:
        draft_for_shortest_side(image, 224)
        image.load()
        assert image.size == (300, 225)
    fast, full = crop_from_source(path, fast=True), crop_from_source(path, fast=False)
    # Not identical (DCT downscale, then bicubic): mean absolute difference under 4 grey levels.
    assert 0 < np.abs(fast.astype(int) - full.astype(int)).mean() < 4


def test_draft_is_a_noop_when_it_would_go_below_224(tmp_path):
    path = tmp_path / "small.jpg"
    _photo((400, 300)).save(path)
    with Image.open(path) as image:
        draft_for_shortest_side(image, 224)
        image.load()
        assert image.size == (400, 300)
    np.testing.assert_array_equal(crop_from_source(path, fast=True), crop_from_source(path, fast=False))


def test_stored_crop_round_trip_is_close():
    """q95 without chroma subsampling: the stored crop is within a few grey levels of the original."""
    crop = center_crop_array(_photo((640, 480)))
    data = encode_jpeg(crop)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (224, 224)
    back = decode_crop(data)
    assert back.shape == crop.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - crop.astype(int)).mean() < 3


def test_preprocess_config_round_trips(tmp_path):
    cfg = PreprocessConfig()
    cfg.save(tmp_path / "preprocess.json")
    assert PreprocessConfig.load(tmp_path / "preprocess.json") == cfg
    assert cfg.spec == "224-bicubic-shortest-center"
