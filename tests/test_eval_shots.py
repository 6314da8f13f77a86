"""`eval` groups as `group` does: a RAW+JPEG pair is one item (its keeper rule ``raw-pair`` included)."""

import json
from datetime import datetime

import pytest
from PIL import Image

from photodedup.dng import write_dng
from photodedup.eval import evaluate
from photodedup.group import group
from photodedup.sample_library import source_photos
from photodedup.scan import scan

TAKEN = datetime(2023, 7, 14, 18, 30, 5)


@pytest.fixture
def paired_library(tmp_path):
    """A RAW+JPEG pair, and a JPEG copy of it enlarged 1.5x (more pixels, no EXIF): only ``raw-pair`` puts the
    camera's shot before the bigger copy."""
    photo = Image.open(next(p for p in source_photos() if p.name == "astronaut.png")).convert("RGB")
    photo = photo.resize((640, 480), Image.Resampling.BICUBIC)
    root = tmp_path / "lib"
    (root / "DCIM").mkdir(parents=True)
    (root / "Edited").mkdir()
    write_dng(root / "DCIM" / "IMG_1.dng", photo, taken=TAKEN, preview=640)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R6"
    exif.get_ifd(0x8769)[0x9003] = TAKEN.strftime("%Y:%m:%d %H:%M:%S")
    photo.save(root / "DCIM" / "IMG_1.jpg", quality=92, exif=exif.tobytes())
    photo.resize((960, 720), Image.Resampling.BICUBIC).save(root / "Edited" / "IMG_1_big.jpg", quality=92)
    truth = {"groups": [["DCIM/IMG_1.jpg", "DCIM/IMG_1.dng", "Edited/IMG_1_big.jpg"]],
             "kinds": {"DCIM/IMG_1.jpg": "original", "DCIM/IMG_1.dng": "raw", "Edited/IMG_1_big.jpg": "resized"},
             "pairs": [["DCIM/IMG_1.jpg", "DCIM/IMG_1.dng"]]}
    (root / "truth.json").write_text(json.dumps(truth))
    catalog = tmp_path / "c.sqlite"
    scan([root], catalog=catalog, workers=1)
    return catalog, root


def test_eval_scores_the_groups_and_keepers_that_group_suggests(paired_library):
    catalog, root = paired_library
    found = group(catalog, store=False).groups
    assert len(found) == 1
    keeper = next(m for m in found[0].members if m.keeper)
    assert (keeper.path, [c.path for c in keeper.companions]) == (
        str(root / "DCIM" / "IMG_1.dng"), [str(root / "DCIM" / "IMG_1.jpg")])
    assert found[0].keeper_reason.startswith("the camera's RAW+JPEG pair")

    result = evaluate(catalog, root / "truth.json")
    assert (result.keeper["accuracy"], result.keeper["wrong"]) == (1.0, [])  # the DNG with its JPEG, as group says
    assert (result.overall.precision, result.overall.recall, result.overall.true_pairs) == (1.0, 1.0, 3)
    assert result.recall_by_kind == {"raw": 1.0, "resized": 1.0}  # the pair's JPEG counts as found with its RAW
