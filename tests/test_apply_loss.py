"""Issue 20, "Loss": the apply/undo engine never removes what it did not create, never loses an edit made
while it moves a file, handles 251-byte names across filesystems, keeps folder modes in the trash, says what
a bad trash folder is, takes the catalog lock, refuses a user-made trash inside the library, and undo keeps
the review's decisions.

Real CLI subprocesses (``run_cli``), real files; "another filesystem" is a real tmpfs mount (root only,
skipped elsewhere). Edits during a move are made by ``tests/faulty_cli.py`` at a named stage of the move.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from helpers import run_cli, write_photo

from photodedup.catalog import Catalog
from photodedup.duplicate_groups import decisions
from photodedup.moves import JOURNAL_NAME, MARKER_NAME, file_md5


def pair_library(tmp_path: Path, copy_name: str = "b_copy.jpg", *, folder: str = "") -> dict:
    """``photos/b.jpg`` (kept) and an exact copy ``photos/<folder>/<copy_name>`` (marked trash), scanned by
    the CLI and grouped as ``group`` stores it. Returns {root, catalog, trash, keeper, copy, md5}."""
    root = tmp_path / "photos"
    keeper = write_photo(root / "b.jpg", pattern=2)
    copy = root / folder / copy_name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(keeper, copy)
    catalog = tmp_path / "catalog.sqlite"
    scanned = run_cli("scan", str(root), "--catalog", str(catalog), "--workers", "1", "--quiet")
    assert scanned.returncode == 0, scanned.stderr
    with Catalog(catalog) as cat:
        ids = {p: cat.conn.execute("SELECT id FROM files WHERE path = ?", (str(p),)).fetchone()[0]
               for p in (keeper, copy)}
        _, (group,) = cat.store_group_run({"method": "fixture"}, [
            ("exact", ids[keeper], "first", [(ids[keeper], "exact", 1.0, ""), (ids[copy], "exact", 1.0, "")])])
        decisions.keep_one(cat, group, ids[keeper])
    return {"root": root, "catalog": catalog, "trash": tmp_path / "trash", "keeper": keeper, "copy": copy,
            "md5": file_md5(copy), "ids": ids, "group": group}


def cli(command: str, lib: dict, *args, env: dict | None = None):
    return run_cli(command, "--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]), *args, env=env)


def status(lib: dict, path: Path) -> str:
    with Catalog(lib["catalog"]) as cat:
        return cat.conn.execute("SELECT status FROM files WHERE path = ?", (str(path),)).fetchone()[0]


@pytest.fixture(params=["same", "cross"])
def where(request, tmpfs):
    """The trash on the library's filesystem, or on a tmpfs (another filesystem)."""
    return request.param, (tmpfs("16m") if request.param == "cross" else None)


def place_trash(lib: dict, where) -> None:
    kind, mount = where
    if kind == "cross":
        lib["trash"] = mount / "trash"


# -- 1. temporary names: nothing else uses them, and cleanup removes only what this run made -------------
def test_undo_never_removes_a_user_file_with_a_temporary_looking_name(tmp_path, where):
    lib = pair_library(tmp_path)
    place_trash(lib, where)
    assert cli("apply", lib).returncode == 0
    assert not lib["copy"].exists()
    theirs = write_photo(lib["copy"].with_name(lib["copy"].name + ".partial"), color=(1, 2, 3), pattern=5)
    theirs_md5 = file_md5(theirs)

    undone = cli("undo", lib)
    assert undone.returncode == 0, undone.stderr
    assert file_md5(lib["copy"]) == lib["md5"]
    assert file_md5(theirs) == theirs_md5
    assert sorted(p.name for p in lib["copy"].parent.iterdir()) == ["b.jpg", "b_copy.jpg", "b_copy.jpg.partial"]


@pytest.mark.parametrize("stage", ["begun", "copied"])
def test_finishing_an_interrupted_undo_never_removes_a_user_file(tmp_path, where, stage):
    kind, _ = where
    if stage == "copied" and kind == "same":
        pytest.skip("one filesystem: no copy stage")
    lib = pair_library(tmp_path)
    place_trash(lib, where)
    assert cli("apply", lib).returncode == 0
    theirs = write_photo(lib["copy"].with_name(lib["copy"].name + ".partial"), color=(1, 2, 3), pattern=5)
    theirs_md5 = file_md5(theirs)

    killed = cli("undo", lib, env={"PHOTODEDUP_TEST_APPLY_KILL": f"{stage}:1"})
    assert killed.returncode == -9, killed.stderr
    finished = cli("undo", lib)
    assert finished.returncode == 0, finished.stderr
    assert file_md5(theirs) == theirs_md5
    assert file_md5(lib["copy"]) == lib["md5"]
    # and what the killed run made (its temporary copy) is gone
    assert sorted(p.name for p in lib["copy"].parent.iterdir()) == ["b.jpg", "b_copy.jpg", "b_copy.jpg.partial"]


