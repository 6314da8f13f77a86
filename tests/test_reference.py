"""Embeddings checked against an independent reference, with a model that tells images apart.

Random weights score unrelated crops 0.92, so a wrong colour order or a lossy payload hides inside
their tolerance. ``separating_model.py`` builds a ViT-B/32 checkpoint whose embeddings separate photos
(first test); the second runs the whole path (scan -> stored crop -> embed -> catalog) and compares each
row with open_clip's own model and eval transform applied to the original file, decoded by PIL alone.

Tolerance of the whole-path test: the path decodes large JPEGs at reduced DCT scale and stores the
crop as JPEG quality 95; on the tiny sample library the worst file scored 0.99988 (measured), while
reading the stored crops as BGR dropped the worst to 0.34, so 0.99 separates the two widely.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from photodedup.backends import get_backend
from photodedup.catalog import Catalog
from photodedup.embed import embed
from photodedup.sample_library import source_photos
from photodedup.scan import scan

pytestmark = pytest.mark.slow

#: Whole path vs reference, per file (see the module docstring).
MIN_COSINE_TO_REFERENCE = 0.99


@pytest.fixture(scope="module")
def reference(separating_checkpoint):
    """open_clip's model and eval transform, loaded by open_clip from the checkpoint file."""
    import open_clip
    import torch

    model, _, transform = open_clip.create_model_and_transforms("ViT-B-32", pretrained=str(separating_checkpoint))
    model.eval()

    def embed_images(images: list[Image.Image]) -> np.ndarray:
        batch = torch.stack([transform(image) for image in images])
        with torch.inference_mode():
            return model.encode_image(batch, normalize=True).numpy()

    return embed_images


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_the_separating_model_tells_photos_apart(reference):
    photos = [Image.open(path).convert("RGB") for path in source_photos()]
    originals = reference(photos)
    for name, change in [("resized", lambda im: im.resize((im.width // 2, im.height // 2))),
                         ("re-encoded", lambda im: _jpeg(im, 60)),
                         ("brightened", lambda im: ImageEnhance.Brightness(im).enhance(1.2))]:
        near = np.sum(reference([change(photo) for photo in photos]) * originals, axis=1)
        assert near.min() >= 0.9, (name, near.round(3))
    similarity = originals @ originals.T
    unrelated = similarity[~np.eye(len(photos), dtype=bool)]
    assert np.median(unrelated) < 0.1, np.median(unrelated)
    assert np.percentile(unrelated, 90) < 0.5, np.percentile(unrelated, 90)


def test_the_whole_path_matches_open_clip_on_the_original(tiny_library, separating_model_dir, reference, tmp_path):
    catalog = tmp_path / "catalog.sqlite"
    scan([tiny_library["root"]], catalog=catalog, workers=1)
    with get_backend("onnx", model_dir=separating_model_dir) as backend:
        summary = embed(backend, catalog=catalog, workers=1)
    assert summary.from_crops == summary.embedded > 0  # every row went through a stored crop
    with Catalog(catalog) as cat:
        ids, vectors = cat.embeddings(summary.model)
        paths = {row["id"]: row["path"] for row in cat.conn.execute("SELECT id, path FROM files")}
    compared = {}
    for file_id, vector in zip(ids, vectors, strict=True):
        try:  # decoded by PIL alone (camera RAW files are not: their path reads LibRaw's preview)
            with Image.open(paths[file_id]) as image:
                original = ImageOps.exif_transpose(image).convert("RGB")
        except OSError:
            continue
        compared[paths[file_id]] = float(vector @ reference([original])[0])
    assert len(compared) >= tiny_library["files"] // 2
    worst = min(compared, key=compared.get)
    assert compared[worst] >= MIN_COSINE_TO_REFERENCE, (worst, compared[worst])
