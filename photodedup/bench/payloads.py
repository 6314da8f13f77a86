"""Request bodies: photo-like model crops and the four ways to send them, with their sizes and costs.

- ``jpeg``: the JPEG bytes of each 224x224 crop (what the HTTP service accepts by default);
- ``uint8``: the raw crop, ``uint8 [N,224,224,3]`` (150,528 bytes an image; the contract);
- ``fp32``: the normalised ``float32 [N,3,224,224]`` NCHW tensor as binary (602,112 bytes an image);
- ``fp32-json``: the same tensor as nested JSON lists, the seed's baseline.

``serialization_experiment`` measures bytes and milliseconds per image to encode and decode each,
which needs no server.
"""

from __future__ import annotations

import json
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from photodedup.preprocess import DEFAULT_PREPROCESS, PreprocessConfig, decode_crop, encode_jpeg

PAYLOADS = ("jpeg", "uint8", "fp32", "fp32-json")
SIZE = DEFAULT_PREPROCESS.size


def sample_crops(count: int = 16, *, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """``uint8 [count,size,size,3]`` photo-like crops (smooth colour fields, shapes, sensor noise).

    Deterministic for a seed. Noise images would make JPEG sizes unrealistically large; flat ones
    unrealistically small: these compress like photos (about 20-40 KB at quality 95).
    """
    rng = np.random.default_rng(seed)
    crops = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        field = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        image = Image.fromarray(field).resize((size, size), Image.Resampling.BICUBIC)
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = rng.integers(0, size, 2)
            x1, y1 = x0 + rng.integers(10, size // 2), y0 + rng.integers(10, size // 2)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
        image = image.filter(ImageFilter.GaussianBlur(1.2))
        noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 4, size=(size, size, 3))
        crops[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return crops


def to_fp32_nchw(images: np.ndarray, config: PreprocessConfig = DEFAULT_PREPROCESS) -> np.ndarray:
    """The seed's client-side normalisation: ``uint8 NHWC`` to normalised ``float32 NCHW``."""
    mean = np.asarray(config.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(config.std, dtype=np.float32).reshape(1, 3, 1, 1)
    nchw = images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return np.ascontiguousarray((nchw - mean) / std, dtype=np.float32)


def encode(payload: str, images: np.ndarray) -> list[bytes]:
    """The bodies that cross the wire for a uint8 batch: one per image for ``jpeg``, else one."""
    if payload == "jpeg":
        return [encode_jpeg(image) for image in images]
    if payload == "uint8":
        return [np.ascontiguousarray(images).tobytes()]
    if payload == "fp32":
        return [to_fp32_nchw(images).tobytes()]
    if payload == "fp32-json":
        return [json.dumps(to_fp32_nchw(images).tolist()).encode()]
    raise ValueError(f"unknown payload {payload!r}; choose one of {', '.join(PAYLOADS)}")


def decode(payload: str, bodies: list[bytes], count: int) -> np.ndarray:
    """What the server does on arrival: back to an array (uint8 NHWC, or float32 NCHW for fp32)."""
    if payload == "jpeg":
        return np.stack([decode_crop(body) for body in bodies])
    if payload == "uint8":
        return np.frombuffer(bodies[0], dtype=np.uint8).reshape(count, SIZE, SIZE, 3)
    if payload == "fp32":
        return np.frombuffer(bodies[0], dtype=np.float32).reshape(count, 3, SIZE, SIZE)
    if payload == "fp32-json":
        return np.asarray(json.loads(bodies[0]), dtype=np.float32)
    raise ValueError(f"unknown payload {payload!r}; choose one of {', '.join(PAYLOADS)}")


def bytes_per_image(payload: str, images: np.ndarray) -> float:
    """Mean request-body bytes per image for ``payload`` (measured by encoding ``images``)."""
    return sum(len(body) for body in encode(payload, images)) / len(images)


def serialization_experiment(images: np.ndarray, *, repeats: int = 3) -> list[dict]:
    """For each payload: bytes per image and milliseconds per image to encode, decode and both.

    Encoding includes the client's normalisation for the fp32 payloads (the seed's baseline sends
    the normalised tensor); decoding is what the server does on arrival. The best of ``repeats``.
    """
    rows = []
    count = len(images)
    for payload in PAYLOADS:
        encode_s = decode_s = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            bodies = encode(payload, images)
            middle = time.perf_counter()
            decode(payload, bodies, count)
            end = time.perf_counter()
            encode_s, decode_s = min(encode_s, middle - start), min(decode_s, end - middle)
        size = sum(len(body) for body in bodies) / count
        rows.append({
            "payload": payload,
            "bytes_per_image": size,
            "encode_ms": encode_s / count * 1000,
            "decode_ms": decode_s / count * 1000,
            "total_ms": (encode_s + decode_s) / count * 1000,
        })
    uint8 = next(row["bytes_per_image"] for row in rows if row["payload"] == "uint8")
    for row in rows:
        row["bytes_vs_uint8"] = row["bytes_per_image"] / uint8
    return rows
