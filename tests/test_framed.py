"""A framed copy of a picture with a uniform margin of its own (a page, a form): the scan's trim stops at
the frame, the original's trim cuts its margin, so their contents are different cuts and no hash agrees.
Through the real scan and group path on generated images (issue 21, bordered recall)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import ImageOps

from photodedup.catalog import Catalog
from photodedup.group import GroupSettings, group
from photodedup.grouping import _pixel_source, _variant_hashes, find_edges, framed_edges, select_files
from photodedup.scan import scan
from tests.test_confirm import _form


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("framed")
    _form("Ada Lovelace").save(root / "form.png")
    ImageOps.expand(_form("Ada Lovelace"), border=42, fill=(0, 0, 0)).save(root / "form_framed.jpg", quality=92)
    _form("Alan Turing").save(root / "form_other_name.png")   # look-alikes: the same form filled in otherwise
    ImageOps.expand(_form("Alan Turing"), border=42, fill=(0, 0, 0)).save(root / "form_other_framed.jpg", quality=92)
    catalog = root / "c.sqlite"
    scan([root], catalog=catalog, workers=1)
    return root, catalog


def _names(rows, edges) -> set[tuple[str, str]]:
    return {tuple(sorted((Path(rows[i]["path"]).name, Path(rows[j]["path"]).name)))
            for i, j in zip(edges.i.tolist(), edges.j.tolist(), strict=True)}


def test_the_content_inside_a_framed_copys_margin_is_hashed_and_proposed(library):
    root, catalog = library
    with Catalog(catalog) as cat:
        rows = select_files(cat, [root])
        parts = find_edges(rows, None, GroupSettings(check_pixels=False), thumbs=cat.thumb)
        index = np.arange(len(rows))
        framed = framed_edges(rows, index, _variant_hashes(rows)[:, 0], 12, _pixel_source(rows, cat.thumb))
    # each framed page meets its own page (and its look-alike, for the pixel check to refuse)
    assert {("form.png", "form_framed.jpg"), ("form_other_framed.jpg", "form_other_name.png")} <= _names(rows, framed)
    assert ("form.png", "form_framed.jpg") in _names(rows, parts["perceptual"])


def test_a_framed_page_is_one_group_with_its_page_and_its_look_alikes_stay_apart(library):
    root, catalog = library
    result = group(catalog, store=False)
    found = sorted(sorted(Path(m.path).name for m in g.members) for g in result.groups if g.category == "duplicate")
    assert found == [["form.png", "form_framed.jpg"], ["form_other_framed.jpg", "form_other_name.png"]]
