"""Blind spots a held-out mutation sample found in photodedup/apply.py (``benchmarks/mutate.py --module
apply --max 15 --seed 3``): a dry run finishes no interrupted move and makes no trash folder; a real apply
does both. In process on the real catalog of the ``review_library`` fixture."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from photodedup import moves
from photodedup.apply import apply
from photodedup.catalog import Catalog
from photodedup.duplicate_groups import decisions


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
