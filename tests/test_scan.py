import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, cli_env, png_bomb, run_cli, start_cli, wait_paused, write_photo
from PIL import Image

from photodedup.catalog import Catalog
from photodedup.cli import app
from photodedup.sample_library import make_library
from photodedup.scan import _inspect_job, scan


def test_sample_library_counts_exactly(tiny_library, tmp_path):
    truth = json.loads(Path(tiny_library["truth"]).read_text())
    summary = scan([tiny_library["root"]], catalog=tmp_path / "c.sqlite")
    assert summary.files == tiny_library["files"]
    assert summary.new == tiny_library["files"]
    assert summary.errors == 3
    assert summary.error_kinds == {"empty": 1, "not-an-image": 1, "truncated": 1}
    with Catalog(tmp_path / "c.sqlite") as cat:
        errors = {Path(r["path"]).name: r["error_kind"] for r in cat.files(status="error")}
        ok = cat.files()
        assert errors == {"empty.jpg": "empty", "notes.jpg": "not-an-image", "truncated.jpg": "truncated"}
        assert len(ok) == tiny_library["files"] - 3
        assert sorted(os.path.relpath(r["path"], tiny_library["root"]) for r in ok) == sorted(
            p for p, kind in truth["kinds"].items() if kind != "broken")
        # every OK file has what later stages need: hashes, a model crop and a thumbnail
        for row in ok:
            assert row["md5"] and row["phash"] is not None and row["dhash"] is not None
            assert cat.thumb(row["id"])
        assert len(cat.crops([r["id"] for r in ok], "224-bicubic-shortest-center")) == len(ok)


def test_exif_orientation_date_and_camera(tmp_path):
    lib = make_library(tmp_path / "lib", originals=3, megapixels=0.3, seed=5)
    truth = json.loads(Path(lib["truth"]).read_text())
    scan([lib["root"]], catalog=tmp_path / "c.sqlite")
    with Catalog(tmp_path / "c.sqlite") as cat:
        rows = {os.path.relpath(r["path"], lib["root"]): r for r in cat.files()}
    rotated = [p for p, k in truth["kinds"].items() if k == "rotated"]
    assert rotated, "seed 5 makes a rotated copy"
    for rel in rotated:
        original = next(g[0] for g in truth["groups"] if rel in g)
        stored = Image.open(Path(lib["root"]) / rel).size
        assert stored[::-1] == (rows[rel]["width"], rows[rel]["height"])  # pixels stored turned
        assert (rows[rel]["width"], rows[rel]["height"]) == (rows[original]["width"], rows[original]["height"])
        assert rows[rel]["phash"] == rows[original]["phash"]  # the hash sees the upright photo
        assert rows[rel]["taken_at"] == rows[original]["taken_at"]
        assert rows[original]["camera"] and rows[original]["exif_tags"] >= 5


def test_jpeg_quality_of_the_quantization_tables(tmp_path):
    photo = write_photo(tmp_path / "lib" / "camera.jpg", size=(320, 240))
    for quality in (70, 92, 99, 100):
        Image.open(photo).save(tmp_path / "lib" / f"q{quality}.jpg", quality=quality)
    Image.open(photo).save(tmp_path / "lib" / "export.png")
    scan([tmp_path / "lib"], catalog=tmp_path / "c.sqlite")
    with Catalog(tmp_path / "c.sqlite") as cat:
        found = {Path(r["path"]).name: r["jpeg_quality"] for r in cat.files()}
    # PIL saves at 75 by default; 100 only for all-ones tables (a maximum-quality re-save)
    assert found == {"camera.jpg": 75, "q70.jpg": 70, "q92.jpg": 92, "q99.jpg": 99, "q100.jpg": 100,
                     "export.png": None}