# -- 2. a file edited while apply moves it keeps the edit ---------------------------------------------------
@pytest.mark.parametrize("stage,mode", [("begun", "rename"), ("linked", "rename"), ("linked", "inplace"),
                                        ("copied", "inplace"), ("checked", "rename"), ("checked", "inplace")])
def test_a_file_edited_while_apply_moves_it_keeps_the_edit(tmp_path, where, stage, mode):
    kind, _ = where
    if stage == "copied" and kind == "same":
        pytest.skip("one filesystem: no copy stage")
    lib = pair_library(tmp_path)
    place_trash(lib, where)
    # the edit keeps the size and the mtime: only the content (or the inode) tells
    moved = cli("apply", lib, "--json", env={"PHOTODEDUP_TEST_APPLY_EDIT": f"{stage}:1:{mode}:{lib['copy']}"})
    assert moved.returncode == 10, moved.stderr
    result = json.loads(moved.stdout)
    assert result["moved"] == []
    assert result["failed"] == [{"path": str(lib["copy"]),
                                 "reason": "it changed while it was being moved (edited?); rolled back: "
                                           "left where it was, no copy made"}]
    assert lib["copy"].read_bytes()[-6:] == b"EDITED"
    assert [p for p in lib["trash"].rglob("*") if p.is_file() and "b_copy" in p.name] == []
    assert status(lib, lib["copy"]) == "ok"
    # the next apply sees the change and skips it
    again = json.loads(cli("apply", lib, "--json").stdout)
    assert again["skipped"] == [{"path": str(lib["copy"]),
                                 "reason": "changed since the scan (md5 differs); scan again"}]


# -- 3. a 251-byte name across filesystems ------------------------------------------------------------------
def test_a_251_byte_name_is_trashed_and_restored(tmp_path, where):
    name = "x" * 247 + ".jpg"
    assert len(name.encode()) == 251
    lib = pair_library(tmp_path, name)
    place_trash(lib, where)
    applied = cli("apply", lib, "--json")
    assert applied.returncode == 0, applied.stderr
    (moved,) = json.loads(applied.stdout)["moved"]
    assert not lib["copy"].exists() and file_md5(Path(moved["trash"])) == lib["md5"]
    assert Path(moved["trash"]).name == name
    undone = cli("undo", lib)
    assert undone.returncode == 0, undone.stderr
    assert file_md5(lib["copy"]) == lib["md5"]
    assert sorted(p.name for p in lib["root"].iterdir()) == ["b.jpg", name]


# -- 4. permissions -------------------------------------------------------------------------------------
def test_the_trash_keeps_folder_modes_and_is_private(tmp_path, where):
    lib = pair_library(tmp_path, folder="private/inner")
    place_trash(lib, where)
    private = lib["root"] / "private"
    private.chmod(0o700)
    (private / "inner").chmod(0o750)
    applied = cli("apply", lib, "--json")
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    mirror = lib["trash"] / result["apply_id"] / private.relative_to("/")
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(lib["trash"]) == 0o700
    assert mode(lib["trash"] / result["apply_id"]) == 0o700
    assert (mode(mirror), mode(mirror / "inner"), mode(mirror.parent)) == (0o700, 0o750, mode(lib["root"]))
    assert mode(lib["trash"] / JOURNAL_NAME) == 0o600
    # undo recreates a deleted folder with the mode it had
    shutil.rmtree(private)
    assert cli("undo", lib).returncode == 0
    assert (mode(private), mode(private / "inner")) == (0o700, 0o750)
    assert file_md5(lib["copy"]) == lib["md5"]


# -- 5. a trash folder that is not a folder -------------------------------------------------------------
def test_a_dangling_symlink_or_a_file_as_trash_folder_says_what_it_is(tmp_path):
    lib = pair_library(tmp_path)
    lib["trash"].symlink_to(tmp_path / "gone")
    for command in ("apply", "undo"):
        result = cli(command, lib)
        assert result.returncode == 3, result.stderr
        assert result.stderr.splitlines()[0] == (f"Error: the trash folder {lib['trash']} is a symbolic link to "
                                                 f"{tmp_path / 'gone'}, which does not exist")
    lib["trash"].unlink()
    lib["trash"].write_bytes(b"a file")
    for command in ("apply", "undo"):
        result = cli(command, lib)
        assert result.returncode == 3, result.stderr
        assert result.stderr.splitlines()[0] == f"Error: the trash folder {lib['trash']} is a file, not a folder"
    assert lib["copy"].exists() and lib["trash"].read_bytes() == b"a file"


