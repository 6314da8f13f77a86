"""``apply`` and ``undo`` when the filesystem says no (issue 13): half-done moves, full and read-only
trash disks, relative trash folders, a file appearing during a copy, kills during undo.

Real filesystems: ``chattr +i`` (an immutable folder refuses the unlink after the link) and small
tmpfs mounts (full, read-only), root only, skipped elsewhere. Only the race of a file appearing at
the destination during a copy is injected (a wrapped ``os.link``/``os.rename`` in this process).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import run_cli

from photodedup import apply as apply_mod
from photodedup import moves
from photodedup.catalog import Catalog
from photodedup.duplicate_groups import decisions
from photodedup.moves import JOURNAL_NAME, file_md5

MARKED = ["2019/copies/a_copy.jpg", "a_small.jpg", "b_q70.jpg"]  # the order apply moves them in


def mark_all(lib: dict) -> dict[str, str]:
    """Keep a.jpg and b.jpg: the three others are marked trash. Returns their md5s."""
    with Catalog(lib["catalog"]) as cat:
        decisions.keep_one(cat, lib["groups"]["A"], lib["ids"]["2019/a.jpg"])
        decisions.keep_one(cat, lib["groups"]["B"], lib["ids"]["b.jpg"])
    return {n: file_md5(Path(lib["paths"][n])) for n in MARKED}


def journal(trash: Path) -> list[dict]:
    return [json.loads(line) for line in (trash / JOURNAL_NAME).read_text().splitlines()]


def statuses(lib: dict) -> dict[str, tuple[str, str | None]]:
    with Catalog(lib["catalog"]) as cat:
        rows = {r["path"]: r for r in cat.files(status=None)}
        trash = {d["file_id"] for d in cat.decisions().values() if d["action"] == "trash"}
    return {n: (rows[p]["status"], "trash" if rows[p]["id"] in trash else None) for n, p in lib["paths"].items()
            if n in MARKED}


@pytest.fixture
def immutable():
    """``immutable(folder)``: ``chattr +i`` (entries can be neither added nor removed), undone afterwards."""
    done: list[Path] = []

    def make(folder: Path) -> None:
        result = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"chattr +i does not work here: {result.stderr.strip()}")
        done.append(folder)

    def release(folder: Path) -> None:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
        done.remove(folder)

    make.release = release
    yield make
    for folder in done:
        subprocess.run(["chattr", "-i", str(folder)], check=False)


def test_a_move_that_cannot_remove_the_source_is_rolled_back_and_reported(review_library, immutable):
    lib = review_library
    md5s = mark_all(lib)
    stuck = Path(lib["paths"]["2019/copies/a_copy.jpg"])
    immutable(stuck.parent)  # the link into the trash works, the unlink of the original does not
    args = ("apply", "--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]))

    first = run_cli(*args)
    assert first.returncode == 10, first.stderr
    assert f"could not move {stuck}: cannot remove it (Operation not permitted); rolled back" in first.stdout
    assert first.stderr.startswith("Error: 1 of 3 files could not be moved")
    assert "Traceback" not in first.stderr
    assert stuck.exists() and stuck.stat().st_nlink == 1 and file_md5(stuck) == md5s["2019/copies/a_copy.jpg"]
    assert [p for p in lib["trash"].rglob("a_copy.jpg*")] == []  # no second link left in the trash
    assert [e["state"] for e in journal(lib["trash"]) if e["original"] == str(stuck)] == ["begin", "aborted"]
    assert statuses(lib)["2019/copies/a_copy.jpg"] == ("ok", "trash")

    again = run_cli(*args, "--json")  # no crash in recovery, the same clear failure
    assert again.returncode == 10 and "Traceback" not in again.stderr
    assert json.loads(again.stdout)["recovered"] == 0
    undone = run_cli("undo", "--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]))
    assert undone.returncode == 0, undone.stderr
    assert all(Path(lib["paths"][n]).exists() for n in MARKED)

    immutable.release(stuck.parent)
    final = run_cli(*args, "--json")
    assert final.returncode == 0, final.stderr
    # the undo kept the review: every file marked trash moves now, the one that failed too
    assert sorted(m["path"] for m in json.loads(final.stdout)["moved"]) == sorted(lib["paths"][n] for n in MARKED)
    assert not stuck.exists()


def test_recovery_goes_on_past_an_entry_it_cannot_resolve(review_library, immutable):
    lib = review_library
    md5s = mark_all(lib)
    stuck = Path(lib["paths"]["2019/copies/a_copy.jpg"])
    args = ("apply", "--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]))
    killed = run_cli(*args, env={"PHOTODEDUP_TEST_APPLY_KILL": "linked:1"})  # linked, not yet unlinked
    assert killed.returncode == -9
    immutable(stuck.parent)

    blocked = run_cli(*args, "--json")
    assert blocked.returncode == 10, blocked.stderr
    assert "Traceback" not in blocked.stderr
    assert f"cannot finish the interrupted trash of {stuck}" in blocked.stderr
    result = json.loads(blocked.stdout)
    assert sorted(Path(m["path"]).name for m in result["moved"]) == ["a_small.jpg", "b_q70.jpg"]

    immutable.release(stuck.parent)
    finished = run_cli(*args, "--json")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["recovered"] == 1
    assert not stuck.exists()
    assert statuses(lib) == {n: ("missing", "trash") for n in MARKED}
    undone = run_cli("undo", "--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]), str(lib["root"]))
    assert undone.returncode == 0, undone.stderr
    assert {n: file_md5(Path(lib["paths"][n])) for n in MARKED} == md5s


def test_a_full_trash_disk_is_a_clear_error_and_leaves_nothing_behind(review_library, tmpfs):
    lib = review_library
    md5s = mark_all(lib)
    trash = tmpfs("1m") / "trash"
    trash.mkdir()
    (trash / moves.MARKER_NAME).write_text("photodedup trash\n")
    filler = trash.parent / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the disk, then free one page: room for the journal
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, filler.stat().st_size - 4096)
    args = ("apply", "--catalog", str(lib["catalog"]), "--trash-dir", str(trash))

    full = run_cli(*args)
    assert full.returncode == 10, full.stderr
    assert "No space left on device" in full.stdout and "Traceback" not in full.stderr
    assert not list(trash.rglob("*.pdpart"))
    assert {n: file_md5(Path(lib["paths"][n])) for n in MARKED} == md5s
    assert statuses(lib) == {n: ("ok", "trash") for n in MARKED}

    filler.unlink()
    retry = run_cli(*args, "--json")
    assert retry.returncode == 0, retry.stderr
    assert "kill" not in retry.stderr and "Warning" not in retry.stderr
    assert len(json.loads(retry.stdout)["moved"]) == 3


def test_a_read_only_trash_is_a_clear_error(review_library, tmpfs):
    lib = review_library
    mark_all(lib)
    fs = tmpfs("1m")
    trash = fs / "trash"
    assert run_cli("apply", "--dry-run", "--catalog", str(lib["catalog"]), "--trash-dir", str(trash)).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    done = run_cli("apply", "--catalog", str(lib["catalog"]), "--trash-dir", str(trash))
    assert done.returncode == 3
    assert done.stderr.startswith(f"Error: cannot write to the trash folder {trash}: Read-only file system")
    assert all(Path(lib["paths"][n]).exists() for n in MARKED)


def test_a_relative_trash_dir_is_stored_absolute(review_library, tmp_path):
    lib = review_library
    md5s = mark_all(lib)
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    applied = run_cli("apply", "--catalog", str(lib["catalog"]), "--trash-dir", "trash", "--json", cwd=here)
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["trash_dir"] == str(here / "trash")
    assert all(Path(e["trash"]).is_absolute() for e in journal(here / "trash"))
    undone = run_cli("undo", "--catalog", str(lib["catalog"]), "--trash-dir", str(here / "trash"), cwd=elsewhere)
    assert undone.returncode == 0, undone.stderr
    assert {n: file_md5(Path(lib["paths"][n])) for n in MARKED} == md5s


def test_copy_mode_never_overwrites_a_file_that_appears_at_the_destination(review_library, monkeypatch):
    lib = review_library
    mark_all(lib)
    monkeypatch.setattr(moves, "LINK_FIRST", False)  # as if across filesystems
    intruder = b"someone else's file"
    real_link, real_rename = os.link, os.rename

    def appear_first(real):  # the race: the destination appears just before the copy is put in place
        def wrapped(src, dst, *args, **kwargs):
            if str(dst).endswith("b_q70.jpg") and str(src).endswith(".pdpart"):
                Path(dst).write_bytes(intruder)
            return real(src, dst, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(moves.os, "link", appear_first(real_link))
    monkeypatch.setattr(moves.os, "rename", appear_first(real_rename))
    summary = apply_mod.apply(lib["catalog"], trash_dir=lib["trash"])
    target = next(lib["trash"].rglob("b_q70.jpg"))
    assert target.read_bytes() == intruder  # not overwritten
    assert Path(lib["paths"]["b_q70.jpg"]).exists()
    assert [Path(f["path"]).name for f in summary.failed] == ["b_q70.jpg"]
    assert "appeared" in summary.failed[0]["reason"]
    assert not list(lib["trash"].rglob("*.pdpart"))


@pytest.mark.parametrize("stage,copy", [("begun", False), ("linked", False), ("moved", False),
                                        ("copied", True), ("linked", True)])
def test_a_kill_during_undo_loses_nothing_and_the_catalog_follows(review_library, stage, copy):
    lib = review_library
    md5s = mark_all(lib)
    copy_env = {"PHOTODEDUP_TEST_APPLY_COPY": "1"} if copy else {}
    base = ("--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]))
    assert run_cli("apply", *base, env=copy_env).returncode == 0
    assert statuses(lib) == {n: ("missing", "trash") for n in MARKED}

    killed = run_cli("undo", *base, env=copy_env | {"PHOTODEDUP_TEST_APPLY_KILL": f"{stage}:2"})
    assert killed.returncode == -9, killed.stderr
    for name in MARKED:  # each file is at its path or in the trash, whole
        path = Path(lib["paths"][name])
        trashed = next(lib["trash"].rglob(name), None)
        assert (path.exists() and file_md5(path) == md5s[name]) or file_md5(trashed) == md5s[name]

    finished = run_cli("undo", *base, "--json", env=copy_env)
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)
    assert result["recovered"] == (1 if stage in ("linked", "moved") else 0)
    assert len(result["restored"]) + result["recovered"] + 1 == len(MARKED)
    assert {n: file_md5(Path(lib["paths"][n])) for n in MARKED} == md5s
    assert not [p for p in lib["trash"].rglob("*") if p.is_file() and p.name.endswith((".jpg", ".pdpart"))]
    assert statuses(lib) == {n: ("ok", "trash") for n in MARKED}  # back, with the review as it was
