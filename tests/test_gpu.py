"""The GPU paths (photodedup/gpu.py), run here with device="cpu": the same code as on CUDA except the
pinned staging, the streams and CUDA graphs, which need a GPU (benchmarks/gpu_check.py measures those)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import write_photo
from PIL import Image, ImageOps

from photodedup import gpu
from photodedup.errors import BadInputError
from photodedup.exports import sample_crops
from photodedup.model import embed_with_torch, image_encoder, load_model
from photodedup.preprocess import DEFAULT_PREPROCESS, crop_from_source, encode_jpeg


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    return sample_crops(5, seed=11)


@pytest.fixture(scope="module")
def reference(crops) -> np.ndarray:
    """The export's own graph in fp32 (what export-onnx verifies against)."""
    return embed_with_torch(image_encoder(load_model("random")), crops)


def test_bucket_is_the_power_of_two_at_or_above_within_the_limit():
    assert [gpu.bucket(n, 1024) for n in (1, 2, 3, 5, 64, 65, 1000, 1024)] == [1, 2, 4, 8, 64, 128, 1024, 1024]
    assert gpu.bucket(300, 256) == 256


@pytest.mark.slow
def test_device_encoder_fp32_equals_the_export_graph_in_any_chunking(crops, reference):
    """fp32 on the CPU is the export's graph (cosine 1 - 1e-12 measured); chunks of 2 (3 model calls,
    the last one short) give the same rows as one call: ViT rows never see each other."""
    encoder = gpu.DeviceEncoder.from_loaded(load_model("random"), precision="fp32", chunk=2)
    assert encoder.mode == "eager" and encoder.dim == 512
    out = encoder.embed(crops)
    assert out.shape == (5, 512) and out.dtype == np.float32
    assert gpu.cosine_rows(out, reference).min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(encoder.embed(crops[3:4]), out[3:4], atol=2e-5)


@pytest.mark.slow
def test_bf16_is_within_the_precision_bar_of_fp32(crops, reference):
    """The issue's bar, cosine >= 0.999 to fp32 on the same crops, with bf16 (8-bit mantissa) on the CPU:
    measured 0.99994 on these crops with random weights."""
    encoder = gpu.DeviceEncoder.from_loaded(load_model("random"), precision="bf16")
    assert gpu.cosine_rows(encoder.embed(crops), reference).min() >= 0.999


@pytest.mark.slow
def test_compile_mode_pads_to_the_bucket_and_trims(crops, reference):
    """``compile`` pads a short batch (3 -> bucket 4) and trims the rows. Inductor's code generation
    takes minutes on 2 cores, so this runs torch.compile with dynamo's eager backend (same tracing)."""
    encoder = gpu.DeviceEncoder.from_loaded(load_model("random"), mode="compile", chunk=4,
                                            compile_options={"backend": "eager"})
    out = encoder.embed(crops)  # chunks of 4 and 1: buckets 4 and 1
    assert out.shape == (5, 512)
    assert gpu.cosine_rows(out, reference).min() >= 0.99999
    assert gpu.cosine_rows(encoder.embed(crops[:3]), reference[:3]).min() >= 0.99999  # 3 padded to 4


def test_bad_options_are_clear_errors():
    with pytest.raises(BadInputError, match="needs --device cuda"):
        gpu.resolve_mode("cuda-graphs", "cpu")
    with pytest.raises(BadInputError, match="not one of fp32, fp16, bf16"):
        gpu.torch_dtype("int8")
    with pytest.raises(BadInputError, match="not cpu, cuda or cuda:N"):
        gpu.check_device("tpu")


# -- JPEG decode on the device ---------------------------------------------------------------------------
def _jpeg(size, orientation: int | None = None, pattern: int = 0, tmp=None) -> bytes:
    exif = None
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
    path = write_photo(tmp / f"p{pattern}-{size[0]}x{size[1]}-{orientation}.jpg", size=size, exif=exif,
                       pattern=pattern)
    return path.read_bytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_on_the_device_matches_pil(orientation, tmp_path):
    """Each of the 8 EXIF orientations, applied as flips/transposes on the tensor, gives PIL's pixels."""
    torch = pytest.importorskip("torch")
    blob = _jpeg((64, 40), orientation, tmp=tmp_path)
    with Image.open(io.BytesIO(blob)) as image:
        want = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        raw = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)
    got = gpu._orient(raw, orientation).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, want)