# -- 6. apply and undo take the catalog lock ---------------------------------------------------------------
def test_apply_and_undo_wait_for_a_scan_that_holds_the_catalog(tmp_path):
    lib = pair_library(tmp_path)
    with Catalog(lib["catalog"]) as held, held.writer("scan"):  # a scan's hold on the catalog, as scan takes it
        refused = cli("apply", lib)
        assert refused.returncode == 4, refused.stderr
        assert refused.stderr.splitlines()[0] == (f"Error: another photodedup scan (pid {os.getpid()}) "
                                                  f"is writing {lib['catalog']}")
        assert lib["copy"].exists() and not lib["trash"].exists()
    assert cli("apply", lib).returncode == 0
    with Catalog(lib["catalog"]) as held, held.writer("scan"):
        refused = cli("undo", lib)
        assert refused.returncode == 4, refused.stderr
        assert not lib["copy"].exists()
    assert status(lib, lib["copy"]) == "missing"


# -- 7. a trash folder inside the library ---------------------------------------------------------------
def test_a_user_made_trash_folder_inside_a_scanned_root_is_refused(tmp_path):
    lib = pair_library(tmp_path)
    lib["trash"] = lib["root"] / "trash"
    lib["trash"].mkdir()
    refused = cli("apply", lib)
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.splitlines()[0] == (
        f"Error: the trash folder {lib['trash']} is inside the scanned folder {lib['root']} and photodedup "
        "did not make it: a scan would record the trashed files as photos")
    assert lib["copy"].exists() and list(lib["trash"].iterdir()) == []


def test_a_trash_folder_the_tool_makes_inside_a_root_is_marked_and_never_scanned(tmp_path):
    lib = pair_library(tmp_path)
    lib["trash"] = lib["root"] / "trash"
    assert cli("apply", lib).returncode == 0
    assert (lib["trash"] / MARKER_NAME).is_file()
    rescanned = run_cli("scan", str(lib["root"]), "--catalog", str(lib["catalog"]), "--workers", "1", "--json")
    assert rescanned.returncode == 0, rescanned.stderr
    with Catalog(lib["catalog"]) as cat:
        assert not [r for r in cat.files(status=None) if r["path"].startswith(str(lib["trash"]))]


def test_a_kill_while_the_trash_folder_is_made_leaves_no_staging_folder_behind(tmp_path):
    """Found by benchmarks/chaos.py: a kill between making the marked staging folder and renaming it into
    place left ``.trash.<random>.pdpart`` inside the library for good."""
    lib = pair_library(tmp_path)
    lib["trash"] = lib["root"] / "trash"
    killed = cli("apply", lib, env={"PHOTODEDUP_TEST_APPLY_KILL": "staged:0"})
    assert killed.returncode == -9, killed.stderr
    assert [p.name.endswith(".pdpart") for p in lib["root"].iterdir() if p.is_dir()] == [True]
    applied = cli("apply", lib, "--json")
    assert applied.returncode == 0, applied.stderr
    assert sorted(p.name for p in lib["root"].iterdir()) == ["b.jpg", "trash"]
    assert (lib["trash"] / MARKER_NAME).is_file() and not lib["copy"].exists()


