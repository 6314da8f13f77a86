"""Scan and catalog under hostile conditions (issue 13): odd names, failures, locks, interrupts, full disks.

Everything runs through the real CLI in a subprocess. Cases that need a real read-only or full
filesystem mount a small tmpfs (root only; skipped elsewhere).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import run_cli, start_cli, wait_paused, write_photo
from PIL import Image

from photodedup.catalog import Catalog

ODD = os.fsdecode(b"caf\xe9-\xff.jpg")  # Latin-1 "café" plus a byte no encoding maps: not UTF-8


def remount_readonly(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)


def test_a_name_that_is_not_utf8_goes_through_every_stage(tmp_path):
    root = tmp_path / "photos"
    original = write_photo(root / "a.jpg", size=(400, 300), pattern=1)
    odd = root / ODD
    shutil.copyfile(original, odd)
    write_photo(root / "z.jpg", size=(300, 300), pattern=5, color=(10, 200, 90))
    db, trash = tmp_path / "c.sqlite", tmp_path / "trash"

    scanned = run_cli("scan", str(root), "--catalog", str(db), "--json", "-q")
    assert scanned.returncode == 0, scanned.stderr
    assert (json.loads(scanned.stdout)["new"], json.loads(scanned.stdout)["errors"]) == (3, 0)
    with Catalog(db) as cat:  # stored losslessly: the path reads back as the same name
        assert {r["path"] for r in cat.files()} == {str(original), str(odd), str(root / "z.jpg")}
    rescan = run_cli("scan", str(root), "--catalog", str(db), "--json", "-q")
    assert json.loads(rescan.stdout)["unchanged"] == 3

    grouped = run_cli("group", "--catalog", str(db), "--evidence", "exact")
    assert grouped.returncode == 0, grouped.stderr
    assert "caf\\xe9-\\xff.jpg" in grouped.stdout  # shown readably, the odd bytes escaped
    as_json = json.loads(run_cli("group", "--catalog", str(db), "--evidence", "exact", "--json").stdout)
    assert {m["path"] for m in as_json["groups"][0]["members"]} == {str(original), str(odd)}
    csv_out = tmp_path / "g.csv"
    assert run_cli("group", "--catalog", str(db), "--evidence", "exact", "--csv", str(csv_out),
                   "--html", str(tmp_path / "g.html")).returncode == 0
    assert "caf\\xe9-\\xff.jpg" in csv_out.read_text()

    # the review page lists the group and takes the decision (the real app, through ASGI)
    from fastapi.testclient import TestClient

    from photodedup.review.app import create_app

    client = TestClient(create_app(db, token="t", trash_dir=trash), headers={"X-Photodedup-Token": "t"})
    overview = client.get("/api/overview")
    assert overview.status_code == 200, overview.text
    group_id = overview.json()["groups"][0]["id"]
    detail = client.get(f"/api/groups/{group_id}").json()
    odd_member = next(m for m in detail["members"] if "\\xff" in m["path"])
    assert client.get(f"/files/{odd_member['file_id']}/image").status_code == 200
    keeper = next(m for m in detail["members"] if m["file_id"] != odd_member["file_id"])
    assert client.post(f"/api/groups/{group_id}/keep", json={"file_id": keeper["file_id"]}).status_code == 200

    applied = run_cli("apply", "--catalog", str(db), "--trash-dir", str(trash))
    assert applied.returncode == 0, applied.stderr
    assert not odd.exists() and "\\xff" in applied.stdout
    undone = run_cli("undo", "--catalog", str(db), "--trash-dir", str(trash))
    assert undone.returncode == 0, undone.stderr
    assert odd.read_bytes() == original.read_bytes()
    with Catalog(db) as cat:
        assert next(r for r in cat.files(status=None) if r["path"] == str(odd))["status"] == "ok"


def test_a_file_that_failed_is_read_again_on_the_next_scan(tmp_path):
    root = tmp_path / "photos"
    write_photo(root / "a.jpg")
    locked = write_photo(root / "locked.jpg", pattern=2)
    locked.chmod(0)
    db = tmp_path / "c.sqlite"
    first = run_cli("scan", str(root), "--catalog", str(db), "--json", "-q", unprivileged=True)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["error_kinds"] == {"permission-denied": 1}
    locked.chmod(0o644)
    second = run_cli("scan", str(root), "--catalog", str(db), "--json", "-q")
    assert second.returncode == 0, second.stderr
    data = json.loads(second.stdout)
    assert (data["unchanged"], data["retried"], data["errors"]) == (1, 1, 0)
    with Catalog(db) as cat:
        assert cat.counts() == {"ok": 2}


def test_netpbm_images_are_found_and_read(tmp_path):
    root = tmp_path / "photos"
    base = write_photo(root / "a.jpg")
    image = Image.open(base)
    image.save(root / "b.ppm")
    image.convert("L").save(root / "c.pgm")
    image.convert("1").save(root / "d.pbm")
    (root / "no-extension").write_bytes((root / "b.ppm").read_bytes())  # found by content
    done = run_cli("scan", str(root), "--catalog", str(tmp_path / "c.sqlite"), "--json", "-q")
    assert done.returncode == 0, done.stderr
    assert (json.loads(done.stdout)["new"], json.loads(done.stdout)["errors"]) == (5, 0)
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert sorted(r["format"] for r in cat.files()) == ["JPEG", "PPM", "PPM", "PPM", "PPM"]


@pytest.mark.slow
def test_a_second_scan_of_one_catalog_refuses_clearly(tmp_path, shared_library):
    lib = shared_library
    db = tmp_path / "c.sqlite"
    # the first scan pauses after its first batch, holding the catalog, until told to go on
    first = start_cli("scan", lib["root"], "--catalog", str(db), "--workers", "1", "-q", "--json",
                      env={"PHOTODEDUP_TEST_PAUSE": "record_files:1"})
    try:
        wait_paused(first)
        second = run_cli("scan", lib["root"], "--catalog", str(db), "-q")
    finally:
        first.send_signal(signal.SIGUSR1)
        out, errors = first.communicate(timeout=300)
    assert second.returncode == 4
    assert second.stderr.startswith(f"Error: another photodedup scan (pid {first.pid}) is writing "
                                    f"{db}\nHint: wait for it to finish")
    assert first.returncode == 0, errors
    assert json.loads(out)["new"] == lib["files"]


@pytest.mark.slow
def test_ctrl_c_in_scan_says_what_was_saved_and_a_rerun_continues(tmp_path, shared_library):
    lib = shared_library
    db = tmp_path / "c.sqlite"
    # it pauses after its first batch is committed: the SIGINT always arrives mid-scan
    proc = start_cli("scan", lib["root"], "--catalog", str(db), "--workers", "2", "-q",
                     env={"PHOTODEDUP_TEST_PAUSE": "record_files:1"}, start_new_session=True)
    wait_paused(proc)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
    out, errors = proc.communicate(timeout=600)  # only guards a hang: two workers stop on a busy machine
    assert proc.returncode == 130
    assert "Traceback" not in errors
    with Catalog(db) as cat:
        saved = sum(cat.counts().values())
    assert errors.startswith(f"Error: interrupted: this scan saved {saved} files to {db} ({saved} in the catalog)")
    assert "run the same command again to continue" in errors
    resumed = run_cli("scan", lib["root"], "--catalog", str(db), "--json", "-q")
    assert json.loads(resumed.stdout)["unchanged"] == saved


def test_embed_on_a_missing_catalog_creates_nothing(tmp_path, onnx_model_dir):
    db = tmp_path / "none.sqlite"
    done = run_cli("embed", "--catalog", str(db), "--model-dir", str(onnx_model_dir), "-q")
    assert done.returncode == 4
    assert f"Error: no catalog at {db}\n" in done.stderr
    assert not db.exists()


def test_a_read_only_catalog_file_is_a_clear_error_and_group_still_works(tmp_path):
    root = tmp_path / "photos"
    write_photo(root / "a.jpg")
    shutil.copyfile(root / "a.jpg", root / "b.jpg")
    db = tmp_path / "c.sqlite"
    assert run_cli("scan", str(root), "--catalog", str(db), "-q").returncode == 0
    db.chmod(0o444)
    scanned = run_cli("scan", str(root), "--catalog", str(db), "-q", unprivileged=True)
    assert scanned.returncode == 4, scanned.stderr
    assert scanned.stderr.startswith(f"Error: the catalog {db} is read-only")
    assert "Traceback" not in scanned.stderr
    grouped = run_cli("group", "--catalog", str(db), "--json", unprivileged=True)
    assert grouped.returncode == 0, grouped.stderr
    assert len(json.loads(grouped.stdout)["groups"]) == 1
    assert "not stored" in grouped.stderr


def test_a_catalog_on_a_read_only_filesystem(tmp_path, tmpfs):
    root = tmp_path / "photos"
    write_photo(root / "a.jpg")
    shutil.copyfile(root / "a.jpg", root / "b.jpg")
    fs = tmpfs("8m")
    db = fs / "c.sqlite"
    assert run_cli("scan", str(root), "--catalog", str(db), "-q").returncode == 0
    remount_readonly(fs)
    scanned = run_cli("scan", str(root), "--catalog", str(db), "-q")
    assert scanned.returncode == 4
    assert scanned.stderr.startswith(f"Error: the catalog {db} is read-only")
    assert "Traceback" not in scanned.stderr
    grouped = run_cli("group", "--catalog", str(db), "--json")
    assert grouped.returncode == 0, grouped.stderr
    assert len(json.loads(grouped.stdout)["groups"]) == 1


def test_disk_full_during_scan_is_a_clear_error(tmp_path, tmpfs, shared_library):
    lib = shared_library
    fs = tmpfs("160k")  # room for the empty catalog, not for the crops and thumbnails
    db = fs / "c.sqlite"
    done = run_cli("scan", lib["root"], "--catalog", str(db), "-q", "--workers", "1")
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith(f"Error: no space left on the disk of the catalog {db}")
    assert "Traceback" not in done.stderr
    with Catalog(db, create=False) as cat:  # what was committed is intact
        assert cat.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_directory_links_outside_the_roots_are_followed_only_when_asked(tmp_path):
    root, outside = tmp_path / "photos", tmp_path / "elsewhere"
    write_photo(root / "a.jpg")
    write_photo(root / "inner" / "b.jpg", pattern=1)
    write_photo(outside / "c.jpg", pattern=2)
    os.symlink(outside, root / "link-out")
    os.symlink(root / "inner", root / "link-in")  # inside the roots: scanned once, where it lives
    db = tmp_path / "c.sqlite"
    default = run_cli("scan", str(root), "--catalog", str(db), "--json", "-q")
    assert default.returncode == 0, default.stderr
    with Catalog(db) as cat:
        assert sorted(Path(r["path"]).name for r in cat.files()) == ["a.jpg", "b.jpg"]
    assert "link-out" in default.stderr and "--follow-links" in default.stderr
    followed = run_cli("scan", str(root), "--catalog", str(db), "--json", "-q", "--follow-links")
    assert json.loads(followed.stdout)["new"] == 1
    with Catalog(db) as cat:
        assert sorted(Path(r["path"]).name for r in cat.files()) == ["a.jpg", "b.jpg", "c.jpg"]


def test_an_unreadable_folder_and_a_missing_one_exit_alike(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    unreadable = run_cli("scan", str(locked), "--catalog", str(tmp_path / "c.sqlite"), unprivileged=True)
    missing = run_cli("scan", str(tmp_path / "nope"), "--catalog", str(tmp_path / "c.sqlite"))
    assert (unreadable.returncode, missing.returncode) == (3, 3)
    assert unreadable.stderr == f"Error: cannot read {locked}: permission denied\n"
