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

from photodedup.exports import sample_crops, to_float_input
from photodedup.preprocess import DEFAULT_PREPROCESS, decode_crop, encode_jpeg

PAYLOADS = ("jpeg", "uint8", "fp32", "fp32-json")
__all__ = ["PAYLOADS", "bytes_per_image", "decode", "encode", "sample_crops", "serialization_experiment"]
SIZE = DEFAULT_PREPROCESS.size


def encode(payload: str, images: np.ndarray) -> list[bytes]:
    """The bodies that cross the wire for a uint8 batch: one per image for ``jpeg``, else one."""
    if payload == "jpeg":
        return [encode_jpeg(image) for image in images]
    if payload == "uint8":
        return [np.ascontiguousarray(images).tobytes()]
    if payload == "fp32":
        return [to_float_input(images, DEFAULT_PREPROCESS).tobytes()]
    if payload == "fp32-json":
        return [json.dumps(to_float_input(images, DEFAULT_PREPROCESS).tolist()).encode()]
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
