"""End to end in a real headless browser: Debian's chromium driven by Playwright, against a real server.

Open the page, see the groups, keep one and trash the rest with the keyboard, mark a group not
duplicates, apply (files move, journal written), undo (files back). Screenshots of the overview and
the group view go to test-artifacts/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from helpers import REPO, cli_command

from photodedup.moves import JOURNAL_NAME, file_md5

CHROMIUM = Path(os.environ.get("PHOTODEDUP_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip(f"needs chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def _files(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``folder``: size, modification time and inode (the review page serves only the file
    the scan saw: a copy put back is another file to it)."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_ino) for p in folder.rglob("*")
            if p.is_file()}


@pytest.fixture(scope="module")
def _reviewed_library(_tiny_library_made, tmp_path_factory):
    """``reviewed() -> (library, catalog)``: conftest's tiny library copied to a folder of this module, scanned
    and grouped for real (the grouping is most of a test's CPU here), made once and again only when a test
    left the library other than it found it (an apply that was not undone)."""
    import shutil

    from photodedup.group import group
    from photodedup.scan import scan

    made: dict = {}

    def reviewed() -> tuple[Path, Path]:
        if not made or _files(made["library"]) != made["files"]:
            folder = tmp_path_factory.mktemp("reviewed")
            library = Path(shutil.copytree(_tiny_library_made["root"], folder / "lib"))
            scan([library], catalog=folder / "catalog.sqlite", workers=1)
            group(folder / "catalog.sqlite")
            made.update(library=library, catalog=folder / "catalog.sqlite", files=_files(library))
        return made["library"], made["catalog"]

    return reviewed


@pytest.fixture
def review_server(_reviewed_library, tmp_path, server_processes):
    """The sample library scanned and grouped for real, and ``photodedup review`` as a real subprocess on a
    free port; yields (groups, trash folder, url with token). Each test starts from the same state: the
    module's library as the scan saw it and its own copy of the catalog the module grouped (decisions are
    stored there)."""
    import sqlite3

    from photodedup.duplicate_groups import load_groups

    _, grouped = _reviewed_library()
    catalog, trash = tmp_path / "catalog.sqlite", tmp_path / "trash"
    source, copy = sqlite3.connect(grouped), sqlite3.connect(catalog)
    source.backup(copy)
    source.close()
    copy.close()
    server, url = serve_review(server_processes, catalog, trash)
    yield {g.id: g for g in load_groups(catalog)}, trash, url
    server.stop()


def serve_review(server_processes, catalog: Path, trash: Path):
    """``photodedup review`` as a real subprocess on a free port; returns (server, url with token)."""
    port = server_processes.free_port()
    cmd = cli_command("review", "--catalog", catalog, "--port", port, "--trash-dir", trash)
    server = server_processes.start(cmd, f"http://127.0.0.1:{port}/healthz", timeout=180)
    return server, next(ln for ln in server.output().splitlines() if ln.startswith("Review at ")).split()[2]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module; each test gets a fresh context (its own cookies, storage and
    cache: as isolated as a new browser) and page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=120_000)  # waits on the page, not the clock: a busy machine answers late
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    tab.problems = []
    tab.on("console", lambda msg: tab.problems.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda error: tab.problems.append(str(error)))
    yield tab
    context.close()


def wait_until(page, script: str, timeout: float = 120.0) -> None:
    """Poll ``script`` (a JS expression) until true. The page's CSP forbids eval, so no wait_for_function."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(script):
        if time.monotonic() > deadline:
            pytest.fail(f"still false after {timeout} s: {script}")
        page.wait_for_timeout(50)


def wait_images_loaded(page) -> None:
    wait_until(page, "[...document.querySelectorAll('img')].every(i => !i.offsetParent || "
                     "(i.complete && i.naturalWidth > 0))")


