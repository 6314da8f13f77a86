"""Model crops into the catalog's vectors, for the commands that embed: the model crop of one original
(a worker's job: `embed`, `bench`'s pipeline) and the embeddings recorded with the scan's rows
(`scan --embed`)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from photodedup import config, raw
from photodedup.backends import Backend, embed_batches
from photodedup.catalog import Catalog
from photodedup.preprocess import PreprocessConfig, center_crop_array, crop_from_source, decode_crop


def register(cat: Catalog, backend: Backend) -> bool:
    """Record the backend's model in the catalog (once); returns whether its weights are random."""
    cat.register_model(backend.embedding_id, weights=backend.weights, is_random=backend.is_random,
                       dim=config.EMBEDDING_DIM, precision=backend.precision)
    return backend.is_random


def record_with_embeddings(cat: Catalog, backend: Backend, rows: list[dict], crops: dict[str, tuple[str, bytes]],
                           thumbs: dict[str, bytes]) -> None:
    """Embed-after-decode (``scan --embed``): record file rows without their crops, then the crops'
    embeddings. The vectors are those ``embed`` would make from the stored crops (same JPEG bytes).

    Killed between the two writes, the files have neither crop nor embedding: ``embed`` makes them
    from the originals, so nothing is lost.
    """
    ids = cat.record_files(rows, thumbs=thumbs)
    register(cat, backend)
    paths = [path for path in ids if path in crops]
    if not paths:
        return
    images = np.stack([decode_crop(crops[path][1]) for path in paths])
    result = next(embed_batches(backend, [images]))
    cat.add_embeddings(backend.embedding_id, [ids[path] for path in paths], result.embeddings, backend=result.backend)


def decode_original(job: tuple[str, PreprocessConfig]) -> tuple[np.ndarray | None, str]:
    """Worker: the model crop of one original (fast draft path), or ``(None, reason)``."""
    path, preprocess = job
    try:
        if raw.raw_format(path, b""):  # a camera RAW: its embedded preview, else a half-size decode
            return center_crop_array(raw.load_raw(path), preprocess), ""
        return crop_from_source(path, preprocess, fast=True), ""
    except FileNotFoundError:
        return None, "file vanished since the scan"
    except Image.DecompressionBombError as error:
        return None, f"refused before decoding: {error}"
    except Exception as error:  # noqa: BLE001 - any decoder failure is data about this file
        return None, f"cannot decode: {type(error).__name__}: {error}"
