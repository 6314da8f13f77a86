"""Files are identities, not paths: one folder reached by two paths, hard links, and huge files.

Through the real path: the CLI in a subprocess on a catalog in tmp_path; decisions are made as the
review page makes them (``decisions.accept_suggestions``).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import cli_command, run_cli, write_photo
from PIL import Image

from photodedup.catalog import Catalog
from photodedup.duplicate_groups import current_groups, decisions
from photodedup.moves import JOURNAL_NAME, MARKER_NAME, file_md5


def library(root: Path) -> Path:
    """x.jpg and its exact copy x_copy.jpg, and y.jpg (no duplicate)."""
    x = write_photo(root / "x.jpg", size=(400, 300), pattern=1)
    shutil.copyfile(x, root / "x_copy.jpg")
    noise(root / "y.jpg")
    return root


def noise(path: Path) -> Path:
    """A photo like no other (random pixels, seeded)."""
    import numpy as np

    pixels = np.random.default_rng(7).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def accept_every_suggestion(db: Path) -> None:
    with Catalog(db) as cat:
        decisions.accept_suggestions(cat, [g.id for g in current_groups(cat)])


def cli_json(*args) -> dict:
    done = run_cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def contents(folder: Path) -> dict[str, str]:
    return {p.name: file_md5(p) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def bind_mount(tmp_path):
    """``bind_mount(source, point)``: ``mount --bind`` (root only), unmounted at the end."""
    mounted: list[Path] = []

    def mount(source: Path, point: Path) -> None:
        point.mkdir()
        done = subprocess.run(["mount", "--bind", str(source), str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"mount --bind is not possible here: {done.stderr.strip() or done.returncode}")
        mounted.append(point)

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=True)


@pytest.mark.parametrize("how", ["symlink", "bind mount"])
def test_one_folder_reached_by_two_paths_is_recorded_once_and_keeps_every_photo(tmp_path, how, bind_mount):
    real = library(tmp_path / "real")
    alias = tmp_path / "alias"
    if how == "symlink":
        os.symlink(real, alias)
    else:
        bind_mount(real, alias)
    db, trash = tmp_path / "c.sqlite", tmp_path / "trash"
    before = contents(real)

    first = cli_json("scan", real, "--catalog", db, "-q")
    second = cli_json("scan", alias, "--catalog", db, "-q")
    assert (first["new"], second["new"], second["unchanged"]) == (3, 0, 3)
    assert second["notes"] == [f"{alias} is the folder {real} (reached by another path): "
                               f"its files are recorded once, under {real}"]
    with Catalog(db) as cat:
        assert sorted(r["path"] for r in cat.files()) == [str(real / n) for n in ("x.jpg", "x_copy.jpg", "y.jpg")]

    grouped = cli_json("group", "--catalog", db)
    assert [[m["path"] for m in g["members"]] for g in grouped["groups"]] == [[str(real / "x.jpg"),
                                                                              str(real / "x_copy.jpg")]]
    accept_every_suggestion(db)
    applied = cli_json("apply", "--catalog", db, "--trash-dir", trash)
    assert [m["path"] for m in applied["moved"]] == [str(real / "x_copy.jpg")]
    assert contents(real) == {n: md5 for n, md5 in before.items() if n != "x_copy.jpg"}


def test_a_root_inside_another_root_is_scanned_once(tmp_path):
    real = library(tmp_path / "real")
    write_photo(real / "sub" / "z.jpg", size=(300, 200), color=(200, 200, 40), pattern=3)
    os.symlink(real / "sub", tmp_path / "sub-link")
    os.symlink(real / "sub", real / "z-link")  # walked before sub/: still recorded where it lives
    db = tmp_path / "c.sqlite"
    done = cli_json("scan", real, tmp_path / "sub-link", real, "--catalog", db, "-q")
    assert (done["files"], done["new"]) == (4, 4)
    with Catalog(db) as cat:
        assert str(real / "sub" / "z.jpg") in [r["path"] for r in cat.files()]
    assert done["notes"] == [f"{tmp_path / 'sub-link'} is inside {real}: scanned once, as part of it",
                             f"{real} was given twice: scanned once"]


def old_catalog_with_alias_rows(tmp_path, alias: Path, real: Path, db: Path) -> None:
    """What an earlier version recorded after `scan real` and `scan alias`: every file under both paths."""
    assert run_cli("scan", real, "--catalog", db, "-q").returncode == 0
    with Catalog(db) as cat:
        rows = [dict(r) for r in cat.files()]
        for row in rows:
            del row["id"]
            row.update(path=row["path"].replace(str(real), str(alias)), root=str(alias))
        cat.record_files(rows)


def test_a_catalog_that_holds_one_file_under_two_paths_never_pairs_or_trashes_them(tmp_path):
    real = library(tmp_path / "real")
    alias = tmp_path / "alias"
    os.symlink(real, alias)
    db, trash = tmp_path / "c.sqlite", tmp_path / "trash"
    old_catalog_with_alias_rows(tmp_path, alias, real, db)
    before = contents(real)

    grouped = cli_json("group", "--catalog", db)
    assert [[m["path"] for m in g["members"]] for g in grouped["groups"]] == [[str(alias / "x.jpg"),
                                                                              str(alias / "x_copy.jpg")]]
    assert [m["other_names"] for m in grouped["groups"][0]["members"]] == [[str(real / "x.jpg")],
                                                                           [str(real / "x_copy.jpg")]]
    # a grouping stored by an earlier version pairs the two names of each file: apply refuses those
    with Catalog(db) as cat:
        ids = {r["path"]: r["id"] for r in cat.files()}
        keeper, other = ids[str(alias / "x.jpg")], ids[str(real / "x.jpg")]
        cat.store_group_run({"method": "old"}, [("exact", keeper, "first by path",
                                                 [(keeper, "keeper", 1.0, ""), (other, "exact", 1.0, "")])])
    accept_every_suggestion(db)
    applied = cli_json("apply", "--catalog", db, "--trash-dir", trash)
    assert applied["moved"] == []
    assert applied["skipped"] == [{"path": str(real / "x.jpg"),
                                   "reason": f"the same file as {alias / 'x.jpg'} (one file reached by two "
                                             "paths): trashing it would remove both"}]
    assert contents(real) == before


def test_hard_links_are_the_same_file_with_nothing_to_free(tmp_path):
    root = tmp_path / "photos"
    x = write_photo(root / "x.jpg", size=(400, 300), pattern=1)
    os.link(x, root / "x_link.jpg")
    noise(root / "y.jpg")
    db, trash = tmp_path / "c.sqlite", tmp_path / "trash"
    scanned = cli_json("scan", root, "--catalog", db, "-q")
    assert (scanned["new"], scanned["hard_links"]) == (3, 1)

    grouped = cli_json("group", "--catalog", db)
    assert grouped["groups"] == []
    assert grouped["same_files"] == [{"paths": [str(x), str(root / "x_link.jpg")], "kind": "hard links",
                                      "note": "the same file (hard links): nothing to free"}]
    text = run_cli("group", "--catalog", db)
    assert f"same file: {x} = {root / 'x_link.jpg'} (hard links: nothing to free)" in text.stdout

    # a grouping stored by an earlier version pairs the two names: apply frees nothing, so moves nothing
    with Catalog(db) as cat:
        ids = {r["path"]: r["id"] for r in cat.files()}
        keeper, link = ids[str(x)], ids[str(root / "x_link.jpg")]
        cat.store_group_run({"method": "old"}, [("exact", keeper, "first by path",
                                                 [(keeper, "keeper", 1.0, ""), (link, "exact", 1.0, "")])])
    accept_every_suggestion(db)
    applied = cli_json("apply", "--catalog", db, "--trash-dir", trash)
    assert (applied["moved"], applied["bytes_moved"]) == ([], 0)
    assert applied["skipped"] == [{"path": str(root / "x_link.jpg"),
                                   "reason": f"the same file as {x} (a hard link): trashing it frees nothing"}]
    with x.open("ab") as handle:  # an edit of the keeper is an edit of the other name, which is still there
        handle.write(b"edited")
    assert (root / "x_link.jpg").read_bytes() == x.read_bytes()


def test_hard_links_of_a_file_with_a_copy_go_with_it_as_one_member(tmp_path):
    root = library(tmp_path / "photos")
    os.link(root / "x_copy.jpg", root / "x_copy_link.jpg")
    db, trash = tmp_path / "c.sqlite", tmp_path / "trash"
    cli_json("scan", root, "--catalog", db, "-q")
    grouped = cli_json("group", "--catalog", db)
    members = grouped["groups"][0]["members"]
    assert [(m["path"], m.get("other_names", [])) for m in members] == [
        (str(root / "x.jpg"), []), (str(root / "x_copy.jpg"), [str(root / "x_copy_link.jpg")])]
    accept_every_suggestion(db)
    applied = cli_json("apply", "--catalog", db, "--trash-dir", trash)
    assert applied["moved"] == []
    assert applied["skipped"] == [{"path": str(root / "x_copy.jpg"),
                                   "reason": f"the same file as {root / 'x_copy_link.jpg'} (a hard link): "
                                             "trashing it frees nothing"}]


# -- huge files --------------------------------------------------------------------------------------
#: Every process of the command (workers too) may map 3 GiB at most: reading 6 GiB whole fails.
LIMITED = {resource.RLIMIT_AS: 3 << 30}


def sparse_tiff(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (10, 20, 30)).save(path, "TIFF")
    with path.open("r+b") as handle:
        handle.truncate(6 << 30)  # sparse: 6 GiB that use no disk
    return path


def test_a_huge_sparse_file_is_refused_unread_and_the_scan_goes_on(tmp_path):
    root = tmp_path / "photos"
    write_photo(root / "a.jpg")
    huge = sparse_tiff(root / "huge.tif")
    db = tmp_path / "c.sqlite"
    for _ in range(2):  # a rerun must not crash at the same file either
        done = run_cli("scan", root, "--catalog", db, "--json", "-q", "--workers", "2", limits=LIMITED, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert json.loads(done.stdout)["error_kinds"] == {"too-large": 1}
    with Catalog(db) as cat:
        assert [Path(r["path"]).name for r in cat.files()] == ["a.jpg"]
        (row,) = cat.files(status="error")
    assert (row["path"], row["error_kind"], row["size"], row["md5"]) == (str(huge), "too-large", 6 << 30, None)
    assert row["reason"] == "refused before reading: 6.4 GB is over the limit of 1.9 GB for one image"


def test_a_parquet_export_groups_hard_links_as_one_file(tmp_path):
    root = library(tmp_path / "photos")
    os.link(root / "x.jpg", root / "x_link.jpg")
    db, out = tmp_path / "c.sqlite", tmp_path / "lib.parquet"
    cli_json("scan", root, "--catalog", db, "-q")
    cli_json("export-parquet", out, "--catalog", db)
    grouped = cli_json("group", "--parquet", out, "--evidence", "exact", "--evidence", "perceptual")
    assert [[(m["path"], m.get("other_names", [])) for m in g["members"]] for g in grouped["groups"]] == [
        [(str(root / "x.jpg"), [str(root / "x_link.jpg")]), (str(root / "x_copy.jpg"), [])]]
    assert grouped["same_files"] == [{"paths": [str(root / "x.jpg"), str(root / "x_link.jpg")], "kind": "hard links",
                                      "note": "the same file (hard links): nothing to free"}]


def test_undo_finds_a_file_named_through_a_symlinked_folder(tmp_path):
    real = library(tmp_path / "real")
    alias = tmp_path / "alias"
    os.symlink(real, alias)
    db, trash = tmp_path / "c.sqlite", tmp_path / "trash"
    cli_json("scan", alias, "--catalog", db, "-q")  # recorded under real/
    cli_json("group", "--catalog", db)
    accept_every_suggestion(db)
    applied = cli_json("apply", "--catalog", db, "--trash-dir", trash)
    assert [m["path"] for m in applied["moved"]] == [str(real / "x_copy.jpg")]
    undone = cli_json("undo", alias / "x_copy.jpg", "--catalog", db, "--trash-dir", trash)
    assert undone["restored"] == [{"path": str(real / "x_copy.jpg"), "trash": applied["moved"][0]["trash"]}]
    assert file_md5(real / "x_copy.jpg") == file_md5(real / "x.jpg")


def test_undo_finds_a_file_named_through_a_bind_mount(tmp_path, bind_mount):
    """Found by benchmarks/chaos.py: the catalog named the library by its bind mount (scanned first) and
    ``undo real/`` said "not in the trash journal", leaving every file in the trash."""
    real = library(tmp_path / "real")
    alias = tmp_path / "alias"
    bind_mount(real, alias)
    db, trash = tmp_path / "c.sqlite", tmp_path / "trash"
    cli_json("scan", alias, "--catalog", db, "-q")  # recorded under alias/
    cli_json("group", "--catalog", db)
    accept_every_suggestion(db)
    applied = cli_json("apply", "--catalog", db, "--trash-dir", trash)
    assert [m["path"] for m in applied["moved"]] == [str(alias / "x_copy.jpg")]
    undone = cli_json("undo", real, "--catalog", db, "--trash-dir", trash)
    assert (undone["restored"], undone["refused"]) == \
        ([{"path": str(alias / "x_copy.jpg"), "trash": applied["moved"][0]["trash"]}], [])
    assert file_md5(real / "x_copy.jpg") == file_md5(real / "x.jpg")


def test_a_reference_folder_named_through_a_bind_mount_is_still_the_reference(tmp_path, bind_mount):
    real = tmp_path / "real"
    x = write_photo(real / "a" / "x.jpg", size=(400, 300), pattern=1)
    (real / "b").mkdir()
    shutil.copyfile(x, real / "b" / "x.jpg")
    os.utime(real / "b" / "x.jpg", ns=(x.stat().st_mtime_ns + 10**9,) * 2)  # the later copy: not the keeper by age
    alias = tmp_path / "alias"
    bind_mount(real, alias)
    db = tmp_path / "c.sqlite"
    cli_json("scan", real, "--catalog", db, "-q")
    grouped = cli_json("group", alias, "--catalog", db, "--prefer", alias / "b")
    (group,) = grouped["groups"]
    assert (group["keeper"], [m["reference"] for m in group["members"]]) == (str(real / "b" / "x.jpg"), [True, False])


def test_a_rescan_fills_in_the_identity_of_files_scanned_before_it_was_kept(tmp_path):
    root = tmp_path / "photos"
    x = write_photo(root / "x.jpg", size=(400, 300), pattern=1)
    os.link(x, root / "x_link.jpg")
    db = tmp_path / "c.sqlite"
    cli_json("scan", root, "--catalog", db, "-q")
    with Catalog(db) as cat:  # as a catalog scanned before schema 9 holds them
        cat.conn.execute("UPDATE files SET dev = NULL, ino = NULL")
    assert [len(g["members"]) for g in cli_json("group", "--catalog", db)["groups"]] == [2]
    again = cli_json("scan", root, "--catalog", db, "-q")
    assert (again["unchanged"], again["new"], again["updated"]) == (2, 0, 0)
    grouped = cli_json("group", "--catalog", db)
    assert grouped["groups"] == []
    assert [s["paths"] for s in grouped["same_files"]] == [[str(x), str(root / "x_link.jpg")]]


def test_the_review_page_never_reads_a_file_the_scan_refused(tmp_path, server_processes):
    import httpx

    root = tmp_path / "photos"
    write_photo(root / "a.jpg")
    huge = sparse_tiff(root / "huge.tif")
    db = tmp_path / "c.sqlite"
    cli_json("scan", root, "--catalog", db, "-q")
    with Catalog(db) as cat:
        huge_id = next(r["id"] for r in cat.files(status="error"))
    port = server_processes.free_port()
    limit = LIMITED[resource.RLIMIT_AS]
    server = server_processes.start(cli_command("review", "--catalog", db, "--port", port, "--token", "t"),
                                    f"http://127.0.0.1:{port}/healthz", timeout=180,
                                    preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Photodedup-Token": "t"}, timeout=120) as client:
        for what in ("thumb", "image"):
            response = client.get(f"/files/{huge_id}/{what}")
            assert (response.status_code, response.json()["detail"]) == (404, f"{huge} is not available (error)")
        assert client.get("/healthz").status_code == 200
    server.stop()


def test_undo_restores_a_hard_link_an_earlier_version_trashed_after_the_keeper_was_edited(tmp_path):
    root = tmp_path / "photos"
    x = write_photo(root / "x.jpg", size=(400, 300), pattern=1)
    link = root / "x_link.jpg"
    os.link(x, link)
    db, trash = tmp_path / "c.sqlite", tmp_path / "trash"
    cli_json("scan", root, "--catalog", db, "-q")
    # what an earlier version's apply left: the hard link moved into the trash (a link, then an unlink), journalled
    apply_id = "20260101-000000-0000"
    target = trash / apply_id / link.relative_to("/")
    target.parent.mkdir(parents=True)
    os.link(link, target)
    link.unlink()
    with Catalog(db) as cat:
        file_id = next(r["id"] for r in cat.files() if r["path"] == str(link))
        cat.mark_trashed(str(link), target)
    (trash / MARKER_NAME).write_text("photodedup trash\n")
    common = {"op": "trash", "apply": apply_id, "original": str(link), "trash": str(target), "md5": file_md5(x),
              "size": x.stat().st_size, "file_id": file_id, "time": "2026-01-01T00:00:00.000+00:00"}
    (trash / JOURNAL_NAME).write_text(json.dumps(common | {"state": "begin"}) + "\n"
                                      + json.dumps(common | {"state": "done", "method": "link"}) + "\n")
    with x.open("ab") as handle:  # the keeper is edited: the trashed name shares its bytes
        handle.write(b"edited")

    undone = cli_json("undo", "--catalog", db, "--trash-dir", trash)
    assert (undone["restored"], undone["refused"]) == ([{"path": str(link), "trash": str(target)}], [])
    assert link.read_bytes() == x.read_bytes() and link.stat().st_ino == x.stat().st_ino


def test_a_symlinked_root_an_earlier_version_recorded_never_names_the_folder(tmp_path):
    real = library(tmp_path / "real")
    alias = tmp_path / "alias"
    os.symlink(real, alias)
    db = tmp_path / "c.sqlite"
    cli_json("scan", real, "--catalog", db, "-q")
    with Catalog(db) as cat:  # as an earlier version recorded `scan alias`: paths and root through the link
        cat.conn.execute("UPDATE files SET path = replace(path, ?, ?), root = ?", (str(real), str(alias), str(alias)))
    again = cli_json("scan", real, "--catalog", db, "-q")
    assert (again["new"], again["notes"]) == (3, [])
    grouped = cli_json("group", "--catalog", db)
    assert [[(m["path"], m.get("other_names")) for m in g["members"]] for g in grouped["groups"]] == [
        [(str(alias / "x.jpg"), [str(real / "x.jpg")]), (str(alias / "x_copy.jpg"), [str(real / "x_copy.jpg")])]]