def test_hostile_and_broken_input(tmp_path):
    root = tmp_path / "lib"
    write_photo(root / "good.jpg")
    write_photo(root / "nested" / "deeper" / "good.png", fmt="PNG", pattern=1)
    write_photo(root / "named-wrong.dat", fmt="PNG", pattern=2)  # an image found by content
    (root / "readme.txt").write_text("not an image and not named like one")  # ignored
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("hello")
    good = (root / "good.jpg").read_bytes()
    (root / "cut.jpg").write_bytes(good[: len(good) // 2])
    png_bomb(root / "bomb.png")
    (root / "damaged.jxl").write_bytes(b"\xff\x0a" + bytes(200))  # JPEG XL, 1x1 declared, no picture
    (root / "large.psb").write_bytes(b"8BPS\x00\x02" + bytes(200))  # Photoshop's large format: Pillow has no reader
    os.symlink(root, root / "nested" / "loop")  # a symlink loop
    os.symlink(root / "good.jpg", root / "link.jpg")  # a link to a file: skipped
    summary = scan([root], catalog=tmp_path / "c.sqlite")
    assert summary.error_kinds == {"empty": 1, "not-an-image": 1, "truncated": 1, "too-large": 1, "unsupported": 1,
                                   "corrupt": 1}
    assert (summary.new, summary.errors, summary.skipped) == (9, 6, 1)
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert {Path(r["path"]).name for r in cat.files()} == {"good.jpg", "good.png", "named-wrong.dat"}
        bomb = next(r for r in cat.files(status="error") if r["path"].endswith("bomb.png"))
        assert "900000000 pixels" in bomb["reason"]


def test_permission_denied_is_recorded(tmp_path, monkeypatch):
    path = write_photo(tmp_path / "secret.jpg")
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads everything: make open() refuse, as it would for a normal user
        import builtins

        real_open = builtins.open

        def refusing_open(file, *args, **kwargs):
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied")
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", refusing_open)
    row, crop, thumb = _inspect_job((str(path), str(tmp_path), 10**8))
    assert (row["status"], row["error_kind"], crop, thumb) == ("error", "permission-denied", None, None)
    assert row["reason"] == "cannot read: Permission denied"


def test_file_vanishing_during_scan(tmp_path):
    root = tmp_path / "lib"
    for i in range(6):
        write_photo(root / f"p{i}.jpg", pattern=i)

    def delete_the_last(done, total):
        (root / "p5.jpg").unlink(missing_ok=True)

    summary = scan([root], catalog=tmp_path / "c.sqlite", workers=1, progress=delete_the_last)
    assert (summary.new, summary.missing, summary.error_kinds) == (5, 1, {"vanished": 1})
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert cat.counts() == {"ok": 5, "missing": 1}


def test_incremental_rescan(tmp_path):
    root = tmp_path / "lib"
    for i in range(4):
        write_photo(root / f"p{i}.jpg", pattern=i)
    db = tmp_path / "c.sqlite"
    assert scan([root], catalog=db).new == 4
    again = scan([root], catalog=db)
    assert (again.new, again.updated, again.unchanged, again.missing) == (0, 0, 4, 0)

    with Catalog(db) as cat:
        old = {r["path"]: r for r in cat.files()}
        target = old[str(root / "p1.jpg")]
        cat.register_model("m", weights="random", is_random=True, dim=512)
        import numpy as np

        cat.add_embeddings("m", [target["id"]], np.ones((1, 512), np.float32), backend="test")
    write_photo(root / "p1.jpg", pattern=9, color=(1, 2, 3))  # changed content
    os.utime(root / "p1.jpg", ns=(time.time_ns(), time.time_ns() + 10**9))
    (root / "p2.jpg").unlink()
    write_photo(root / "p4.jpg", pattern=4)
    third = scan([root], catalog=db)
    assert (third.new, third.updated, third.unchanged, third.missing) == (1, 1, 2, 1)
    with Catalog(db) as cat:
        rows = {r["path"]: r for r in cat.files(status=None)}
        assert rows[str(root / "p2.jpg")]["status"] == "missing"  # kept, not dropped
        assert rows[str(root / "p1.jpg")]["md5"] != target["md5"]
        assert rows[str(root / "p1.jpg")]["id"] == target["id"]
        assert cat.embeddings("m")[0].size == 0  # the changed file lost its stale embedding
    write_photo(root / "p2.jpg", pattern=2)  # it comes back
    fourth = scan([root], catalog=db)
    assert (fourth.updated, fourth.missing) == (1, 0)


def test_include_and_exclude(tmp_path):
    root = tmp_path / "lib"
    write_photo(root / "keep" / "a.jpg")
    write_photo(root / "keep" / "b.png", fmt="PNG")
    write_photo(root / "skip" / "c.jpg")
    summary = scan([root], catalog=tmp_path / "c.sqlite", include=["*.jpg"], exclude=["skip"])
    assert (summary.files, summary.new) == (1, 1)


@pytest.mark.slow
def test_killed_scan_resumes_without_loss_or_duplicates(tmp_path, shared_library):
    lib = shared_library
    db = tmp_path / "c.sqlite"
    # it pauses once its first batch is committed: the kill always lands mid-scan
    proc = start_cli("scan", lib["root"], "--catalog", db, "--workers", "1", "-q",
                     env={"PHOTODEDUP_TEST_PAUSE": "record_files:1"})
    wait_paused(proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Catalog(db) as cat:
        after_kill = sum(cat.counts().values())
    assert 0 < after_kill < lib["files"]
    resumed = scan([lib["root"]], catalog=db)
    assert resumed.unchanged == after_kill
    assert resumed.new == lib["files"] - after_kill
    with Catalog(db) as cat:
        assert sum(cat.counts().values()) == lib["files"]
        assert cat.conn.execute("SELECT count(DISTINCT path) FROM files").fetchone()[0] == lib["files"]
        assert cat.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_cli_json_summary_and_errors(tmp_path, capsys):
    from typer.testing import CliRunner

    root = tmp_path / "lib"
    write_photo(root / "a.jpg")
    runner = CliRunner()
    result = runner.invoke(app, ["scan", str(root), "--catalog", str(tmp_path / "c.sqlite"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"files", "new", "updated", "unchanged", "missing", "errors", "seconds"} <= set(data)
    assert (data["files"], data["new"]) == (1, 1)

    missing = tmp_path / "nope"
    proc = run_cli("scan", missing, "--catalog", tmp_path / "c.sqlite")
    assert proc.returncode == 3
    assert proc.stderr.strip() == f"Error: no such file or folder: {missing}"
    assert proc.stdout == ""


def test_trash_folder_is_not_scanned(tmp_path):
    from photodedup import config

    root = tmp_path / "lib"
    write_photo(root / "a.jpg")
    write_photo(root / "trash" / "1" / "a.jpg")
    (root / "trash" / config.TRASH_MARKER).write_text("")
    summary = scan([root], catalog=tmp_path / "c.sqlite")
    assert (summary.files, summary.new) == (1, 1)


def test_every_supported_format_is_read(tmp_path):
    root = tmp_path / "lib"
    for i, (name, fmt) in enumerate([("a.jpg", "JPEG"), ("b.png", "PNG"), ("c.webp", "WEBP"), ("d.tif", "TIFF"),
                                     ("e.bmp", "BMP"), ("f.gif", "GIF"), ("g.heic", "HEIF")]):
        write_photo(root / name, fmt=fmt, pattern=i)
    frames = [Image.open(root / "a.jpg"), Image.open(root / "b.png").convert("RGB")]
    frames[0].save(root / "h.mpo", "MPO", save_all=True, append_images=frames[1:])
    summary = scan([root], catalog=tmp_path / "c.sqlite")
    assert (summary.new, summary.errors) == (8, 0), summary.error_kinds
    with Catalog(tmp_path / "c.sqlite") as cat:
        formats = {Path(r["path"]).name: r["format"] for r in cat.files()}
        assert all((r["width"], r["height"]) == (320, 240) for r in cat.files())
    assert formats == {"a.jpg": "JPEG", "b.png": "PNG", "c.webp": "WEBP", "d.tif": "TIFF", "e.bmp": "BMP",
                       "f.gif": "GIF", "g.heic": "HEIF", "h.mpo": "MPO"}


def test_samsung_trailer_needs_marker_and_seft_and_rows_hold_only_what_is_stored(tmp_path):
    """A Samsung motion photo holds ``MotionPhoto_Data`` and ends with ``SEFT`` (the marker past the first
    megabyte here, so it is found while hashing); the marker alone or ``SEFT`` alone is no motion photo. The
    worker's row carries no key the catalog does not store (``samsung_trailer`` was one)."""
    from photodedup.catalog import Catalog

    padding = bytes(1 << 20) + b"\x01" * 5000  # beyond the first read: the marker is met in passing
    tails = {"both.jpg": padding + b"MotionPhoto_Data" + b"video" + b"\x20\x00\x00\x00SEFT",
             "marker-only.jpg": padding + b"MotionPhoto_Data" + b"video",
             "seft-only.jpg": padding + b"\x20\x00\x00\x00SEFT"}
    for name, tail in tails.items():
        photo = write_photo(tmp_path / name, pattern=3)
        with open(photo, "ab") as handle:
            handle.write(tail)
    got = {name: _inspect_job((str(tmp_path / name), str(tmp_path), 10**8))[0] for name in tails}
    assert {name: row["motion"] for name, row in got.items()} == {
        "both.jpg": "samsung", "marker-only.jpg": None, "seft-only.jpg": None}
    with Catalog(tmp_path / "c.db") as cat:
        stored = {r[1] for r in cat.conn.execute("PRAGMA table_info(files)")}
    assert all(set(row) <= stored for row in got.values()), [set(row) - stored for row in got.values()]


_READS_AND_FAULTS = """
import json, resource, sys
from photodedup.scan import _inspect_job

def read_calls():
    with open("/proc/self/io") as io:
        return int(next(line for line in io if line.startswith("syscr")).split()[1])

out = []
for path in sys.argv[1:] * 3:
    faults, calls = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, read_calls()
    row, crop, thumb = _inspect_job((path, "/", 10**9))
    assert row["status"] == "ok" and crop and thumb, row
    out.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults, read_calls() - calls))
print(json.dumps(out))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or not Path("/proc/self/io").exists(),
                    reason="glibc's allocator, Linux's read counts")
def test_a_worker_reads_a_photo_in_big_blocks_and_reuses_its_memory(tmp_path):
    """A 5 MB JPEG is read in a few calls (Pillow's default hands its decoder 64 KiB at a time: ~100 reads), and
    once a process has inspected some photos, photos of that size mostly take no fresh pages from the system
    (glibc's defaults took ~480 for each, every time: the MD5's 1 MiB reads, the decoded pixels and their
    copies; now the heap grows a few times, by ~250 pages, where the layout asks, and then serves)."""
    rng = np.random.default_rng(1)
    paths = []
    for i in range(3):  # 6 MP of noise: a 5 MB file
        paths.append(tmp_path / f"n{i}.jpg")
        Image.fromarray(rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)).save(paths[-1], quality=90)
    done = subprocess.run([sys.executable, "-c", _READS_AND_FAULTS, *map(str, paths)], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=300, check=True)
    counts = json.loads(done.stdout)
    assert all(reads < 32 for _, reads in counts[1:]), counts
    assert statistics.median(faults for faults, _ in counts[3:]) < 64, counts  # after the first pass


_POOL_PROBE = """
import json, sys, threading
from multiprocessing import forkserver, resource_tracker
from photodedup.scan import scan
if __name__ == "__main__":
    if sys.argv[3] == "thread":  # a thread alive, as a progress bar's: no fork from this process
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    if sys.argv[3] == "openmp":  # an OpenMP runtime loaded (LibRaw's, as faiss's and PyTorch's): no fork either
        import rawpy  # noqa: F401
    summary = scan([sys.argv[1]], catalog=sys.argv[2], workers=2)
    print(json.dumps([summary.new, forkserver._forkserver._forkserver_pid is not None,
                      resource_tracker._resource_tracker._pid is not None]))
"""


def test_a_scan_forks_its_workers_unless_a_thread_or_an_openmp_runtime_is_there(tmp_path):
    """A scan's process with nothing a fork breaks forks its workers: no forkserver (an interpreter importing
    numpy and Pillow) and no resource tracker start. With a thread alive or an OpenMP runtime loaded, the
    workers come from the forkserver. Either way every stored byte is the same."""
    for i in range(6):
        write_photo(tmp_path / "lib" / f"{i}.jpg", size=(400 + 16 * i, 300), color=(40 * i, 90, 200 - 30 * i))
    rows = {}
    for case in ("plain", "thread", "openmp"):
        out = subprocess.run([sys.executable, "-c", _POOL_PROBE, str(tmp_path / "lib"),
                              str(tmp_path / f"{case}.sqlite"), case],
                             capture_output=True, text=True, cwd=REPO, env=cli_env(), timeout=600, check=True)
        new, forkserver, tracker = json.loads(out.stdout.splitlines()[-1])
        assert (new, forkserver, tracker) == ((6, False, False) if case == "plain" else (6, True, True)), case
        with Catalog(tmp_path / f"{case}.sqlite") as cat:
            files = sorted(cat.files(), key=lambda r: r["path"])
            crops = cat.crops([r["id"] for r in files], "224-bicubic-shortest-center")
            rows[case] = [(dict(r) | {"id": None, "scanned_at": None}, cat.thumb(r["id"]), crops[r["id"]])
                          for r in files]
    assert len(rows["plain"]) == 6
    assert rows["plain"] == rows["thread"] == rows["openmp"]