def test_jpeg_cropper_matches_the_pil_path(tmp_path):
    """Same crops as the PIL path up to resampling: the PIL path decodes at reduced DCT scale (draft)
    first, the device path resizes the full image. Mean absolute difference < 6 of 255 on these
    photos (measured ~2), same shape, orientation applied (a portrait stays a portrait)."""
    blobs = [_jpeg((900, 600), None, 1, tmp_path), _jpeg((600, 900), 6, 2, tmp_path),
             _jpeg((300, 224), 3, 3, tmp_path)]
    cropper = gpu.JpegCropper(DEFAULT_PREPROCESS, device="cpu")
    good, crops, errors = cropper.crops(blobs)
    assert good == [0, 1, 2] and errors == {} and crops.shape == (3, 224, 224, 3) and crops.dtype == np.uint8
    want = np.stack([crop_from_source(io.BytesIO(blob), DEFAULT_PREPROCESS, fast=True) for blob in blobs])
    diff = np.abs(crops.astype(int) - want.astype(int)).mean(axis=(1, 2, 3))
    assert diff.max() < 6, diff
    assert cropper.stats == {"gpu": 3, "pil": 0, "errors": 0}


def test_jpeg_cropper_sends_other_files_to_pil_and_records_errors(tmp_path):
    """PNG and CMYK go through PIL (nvJPEG takes neither); broken and empty files are errors with the
    PIL path's reasons; the good ones keep their order."""
    png = write_photo(tmp_path / "a.png", size=(300, 250), fmt="PNG").read_bytes()
    cmyk = io.BytesIO()
    Image.new("CMYK", (260, 240), (10, 20, 30, 0)).save(cmyk, "JPEG")
    good_jpeg = _jpeg((320, 240), None, 4, tmp_path)
    blobs = [png, b"not an image", cmyk.getvalue(), good_jpeg[: len(good_jpeg) // 3], good_jpeg, b""]
    cropper = gpu.JpegCropper(DEFAULT_PREPROCESS, device="cpu")
    good, crops, errors = cropper.crops(blobs)
    assert good == [0, 2, 4] and set(errors) == {1, 3, 5}
    assert errors[1].startswith("cannot decode: UnidentifiedImageError")
    np.testing.assert_array_equal(crops[0], crop_from_source(io.BytesIO(png), DEFAULT_PREPROCESS))
    assert cropper.stats["pil"] == 2 and cropper.stats["gpu"] == 1


def test_jpeg_cropper_refuses_decompression_bombs_before_decoding(tmp_path):
    from helpers import png_bomb

    bomb = png_bomb(tmp_path / "bomb.png").read_bytes()
    good, crops, errors = gpu.JpegCropper(device="cpu", max_pixels=10_000_000).crops([bomb])
    assert good == [] and crops.shape == (0, 224, 224, 3)
    assert errors[0].startswith("refused before decoding:")


@pytest.mark.slow
def test_device_decoded_crops_embed_close_to_the_pil_path(tmp_path, reference):
    """What the GPU check records as decode:cosine, here on the CPU: >= 0.99 with random weights."""
    blobs = [_jpeg((1200, 800), None, p, tmp_path) for p in range(3)]
    _, device_crops, _ = gpu.JpegCropper(device="cpu").crops(blobs)
    encoder = gpu.DeviceEncoder.from_loaded(load_model("random"))
    a, b = encoder.embed(device_crops), encoder.embed(gpu.pil_crops(blobs))
    assert gpu.cosine_rows(a, b).min() >= 0.99


def test_read_files_records_unreadable_paths(tmp_path):
    ok = tmp_path / "ok.jpg"
    ok.write_bytes(encode_jpeg(sample_crops(1)[0]))
    blobs, errors = gpu.read_files([str(ok), str(tmp_path / "gone.jpg")])
    assert blobs[0] == ok.read_bytes() and blobs[1] == b"" and errors == {1: "file vanished since the scan"}


def test_bench_plans_one_torch_local_target_per_pytorch_precision():
    """``bench --backend torch-local --device cuda --precision fp32,int8,bf16``: int8 names an ONNX export
    and is skipped; each target is warmed up (CUDA graphs captured) before it is measured."""
    from photodedup.bench import BenchSettings, plan_targets

    targets = plan_targets("torch-local", BenchSettings(precisions=("fp32", "int8", "bf16"), device="cuda",
                                                        weights="random"))
    assert [t.label for t in targets] == ["torch-local-fp32", "torch-local-bf16"]
    assert targets[1].options == {"weights": "random", "device": "cuda", "precision": "bf16", "warm_up": True}
    (only,) = plan_targets("torch-local", BenchSettings(precisions=("int8",)))
    assert only.label == "torch-local" and only.options["precision"] == "auto"