def test_review_keep_trash_not_duplicates_apply_and_undo_in_a_browser(review_server, page):
    from playwright.sync_api import expect

    groups, trash, url = review_server
    assert len(groups) >= 2
    paths = [m.path for g in groups.values() for m in g.members]
    md5s = {p: file_md5(Path(p)) for p in paths}
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(url)
    expect(page.locator(".group-card")).to_have_count(len(groups))
    expect(page.locator("#progress-text")).to_have_text(f"0 / {len(groups)} groups reviewed")
    wait_images_loaded(page)
    page.screenshot(path=str(ARTIFACTS / "review-overview.png"), full_page=True)

    first = groups[int(page.locator(".group-card").first.get_attribute("data-group"))]
    page.locator(".group-card").first.click()
    expect(page.locator(".member")).to_have_count(len(first.members))
    expect(page.locator(".member.selected .tag.keeper")).to_have_text("★ suggested keeper")
    expect(page.locator("#group-title")).to_have_text(f"Group {first.id} · 1 of {len(groups)}")
    wait_images_loaded(page)
    page.screenshot(path=str(ARTIFACTS / "review-group.png"), full_page=True)

    keeper = next(m for m in first.members if m.file_id == first.keeper)
    page.keyboard.press("f")  # full size, EXIF orientation applied by the server
    expect(page.locator("#viewer")).to_be_visible()
    wait_until(page, f"document.getElementById('viewer-image').naturalWidth === {keeper.width}")
    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()

    page.keyboard.press("Enter")  # keep the focused photo (the suggested keeper), trash the rest, move on
    expect(page.locator("#group-title")).to_contain_text(f"· 2 of {len(groups)}")
    expect(page.locator("#toast")).to_contain_text(f"Group {first.id}: keeping {Path(keeper.path).name}")
    expect(page.locator("#progress-text")).to_have_text(f"1 / {len(groups)} groups reviewed")
    decided = {m["file_id"]: m["decision"] for m in _detail(page, first.id)["members"]}
    assert decided == {m.file_id: "keep" if m.file_id == first.keeper else "trash" for m in first.members}
    page.keyboard.press("d")  # not duplicates: the page moves on to the next undecided group
    expect(page.locator("#toast")).to_contain_text("Marked not duplicates")
    expect(page.locator("#progress-text")).to_have_text(f"2 / {len(groups)} groups reviewed")
    page.keyboard.press("p")
    expect(page.locator("#group-title")).to_contain_text(f"· 2 of {len(groups)}")
    expect(page.locator("#group-state")).to_have_text("dismissed")

    page.locator("#apply-button").click()
    expect(page.locator("#dialog")).to_be_visible()
    expect(page.locator("#plan-moves li")).to_have_count(len(first.members) - 1)
    page.screenshot(path=str(ARTIFACTS / "review-apply-dialog.png"))
    page.locator("#dialog-ok").click()
    expect(page.locator("#toast")).to_contain_text(f"Moved {len(first.members) - 1} files to the trash")
    trashed = sorted(m.path for m in first.members if m.file_id != first.keeper)
    assert not any(Path(p).exists() for p in trashed) and Path(keeper.path).exists()
    lines = [json.loads(ln) for ln in (trash / JOURNAL_NAME).read_text().splitlines()]
    done = [e for e in lines if e["state"] == "done"]
    assert sorted(e["original"] for e in done) == trashed
    assert all(file_md5(Path(e["trash"])) == e["md5"] == md5s[e["original"]] for e in done)

    page.locator("#undo-button").click()
    expect(page.locator("#toast")).to_contain_text(f"Restored {len(trashed)} files")
    assert {p: file_md5(Path(p)) for p in paths} == md5s
    assert page.problems == []


def test_not_duplicates_moves_on_and_keys_act_only_on_the_group_shown(review_server, page):
    """The bug of issue 12: `d` on group 2 jumped to the last group, and `n`, `3`, `t` then acted on the
    dismissed group (reopened it, trashed a separate shot). Now `d` moves on to the next undecided group,
    and every key acts on the group on screen when it is handled."""
    from playwright.sync_api import expect

    groups, trash, url = review_server
    assert len(groups) >= 3
    page.goto(url)
    expect(page.locator(".group-card")).to_have_count(len(groups))
    order = [int(card.get_attribute("data-group")) for card in page.locator(".group-card").all()]
    page.locator(".group-card").nth(1).click()
    expect(page.locator("#group-title")).to_have_text(f"Group {order[1]} · 2 of {len(groups)}")
    page.keyboard.press("d")
    expect(page.locator("#toast")).to_contain_text("Marked not duplicates")
    expect(page.locator("#group-title")).to_have_text(f"Group {order[2]} · 3 of {len(groups)}")
    for key in ("n", "3", "t"):  # n: nothing after the last group; 3, t: the third photo of the group shown
        page.keyboard.press(key)
    expect(page.locator(".member.trash")).to_have_count(1)
    expect(page.locator("#group-title")).to_have_text(f"Group {order[2]} · 3 of {len(groups)}")

    def decisions(group_id):
        detail = page.evaluate(f"fetch('/api/groups/{group_id}').then(r => r.json())")
        return detail["state"], [m["decision"] for m in detail["members"]]

    assert decisions(order[1]) == ("dismissed", [None] * len(groups[order[1]].members))
    state, shown = decisions(order[2])
    assert state == "partial" and shown[2] == "trash" and shown.count(None) == len(shown) - 1
    assert page.problems == []


