"""The service's limits (photodedup/service/limits.py), one rule at a time: each limit admits exactly its
value and refuses one more, each refusal has its exact HTTP status and code, and every decoder failure on
client bytes is a ``RequestRejected``. Unit level (no server): what ``benchmarks/mutate.py --module limits``
runs first."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from photodedup.config import MB
from photodedup.preprocess import PreprocessConfig
from photodedup.service.limits import (
    SERVICE_MAX_PIXELS,
    DecodeBudget,
    Limits,
    RequestRejected,
    check_declared_length,
    check_media_type,
    decode_image,
    decode_images,
    media_type,
    parse_npy,
    too_many_images,
)

CONFIG = PreprocessConfig()


def encoded(fmt: str = "JPEG", size=(300, 200), colour=(200, 10, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds almost no pixel data (the header is what counts)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))


def npy(array: np.ndarray, version=(1, 0)) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


def rejected(call, *args, **kwargs) -> tuple[int, str, str]:
    with pytest.raises(RequestRejected) as caught:
        call(*args, **kwargs)
    return caught.value.http_status, caught.value.code, str(caught.value)


def test_the_defaults_are_a_64_image_batch_64_mb_and_a_7000_by_7000_picture():
    assert Limits() == Limits(max_body_bytes=64 * MB, max_images=64, max_pixels=50_000_000)
    assert SERVICE_MAX_PIXELS == 50_000_000


def test_media_types_are_read_without_parameters_case_or_the_jpg_alias():
    assert media_type("Image/PNG; charset=x; q=1") == "image/png"
    assert media_type("image/jpg") == "image/jpeg"
    assert media_type("image/jpeg") == "image/jpeg"
    assert media_type(None) == ""
    assert check_media_type("image/webp") == "image/webp"
    assert check_media_type("application/x-npy") == "application/x-npy"
    assert rejected(check_media_type, "text/plain") == (
        415, "unsupported_media_type", "content type 'text/plain' is not accepted; send one of: image/jpeg, "
        "image/png, image/webp, multipart/form-data, application/x-npy")
    assert rejected(check_media_type, None)[2].startswith("content type 'none' is not accepted")


def test_the_declared_length_admits_the_limit_and_refuses_one_byte_more():
    assert check_declared_length(None, Limits()) is None
    assert check_declared_length(str(64 * MB), Limits()) is None
    assert rejected(check_declared_length, str(64 * MB + 1), Limits()) == (
        413, "body_too_large", f"the request body is over the limit of {64 * MB} bytes")
    assert rejected(check_declared_length, "12abc", Limits()) == (
        400, "bad_content_length", "Content-Length '12abc' is not a number")


def test_the_image_count_admits_the_limit_and_refuses_one_more():
    two = Limits(max_images=2)
    assert decode_images([encoded(), encoded("PNG")], CONFIG, two).shape == (2, 224, 224, 3)
    assert rejected(decode_images, [encoded()] * 3, CONFIG, two) == (
        413, "too_many_images", "3 images are over the limit of 2 per request")
    # the default: 64 (counted before any is decoded, so empty blobs show it)
    assert rejected(decode_images, [b""] * 65, CONFIG, Limits())[:2] == (413, "too_many_images")
    assert rejected(decode_images, [b""] * 64, CONFIG, Limits()) == (400, "empty_image", "image 0 is empty")
    assert rejected(decode_images, [], CONFIG, Limits()) == (400, "no_images", "the request holds no images")
    assert str(too_many_images(None, two)) == "the request holds over the limit of 2 per request"


def test_the_pixel_limit_is_read_from_the_header_and_admits_exactly_its_value():
    small = Limits(max_pixels=100)
    # at the limit the decoder runs (and finds the data missing); one pixel more is refused unread
    assert rejected(decode_image, png_header(100, 1), CONFIG, small)[:2] == (400, "undecodable_image")
    assert rejected(decode_image, png_header(101, 1), CONFIG, small) == (
        413, "too_many_pixels", "image 0 is too large: 101x1 = 101 pixels is over the limit of 100")
    assert rejected(decode_image, png_header(SERVICE_MAX_PIXELS + 1, 1), CONFIG, Limits())[:2] == (
        413, "too_many_pixels")


def test_a_good_image_becomes_its_model_crop():
    crop = decode_image(encoded("PNG", colour=(200, 10, 10)), CONFIG, Limits(), declared="image/png")
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    assert crop[112, 112].tolist() == [200, 10, 10]


def test_every_bad_image_is_a_request_rejected_with_its_index():
    assert rejected(decode_image, b"", CONFIG, Limits()) == (400, "empty_image", "image 0 is empty")
    assert rejected(decode_image, b"", CONFIG, Limits(), index=3) == (400, "empty_image", "image 3 is empty")
    assert rejected(decode_image, b"not an image", CONFIG, Limits(), declared="image/jpeg") == (
        400, "undecodable_image", "image 0 could not be decoded: not a JPEG, PNG or WebP image")
    jpeg = encoded()
    status, code, message = rejected(decode_image, jpeg[:len(jpeg) // 2], CONFIG, Limits())
    assert (status, code) == (400, "undecodable_image")
    assert message.startswith("image 0 could not be decoded: image file is truncated")  # the decoder's words


def test_an_image_that_is_not_its_declared_type_is_415():
    assert rejected(decode_image, encoded("PNG"), CONFIG, Limits(), declared="image/jpeg") == (
        415, "content_type_mismatch", "image 0 is declared image/jpeg but is image/png")
    # each blob's own declared type, parameters and all, is what counts
    assert rejected(decode_images, [encoded(), encoded("PNG")], CONFIG, Limits(),
                    declared=["image/jpeg", "image/jpeg; q=1"]) == (
        415, "content_type_mismatch", "image 1 is declared image/jpeg but is image/png")
    # no declared type: any accepted format
    assert decode_images([encoded("WEBP")], CONFIG, Limits(), declared=[None]).shape == (1, 224, 224, 3)


def test_an_npy_body_admits_version_1_and_2_headers_and_exactly_the_limit():
    batch = np.zeros((2, 224, 224, 3), np.uint8)
    batch[1, 5, 6] = 7
    for version in ((1, 0), (2, 0)):
        parsed = parse_npy(npy(batch, version), Limits(max_images=2))
        assert parsed.shape == (2, 224, 224, 3) and parsed[1, 5, 6].tolist() == [7, 7, 7]
    assert parse_npy(npy(batch[:1]), Limits()).shape == (1, 224, 224, 3)
    assert rejected(parse_npy, npy(batch), Limits(max_images=1)) == (
        413, "too_many_images", "2 images are over the limit of 1 per request")
    assert rejected(parse_npy, npy(batch[:0]), Limits()) == (400, "no_images", "the tensor holds no images")


@pytest.mark.parametrize("array, got", [
    (np.zeros((1, 224, 224, 3), np.float32), "float32 [1, 224, 224, 3] in C order"),
    (np.zeros((224, 224, 3), np.uint8), "uint8 [224, 224, 3] in C order"),
    (np.zeros((1, 224, 224, 4), np.uint8), "uint8 [1, 224, 224, 4] in C order"),
    (np.zeros((1, 224, 224, 3), np.uint8, order="F"), "uint8 [1, 224, 224, 3] in Fortran order"),
])
def test_an_npy_body_of_another_type_shape_or_order_is_refused(array, got):
    assert rejected(parse_npy, npy(array), Limits()) == (
        400, "malformed_tensor", f"expected uint8 [N,224,224,3] in C order, got {got}")


def test_an_npy_body_must_hold_exactly_the_data_its_header_promises():
    body = npy(np.zeros((1, 224, 224, 3), np.uint8))
    assert rejected(parse_npy, body[:-1], Limits()) == (
        400, "malformed_tensor", "the header promises 150528 bytes of data, the body holds 150527")
    assert rejected(parse_npy, b"garbage", Limits()) == (
        400, "malformed_tensor", "the body is not a valid .npy array: EOF: reading magic string, expected 8 bytes "
        "got 7")
    three = body.replace(b"\x93NUMPY\x01\x00", b"\x93NUMPY\x03\x00", 1)
    assert rejected(parse_npy, three, Limits())[:2] == (400, "malformed_tensor")


def test_the_decode_budget_holds_at_least_one_pixel_and_lets_an_image_of_the_whole_budget_through():
    assert (DecodeBudget(0).total, DecodeBudget(0).free) == (1, 1)
    budget = DecodeBudget(10)
    with budget.hold(0):
        assert budget.free == 9  # an empty image still holds a pixel
    with budget.hold(10):  # the whole budget (a wait that never ends here is the bug)
        assert budget.free == 0
    with budget.hold(25):  # larger than the budget: decodes alone
        assert budget.free == 0
    assert budget.free == 10


def test_a_jpeg_s_crop_is_the_local_embedding_s_crop():
    # the service and the local path must give the model the same input, or a remote backend's embeddings
    # drift from the local ones: both decode a JPEG at the reduced DCT scale the crop needs
    from photodedup.preprocess import crop_from_source

    noise = np.random.default_rng(1).integers(0, 256, (900, 1200, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    served = decode_image(data, CONFIG, Limits(), declared="image/jpeg")
    assert np.array_equal(served, crop_from_source(data, CONFIG))
    assert not np.array_equal(served, crop_from_source(data, CONFIG, fast=False))  # the scale shows
