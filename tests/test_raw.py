"""Camera RAW files: real DNGs (written with pidng) read back through the real scan, and RAW+JPEG pairs."""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from photodedup.apply import apply, undo
from photodedup.catalog import Catalog
from photodedup.dng import write_dng
from photodedup.duplicate_groups import current_groups
from photodedup.duplicate_groups.decisions import decide
from photodedup.errors import BadInputError
from photodedup.group import GroupSettings, group
from photodedup.raw import find_pairs, raw_exif
from photodedup.report import write_report
from photodedup.sample_library import make_library, source_photos
from photodedup.scan import scan

REPO = Path(__file__).resolve().parents[1]
TAKEN = datetime(2023, 7, 14, 18, 30, 5)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A real photograph, 4:3, with detail everywhere (hashes are meaningful)."""
    source = next(p for p in source_photos() if p.name == "astronaut.png")
    return Image.open(source).convert("RGB").resize((960, 720), Image.Resampling.BICUBIC)


def _exif(orientation: int = 1, taken: datetime = TAKEN) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "EOS R6", orientation
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    return exif.tobytes()


def _rows(db) -> dict[str, dict]:
    with Catalog(db) as cat:
        return {Path(r["path"]).name: dict(r) | {"thumb": cat.thumb(r["id"])} for r in cat.files(status=None)}


def _hamming(a: int, b: int) -> int:
    return bin((a ^ b) & (1 << 64) - 1).count("1")


def test_dng_with_and_without_preview_through_the_scan(tmp_path, photo):
    root = tmp_path / "lib"
    root.mkdir()
    write_dng(root / "preview.dng", photo, taken=TAKEN, preview=800)
    write_dng(root / "sensor-only.dng", photo, taken=TAKEN, preview=None)
    write_dng(root / "tiny-preview.DNG", photo, taken=TAKEN, preview=160)  # too small for the model: decode
    write_dng(root / "upright.dng", photo.transpose(Image.Transpose.ROTATE_90), taken=TAKEN, orientation=6,
              preview=800)  # a portrait shot: the sensor's pixels lie on their side, the tag turns them
    photo.save(root / "reference.jpg", quality=92, exif=_exif())
    summary = scan([root], catalog=tmp_path / "c.sqlite")
    assert (summary.new, summary.errors) == (5, 0)
    rows = _rows(tmp_path / "c.sqlite")
    decoded = {name: row["raw_decode"] for name, row in rows.items()}
    assert decoded == {"preview.dng": "preview", "sensor-only.dng": "half-size", "tiny-preview.DNG": "half-size",
                       "upright.dng": "preview", "reference.jpg": None}
    reference = rows["reference.jpg"]
    for name, row in rows.items():
        assert row["status"] == "ok" and row["thumb"], name
        assert row["md5"] == hashlib.md5((root / name).read_bytes()).hexdigest(), name  # a RAW's is hashed whole
        assert (row["camera"], row["taken_at"]) == ("Canon EOS R6", TAKEN.isoformat()), name
        assert _hamming(row["phash"], reference["phash"]) <= 8, name  # the same picture, however decoded
    assert rows["preview.dng"]["format"] == "DNG"
    assert (rows["preview.dng"]["width"], rows["preview.dng"]["height"]) == (960, 720)  # the sensor's size
    assert (rows["upright.dng"]["width"], rows["upright.dng"]["height"]) == (960, 720)  # after orientation
    assert Image.open(io.BytesIO(rows["upright.dng"]["thumb"])).size == (320, 240)
    with Catalog(tmp_path / "c.sqlite") as cat:
        ids = [r["id"] for r in cat.files()]
        assert len(cat.crops(ids, "224-bicubic-shortest-center")) == 5


def test_broken_raws_are_error_rows_with_a_kind(tmp_path, photo):
    root = tmp_path / "lib"
    root.mkdir()
    good = write_dng(root / "good.dng", photo, preview=None).read_bytes()
    (root / "cut.dng").write_bytes(good[: len(good) // 2])  # the sensor data ends early
    (root / "notes.nef").write_bytes(b"shopping list: milk, eggs\n" * 20)  # a RAW name, not a RAW
    (root / "empty.cr2").write_bytes(b"")
    summary = scan([root], catalog=tmp_path / "c.sqlite", max_pixels=10**8)
    assert summary.error_kinds == {"truncated": 1, "raw-unsupported": 1, "empty": 1}
    rows = _rows(tmp_path / "c.sqlite")
    assert rows["good.dng"]["status"] == "ok"
    # LibRaw's own message (on stderr, naming no file) ends the reason; the metadata survives the pixels
    assert rows["cut.dng"]["reason"] == ("cannot decode the DNG file, its data ends early: Input/output error "
                                         "(LibRaw: Unexpected end of file)")
    assert (rows["cut.dng"]["format"], rows["cut.dng"]["camera"]) == ("DNG", "Canon EOS R6")
    assert rows["notes.nef"]["reason"] == ("LibRaw cannot open this NEF file (not a RAW it knows): "
                                           "Unsupported file format or not RAW file")
    small = scan([root / "good.dng"], catalog=tmp_path / "small.sqlite", max_pixels=1000)
    assert small.error_kinds == {"too-large": 1}


def test_raws_recorded_as_unsupported_before_are_read_again(tmp_path, photo):
    """A catalog from before RAW support holds its DNGs as `unsupported` errors: the next scan reads them."""
    (tmp_path / "lib").mkdir()
    write_dng(tmp_path / "lib" / "a.dng", photo, preview=None)
    (tmp_path / "lib" / "notes.jpg").write_text("not a photo")
    scan([tmp_path / "lib"], catalog=tmp_path / "c.sqlite")
    with Catalog(tmp_path / "c.sqlite") as cat:
        cat.conn.execute("UPDATE files SET status='error', error_kind='unsupported' WHERE path LIKE '%.dng'")
    again = scan([tmp_path / "lib"], catalog=tmp_path / "c.sqlite")
    assert (again.retried, again.errors) == (2, 1)  # the scan retries every error row
    assert _rows(tmp_path / "c.sqlite")["a.dng"]["status"] == "ok"


def test_embed_decodes_a_raw_without_a_stored_crop(tmp_path, photo, onnx_model_dir):
    from photodedup.backends.onnx import OnnxBackend
    from photodedup.embed import embed

    (tmp_path / "lib").mkdir()
    write_dng(tmp_path / "lib" / "a.dng", photo, preview=800)
    write_dng(tmp_path / "lib" / "b.dng", photo, preview=None)
    scan([tmp_path / "lib"], catalog=tmp_path / "c.sqlite")
    with Catalog(tmp_path / "c.sqlite") as cat:
        cat.conn.execute("DELETE FROM crops")
    backend = OnnxBackend(onnx_model_dir)
    try:
        summary = embed(backend, catalog=tmp_path / "c.sqlite", decode="pil")
    finally:
        backend.close()
    assert (summary.embedded, summary.errors, summary.from_originals) == (2, 0, 2)


def test_exif_from_tiff_raws_with_their_own_magic(tmp_path, photo):
    """ORF and RW2 are TIFF files with another magic number: the reader swaps it to find IFD 0."""
    data = write_dng(tmp_path / "a.dng", photo, make="OLYMPUS", model="E-M1", taken=TAKEN).read_bytes()
    for fmt, magic in (("ORF", b"IIRO"), ("RW2", b"IIU\x00")):
        exif = raw_exif(magic + data[4:], fmt)
        assert (exif[0x010F], exif[0x0110]) == ("OLYMPUS", "E-M1")
        assert exif.get_ifd(0x8769)[0x9003] == TAKEN.strftime("%Y:%m:%d %H:%M:%S")
    assert len(raw_exif(b"FUJIFILMCCD-RAW " + bytes(200), "RAF")) == 0  # no TIFF and no preview: no EXIF
    ifd0 = Image.Exif()  # CR3 (ISO BMFF) keeps IFD 0 as a TIFF in its CMT1 box
    ifd0[0x010F], ifd0[0x0110] = "Canon", "EOS R5"
    tiff = ifd0.tobytes()[len(b"Exif\x00\x00"):]
    cr3 = b"\x00\x00\x00\x18ftypcrx " + bytes(12) + (len(tiff) + 8).to_bytes(4, "big") + b"CMT1" + tiff + bytes(64)
    exif = raw_exif(cr3, "CR3")
    assert (exif[0x010F], exif[0x0110]) == ("Canon", "EOS R5")


def test_sample_library_without_pidng_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pidng", None)  # as if not installed
    with pytest.raises(BadInputError, match="needs pidng") as caught:
        make_library(tmp_path / "lib", originals=2, megapixels=0.1)
    assert "photodedup[bench]" in caught.value.hint
    assert not (tmp_path / "lib").exists()  # refused before writing anything


def test_raw_jpeg_pairs_through_the_scan(tmp_path, photo):
    root = tmp_path / "lib"
    (root / "card").mkdir(parents=True)
    write_dng(root / "card" / "IMG_0001.CR2.dng", photo, taken=TAKEN)  # stem IMG_0001.CR2: no JPEG of that name
    write_dng(root / "card" / "IMG_0002.dng", photo, taken=TAKEN)
    photo.save(root / "card" / "IMG_0002.JPG", quality=90, exif=_exif())  # the pair (case differs)
    write_dng(root / "card" / "IMG_0003.dng", photo, taken=TAKEN)
    photo.save(root / "card" / "IMG_0003.jpg", quality=90,
               exif=_exif(taken=datetime(2023, 7, 14, 18, 31)))  # another shot that reused the number
    write_dng(root / "card" / "IMG_0004.dng", photo, taken=None)  # no time in either: the name decides
    photo.save(root / "card" / "IMG_0004.jpg", quality=90)
    write_dng(root / "card" / "IMG_0005.dng", photo, taken=TAKEN)
    photo.save(root / "card" / "IMG_0005.heic", "HEIF", exif=_exif())  # a phone-style HEIC partner
    (root / "export").mkdir()
    photo.save(root / "export" / "IMG_0002.jpg", quality=90, exif=_exif())  # same stem, other folder
    scan([root], catalog=tmp_path / "c.sqlite")
    with Catalog(tmp_path / "c.sqlite") as cat:
        names = {r["id"]: os.path.relpath(r["path"], root) for r in cat.files()}
        partner = cat.raw_pairs()
    named = {names[a]: names[b] for a, b in partner.items()}
    assert named == {"card/IMG_0002.dng": "card/IMG_0002.JPG", "card/IMG_0004.dng": "card/IMG_0004.jpg",
                     "card/IMG_0005.dng": "card/IMG_0005.heic"}
    assert _rows(tmp_path / "c.sqlite")["IMG_0004.dng"]["taken_at"] is None  # (LibRaw had no time either)
    (root / "card" / "IMG_0002.JPG").unlink()  # the pair is recomputed on every scan
    scan([root], catalog=tmp_path / "c.sqlite")
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert len(cat.raw_pairs()) == 2


def test_pair_rules(tmp_path):
    """One RAW, one partner: a JPEG before a HEIC, then the nearest time; each file in one pair at most."""
    def row(i, name, fmt, taken=None, raw=None):
        return {"id": i, "path": f"/p/{name}", "format": fmt, "taken_at": taken, "raw_decode": raw, "status": "ok",
                "reason": None}

    t0, t1, t2 = "2023-07-14T18:30:05", "2023-07-14T18:30:06", "2023-07-14T18:30:08"
    rows = [row(1, "A.NEF", "NEF", t0, "preview"), row(2, "a.heic", "HEIF", t0), row(3, "a.jpg", "JPEG", t1),
            row(4, "B.nef", "NEF", t0, "preview"), row(5, "b.jpg", "JPEG", t2), row(6, "b.heic", "HEIF", t0),
            row(7, "C.dng", "DNG", None, "half-size"), row(8, "C.cr2", "CR2", None, "preview"),
            row(9, "c.jpg", "JPEG", t0), row(10, "D.dng", "DNG", t0, "preview"), row(11, "D.png", "PNG", t0)]
    assert sorted(find_pairs(rows)) == [(1, 3), (4, 6), (8, 9)]


def test_sample_library_has_raw_jpeg_pairs(tmp_path):
    lib = make_library(tmp_path / "lib", originals=6, megapixels=0.3, seed=2)
    truth = json.loads(Path(lib["truth"]).read_text())
    assert len(truth["pairs"]) == 2  # originals 1 and 5: one DNG with a preview, one without
    scan([lib["root"]], catalog=tmp_path / "c.sqlite")
    with Catalog(tmp_path / "c.sqlite") as cat:
        rows = {os.path.relpath(r["path"], lib["root"]): r for r in cat.files()}
        found = sorted([os.path.relpath(cat.file(a)["path"], lib["root"]), os.path.relpath(cat.file(b)["path"],
                        lib["root"])] for a, b in cat.conn.execute("SELECT other_id, raw_id FROM raw_pairs"))
    assert found == sorted(truth["pairs"])
    assert sorted(rows[raw]["raw_decode"] for _, raw in truth["pairs"]) == ["half-size", "preview"]
    for jpeg, raw in truth["pairs"]:
        assert rows[raw]["taken_at"] == rows[jpeg]["taken_at"] and rows[raw]["camera"] == rows[jpeg]["camera"]
        assert _hamming(rows[raw]["phash"], rows[jpeg]["phash"]) <= 8


def test_forked_workers_decode_after_an_in_process_decode(tmp_path, photo):
    """Scan workers must not hang in LibRaw's OpenMP after the parent ran OpenMP itself.

    The parent here searches with faiss and multiplies with PyTorch (both OpenMP, as ``group`` and
    ``embed`` do in a ``run``), decodes a RAW in-process, then scans with a worker pool: forked
    workers deadlocked in GNU libgomp.
    """
    small = photo.resize((320, 240))
    (tmp_path / "many").mkdir()
    for i in range(5):
        write_dng(tmp_path / "many" / f"{i}.dng", small, preview=None)
    write_dng(tmp_path / "one.dng", small, preview=None)
    code = ("import sys, faiss, numpy, torch; from photodedup.scan import scan; "
            "x = numpy.random.rand(4000, 32).astype('float32'); i = faiss.IndexFlatIP(32); i.add(x); "
            "i.search(x, 4); torch.ones(512, 512) @ torch.ones(512, 512); "
            "a = scan([sys.argv[1]], catalog=sys.argv[3], workers=2); "  # one file: decoded in this process
            "b = scan([sys.argv[2]], catalog=sys.argv[3], workers=2); "  # five: a forked pool
            "print(a.new, b.new, b.errors)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "one.dng"), str(tmp_path / "many"),
                             str(tmp_path / "c.sqlite")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=600)  # a deadlock never ends; a busy machine takes its time
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the scan and its hung workers
        proc.communicate()
        pytest.fail("the scan hung: forked workers deadlocked in LibRaw's OpenMP")
    assert proc.returncode == 0, err
    assert out.split() == ["1", "5", "0"]
    assert "rawpy is being used in a process created by multiprocessing" not in err



@pytest.fixture
def card_twice(tmp_path, photo):
    """The same card imported twice (RAW+JPEG pairs), a lone JPEG copy, and a pair with no duplicate."""
    root = tmp_path / "lib"
    for folder in ("card", "import-2"):
        (root / folder).mkdir(parents=True)
        write_dng(root / folder / "IMG_0001.dng", photo, taken=TAKEN)
        photo.save(root / folder / "IMG_0001.jpg", quality=90, exif=_exif())
    (root / "import-2" / "IMG_0001.dng").write_bytes((root / "card" / "IMG_0001.dng").read_bytes())
    (root / "import-2" / "IMG_0001.jpg").write_bytes((root / "card" / "IMG_0001.jpg").read_bytes())
    (root / "backup").mkdir()
    (root / "backup" / "IMG_0001.jpg").write_bytes((root / "card" / "IMG_0001.jpg").read_bytes())
    other = photo.transpose(Image.Transpose.FLIP_TOP_BOTTOM).resize((640, 480))
    write_dng(root / "card" / "IMG_0002.dng", other, taken=datetime(2023, 7, 14, 18, 31))
    other.save(root / "card" / "IMG_0002.jpg", quality=90)
    db = tmp_path / "c.sqlite"
    scan([root], catalog=db)
    result = group(db, params=GroupSettings(evidence=("exact", "perceptual")))
    return {"root": root, "db": db, "trash": tmp_path / "trash", "result": result}


def test_a_pair_is_one_item_of_a_group_and_the_keeper(card_twice):
    root, result = card_twice["root"], card_twice["result"]
    assert len(result.groups) == 1  # IMG_0002's pair is not a group by itself
    (g,) = result.groups
    shots = sorted((os.path.relpath(m.path, root), [os.path.relpath(c.path, root) for c in m.companions])
                   for m in g.members)
    assert shots == [("backup/IMG_0001.jpg", []), ("card/IMG_0001.dng", ["card/IMG_0001.jpg"]),
                     ("import-2/IMG_0001.dng", ["import-2/IMG_0001.jpg"])]
    keeper = next(m for m in g.members if m.keeper)
    assert keeper.companions and g.keeper_reason.startswith("the camera's RAW+JPEG pair")
    lone = next(m for m in g.members if not m.companions)
    assert lone.note == "a single file; the group has the camera's RAW+JPEG pair"
    with Catalog(card_twice["db"]) as cat:  # read back from the catalog, with the pairs attached again
        (stored,) = current_groups(cat)
        assert sorted(len(m.files) for m in stored.members) == [1, 2, 2]
        assert stored.reclaimable == sum(m.total_size for m in stored.members if not m.keeper)
        report = write_report([stored], card_twice["root"].parent / "r.html", catalog=cat).read_text()
    for name in ("card/IMG_0001.dng", "card/IMG_0001.jpg", "import-2/IMG_0001.jpg"):
        assert str(root / name) in report
    assert report.count("RAW+JPEG pair</b>") == 2


def test_trash_moves_both_halves_and_undo_restores_both(card_twice):
    root, db, trash = card_twice["root"], card_twice["db"], card_twice["trash"]
    with Catalog(db) as cat:
        (g,) = current_groups(cat)
        pair = next(m for m in g.members if "import-2" in m.path)
        card = next(m for m in g.members if "card" in m.path)
        decide(cat, g.id, card.file_id, "keep")
        decide(cat, g.id, pair.file_id, "trash")  # one decision for the pair
        assert len(cat.decisions()) == 2
    summary = apply(db, trash_dir=trash)
    moved = sorted(os.path.relpath(m["path"], root) for m in summary.moved)
    assert moved == ["import-2/IMG_0001.dng", "import-2/IMG_0001.jpg"] and summary.skipped == []
    assert not (root / "import-2" / "IMG_0001.jpg").exists() and (root / "card" / "IMG_0001.jpg").exists()
    done = [json.loads(line) for line in (trash / "journal.jsonl").read_text().splitlines()]
    done = {os.path.relpath(e["original"], root): e for e in done if e["state"] == "done"}
    assert sorted(done) == moved  # one journal entry each
    assert done["import-2/IMG_0001.jpg"]["companion_of"] == pair.file_id
    with Catalog(db) as cat:
        (g,) = current_groups(cat)
        gone = next(m for m in g.members if m.file_id == pair.file_id)
        assert gone.in_trash and gone.companions[0].in_trash
    restored = undo(db, trash_dir=trash, paths=[root / "import-2" / "IMG_0001.jpg"])  # name one half
    assert sorted(os.path.relpath(r["path"], root) for r in restored.restored) == moved
    assert (root / "import-2" / "IMG_0001.dng").is_file() and (root / "import-2" / "IMG_0001.jpg").is_file()
    with Catalog(db) as cat:
        assert cat.counts() == {"ok": 7} and cat.decisions()[pair.file_id]["action"] == "trash"  # as before apply


def test_a_changed_half_keeps_the_whole_pair(card_twice):
    root, db = card_twice["root"], card_twice["db"]
    with Catalog(db) as cat:
        (g,) = current_groups(cat)
        pair = next(m for m in g.members if "import-2" in m.path)
        decide(cat, g.id, pair.file_id, "trash")
    with open(root / "import-2" / "IMG_0001.jpg", "ab") as handle:
        handle.write(b"edited")
    summary = apply(db, trash_dir=card_twice["trash"])
    assert summary.moved == []
    assert summary.skipped == [{"path": str(root / "import-2" / "IMG_0001.dng"),
                                "reason": f"its RAW+JPEG pair {root / 'import-2' / 'IMG_0001.jpg'}: changed since the "
                                          "scan (md5 differs); scan again"}]