@pytest.fixture
def big_group_server(tmp_path, server_processes):
    """A library with one group of 12 photos (a camera JPEG and 11 derivatives) and one pair, grouped
    for real and served by `photodedup review`; yields (groups by id, url)."""
    import numpy as np
    from helpers import write_photo
    from PIL import Image, ImageFilter, ImageOps

    from photodedup.duplicate_groups import load_groups
    from photodedup.group import group
    from photodedup.scan import scan

    root = tmp_path / "photos"
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x9003] = "Canon", "EOS R6", "2021:06:01 10:00:00"
    # a light background: on the default dark red one, the gray copy's stripes have almost no luminance
    # contrast, so its border trim (and so its hash) differs from the colour original's
    original = write_photo(root / "DCIM" / "IMG_0001.jpg", size=(960, 720), pattern=1, exif=exif,
                           color=(225, 215, 190))
    # a camera's picture has no pixel-sharp steps: resampling the drawn stripes of write_photo moves whole
    # edges, which the pixel check (rightly, for graphics) refutes; blurred, the copies are copies of a photo
    Image.open(original).filter(ImageFilter.GaussianBlur(2)).save(original, quality=92, exif=exif.tobytes())
    photo = Image.open(original)
    (root / "exports").mkdir()
    for n, width in enumerate((900, 840, 800, 720, 640, 600, 560, 480)):
        photo.resize((width, width * 3 // 4)).save(root / "exports" / f"small_{n}.jpg", quality=88)
    photo.save(root / "exports" / "export.png")
    photo.save(root / "exports" / "export.webp", quality=90)
    ImageOps.grayscale(photo).save(root / "exports" / "gray.jpg", quality=95)
    noise = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    other = Image.fromarray(noise).resize((800, 600), Image.Resampling.BICUBIC)  # unlike the first photo
    other.save(root / "DCIM" / "IMG_0002.jpg", quality=92)
    other.save(root / "exports" / "IMG_0002_q70.jpg", quality=70)
    catalog = tmp_path / "catalog.sqlite"
    scan([root], catalog=catalog, workers=1)
    group(catalog)
    server, url = serve_review(server_processes, catalog, tmp_path / "trash")
    yield {g.id: g for g in load_groups(catalog)}, url
    server.stop()


def _detail(page, group_id: int) -> dict:
    return page.evaluate(f"fetch('/api/groups/{group_id}').then(r => r.json())")


def test_keyboard_focus_take_out_and_compare_in_a_group_of_twelve(big_group_server, page):
    from playwright.sync_api import expect

    groups, url = big_group_server
    big = next(g for g in groups.values() if len(g.members) == 12)
    assert Path(big.keeper_path).name == "IMG_0001.jpg"  # the camera original, not the PNG or the gray copy
    page.goto(f"{url}")
    expect(page.locator(".group-card")).to_have_count(len(groups))
    page.locator(f".group-card[data-group='{big.id}']").click()
    expect(page.locator(".member")).to_have_count(12)
    expect(page.locator(".member.selected .tag.keeper")).to_be_visible()  # focus starts on the keeper (first)
    expect(page.locator(".member").nth(1)).to_contain_text("of 64 pHash bits differ)")
    expect(page.locator(".member dd.why-not")).to_have_count(11)  # why each other photo is not the keeper
    expect(page.locator(".member", has_text="export.png").locator("dd.why-not")).to_have_text(
        "a re-save of IMG_0001.jpg (its DCT is that file's decoded DCT)")  # the PNG holds the JPEG's decoded pixels

    for _ in range(11):  # j (or an arrow) reaches every photo: 1-9 stop at nine
        page.keyboard.press("j")
    expect(page.locator(".member").nth(11)).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("k")
    page.keyboard.press("ArrowRight")
    expect(page.locator(".member").nth(11)).to_have_class(re.compile(r"\bselected\b"))
    twelfth = int(page.locator(".member").nth(11).get_attribute("data-file"))
    page.keyboard.press("t")
    expect(page.locator(".member").nth(11)).to_have_class(re.compile(r"\btrash\b"))

    page.keyboard.press("c")  # compare the focused photo with the keeper, at one zoom
    expect(page.locator("#compare")).to_be_visible()
    wait_until(page, "document.getElementById('compare-a').naturalWidth > 0 && "
                     "document.getElementById('compare-b').naturalWidth > 0 && "
                     "document.getElementById('compare-b').style.width !== ''")
    scales = page.evaluate("['compare-a', 'compare-b'].map(id => { const i = document.getElementById(id); "
                           "return i.getBoundingClientRect().width / i.naturalWidth; })")
    assert scales[0] == pytest.approx(scales[1], rel=0.01)
    expect(page.locator("#difference-words")).to_have_text(re.compile(  # where the pixels differ, in words
        r"^pixels: (no visible difference|differs (in one region|in \d+ regions|almost everywhere), \S+ of the "
        r"picture)"))
    wait_until(page, "document.getElementById('difference-map').naturalWidth > 0")
    differences = page.locator("#differences li").all_text_contents()
    assert any(d.startswith("resolution: ") or d.startswith("format: ") or d.startswith("grayscale: ")
               for d in differences), differences
    page.keyboard.press("+")
    zoomed = page.evaluate("['compare-a', 'compare-b'].map(id => { const i = document.getElementById(id); "
                           "return i.getBoundingClientRect().width / i.naturalWidth; })")
    assert zoomed[0] == pytest.approx(zoomed[1], rel=0.01) and zoomed[0] > scales[0]
    page.screenshot(path=str(_artifacts() / "review-compare.png"))
    eleventh = page.locator(".member").nth(10).locator("h3").text_content()
    page.keyboard.press("k")  # the previous photo, against the keeper
    expect(page.locator("#caption-b")).to_contain_text(f"/{eleventh} ·")
    page.keyboard.press("j")
    page.keyboard.press("Escape")
    expect(page.locator("#compare")).to_be_hidden()

    page.keyboard.press("x")  # the focused (twelfth) photo is not a duplicate of these: out of the group
    expect(page.locator(".member")).to_have_count(11)
    expect(page.locator(f"#removed-list .removed-item[data-file='{twelfth}']")).to_be_visible()
    detail = _detail(page, big.id)
    assert [m["file_id"] for m in detail["removed_members"]] == [twelfth]
    assert detail["removed_members"][0]["decision"] is None  # its trash mark went with it
    page.locator(f"#removed-list .removed-item[data-file='{twelfth}'] .put-back").click()
    expect(page.locator(".member")).to_have_count(12)
    assert page.problems == []


def test_accept_the_suggested_keepers_of_the_groups_shown_after_a_confirmation(review_server, page):
    from playwright.sync_api import expect

    groups, trash, url = review_server
    page.goto(url)
    expect(page.locator(".group-card")).to_have_count(len(groups))
    page.locator("#kind-filter").select_option("exact")  # only the groups with an exact copy
    shown = [g for g in groups.values() if any(m.evidence == "exact" for m in g.members)]
    assert 0 < len(shown) < len(groups)
    expect(page.locator(".group-card")).to_have_count(len(shown))
    page.keyboard.press("a")
    expect(page.locator("#dialog")).to_be_visible()
    trash_members = [m for g in shown for m in g.members if m.file_id != g.keeper]
    size = sum(m.size for m in trash_members)
    expect(page.locator("#accept-summary")).to_contain_text(f"{len(trash_members)} files would be marked trash")
    expect(page.locator("#accept-files li")).to_have_count(len(trash_members))
    freed = page.evaluate(f"human({size})")
    expect(page.locator("#accept-summary")).to_contain_text(f"freeing {freed} once applied")
    page.locator("#dialog-ok").click()
    expect(page.locator("#toast")).to_contain_text(f"Marked {len(trash_members)} files trash in {len(shown)} groups")
    for g in groups.values():
        decided = {m["file_id"]: m["decision"] for m in _detail(page, g.id)["members"]}
        if g in shown:
            assert decided == {m.file_id: "keep" if m.file_id == g.keeper else "trash" for m in g.members}
        else:
            assert set(decided.values()) == {None}  # groups the filter hid are left alone
    assert page.problems == []


def _artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def test_a_raw_jpeg_pair_is_one_card_with_both_files_and_the_raw_preview(review_server, page):
    from playwright.sync_api import expect

    groups, _, url = review_server
    group, pair = next((g, m) for g in groups.values() for m in g.members if m.companions)  # the sample's DNG+JPEG
    page.goto(f"{url}#/group/{group.id}")
    expect(page.locator(".member")).to_have_count(len(group.members))
    card = page.locator(f".member[data-file='{pair.file_id}']")
    expect(card.locator(".pair")).to_contain_text("RAW+JPEG pair, kept or trashed together")
    expect(card.locator(".pair")).to_contain_text(Path(pair.companions[0].path).name)
    expect(card.locator("dd .path")).to_have_text([pair.path, pair.companions[0].path])
    wait_images_loaded(page)  # the RAW's thumbnail: its embedded preview, made at scan time
    assert card.locator(".photo img").evaluate("i => i.naturalWidth") > 0
    card.locator(".photo").click()  # full size: the preview, served as JPEG
    wait_until(page, f"document.getElementById('viewer-image').naturalWidth === {pair.width}")
    ARTIFACTS.mkdir(exist_ok=True)
    page.keyboard.press("Escape")
    page.screenshot(path=str(ARTIFACTS / "review-raw-pair.png"), full_page=True)
    assert page.problems == []


def test_enter_decides_each_group_and_moves_on_one_key_a_group(review_server, page):
    # issue 21: Enter then n, about 600 keys for 300 groups; now one key a group
    from playwright.sync_api import expect

    groups, _, url = review_server
    page.goto(url)
    expect(page.locator(".group-card")).to_have_count(len(groups))
    order = [int(card.get_attribute("data-group")) for card in page.locator(".group-card").all()]
    page.locator(".group-card").first.click()
    for n in range(len(groups)):
        expect(page.locator("#progress-text")).to_have_text(f"{n} / {len(groups)} groups reviewed")
        # a key pressed while the overview is still on screen is the overview's: wait for the group, as a person does
        expect(page.locator("#group-view")).to_be_visible()
        if n == 0:
            # the clicked card can hold the focus for a moment after its overview is hidden: an Enter that
            # reaches it then is still the page's Enter, never a second opening of the card (it once was)
            page.locator(".group-card").first.dispatch_event("keydown", {"key": "Enter", "bubbles": True})
        else:
            page.keyboard.press("Enter")
    expect(page.locator("#progress-text")).to_have_text(f"{len(groups)} / {len(groups)} groups reviewed")
    expect(page.locator("#toast")).to_contain_text("every group has a decision")
    for group_id in order:
        decided = {m["file_id"]: m["decision"] for m in _detail(page, group_id)["members"]}
        assert decided == {m.file_id: "keep" if m.file_id == groups[group_id].keeper else "trash"
                           for m in groups[group_id].members}
    assert page.problems == []


def test_a_toast_does_not_outlive_its_group_and_the_keep_tooltips_name_their_keys(review_server, page):
    from playwright.sync_api import expect

    groups, _, url = review_server
    page.goto(url)
    expect(page.locator(".group-card")).to_have_count(len(groups))
    page.locator(".group-card").first.click()
    expect(page.locator("#keep-selected")).to_have_attribute("title", re.compile(r"^Enter: keep the focused photo"))
    expect(page.locator(".member .keep-btn").first).to_have_attribute("title", re.compile(r"^Space: toggle keep"))
    expect(page.locator(".member .trash-btn").first).to_have_attribute("title", re.compile(r"^t: toggle trash"))
    page.keyboard.press("j")
    page.keyboard.press("x")  # take the second photo out: a toast about this group
    expect(page.locator("#toast")).to_contain_text("Taken out of this group")
    page.keyboard.press("n")
    expect(page.locator("#group-title")).to_contain_text(f"· 2 of {len(groups)}")
    expect(page.locator("#toast")).to_be_hidden()  # gone with its group, not standing over the next one
    assert page.problems == []


def test_the_filter_lists_every_kind_and_a_bulk_accept_can_be_undone_on_the_page(review_server, page):
    from playwright.sync_api import expect

    groups, _, url = review_server
    page.goto(url)
    expect(page.locator(".group-card")).to_have_count(len(groups))
    values = page.locator("#kind-filter option").evaluate_all("options => options.map(o => o.value)")
    assert values == ["", "exact", "perceptual", "verified", "semantic", "similar", "mixed"]
    expect(page.locator("#undo-accept")).to_be_hidden()
    page.keyboard.press("a")
    page.locator("#dialog-ok").click()
    expect(page.locator("#toast")).to_contain_text(f"in {len(groups)} groups")
    assert {_detail(page, g)["state"] for g in groups} == {"reviewed"}
    expect(page.locator("#undo-accept")).to_have_text(f"Undo accept ({len(groups)} groups)")
    page.locator("#undo-accept").click()
    expect(page.locator("#toast")).to_contain_text(f"Took back the suggested keepers of {len(groups)} groups")
    expect(page.locator("#undo-accept")).to_be_hidden()
    assert {_detail(page, g)["state"] for g in groups} == {"open"}
    expect(page.locator("#progress-text")).to_have_text(f"0 / {len(groups)} groups reviewed")
    assert page.problems == []
