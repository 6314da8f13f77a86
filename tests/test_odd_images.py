"""Every readable format in odd shapes (1x1, 1xN, Nx1, 16-bit, CMYK, palette, alpha, multi-frame, truncated)
through every stage: scan, group, run, the review page and apply --dry-run, through the real CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from photodedup.catalog import Catalog
from photodedup.dng import write_dng
from photodedup.verify import features

#: Pillow's writer for each format (HEIF through pillow-heif, JXL through pillow-jxl-plugin) and its extension.
WRITERS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "TIFF": ".tif", "BMP": ".bmp",
           "ICO": ".ico", "JPEG2000": ".jp2", "HEIF": ".heic", "AVIF": ".avif", "JXL": ".jxl", "PPM": ".ppm"}


def _picture(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    image = Image.new("RGB", size, (200, 30, 30))
    if min(size) > 2:
        image.paste((10, 200, 40), (0, 0, size[0] // 2, size[1] // 2))
    if mode == "I;16":  # 16-bit grey with values far above 255
        return Image.fromarray((np.asarray(image.convert("L"), np.uint16) * 256).astype(np.uint16))
    if mode == "P":
        return image.convert("P", palette=Image.Palette.ADAPTIVE)
    return image.convert(mode)


def _save(path: Path, image: Image.Image, fmt: str, **options) -> bytes:
    import pillow_heif
    import pillow_jxl  # noqa: F401 - registers the JPEG XL writer

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def odd_library(root: Path) -> dict[str, str]:
    """Write the odd files; returns name -> what each one is (every one decodable but the truncated)."""
    root.mkdir(parents=True)
    made: dict[str, str] = {}
    for fmt, ext in WRITERS.items():
        for size in ((1, 1), (1, 9), (9, 1)):
            name = f"{fmt.lower()}-{size[0]}x{size[1]}{ext}"
            _save(root / name, _picture(size), fmt)
            made[name] = "ok"
        data = _save(root / f"whole{ext}", _picture((64, 48)), fmt)
        (root / f"truncated-{fmt.lower()}{ext}").write_bytes(data[: len(data) // 2])
        made[f"truncated-{fmt.lower()}{ext}"] = "error"
        (root / f"whole{ext}").unlink()
    for mode in ("L", "LA", "RGBA", "P", "1", "I;16"):
        for fmt, ext in (("PNG", ".png"), ("TIFF", ".tif")):
            name = f"{mode.replace(';', '')}-{fmt.lower()}{ext}"
            _save(root / name, _picture((40, 30), mode), fmt)
            made[name] = "ok"
    for fmt, ext in (("JPEG", ".jpg"), ("TIFF", ".tif")):
        _save(root / f"cmyk{ext}", _picture((40, 30), "CMYK"), fmt)
        made[f"cmyk{ext}"] = "ok"
    transparent = _picture((40, 30), "P")
    _save(root / "transparent.gif", transparent, "GIF", transparency=0)
    _save(root / "bigtiff.tif", _picture((40, 30)), "TIFF", big_tiff=True)
    made |= {"transparent.gif": "ok", "bigtiff.tif": "ok"}
    frames = [_picture((40, 30)), _picture((40, 30)).rotate(90), _picture((1, 1)).resize((40, 30))]
    for fmt, ext in (("GIF", ".gif"), ("PNG", ".png"), ("WEBP", ".webp"), ("TIFF", ".tif")):
        _save(root / f"frames{ext}", frames[0], fmt, save_all=True, append_images=frames[1:])
        made[f"frames{ext}"] = "ok"
    _save(root / "stereo.mpo", frames[0], "MPO", save_all=True, append_images=frames[1:2])
    write_dng(root / "camera.dng", _picture((64, 48)), preview=None)
    write_dng(root / "tiny.dng", _picture((2, 2)), preview=None)  # LibRaw opens no DNG this small
    made |= {"stereo.mpo": "ok", "camera.dng": "ok", "tiny.dng": "error"}
    return made


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("odd") / "lib"
    return root, odd_library(root)


def _ok(done) -> None:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


def test_orb_features_of_pictures_too_small_for_orb():
    """ORB's pyramid failed on a side of 1 px (cv2.error in resize), which aborted group and run."""
    for shape in ((1, 1), (1, 9), (9, 1), (2, 300), (30, 30)):
        found = features(np.full(shape, 128, np.uint8))
        assert (len(found.descriptors), found.size) == (0, (shape[1], shape[0]))
    assert len(features(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).descriptors) > 0


def test_every_stage_takes_odd_images(odd, tmp_path):
    root, made = odd
    db, trash = tmp_path / "c.sqlite", tmp_path / "trash"
    scanned = run_cli("scan", root, "--catalog", db, "--json", "-q")
    _ok(scanned)
    with Catalog(db) as cat:
        status = {Path(r["path"]).name: r["status"] for r in cat.files(status=None)}
        rows = {Path(r["path"]).name: dict(r) for r in cat.files(status=None)}
    assert status == made
    assert (rows["jxl-1x9.jxl"]["format"], rows["jxl-1x9.jxl"]["width"], rows["jxl-1x9.jxl"]["height"]) == ("JXL", 1, 9)
    assert (rows["stereo.mpo"]["format"], rows["camera.dng"]["raw_decode"]) == ("MPO", "half-size")
    assert (rows["tiny.dng"]["format"], rows["tiny.dng"]["camera"], rows["tiny.dng"]["error_kind"]) == (
        "DNG", "Canon EOS R6", "raw-unsupported")
    # 16-bit grey is scaled to 8 bits (Pillow's own conversion clips it to a white page)
    assert rows["I16-png.png"]["phash"] == rows["L-png.png"]["phash"]
    assert rows["I16-tiff.tif"]["phash"] == rows["L-tiff.tif"]["phash"]

    _ok(run_cli("group", "--catalog", db, "--json", "-q"))
    _ok(run_cli("run", root, "--catalog", db, "--no-embed", "--report", tmp_path / "r.html", "-q"))

    from fastapi.testclient import TestClient

    from photodedup.review.app import create_app

    client = TestClient(create_app(db, token="t", trash_dir=trash), headers={"X-Photodedup-Token": "t"})
    overview = client.get("/api/overview")
    assert overview.status_code == 200 and overview.json()["groups"]
    for group in overview.json()["groups"]:
        detail = client.get(f"/api/groups/{group['id']}")
        assert detail.status_code == 200
        keeper = detail.json()["members"][0]["file_id"]
        assert client.post(f"/api/groups/{group['id']}/keep", json={"file_id": keeper}).status_code == 200
    for name, row in rows.items():
        for what in ("thumb", "image"):
            shown = client.get(f"/files/{row['id']}/{what}")
            assert shown.status_code == (200 if row["status"] == "ok" else 404), (name, what, shown.text)

    dry = run_cli("apply", "--catalog", db, "--trash-dir", trash, "--dry-run", "--json", "-q")
    _ok(dry)
    assert json.loads(dry.stdout)["dry_run"] is True and not trash.exists()


def test_run_embeds_odd_images(odd, tmp_path, onnx_model_dir):
    root, made = odd
    done = run_cli("run", root, "--catalog", tmp_path / "c.sqlite", "--weights", "random", "--model-dir",
                   onnx_model_dir, "--report", tmp_path / "r.html", "--json", "-q")
    _ok(done)
    assert json.loads(done.stdout)["embed"]["embedded"] == sum(v == "ok" for v in made.values())
