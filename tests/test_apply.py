"""``photodedup apply`` and ``undo``: moves into the trash with a journal, safety rules, kill-safety, undo."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from helpers import run_cli

from photodedup import moves
from photodedup.apply import apply, undo
from photodedup.catalog import SCHEMA_VERSION, Catalog, in_trash
from photodedup.duplicate_groups import current_groups, decisions
from photodedup.errors import BadInputError
from photodedup.moves import JOURNAL_NAME, MARKER_NAME, file_md5


def keep(lib: dict, group: str, name: str) -> None:
    with Catalog(lib["catalog"]) as cat:
        decisions.keep_one(cat, lib["groups"][group], lib["ids"][name])


def mark(lib: dict, group: str, name: str, action: str | None) -> None:
    with Catalog(lib["catalog"]) as cat:
        decisions.decide(cat, lib["groups"][group], lib["ids"][name], action)


def journal(lib: dict) -> list[dict]:
    return [json.loads(line) for line in (lib["trash"] / JOURNAL_NAME).read_text().splitlines()]


def test_dry_run_lists_the_moves_and_changes_nothing(review_library):
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    before = {n: file_md5(Path(p)) for n, p in lib["paths"].items()}
    summary = apply(lib["catalog"], trash_dir=lib["trash"], dry_run=True)
    assert [m["path"] for m in summary.moved] == [lib["paths"]["2019/copies/a_copy.jpg"], lib["paths"]["a_small.jpg"]]
    assert summary.skipped == []
    assert not lib["trash"].exists()
    assert {n: file_md5(Path(p)) for n, p in lib["paths"].items()} == before


def test_apply_moves_marked_files_keeping_their_paths_and_journals_each_move(review_library):
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    copy_md5 = file_md5(Path(lib["paths"]["2019/copies/a_copy.jpg"]))
    summary = apply(lib["catalog"], trash_dir=lib["trash"])

    assert len(summary.moved) == 2 and summary.skipped == []
    for name in ("2019/copies/a_copy.jpg", "a_small.jpg"):
        original = Path(lib["paths"][name])
        moved = lib["trash"] / summary.apply_id / original.relative_to("/")
        assert not original.exists()
        assert moved.is_file()
    assert file_md5(lib["trash"] / summary.apply_id / Path(lib["paths"]["2019/copies/a_copy.jpg"]).relative_to("/")) \
        == copy_md5
    assert Path(lib["paths"]["2019/a.jpg"]).exists() and Path(lib["paths"]["b.jpg"]).exists()
    assert (lib["trash"] / MARKER_NAME).exists()

    lines = journal(lib)
    assert [(e["op"], e["state"]) for e in lines] == [("trash", "begin"), ("trash", "done")] * 2
    first = lines[0]
    assert first["original"] == lib["paths"]["2019/copies/a_copy.jpg"] and first["md5"] == copy_md5
    assert first["trash"] == str(lib["trash"] / summary.apply_id / Path(first["original"]).relative_to("/"))
    assert first["apply"] == summary.apply_id and first["time"].startswith("20")
    with Catalog(lib["catalog"]) as cat:
        row = cat.file(lib["ids"]["a_small.jpg"])
        assert row["status"] == "missing" and row["reason"].startswith("in the trash: ")
    # a second apply finds nothing left to move
    assert apply(lib["catalog"], trash_dir=lib["trash"]).moved == []


def test_a_catalog_from_before_the_trash_was_data_still_knows_its_trash_and_undo_restores_it(review_library):
    """Before schema 13 the only record that apply moved a file was the reason's text ("in the trash: <path>");
    the migration turns those rows into ``trashed_to`` and every reader still sees them in the trash."""
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    trashed = ["2019/copies/a_copy.jpg", "a_small.jpg"]
    applied = run_cli("apply", "--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]), "--json")
    assert applied.returncode == 0, applied.stderr
    moved = {m["path"]: m["trash"] for m in json.loads(applied.stdout)["moved"]}
    assert sorted(moved) == sorted(lib["paths"][n] for n in trashed)
    with Catalog(lib["catalog"]) as cat:  # what apply records now
        assert [(in_trash(r), r["trashed_to"]) for r in (cat.file(lib["ids"][n]) for n in trashed)] == [
            (True, moved[lib["paths"][n]]) for n in trashed]
    conn = sqlite3.connect(lib["catalog"])  # the catalog as schema 12 left it: the reason strings, no trashed_to
    with conn:
        conn.execute("ALTER TABLE files DROP COLUMN trashed_to")
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION - 1,))
    assert sorted(conn.execute("SELECT path, reason FROM files WHERE status = 'missing'").fetchall()) == sorted(
        (path, f"in the trash: {target}") for path, target in moved.items())
    conn.close()

    with Catalog(lib["catalog"]) as cat:
        assert cat.version == SCHEMA_VERSION
        rows = [cat.file(lib["ids"][n]) for n in (*trashed, "2019/a.jpg")]
        assert [(in_trash(r), r["trashed_to"]) for r in rows] == [
            (True, moved[lib["paths"][n]]) for n in trashed] + [(False, None)]
        (group,) = [g for g in current_groups(cat) if g.id == lib["groups"]["A"]]
        assert group.state == "applied"
        assert {m.path: m.in_trash for m in group.members} == {lib["paths"][n]: n in trashed for n in lib["paths"]
                                                                if n in (*trashed, "2019/a.jpg")}
        with pytest.raises(BadInputError, match="is in the trash; undo restores it"):
            decisions.decide(cat, group.id, lib["ids"]["a_small.jpg"], "keep")

    undone = run_cli("undo", "--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]), "--json")
    assert undone.returncode == 0, undone.stderr
    assert sorted(r["path"] for r in json.loads(undone.stdout)["restored"]) == sorted(moved)
    assert all(Path(path).is_file() for path in moved)
    with Catalog(lib["catalog"]) as cat:
        assert [(r["status"], r["trashed_to"], in_trash(r)) for r in (cat.file(lib["ids"][n]) for n in trashed)] \
            == [("ok", None, False)] * 2


def test_never_trashes_every_member_of_a_group(review_library):
    lib = review_library
    mark(lib, "B", "b.jpg", "trash")
    mark(lib, "B", "b_q70.jpg", "trash")
    summary = apply(lib["catalog"], trash_dir=lib["trash"])
    assert summary.moved == []
    gid = lib["groups"]["B"]
    reason = f"would trash every member of group {gid}: no unchanged member would remain"
    assert sorted(summary.skipped, key=lambda s: s["path"]) == [
        {"path": lib["paths"]["b.jpg"], "reason": reason}, {"path": lib["paths"]["b_q70.jpg"], "reason": reason}]
    assert Path(lib["paths"]["b.jpg"]).exists() and Path(lib["paths"]["b_q70.jpg"]).exists()


def test_files_in_a_reference_folder_are_never_marked_trash_nor_moved(review_library):
    lib = review_library
    reference = str(lib["root"] / "2019" / "copies")
    with Catalog(lib["catalog"]) as cat:  # a grouping run made with `group --prefer <root>/2019/copies`
        group_id = cat.store_group_run({"prefer": [reference]}, [
            ("exact", lib["ids"]["2019/copies/a_copy.jpg"], "in a reference folder (--prefer)",
             [(lib["ids"][n], "exact", 1.0, "") for n in ("2019/a.jpg", "2019/copies/a_copy.jpg")])])[1][0]
        kept = decisions.keep_one(cat, group_id, lib["ids"]["2019/a.jpg"])
        assert {m.path: (m.reference, m.decision) for m in kept.members} == {
            lib["paths"]["2019/a.jpg"]: (False, "keep"), lib["paths"]["2019/copies/a_copy.jpg"]: (True, "keep")}
        with pytest.raises(BadInputError, match="is in a reference folder"):
            decisions.decide(cat, group_id, lib["ids"]["2019/copies/a_copy.jpg"], "trash")
        cat.set_decisions({lib["ids"]["2019/copies/a_copy.jpg"]: "trash"})  # as an older version might have
    summary = apply(lib["catalog"], trash_dir=lib["trash"])
    assert summary.moved == []
    assert summary.skipped == [{"path": lib["paths"]["2019/copies/a_copy.jpg"],
                                "reason": "in a reference folder (group --prefer): never trashed"}]
    assert Path(lib["paths"]["2019/copies/a_copy.jpg"]).exists()


def test_a_file_changed_after_the_scan_is_skipped_with_the_reason(review_library):
    lib = review_library
    keep(lib, "B", "b.jpg")
    with open(lib["paths"]["b_q70.jpg"], "ab") as handle:
        handle.write(b"edited")
    summary = apply(lib["catalog"], trash_dir=lib["trash"])
    assert summary.moved == []
    assert summary.skipped == [{"path": lib["paths"]["b_q70.jpg"],
                                "reason": "changed since the scan (md5 differs); scan again"}]
    assert Path(lib["paths"]["b_q70.jpg"]).exists()


def test_a_changed_keeper_does_not_count_as_a_surviving_copy(review_library):
    lib = review_library
    keep(lib, "B", "b.jpg")
    Path(lib["paths"]["b.jpg"]).write_bytes(b"not the photo any more")
    summary = apply(lib["catalog"], trash_dir=lib["trash"])
    assert summary.moved == []
    assert summary.skipped[0]["reason"].startswith("would trash every member of group")


def test_undo_restores_the_last_apply_and_keeps_the_decisions(review_library):
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    before = {n: file_md5(Path(p)) for n, p in lib["paths"].items()}
    first = apply(lib["catalog"], trash_dir=lib["trash"])
    keep(lib, "B", "b.jpg")
    second = apply(lib["catalog"], trash_dir=lib["trash"])
    assert [m["path"] for m in second.moved] == [lib["paths"]["b_q70.jpg"]]

    summary = undo(lib["catalog"], trash_dir=lib["trash"])
    assert summary.applies == [second.apply_id]
    assert [r["path"] for r in summary.restored] == [lib["paths"]["b_q70.jpg"]]
    assert file_md5(Path(lib["paths"]["b_q70.jpg"])) == before["b_q70.jpg"]
    assert not (lib["trash"] / second.apply_id).exists()  # its emptied folders are removed
    with Catalog(lib["catalog"]) as cat:
        assert cat.file(lib["ids"]["b_q70.jpg"])["status"] == "ok"
        assert cat.decisions()[lib["ids"]["b_q70.jpg"]]["action"] == "trash"  # the review as before the apply

    summary = undo(lib["catalog"], trash_dir=lib["trash"])  # then the one before
    assert summary.applies == [first.apply_id] and len(summary.restored) == 2
    assert {n: file_md5(Path(p)) for n, p in lib["paths"].items()} == before
    assert [(e["op"], e["state"]) for e in journal(lib)][-2:] == [("restore", "begin"), ("restore", "done")]
    with pytest.raises(BadInputError, match="^nothing to undo: every trashed file has been restored$"):
        undo(lib["catalog"], trash_dir=lib["trash"])


def test_undo_chosen_files_only(review_library):
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    apply(lib["catalog"], trash_dir=lib["trash"])
    summary = undo(lib["catalog"], trash_dir=lib["trash"], paths=[Path(lib["paths"]["a_small.jpg"])])
    assert [r["path"] for r in summary.restored] == [lib["paths"]["a_small.jpg"]]
    assert Path(lib["paths"]["a_small.jpg"]).exists() and not Path(lib["paths"]["2019/copies/a_copy.jpg"]).exists()


def test_undo_refuses_to_overwrite_a_file_that_appeared_since(review_library):
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    apply(lib["catalog"], trash_dir=lib["trash"])
    Path(lib["paths"]["a_small.jpg"]).write_bytes(b"a new file with the old name")

    result = run_cli("undo", "--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]))
    assert result.returncode == 10, result.stderr
    assert f"Warning: not restored {lib['paths']['a_small.jpg']}: a file now exists at " \
           f"{lib['paths']['a_small.jpg']}; not overwritten" in " ".join(result.stderr.split())
    assert result.stderr.splitlines()[-1] == "Error: 1 files were not restored (see the warnings above)"
    assert Path(lib["paths"]["a_small.jpg"]).read_bytes() == b"a new file with the old name"
    assert Path(lib["paths"]["2019/copies/a_copy.jpg"]).exists()  # the other one came back
    assert f"restored {lib['paths']['2019/copies/a_copy.jpg']}" in result.stdout


def test_copy_across_filesystems_is_verified_and_keeps_the_mtime(review_library, monkeypatch):
    lib = review_library
    shm = Path("/dev/shm")
    real_cross = shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != lib["root"].stat().st_dev
    if real_cross:
        lib["trash"] = Path(os.environ.get("TMPDIR_SHM", shm)) / f"photodedup-test-{os.getpid()}-{id(lib)}"
    else:
        monkeypatch.setattr(moves, "LINK_FIRST", False)  # as if across filesystems
    try:
        keep(lib, "B", "b.jpg")
        original = Path(lib["paths"]["b_q70.jpg"])
        mtime, md5 = original.stat().st_mtime_ns, file_md5(original)
        summary = apply(lib["catalog"], trash_dir=lib["trash"])
        assert [m["method"] for m in summary.moved] == ["copy"]
        moved = Path(summary.moved[0]["trash"])
        assert not original.exists() and file_md5(moved) == md5 and moved.stat().st_mtime_ns == mtime
        assert sorted(p.name for p in moved.parent.iterdir()) == [moved.name]  # no temporary copy left
        undo(lib["catalog"], trash_dir=lib["trash"])
        assert file_md5(original) == md5 and original.stat().st_mtime_ns == mtime
    finally:
        if real_cross:
            import shutil

            shutil.rmtree(lib["trash"], ignore_errors=True)


@pytest.mark.parametrize("stage,copy", [("begun", False), ("linked", False), ("aside", False), ("moved", False),
                                        ("copied", True), ("linked", True), ("aside", True)])
def test_a_kill_mid_apply_loses_nothing_and_the_next_apply_finishes(review_library, stage, copy):
    lib = review_library
    keep(lib, "A", "2019/a.jpg")
    keep(lib, "B", "b.jpg")
    marked = ["2019/copies/a_copy.jpg", "a_small.jpg", "b_q70.jpg"]
    md5s = {n: file_md5(Path(lib["paths"][n])) for n in marked}
    env = {"PHOTODEDUP_TEST_APPLY_KILL": f"{stage}:2"} | ({"PHOTODEDUP_TEST_APPLY_COPY": "1"} if copy else {})
    args = ("apply", "--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]), "--quiet")

    killed = run_cli(*args, env=env)
    assert killed.returncode == -9, killed.stderr

    begun = {e["original"]: e for e in journal(lib) if e["state"] == "begin"}
    for name in marked:  # every file is in place, or in the trash with its journal line
        original = Path(lib["paths"][name])
        if original.exists():
            assert file_md5(original) == md5s[name]
        else:
            assert file_md5(Path(begun[str(original)]["trash"])) == md5s[name]

    finished = run_cli(*args, "--json", env={"PHOTODEDUP_TEST_APPLY_COPY": "1"} if copy else {})
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)
    assert result["recovered"] == (1 if stage in ("linked", "aside", "moved") else 0)
    assert len(result["moved"]) + result["recovered"] + 1 == len(marked)  # plus the one done before the kill
    for name in marked:
        assert not Path(lib["paths"][name]).exists()
    assert not list(lib["trash"].rglob("*.pdpart")) and not list(Path(lib["root"]).rglob("*.pdpart"))
    states: dict[str, list[str]] = {}
    for entry in journal(lib):
        states.setdefault(entry["original"], []).append(entry["state"])
    assert all(s[-1] == "done" for s in states.values()) and len(states) == len(marked)

    undone = undo(lib["catalog"], trash_dir=lib["trash"], paths=[lib["root"]])
    assert len(undone.restored) == len(marked) and undone.refused == []
    assert {n: file_md5(Path(lib["paths"][n])) for n in marked} == md5s


def test_a_torn_journal_line_is_ignored_and_the_next_line_stays_whole(review_library):
    lib = review_library
    lib["trash"].mkdir()
    (lib["trash"] / JOURNAL_NAME).write_text('{"op": "trash", "state": "beg')
    keep(lib, "B", "b.jpg")
    assert len(apply(lib["catalog"], trash_dir=lib["trash"]).moved) == 1
    lines = (lib["trash"] / JOURNAL_NAME).read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["state"] == "done"


def test_cli_dry_run_and_errors(review_library, tmp_path):
    lib = review_library
    keep(lib, "B", "b.jpg")
    result = run_cli("apply", "--dry-run", "--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"would move {lib['paths']['b_q70.jpg']} -> {lib['trash']}/")
    assert "would move 1 files" in lines[-1] and "skipped 0" in lines[-1]
    assert not lib["trash"].exists()

    result = run_cli("undo", "--catalog", str(lib["catalog"]), "--trash-dir", str(tmp_path / "none"))
    assert result.returncode == 3
    assert result.stderr.splitlines()[0] == f"Error: nothing to undo: no journal in {tmp_path / 'none'}"

    result = run_cli("apply", "--catalog", str(tmp_path / "absent.sqlite"))
    assert result.returncode == 4
    assert result.stderr.splitlines()[0] == f"Error: no catalog at {tmp_path / 'absent.sqlite'}"


def test_each_journal_line_is_on_disk_before_its_file_moves(review_library, monkeypatch):
    """A unit test of the journal's durability: record every fsync and link, in order, by path."""
    lib = review_library
    keep(lib, "B", "b.jpg")
    events: list[tuple[str, str]] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def link(src, dst, *args, **kwargs):
        events.append(("link", str(src)))
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(moves.os, "fsync", fsync)
    monkeypatch.setattr(moves.os, "link", link)
    apply(lib["catalog"], trash_dir=lib["trash"])
    journal_path = str(lib["trash"] / JOURNAL_NAME)
    moved = events.index(("link", lib["paths"]["b_q70.jpg"]))
    assert ("fsync", journal_path) in events[:moved]  # the "begin" line is durable before the move
    assert ("fsync", journal_path) in events[moved:]  # and the "done" line after it
    assert [e for e in events if e == ("fsync", journal_path)] == [("fsync", journal_path)] * len(journal(lib))


def test_link_mode_never_replaces_a_file_at_the_destination(review_library, monkeypatch):
    lib = review_library
    keep(lib, "B", "b.jpg")
    intruder = b"someone else's file"

    def appear(stage: str, index: int) -> None:  # the race: a file appears where the move is going
        if stage == "begun":
            begun = [e for e in journal(lib) if e["state"] == "begin"][-1]
            Path(begun["trash"]).parent.mkdir(parents=True, exist_ok=True)
            Path(begun["trash"]).write_bytes(intruder)

    monkeypatch.setattr(moves, "checkpoint", appear)
    summary = apply(lib["catalog"], trash_dir=lib["trash"])
    target = next(lib["trash"].rglob("b_q70.jpg"))
    assert target.read_bytes() == intruder and target.stat().st_nlink == 1  # not replaced, not linked over
    assert Path(lib["paths"]["b_q70.jpg"]).exists()
    assert summary.moved == [] and [Path(f["path"]).name for f in summary.failed] == ["b_q70.jpg"]
    assert summary.failed[0]["reason"] == f"{target} already exists; not overwritten"
