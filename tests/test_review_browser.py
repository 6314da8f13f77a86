"""End to end in a real headless browser: Debian's chromium driven by Playwright, against a real server.

Open the page, see the groups, keep one and trash the rest with the keyboard, mark a group not
duplicates, apply (files move, journal written), undo (files back). Screenshots of the overview and
the group view go to test-artifacts/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import REPO, cli_command

from photodedup.apply import JOURNAL_NAME, file_md5

CHROMIUM = Path(os.environ.get("PHOTODEDUP_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip(f"needs chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def review_server(tiny_library, tmp_path, server_processes):
    """The sample library scanned and grouped for real, and ``photodedup review`` as a real subprocess on a
    free port; yields (groups, trash folder, url with token)."""
    from photodedup.group import group
    from photodedup.groups import load_groups
    from photodedup.scan import scan

    catalog, trash = tmp_path / "catalog.sqlite", tmp_path / "trash"
    scan([tiny_library["root"]], catalog=catalog, workers=1)
    group(catalog)
    port = server_processes.free_port()
    cmd = cli_command("review", "--catalog", catalog, "--port", port, "--trash-dir", trash)
    server = server_processes.start(cmd, f"http://127.0.0.1:{port}/healthz", timeout=60)
    url = next(ln for ln in server.output().splitlines() if ln.startswith("Review at ")).split()[2]
    yield {g.id: g for g in load_groups(catalog)}, trash, url
    server.stop()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        tab = context.new_page()
        tab.problems = []
        tab.on("console", lambda msg: tab.problems.append(msg.text) if msg.type == "error" else None)
        tab.on("pageerror", lambda error: tab.problems.append(str(error)))
        yield tab
        browser.close()


def wait_until(page, script: str, timeout: float = 15.0) -> None:
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

    page.keyboard.press("k")  # keep the selected (the suggested keeper), trash the rest
    expect(page.locator(".member.trash")).to_have_count(len(first.members) - 1)
    expect(page.locator(".member.keep")).to_have_count(1)
    expect(page.locator("#progress-text")).to_have_text(f"1 / {len(groups)} groups reviewed")
    page.screenshot(path=str(ARTIFACTS / "review-group-decided.png"), full_page=True)

    page.keyboard.press("n")
    expect(page.locator("#group-title")).to_contain_text(f"· 2 of {len(groups)}")
    page.keyboard.press("d")
    expect(page.locator("#group-state")).to_have_text("dismissed")
    expect(page.locator("#progress-text")).to_have_text(f"2 / {len(groups)} groups reviewed")

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
