"""Blind spots a held-out mutation sample found in photodedup/apply.py (``benchmarks/mutate.py --module
apply --max 15 --seed 3``): a dry run finishes no interrupted move and makes no trash folder; a real apply
does both. In process on the real catalog of the ``review_library`` fixture."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from photodedup import moves
from photodedup.apply import ApplySummary, apply, plan, undo
from photodedup.catalog import Catalog
from photodedup.duplicate_groups import decisions
from photodedup.errors import CatalogError
from tests.test_apply_rules import mark


def test_a_dry_run_makes_no_trash_folder_and_a_real_apply_makes_it_marked(review_library):
    lib = review_library
    with Catalog(lib["catalog"]) as cat:
        decisions.keep_one(cat, lib["groups"]["A"], lib["ids"]["2019/a.jpg"])
    assert not lib["trash"].exists()
    assert len(apply(lib["catalog"], trash_dir=lib["trash"], dry_run=True).moved) == 2
    assert not lib["trash"].exists()
    assert len(apply(lib["catalog"], trash_dir=lib["trash"]).moved) == 2
    assert (lib["trash"] / moves.MARKER_NAME).is_file()


def test_a_dry_run_leaves_an_interrupted_move_and_a_real_apply_finishes_it(review_library):
    lib = review_library
    assert apply(lib["catalog"], trash_dir=lib["trash"]).moved == []  # nothing marked: the trash folder only
    # a move killed after the file reached the trash, before its journal said so
    small = Path(lib["paths"]["a_small.jpg"])
    target = lib["trash"] / "20000101-000000-dead" / small.relative_to("/")
    data = small.read_bytes()
    target.parent.mkdir(parents=True)
    os.rename(small, target)
    moves.Journal(lib["trash"] / moves.JOURNAL_NAME).append(
        state="begin", op="trash", apply="20000101-000000-dead", original=str(small), trash=str(target),
        md5=hashlib.md5(data).hexdigest(), size=len(data), file_id=lib["ids"]["a_small.jpg"])
    preview = apply(lib["catalog"], trash_dir=lib["trash"], dry_run=True)
    assert (preview.recovered, preview.failed, preview.moved) == (0, [], [])
    assert '"state": "done"' not in (lib["trash"] / moves.JOURNAL_NAME).read_text()
    done = apply(lib["catalog"], trash_dir=lib["trash"])
    assert (done.recovered, done.failed, done.moved) == (1, [], [])
    assert '"state": "done"' in (lib["trash"] / moves.JOURNAL_NAME).read_text()
    assert target.read_bytes() == data and not small.exists()


def test_apply_and_undo_refuse_a_catalog_that_does_not_exist_and_make_none(tmp_path):
    # (session 6, --seed 5: apply opened its catalog with create=True and moved nothing from a new empty one)
    missing = tmp_path / "none.sqlite"
    for run in (lambda: apply(missing, trash_dir=tmp_path / "trash"),
                lambda: apply(missing, trash_dir=tmp_path / "trash", dry_run=True),
                lambda: undo(missing, trash_dir=tmp_path / "trash")):
        with pytest.raises(CatalogError, match="none.sqlite"):
            run()
        assert not missing.exists()


def test_a_moved_file_of_unknown_size_adds_no_bytes():
    # (session 6, --seed 5)
    summary = ApplySummary("id", "/t", "/t/journal", False, moved=[{"size": None}, {"size": 5}])
    assert summary.bytes_moved == 5 and summary.as_dict()["bytes_moved"] == 5


@pytest.mark.parametrize("kind, words", [("sidecar", "sidecar"), ("video", "Live Photo video"),
                                         ("raw", "RAW+JPEG pair")])
def test_a_changed_companion_holds_its_lead_back_and_is_named_by_its_kind(review_library, kind, words):
    # (session 6, --seed 6)
    lib = review_library
    ids = lib["ids"]
    mark(lib, "B", "b_q70.jpg")
    with open(lib["paths"]["c.jpg"], "ab") as companion:
        companion.write(b"\0")  # changed since the scan
    with Catalog(lib["catalog"]) as cat:
        cat.set_companions([(ids["c.jpg"], ids["b_q70.jpg"], kind if kind != "raw" else "pair")])
        cat.conn.execute("UPDATE files SET kind = ? WHERE id = ?", (kind, ids["c.jpg"]))
        cat.conn.commit()
        todo, skipped = plan(cat, trash=lib["trash"])
    assert todo == [] and skipped == [{"path": lib["paths"]["b_q70.jpg"], "reason": f"its {words} "
                                       f"{lib['paths']['c.jpg']}: changed since the scan (md5 differs); scan again"}]
