"""The journalled-move engine (photodedup/moves.py) in process: a move by link and by copy leaves nothing of
its own behind and syncs both folders, a stop at each stage (the ``checkpoint`` seam raising, as a kill
would stop it) is finished or rolled back by ``recover`` without losing the file, an edit between the check
and the removal is put back, and the small pieces (temporary names, ``_remove_ours``, the trash folder's
checks) keep their rules. What ``benchmarks/mutate.py --module moves`` runs first; the real kills are
tests/test_apply_faults.py's."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from photodedup import moves
from photodedup.catalog import Catalog
from photodedup.errors import BadInputError, SafetyError
from photodedup.moves import Journal, file_md5, journaled_move, recover


class Killed(BaseException):
    """What a kill at a checkpoint looks like in process: nothing after it runs, no ``aborted`` line."""


@pytest.fixture
def source(tmp_path) -> dict:
    folder = tmp_path / "photos" / "2020"
    folder.mkdir(parents=True)
    path = folder / "IMG_1.jpg"
    path.write_bytes(b"\xff\xd8 photo bytes " * 1000)
    trash = tmp_path / "trash"
    trash.mkdir()
    item = {"file_id": 7, "path": str(path), "md5": file_md5(path), "size": path.stat().st_size}
    return {"path": path, "item": item, "trash": trash, "dest": trash / "A1" / path.relative_to("/"),
            "journal": Journal(trash / moves.JOURNAL_NAME)}


def leftovers(*folders: Path) -> list[str]:
    return sorted(p.name for f in folders if f.exists() for p in f.iterdir() if p.name.endswith(".pdpart"))


@pytest.fixture(params=[True, False], ids=["link", "copy"])
def link_first(request, monkeypatch) -> bool:
    monkeypatch.setattr(moves, "LINK_FIRST", request.param)
    return request.param


def test_a_move_leaves_only_the_destination_and_syncs_both_folders(source, link_first, monkeypatch):
    synced = []
    real_fsync_dir = moves._fsync_dir
    monkeypatch.setattr(moves, "_fsync_dir", lambda folder: (synced.append(Path(folder)), real_fsync_dir(folder)))
    data = source["path"].read_bytes()
    method = journaled_move(source["journal"], "trash", "A1", source["item"], source["dest"], 1)
    assert method == ("link" if link_first else "copy")
    assert source["dest"].read_bytes() == data and not source["path"].exists()
    assert synced == [source["dest"].parent, source["path"].parent]  # the new name, then the removal
    assert leftovers(source["path"].parent, source["dest"].parent) == []
    assert list(source["path"].parent.iterdir()) == []
    entries = source["journal"].entries()
    assert [(e["state"], e["op"], e["original"], e["trash"]) for e in entries] == [
        ("begin", "trash", str(source["path"]), str(source["dest"])),
        *([("temp", "trash", str(source["path"]), str(source["dest"]))] if not link_first else []),
        ("done", "trash", str(source["path"]), str(source["dest"]))]


def test_the_trash_keeps_the_folder_modes_of_the_library(source):
    os.chmod(source["path"].parent, 0o751)
    journaled_move(source["journal"], "trash", "A1", source["item"], source["dest"], 1)
    assert oct(os.stat(source["dest"].parent).st_mode & 0o777) == oct(0o751)


def test_a_destination_that_exists_is_never_replaced(source, link_first):
    source["dest"].parent.mkdir(parents=True)
    source["dest"].write_bytes(b"someone else's")
    with pytest.raises(SafetyError, match="already exists|appeared during the copy"):
        journaled_move(source["journal"], "trash", "A1", source["item"], source["dest"], 1)
    assert source["dest"].read_bytes() == b"someone else's" and source["path"].exists()
    assert leftovers(source["dest"].parent) == []


def test_an_edit_between_the_check_and_the_removal_is_put_back(source, link_first, monkeypatch):
    # the same size and modification time, other bytes: only the md5 tells
    path = source["path"]
    st = path.stat()

    def edit(stage, index):
        if stage == "checked":
            path.write_bytes(b"X" * st.st_size)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    monkeypatch.setattr(moves, "checkpoint", edit)
    synced = []
    real_fsync_dir = moves._fsync_dir
    monkeypatch.setattr(moves, "_fsync_dir", lambda folder: (synced.append(Path(folder)), real_fsync_dir(folder)))
    with pytest.raises(SafetyError, match="changed while it was being moved"):
        journaled_move(source["journal"], "trash", "A1", source["item"], source["dest"], 1)
    assert path.read_bytes() == b"X" * st.st_size and not source["dest"].exists()
    assert leftovers(path.parent, source["dest"].parent) == []
    assert synced[-1] == source["dest"].parent  # the taken-back copy's removal is on disk before the error


def stop_at(monkeypatch, wanted: str) -> None:
    def checkpoint(stage, index):
        if stage == wanted:
            raise Killed(stage)
    monkeypatch.setattr(moves, "checkpoint", checkpoint)


@pytest.mark.parametrize("stage, link, finished", [
    ("begun", True, 0), ("linked", True, 1), ("checked", True, 1), ("aside", True, 1),
    ("copied", False, 0), ("linked", False, 1)])
def test_recover_finishes_or_rolls_back_a_stopped_move_and_loses_nothing(review_library, source, monkeypatch,
                                                                         stage, link, finished):
    monkeypatch.setattr(moves, "LINK_FIRST", link)
    data = source["path"].read_bytes()
    stop_at(monkeypatch, stage)
    with pytest.raises(Killed):
        journaled_move(source["journal"], "trash", "A1", source["item"], source["dest"], 1)
    monkeypatch.setattr(moves, "checkpoint", lambda stage, index: None)
    with Catalog(review_library["catalog"]) as cat:
        assert recover(source["journal"], cat) == (finished, [])
    kept = source["dest"] if finished else source["path"]
    gone = source["path"] if finished else source["dest"]
    assert kept.read_bytes() == data and not gone.exists()
    assert leftovers(source["path"].parent, source["dest"].parent) == []
    assert list(source["path"].parent.iterdir()) == ([] if finished else [source["path"]])
    last = source["journal"].entries()[-1]
    assert (last["state"], last.get("method"), last.get("reason")) == (
        ("done", "recovered", None) if finished else ("aborted", None, "stopped before the file moved"))


def test_recover_catches_the_catalog_up_with_a_finished_move(review_library):
    lib = review_library
    from photodedup.apply import apply
    from photodedup.duplicate_groups import decisions as groups
    with Catalog(lib["catalog"]) as cat:
        groups.keep_one(cat, lib["groups"]["B"], lib["ids"]["b.jpg"])
    apply(lib["catalog"], trash_dir=lib["trash"])
    path = lib["paths"]["b_q70.jpg"]
    with Catalog(lib["catalog"]) as cat:  # as if killed between the done line and the catalog update
        cat.conn.execute("UPDATE files SET status = 'ok', reason = NULL WHERE path = ?", (path,))
        cat.conn.commit()
        assert recover(Journal(lib["trash"] / moves.JOURNAL_NAME), cat) == (0, [])
        row = cat.file(lib["ids"]["b_q70.jpg"])
        assert row["status"] == "missing" and row["reason"].startswith(f"in the trash: {lib['trash']}")


def test_undo_removes_the_apply_s_emptied_folders(review_library):
    lib = review_library
    from photodedup.apply import apply, undo
    from photodedup.duplicate_groups import decisions as groups
    with Catalog(lib["catalog"]) as cat:
        groups.keep_one(cat, lib["groups"]["A"], lib["ids"]["2019/a.jpg"])
    summary = apply(lib["catalog"], trash_dir=lib["trash"])
    assert oct(os.stat(lib["trash"]).st_mode & 0o777) == oct(0o700)
    undo(lib["catalog"], trash_dir=lib["trash"])
    assert not (lib["trash"] / summary.apply_id).exists()
    assert sorted(p.name for p in lib["trash"].iterdir()) == [".lock", ".photodedup-trash", "journal.jsonl"]


# -- pieces ------------------------------------------------------------------------------------------
def test_a_temporary_name_stays_within_255_bytes_and_beside_its_file():
    temp = moves._temp_path(Path("/t") / ("é" * 200))
    assert len(os.fsencode(temp.name)) <= 255 and temp.parent == Path("/t")
    long = moves._temp_path(Path("/t") / ("x" * 300))
    assert len(os.fsencode(long.name)) == 255
    assert long.name.startswith(".xxx") and long.name.endswith(".pdpart")
    short = moves._temp_path(Path("/t/IMG.jpg")).name
    assert short.startswith(".IMG.jpg.") and len(short) == len(".IMG.jpg.") + 12 + len(".pdpart")


def test_remove_ours_removes_only_the_file_it_made(tmp_path):
    path = tmp_path / "f"
    assert not moves._remove_ours(path, None)  # nothing there
    path.write_bytes(b"data")
    st = path.stat()
    assert not moves._remove_ours(path, [st.st_dev, st.st_ino + 1])  # another file
    assert not moves._remove_ours(path, None)  # unrecorded and not empty
    assert moves._remove_ours(path, [st.st_dev, st.st_ino]) and not path.exists()
    path.write_bytes(b"")
    assert moves._remove_ours(path, None) and not path.exists()  # unrecorded but empty
    path.write_bytes(b"data")
    other = tmp_path / "g"
    os.link(path, other)
    assert moves._remove_ours(other, [0, 0], also=path.stat()) and path.exists()  # another name of the source
    folder = tmp_path / "d"
    folder.mkdir()
    assert not moves._remove_ours(folder, None) and folder.exists()


def test_put_back_never_replaces_a_file(tmp_path):
    aside, src = tmp_path / ".aside", tmp_path / "photo.jpg"
    aside.write_bytes(b"earlier")
    src.write_bytes(b"newer save")
    assert not moves._put_back(aside, src)
    assert (aside.read_bytes(), src.read_bytes()) == (b"earlier", b"newer save")
    src.unlink()
    assert moves._put_back(aside, src) and src.read_bytes() == b"earlier" and not aside.exists()


def test_the_trash_path_must_be_a_folder(tmp_path):
    assert moves.check_is_folder(tmp_path / "not yet") is None
    assert moves.check_is_folder(tmp_path) is None
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(BadInputError, match=r"is a file, not a folder"):
        moves.check_is_folder(tmp_path / "file")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(BadInputError, match=r"is a symbolic link to .*nowhere, which does not exist"):
        moves.check_is_folder(tmp_path / "dangling")


def test_a_torn_journal_line_is_named_by_its_number(tmp_path, caplog):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(state="begin", op="trash")
    with open(journal.path, "ab") as handle:
        handle.write(b'{"state": "do')  # a kill while writing
    journal.append(state="done", op="trash")
    with caplog.at_level(logging.WARNING, logger="photodedup.moves"):
        assert [e["state"] for e in journal.entries()] == ["begin", "done"]
    assert "journal.jsonl line 2 is torn" in caplog.text


def test_a_stale_staging_folder_beside_the_trash_is_removed_and_nothing_else(tmp_path):
    trash = tmp_path / "trash"
    stale = moves._temp_path(trash)
    stale.mkdir()
    (stale / moves.MARKER_NAME).write_bytes(moves._MARKER_TEXT)
    kept = moves._temp_path(trash)
    kept.mkdir()
    (kept / moves.MARKER_NAME).write_bytes(moves._MARKER_TEXT)
    (kept / "photo.jpg").write_bytes(b"not ours to remove")
    lookalike = tmp_path / (stale.name[:-len(".pdpart") - 12] + "notahexname!.pdpart")
    lookalike.mkdir()
    (lookalike / moves.MARKER_NAME).write_bytes(moves._MARKER_TEXT)
    with moves.locked(trash, create=True):
        pass
    assert not stale.exists() and kept.exists() and lookalike.exists()
    assert (trash / moves.MARKER_NAME).read_bytes() == moves._MARKER_TEXT
    with moves.locked(trash, create=True):  # a second time: the marker is there already
        pass


def test_catching_up_leaves_a_restored_file_and_relinks_shots_only_after_a_scan_marked_one_missing(
        review_library, monkeypatch):
    lib = review_library
    from photodedup import media
    from photodedup.apply import apply, undo
    from photodedup.catalog import in_trash
    from photodedup.duplicate_groups import decisions as groups
    with Catalog(lib["catalog"]) as cat:
        groups.keep_one(cat, lib["groups"]["B"], lib["ids"]["b.jpg"])
    apply(lib["catalog"], trash_dir=lib["trash"])
    relinked = []
    monkeypatch.setattr(media, "link_shots", lambda cat: relinked.append(True))
    path = lib["paths"]["b_q70.jpg"]
    journal = Journal(lib["trash"] / moves.JOURNAL_NAME)
    with Catalog(lib["catalog"]) as cat:  # a scan after a kill: the trashed file is just "missing"
        cat.conn.execute("UPDATE files SET status = 'missing', reason = 'gone', trashed_to = NULL WHERE path = ?",
                         (path,))
        cat.conn.commit()
        recover(journal, cat)
        assert in_trash(cat.file(lib["ids"]["b_q70.jpg"]))
    assert relinked == [True]
    undo(lib["catalog"], trash_dir=lib["trash"])
    with Catalog(lib["catalog"]) as cat:
        recover(journal, cat)
        assert cat.file(lib["ids"]["b_q70.jpg"])["status"] == "ok"
    assert relinked == [True]


def test_a_stopped_move_that_cannot_be_finished_now_is_reported_and_left(review_library, source, monkeypatch):
    stop_at(monkeypatch, "linked")
    with pytest.raises(Killed):
        journaled_move(source["journal"], "trash", "A1", source["item"], source["dest"], 1)
    monkeypatch.setattr(moves, "checkpoint", lambda stage, index: None)

    def failing(folder):
        raise OSError(5, "Input/output error", str(folder))

    monkeypatch.setattr(moves, "_fsync_dir", failing)
    with Catalog(review_library["catalog"]) as cat:
        finished, unresolved = recover(source["journal"], cat)
    folder = source["path"].parent
    assert (finished, unresolved) == (0, [{"path": str(source["path"]), "reason": (
        f"cannot finish the interrupted trash of {source['path']}: Input/output error: {folder}; left as it is")}])
