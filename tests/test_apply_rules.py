"""The apply policy and undo's choices (photodedup/apply.py), one rule at a time, in process on the real
catalog of the ``review_library`` fixture: each skip reason exact, the survivor rule, trash folders,
hard links, undo by apply, by path and twice. What ``benchmarks/mutate.py --module apply`` runs first."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from photodedup import moves
from photodedup.apply import apply, plan, undo
from photodedup.catalog import Catalog
from photodedup.duplicate_groups import decisions
from photodedup.errors import BadInputError


def keep(lib: dict, group: str, name: str) -> None:
    with Catalog(lib["catalog"]) as cat:
        decisions.keep_one(cat, lib["groups"][group], lib["ids"][name])


def mark(lib: dict, group: str, name: str, action: str | None = "trash") -> None:
    with Catalog(lib["catalog"]) as cat:
        decisions.decide(cat, lib["groups"][group], lib["ids"][name], action)


def planned(lib: dict, trash: Path | None = None, progress=None) -> tuple[list[str], list[tuple[str, str]]]:
    with Catalog(lib["catalog"]) as cat:
        kwargs = {"progress": progress} if progress else {}
        moves_, skipped = plan(cat, trash=trash if trash is not None else lib["trash"], **kwargs)
    names = {p: n for n, p in lib["paths"].items()}
    return [names[m["path"]] for m in moves_], [(names[s["path"]], s["reason"]) for s in skipped]


def test_a_group_keeps_a_member_whose_bytes_match_and_the_plan_reports_progress(review_library):
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    calls = []
    assert planned(lib, progress=lambda done, total: calls.append((done, total))) == (
        ["2019/copies/a_copy.jpg", "a_small.jpg"], [])
    assert calls == [(1, 2), (2, 2)]


def test_a_group_whose_other_member_is_missing_keeps_its_last_copy(review_library):
    lib = review_library
    mark(lib, "B", "b.jpg")
    with Catalog(lib["catalog"]) as cat:
        cat.mark_missing([lib["paths"]["b_q70.jpg"]], reason="gone")
    gid = lib["groups"]["B"]
    assert planned(lib) == ([], [("b.jpg", f"would trash every member of group {gid}: no unchanged member would "
                                           "remain")])


def test_a_group_with_every_member_marked_trash_moves_none_of_them(review_library):
    lib = review_library
    mark(lib, "B", "b.jpg")
    mark(lib, "B", "b_q70.jpg")
    gid = lib["groups"]["B"]
    why = f"would trash every member of group {gid}: no unchanged member would remain"
    assert planned(lib) == ([], [("b.jpg", why), ("b_q70.jpg", why)])


def test_a_file_not_available_is_skipped_with_its_status(review_library):
    lib = review_library
    mark(lib, "B", "b_q70.jpg")
    with Catalog(lib["catalog"]) as cat:
        cat.mark_missing([lib["paths"]["b_q70.jpg"]], reason="gone")
    assert planned(lib) == ([], [("b_q70.jpg", "not available (missing: gone)")])


def test_a_file_gone_from_disk_is_not_moved(review_library):
    lib = review_library
    mark(lib, "B", "b_q70.jpg")
    os.unlink(lib["paths"]["b_q70.jpg"])
    assert planned(lib) == ([], [("b_q70.jpg", "not found at its path")])


def test_a_file_changed_since_its_decision_is_skipped(review_library):
    lib = review_library
    mark(lib, "B", "b_q70.jpg")
    with Catalog(lib["catalog"]) as cat:
        cat.conn.execute("UPDATE files SET md5 = 'rescanned' WHERE id = ?", (lib["ids"]["b_q70.jpg"],))
        cat.conn.commit()
    assert planned(lib) == ([], [("b_q70.jpg", "changed since it was marked trash (md5 differs); review it again")])


def test_files_inside_a_trash_folder_are_never_moved_nor_count_as_the_copy_that_stays(review_library):
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    copies = Path(lib["paths"]["2019/copies/a_copy.jpg"]).parent
    assert planned(lib, trash=copies) == (["a_small.jpg"], [("2019/copies/a_copy.jpg",
                                                              "inside a trash folder: already trashed")])
    # a folder photodedup marked as a trash, above the file: the same, and the keeper a.jpg inside it is
    # no surviving copy for a_small.jpg either
    (Path(lib["paths"]["2019/a.jpg"]).parent / ".photodedup-trash").write_text("")
    gid = lib["groups"]["A"]
    assert planned(lib) == ([], [("2019/copies/a_copy.jpg", "inside a trash folder: already trashed"),
                                 ("a_small.jpg", f"would trash every member of group {gid}: no unchanged member "
                                                 "would remain")])


def test_a_hard_link_is_skipped_it_frees_nothing(review_library, tmp_path):
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    os.link(lib["paths"]["a_small.jpg"], tmp_path / "elsewhere.jpg")
    assert planned(lib) == (["2019/copies/a_copy.jpg"], [
        ("a_small.jpg", "the same file as 1 other names (a hard link): trashing it frees nothing")])


def test_apply_moves_and_says_what_it_did(review_library):
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    seen = []
    original_checkpoint = moves.checkpoint
    moves.checkpoint = lambda stage, index: seen.append((stage, index))
    try:
        summary = apply(lib["catalog"], trash_dir=lib["trash"])
    finally:
        moves.checkpoint = original_checkpoint
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", summary.apply_id)
    assert sorted({index for stage, index in seen if stage == "journaled"}) == [1, 2]
    small = lib["paths"]["a_small.jpg"]
    target = str(lib["trash"] / summary.apply_id / Path(small).relative_to("/"))
    moved = summary.moved[1]
    assert {k: moved[k] for k in moved if k not in ("md5", "size", "method")} == {
        "file_id": lib["ids"]["a_small.jpg"], "path": small, "group": lib["groups"]["A"], "trash": target}
    assert (summary.recovered, summary.failed, summary.skipped, summary.dry_run) == (0, [], [], False)
    assert Path(target).is_file() and not Path(small).exists()


def applied(lib: dict, group: str, keeper: str):
    keep(lib, group, keeper)
    return apply(lib["catalog"], trash_dir=lib["trash"])


def test_undo_restores_the_last_apply_and_then_has_nothing_left(review_library):
    lib = review_library
    first = applied(lib, "A", "2019/a.jpg")
    second = applied(lib, "B", "b.jpg")
    summary = undo(lib["catalog"], trash_dir=lib["trash"])
    assert (summary.applies, [r["path"] for r in summary.restored], summary.refused, summary.recovered) == (
        [second.apply_id], [lib["paths"]["b_q70.jpg"]], [], 0)
    summary = undo(lib["catalog"], trash_dir=lib["trash"])
    assert summary.applies == [first.apply_id] and len(summary.restored) == 2 and summary.refused == []
    with pytest.raises(BadInputError, match="nothing to undo: every trashed file has been restored"):
        undo(lib["catalog"], trash_dir=lib["trash"])


def test_undo_by_apply_id(review_library):
    lib = review_library
    first = applied(lib, "A", "2019/a.jpg")
    applied(lib, "B", "b.jpg")
    summary = undo(lib["catalog"], trash_dir=lib["trash"], apply_id=first.apply_id)
    assert sorted(r["path"] for r in summary.restored) == [lib["paths"]["2019/copies/a_copy.jpg"],
                                                           lib["paths"]["a_small.jpg"]]
    with pytest.raises(BadInputError, match="no file of apply 20000101-000000-beef is in the trash"):
        undo(lib["catalog"], trash_dir=lib["trash"], apply_id="20000101-000000-beef")


def test_undo_by_path_restores_that_file_or_the_files_under_that_folder(review_library):
    lib = review_library
    applied(lib, "A", "2019/a.jpg")
    small = lib["paths"]["a_small.jpg"]
    summary = undo(lib["catalog"], trash_dir=lib["trash"], paths=[Path(small)])
    assert ([r["path"] for r in summary.restored], summary.refused) == ([small], [])
    copies = Path(lib["paths"]["2019/copies/a_copy.jpg"]).parent
    summary = undo(lib["catalog"], trash_dir=lib["trash"], paths=[copies.parent, lib["root"] / "nowhere"])
    assert [r["path"] for r in summary.restored] == [lib["paths"]["2019/copies/a_copy.jpg"]]
    assert summary.refused == [{"path": str(lib["root"] / "nowhere"), "reason": "not in the trash journal"}]


def test_undo_refuses_a_file_changed_in_the_trash_and_leaves_the_trash_unmarked(review_library):
    lib = review_library
    summary = applied(lib, "B", "b.jpg")
    (lib["trash"] / ".photodedup-trash").unlink()  # an older version's trash: a journal, no marker
    target = Path(summary.moved[0]["trash"])
    target.write_bytes(target.read_bytes() + b"edited")
    result = undo(lib["catalog"], trash_dir=lib["trash"])
    assert result.restored == [] and result.refused == [
        {"path": lib["paths"]["b_q70.jpg"], "reason": f"changed in the trash ({target}, md5 differs)"}]
    assert not (lib["trash"] / ".photodedup-trash").exists()


def test_a_dry_run_finishes_nothing_and_says_so(review_library):
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    preview = apply(lib["catalog"], trash_dir=lib["trash"], dry_run=True)
    assert (preview.dry_run, preview.recovered, preview.failed, len(preview.moved)) == (True, 0, [], 2)
    apply(lib["catalog"], trash_dir=lib["trash"])
    restore = undo(lib["catalog"], trash_dir=lib["trash"], dry_run=True)
    assert (restore.dry_run, restore.recovered, restore.refused, len(restore.restored)) == (True, 0, [], 2)
    assert not Path(lib["paths"]["a_small.jpg"]).exists()


def test_undo_knows_only_completed_moves(review_library):
    lib = review_library
    applied(lib, "B", "b.jpg")
    journal = moves.Journal(lib["trash"] / moves.JOURNAL_NAME)
    small = lib["paths"]["a_small.jpg"]
    stopped = {"op": "trash", "apply": "20000101-000000-dead", "original": small, "trash": str(lib["trash"] / "x"),
               "md5": "0" * 32, "size": 1, "file_id": lib["ids"]["a_small.jpg"]}
    journal.append(state="begin", **stopped)
    journal.append(state="aborted", reason="it changed while it was being moved", **stopped)
    with pytest.raises(BadInputError, match="no file of apply 20000101-000000-dead is in the trash"):
        undo(lib["catalog"], trash_dir=lib["trash"], apply_id="20000101-000000-dead")
    assert Path(small).exists()


def test_a_companion_moves_with_its_lead_and_follows_a_lead_already_in_the_trash(review_library):
    lib = review_library
    ids = lib["ids"]
    mark(lib, "B", "b_q70.jpg")
    with Catalog(lib["catalog"]) as cat:
        cat.set_companions([(ids["c.jpg"], ids["b_q70.jpg"], "sidecar")])
        todo, skipped = plan(cat, trash=lib["trash"])
    assert [(m["path"], m.get("companion_of")) for m in todo] == [
        (lib["paths"]["b_q70.jpg"], None), (lib["paths"]["c.jpg"], ids["b_q70.jpg"])] and skipped == []
    with Catalog(lib["catalog"]) as cat:
        cat.set_companions([])
    apply(lib["catalog"], trash_dir=lib["trash"])  # the lead alone, as if killed before its sidecar
    with Catalog(lib["catalog"]) as cat:
        cat.set_companions([(ids["c.jpg"], ids["b_q70.jpg"], "sidecar")])
        todo, _ = plan(cat, trash=lib["trash"])
        assert [(m["path"], m.get("companion_of")) for m in todo] == [(lib["paths"]["c.jpg"], ids["b_q70.jpg"])]
        cat.mark_missing([lib["paths"]["c.jpg"]], reason="gone")
        assert plan(cat, trash=lib["trash"]) == ([], [])