def test_scan_never_records_a_folder_holding_a_trash_journal_and_a_trashed_copy_is_never_a_keeper(tmp_path):
    """An older version used a user-made trash inside the library (no marker) and a scan recorded the trashed
    copy: a rescan drops it, and until then apply never counts it as the surviving copy."""
    lib = pair_library(tmp_path)
    old_trash = lib["root"] / "old-trash"
    trashed = old_trash / "20260101-000000-abcd" / lib["copy"].relative_to("/")
    trashed.parent.mkdir(parents=True)
    os.rename(lib["keeper"], trashed)  # the keeper was trashed by an older apply into a user-made folder
    (old_trash / JOURNAL_NAME).write_text(json.dumps({"op": "trash", "state": "done", "apply": "x"}) + "\n")
    conn = sqlite3.connect(lib["catalog"])  # ... and an old scan recorded it there, the keeper's path missing
    names = [d[0] for d in conn.execute("SELECT * FROM files LIMIT 0").description]
    row = dict(zip(names, conn.execute("SELECT * FROM files WHERE id = ?", (lib["ids"][lib["keeper"]],)).fetchone(),
                   strict=True))
    conn.execute(f"INSERT INTO files ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                 list((row | {"id": None, "path": str(trashed)}).values()))
    conn.execute("UPDATE files SET status = 'missing', reason = 'not found on the last scan' WHERE id = ?",
                 (row["id"],))
    conn.commit()
    kept = conn.execute("SELECT id FROM files WHERE path = ?", (str(trashed),)).fetchone()[0]
    conn.close()
    with Catalog(lib["catalog"]) as cat:
        _, (group,) = cat.store_group_run({"method": "fixture"}, [
            ("exact", kept, "first", [(kept, "exact", 1.0, ""), (lib["ids"][lib["copy"]], "exact", 1.0, "")])])
        decisions.keep_one(cat, group, kept)

    result = json.loads(cli("apply", lib, "--json").stdout)
    assert result["moved"] == [] and lib["copy"].exists()
    assert result["skipped"] == [{"path": str(lib["copy"]), "reason": f"would trash every member of group {group}: "
                                  "no unchanged member would remain"}]
    rescanned = run_cli("scan", str(lib["root"]), "--catalog", str(lib["catalog"]), "--workers", "1", "--quiet")
    assert rescanned.returncode == 0, rescanned.stderr
    assert status(lib, trashed) == "missing"


# -- 8. undo keeps the review ---------------------------------------------------------------------------
def test_undo_leaves_the_decisions_as_they_were_before_the_apply(tmp_path):
    lib = pair_library(tmp_path)
    with Catalog(lib["catalog"]) as cat:
        before = {k: (r["action"], r["md5"], r["group_id"]) for k, r in cat.decisions().items()}
    assert sorted(a for a, _, _ in before.values()) == ["keep", "trash"]
    assert cli("apply", lib).returncode == 0
    assert cli("undo", lib).returncode == 0
    with Catalog(lib["catalog"]) as cat:
        assert {k: (r["action"], r["md5"], r["group_id"]) for k, r in cat.decisions().items()} == before


# -- next of the class: a kill between the journal's "done" and the catalog update -------------------------
def test_a_kill_after_the_journal_line_leaves_the_catalog_caught_up_by_the_next_run(tmp_path):
    lib = pair_library(tmp_path)
    killed = cli("apply", lib, env={"PHOTODEDUP_TEST_APPLY_KILL": "journaled:1"})
    assert killed.returncode == -9 and not lib["copy"].exists()
    assert status(lib, lib["copy"]) == "ok"  # the catalog is behind the journal
    assert cli("apply", lib).returncode == 0
    assert status(lib, lib["copy"]) == "missing"

    killed = cli("undo", lib, env={"PHOTODEDUP_TEST_APPLY_KILL": "journaled:1"})
    assert killed.returncode == -9 and file_md5(lib["copy"]) == lib["md5"]
    assert status(lib, lib["copy"]) == "missing"
    again = cli("undo", lib)
    assert again.stderr.splitlines()[0] == "Error: nothing to undo: every trashed file has been restored"
    assert status(lib, lib["copy"]) == "ok"


def test_on_a_filesystem_without_hard_links_the_copy_never_replaces_a_file_that_appears(tmp_path, monkeypatch):
    """Unit test of ``_put_in_place`` alone: no hard links (EPERM, as on FAT), and a file that appears at the
    destination right after the check for it (the race, made certain by a check that sees nothing)."""
    from photodedup import moves as engine

    temp, dst = tmp_path / ".x.jpg.0123456789ab.pdpart", tmp_path / "x.jpg"
    temp.write_bytes(b"our copy")
    dst.write_bytes(b"someone else's photo")

    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(engine.os, "link", no_links)
    monkeypatch.setattr(engine.os.path, "lexists", lambda path: False)
    with pytest.raises(engine.SafetyError, match="appeared during the copy; not overwritten"):
        engine._put_in_place(temp, dst, list(os.stat(temp))[:2])
    assert dst.read_bytes() == b"someone else's photo" and temp.read_bytes() == b"our copy"


def test_a_temporary_copy_that_a_scan_recorded_is_not_ok_once_recovery_removes_it(tmp_path, tmpfs):
    lib = pair_library(tmp_path)
    lib["trash"] = tmpfs("16m") / "trash"
    assert cli("apply", lib).returncode == 0
    assert cli("undo", lib, env={"PHOTODEDUP_TEST_APPLY_KILL": "copied:1"}).returncode == -9
    (temp,) = [p for p in lib["copy"].parent.iterdir() if p.name.endswith(".pdpart")]
    assert run_cli("scan", str(lib["root"]), "--catalog", str(lib["catalog"]), "--workers", "1").returncode == 0
    assert status(lib, temp) == "ok"  # a scan between the kill and the recovery takes it for a photo
    assert cli("undo", lib).returncode == 0
    assert not temp.exists() and status(lib, temp) == "missing"
