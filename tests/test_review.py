"""``photodedup review``: the JSON API, decisions in the catalog, labels, and the page's security."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import cli_command, write_photo
from PIL import Image

from photodedup.catalog import Catalog
from photodedup.review.app import TOKEN_HEADER, create_app
from photodedup.scan import scan

TOKEN = "test-token-123"


@pytest.fixture
def client(review_library):
    app = create_app(review_library["catalog"], token=TOKEN, trash_dir=review_library["trash"],
                     allowed_hosts={"testserver"})
    with TestClient(app, base_url="http://testserver") as test_client:
        test_client.headers[TOKEN_HEADER] = TOKEN
        yield test_client


def anonymous(review_library) -> TestClient:
    app = create_app(review_library["catalog"], token=TOKEN, allowed_hosts={"testserver"})
    return TestClient(app, base_url="http://testserver")


def regroup(catalog: Path, groups: list[tuple[str, int, list[tuple[int, str, float]]]]) -> list[int]:
    """Store a new group run (as a re-run of ``photodedup group`` would); returns the new group ids."""
    with Catalog(catalog) as cat:
        return cat.store_group_run({}, [(kind, keeper, "x", [(*m, "") for m in members])
                                        for kind, keeper, members in groups])[1]


def test_every_request_needs_the_session_token_and_the_url_hands_it_over(review_library):
    with anonymous(review_library) as browser:
        response = browser.get("/")
        assert response.status_code == 401
        assert response.json() == {"error": "missing session token: open the URL that `photodedup review` printed"}
        assert browser.get("/api/overview").status_code == 401
        assert browser.get(f"/files/{review_library['ids']['b.jpg']}/thumb").status_code == 401
        assert browser.get("/?token=wrong").status_code == 401

        response = browser.get(f"/?token={TOKEN}", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = browser.get("/")  # the cookie now authenticates reads
        assert page.status_code == 200
        assert f'<meta name="photodedup-token" content="{TOKEN}">' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]

        gid, fid = review_library["groups"]["B"], review_library["ids"]["b.jpg"]
        response = browser.post(f"/api/groups/{gid}/keep", json={"file_id": fid})  # cookie alone: refused
        assert response.status_code == 403
        assert response.json() == {"error": f"missing {TOKEN_HEADER} header on a state-changing request"}
        response = browser.post(f"/api/groups/{gid}/keep", json={"file_id": fid}, headers={TOKEN_HEADER: "nope"})
        assert response.status_code == 403
    with Catalog(review_library["catalog"]) as cat:
        assert cat.decisions() == {}


def test_a_foreign_host_header_is_refused(review_library):
    with anonymous(review_library) as browser:
        response = browser.get("/healthz", headers={"host": "evil.example:8000"})
        assert response.status_code == 400
        assert response.json() == {"error": "unexpected Host header 'evil.example:8000'"}


def test_overview_counts_space_filters_and_sorts(client, review_library):
    lib = review_library
    sizes = {n: os.path.getsize(p) for n, p in lib["paths"].items()}
    data = client.get("/api/overview").json()
    totals = data["totals"]
    assert totals["groups"] == 2 and totals["reviewed"] == 0 and totals["files"] == 5
    assert totals["reclaimable"] == sizes["2019/copies/a_copy.jpg"] + sizes["a_small.jpg"] + sizes["b_q70.jpg"]
    assert totals["marked_trash"] == 0
    by_id = {g["id"]: g for g in data["groups"]}
    group_a = by_id[lib["groups"]["A"]]
    assert group_a["count"] == 3 and group_a["state"] == "open" and group_a["kind"] == "mixed"
    assert group_a["keeper"] == lib["ids"]["2019/a.jpg"] and group_a["keeper_reason"] == "largest resolution"
    assert group_a["evidence"] == ["exact", "perceptual"] and group_a["score"] == pytest.approx(0.953)

    def order(**params):
        return [g["id"] for g in client.get("/api/overview", params=params).json()["groups"]]

    assert order(sort="size") == [lib["groups"]["A"], lib["groups"]["B"]]
    assert order(sort="score") == [lib["groups"]["A"], lib["groups"]["B"]]
    assert order(kind="exact") == [lib["groups"]["A"]]
    assert sorted(order(kind="perceptual")) == sorted(lib["groups"].values())
    assert order(kind="semantic") == []
    response = client.get("/api/overview", params={"kind": "fuzzy"})
    assert response.status_code == 400
    assert response.json()["error"] == ("unknown kind 'fuzzy'; choose one of exact, perceptual, verified, semantic, "
                                        "similar, mixed")


def test_the_evidence_filter_knows_every_kind_verified_included(client, review_library):
    # issue 21/23: `overview(kind="verified")` raised "unknown kind", so ORB-only groups could not be isolated
    lib, ids = review_library, review_library["ids"]
    [gid] = regroup(lib["catalog"], [("verified", ids["b.jpg"], [(ids["b.jpg"], "keeper", 1.0),
                                                                 (ids["b_q70.jpg"], "verified", 0.9)])])
    data = client.get("/api/overview", params={"kind": "verified"}).json()
    assert [g["id"] for g in data["groups"]] == [gid]
    assert data["totals"]["kinds"] == {"exact": 0, "perceptual": 0, "verified": 1, "semantic": 0, "similar": 0,
                                          "mixed": 0}


def test_group_view_shows_each_member_with_its_metadata(client, review_library):
    lib = review_library
    detail = client.get(f"/api/groups/{lib['groups']['A']}").json()
    members = {m["path"]: m for m in detail["members"]}
    keeper = members[lib["paths"]["2019/a.jpg"]]
    assert keeper["keeper"] is True and (keeper["width"], keeper["height"]) == (400, 300)
    assert keeper["size"] == os.path.getsize(lib["paths"]["2019/a.jpg"]) and keeper["format"] == "JPEG"
    small = members[lib["paths"]["a_small.jpg"]]
    assert (small["evidence"], small["score"], small["keeper"]) == ("perceptual", 0.953, False)
    assert {"taken_at", "camera", "md5", "decision"} <= set(small)
    assert client.get("/api/groups/999999").status_code == 404


def test_keep_one_marks_the_rest_trash_with_a_time_and_counts_as_reviewed(client, review_library):
    lib = review_library
    gid = lib["groups"]["A"]
    before = time.time()
    detail = client.post(f"/api/groups/{gid}/keep", json={"file_id": lib["ids"]["a_small.jpg"]}).json()
    assert detail["state"] == "reviewed"
    assert {m["path"]: m["decision"] for m in detail["members"]} == {
        lib["paths"]["2019/a.jpg"]: "trash", lib["paths"]["2019/copies/a_copy.jpg"]: "trash",
        lib["paths"]["a_small.jpg"]: "keep"}
    with Catalog(lib["catalog"]) as cat:
        rows = cat.decisions()
    assert rows[lib["ids"]["2019/a.jpg"]]["decided_at"] >= before
    assert rows[lib["ids"]["2019/a.jpg"]]["md5"] is not None
    totals = client.get("/api/overview").json()["totals"]
    assert totals["reviewed"] == 1
    assert totals["marked_trash"] == os.path.getsize(lib["paths"]["2019/a.jpg"]) + \
        os.path.getsize(lib["paths"]["2019/copies/a_copy.jpg"])

    detail = client.post(f"/api/groups/{gid}/decision", json={"file_id": lib["ids"]["2019/a.jpg"], "action": None})
    assert detail.json()["state"] == "partial"
    response = client.post(f"/api/groups/{gid}/decision", json={"file_id": lib["ids"]["b.jpg"], "action": "keep"})
    assert response.status_code == 400
    assert response.json()["error"] == f"file {lib['ids']['b.jpg']} is not in group {gid}"


def test_not_duplicates_is_remembered_by_content_across_rescans_and_regrouping(client, review_library):
    lib = review_library
    ids = lib["ids"]
    detail = client.post(f"/api/groups/{lib['groups']['B']}/not-duplicates", json={"value": True}).json()
    assert detail["state"] == "dismissed"

    scan([lib["root"]], catalog=lib["catalog"], workers=1)  # a re-scan
    new_b, = regroup(lib["catalog"], [("perceptual", ids["b.jpg"],
                                       [(ids["b.jpg"], "perceptual", 1.0), (ids["b_q70.jpg"], "perceptual", 0.95)])])
    assert client.get(f"/api/groups/{new_b}").json()["state"] == "dismissed"
    assert client.get("/api/overview").json()["totals"]["reviewed"] == 1

    grown, = regroup(lib["catalog"], [("semantic", ids["b.jpg"], [(ids["b.jpg"], "semantic", 1.0),
                     (ids["b_q70.jpg"], "semantic", 0.95), (ids["c.jpg"], "semantic", 0.91)])])
    assert client.get(f"/api/groups/{grown}").json()["state"] == "open"  # a new photo joined: ask again

    exact, = regroup(lib["catalog"], [("exact", ids["2019/a.jpg"], [(ids["2019/a.jpg"], "exact", 1.0),
                                                                   (ids["2019/copies/a_copy.jpg"], "exact", 1.0)])])
    response = client.post(f"/api/groups/{exact}/not-duplicates", json={"value": True})
    assert response.status_code == 400
    assert response.json()["error"] == "these files are byte-for-byte identical (same md5): they are duplicates"


def test_a_dismissed_group_takes_no_decision_until_it_is_reopened(client, review_library):
    lib = review_library
    gid, fid = lib["groups"]["B"], lib["ids"]["b_q70.jpg"]
    client.post(f"/api/groups/{gid}/not-duplicates", json={"value": True})
    response = client.post(f"/api/groups/{gid}/decision", json={"file_id": fid, "action": "trash"})
    assert response.status_code == 400
    assert response.json()["error"] == f"group {gid} is marked not duplicates; take that back before deciding"
    response = client.post(f"/api/groups/{gid}/keep", json={"file_id": fid})  # Enter: keep one, trash the rest
    assert response.status_code == 400 and response.json()["error"].startswith(f"group {gid} is marked not dup")
    assert client.get(f"/api/groups/{gid}").json()["state"] == "dismissed"
    client.post(f"/api/groups/{gid}/not-duplicates", json={"value": False})
    assert client.post(f"/api/groups/{gid}/decision", json={"file_id": fid, "action": "trash"}).status_code == 200


def test_one_member_taken_out_stays_out_after_regrouping_and_can_be_put_back(client, review_library):
    lib = review_library
    ids = lib["ids"]
    names = ("2019/a.jpg", "a_small.jpg", "c.jpg")

    def a_group_of_three():
        return regroup(lib["catalog"], [("perceptual", ids["2019/a.jpg"],
                                         [(ids[n], "perceptual", 0.9) for n in names])])[0]

    gid = a_group_of_three()
    client.post(f"/api/groups/{gid}/keep", json={"file_id": ids["2019/a.jpg"]})
    detail = client.post(f"/api/groups/{gid}/take-out", json={"file_id": ids["c.jpg"], "value": True}).json()
    assert [m["path"] for m in detail["members"]] == [lib["paths"][n] for n in names[:2]]
    assert [(m["path"], m["decision"]) for m in detail["removed_members"]] == [(lib["paths"]["c.jpg"], None)]
    assert detail["state"] == "reviewed"
    again = a_group_of_three()  # regrouping finds the three again: c.jpg stays out
    assert [m["path"] for m in client.get(f"/api/groups/{again}").json()["removed_members"]] == [lib["paths"]["c.jpg"]]
    back = client.post(f"/api/groups/{again}/take-out", json={"file_id": ids["c.jpg"], "value": False}).json()
    assert len(back["members"]) == 3 and back["removed_members"] == []
    # the suggested keeper taken out: the rules choose again among the others
    moved = client.post(f"/api/groups/{again}/take-out", json={"file_id": ids["2019/a.jpg"]}).json()
    assert moved["keeper"] == ids["c.jpg"]
    with Catalog(lib["catalog"]) as cat:  # resolution of the content: the fixture's flat lower part trims
        (c_width, c_height), = cat.conn.execute("SELECT content_width, content_height FROM files WHERE id = ?",
                                                (ids["c.jpg"],)).fetchall()
    assert moved["keeper_reason"] == (f"highest resolution ({c_width}x{c_height}) "
                                      "(the first suggestion was taken out)")
    assert [m["path"] for m in moved["members"] if m["keeper"]] == [lib["paths"]["c.jpg"]]
    client.post(f"/api/groups/{again}/take-out", json={"file_id": ids["2019/a.jpg"], "value": False})
    # with two contents left, taking one out is saying the group is not duplicates
    client.post(f"/api/groups/{again}/take-out", json={"file_id": ids["c.jpg"]})
    detail = client.post(f"/api/groups/{again}/take-out", json={"file_id": ids["a_small.jpg"]}).json()
    assert detail["state"] == "dismissed"


def test_accept_suggested_keepers_plans_then_marks_only_undecided_groups(client, review_library):
    lib = review_library
    ids, groups = lib["ids"], lib["groups"]
    client.post(f"/api/groups/{groups['B']}/decision", json={"file_id": ids["b.jpg"], "action": "keep"})
    plan = client.post("/api/accept", json={"group_ids": [groups["A"], groups["B"]], "dry_run": True}).json()
    trash = ["2019/copies/a_copy.jpg", "a_small.jpg"]
    assert (plan["groups"], plan["skipped"], plan["files"]) == ([groups["A"]], [groups["B"]], 2)
    assert plan["bytes"] == sum(os.path.getsize(lib["paths"][n]) for n in trash)
    assert client.get(f"/api/groups/{groups['A']}").json()["state"] == "open"  # a plan marks nothing
    client.post("/api/accept", json={"group_ids": [groups["A"], groups["B"]], "dry_run": False})
    decided = {m["path"]: m["decision"] for m in client.get(f"/api/groups/{groups['A']}").json()["members"]}
    assert decided == {lib["paths"]["2019/a.jpg"]: "keep"} | {lib["paths"][n]: "trash" for n in trash}
    assert client.get(f"/api/groups/{groups['B']}").json()["state"] == "partial"  # left alone


def test_accept_can_be_taken_back_where_nobody_decided_since(client, review_library):
    lib = review_library
    ids, groups = lib["ids"], lib["groups"]
    client.post("/api/accept", json={"group_ids": [groups["A"], groups["B"]], "dry_run": False})
    client.post(f"/api/groups/{groups['B']}/keep", json={"file_id": ids["b_q70.jpg"]})  # decided otherwise since
    undone = client.post("/api/accept/undo", json={"group_ids": [groups["A"], groups["B"]]}).json()
    assert undone == {"groups": [groups["A"]], "skipped": [groups["B"]]}
    assert client.get(f"/api/groups/{groups['A']}").json()["state"] == "open"
    kept = {m["path"]: m["decision"] for m in client.get(f"/api/groups/{groups['B']}").json()["members"]}
    assert kept == {lib["paths"]["b.jpg"]: "trash", lib["paths"]["b_q70.jpg"]: "keep"}
    assert client.get("/api/overview").json()["totals"]["marked_trash"] == os.path.getsize(lib["paths"]["b.jpg"])


def test_marked_for_trash_counts_the_raw_jpeg_companions_as_apply_moves_them(tiny_library, tmp_path):
    # the header said 902.8 MB and apply moved 923.1 MB: a trashed RAW's JPEG half was not counted
    from photodedup.apply import apply
    from photodedup.duplicate_groups import load_groups
    from photodedup.group import group

    catalog = tmp_path / "catalog.sqlite"
    scan([tiny_library["root"]], catalog=catalog, workers=1)
    group(catalog)
    target, pair = next((g, m) for g in load_groups(catalog) for m in g.members if m.companions)
    other = next(m for m in target.members if m is not pair)
    app = create_app(catalog, token=TOKEN, trash_dir=tmp_path / "trash", allowed_hosts={"testserver"})
    with TestClient(app, base_url="http://testserver", headers={TOKEN_HEADER: TOKEN}) as browser:
        detail = browser.post(f"/api/groups/{target.id}/keep", json={"file_id": other.file_id}).json()
        assert {m["file_id"]: m["decision"] for m in detail["members"]}[pair.file_id] == "trash"
        marked = browser.get("/api/overview").json()["totals"]["marked_trash"]
    plan = apply(catalog, trash_dir=tmp_path / "trash", dry_run=True)
    assert marked == plan.bytes_moved == sum(os.path.getsize(m.path) for m in target.members if m is not other
                                             for m in m.files)


def test_compare_shows_where_the_pixels_differ_in_a_map_and_in_words(tmp_path):
    from photodedup.sample_library import stamp_logo

    root = tmp_path / "photos"
    photo = Image.open(write_photo(root / "photo.jpg", size=(640, 480), pattern=1)).convert("RGB")
    stamp_logo(photo).save(root / "photo_logo.jpg", quality=95)
    photo.save(root / "photo_q60.jpg", quality=60)
    catalog = tmp_path / "catalog.sqlite"
    scan([root], catalog=catalog, workers=1)
    with Catalog(catalog) as cat:
        ids = {Path(r["path"]).name: r["id"] for r in cat.files()}
    [gid] = regroup(catalog, [("perceptual", ids["photo.jpg"], [(ids[n], "perceptual", 0.9) for n in sorted(ids)])])
    app = create_app(catalog, token=TOKEN, allowed_hosts={"testserver"})
    with TestClient(app, base_url="http://testserver", headers={TOKEN_HEADER: TOKEN}) as browser:
        def compare(b):
            return browser.get(f"/api/groups/{gid}/compare", params={"a": ids["photo.jpg"], "b": ids[b]}).json()

        logo = compare("photo_logo.jpg")["pixels"]
        assert logo["words"] == "differs in one region, 3% of the picture"
        [(x0, y0, x1, y1)] = logo["regions"]
        assert x0 > 0.5 and y0 > 0.7 and x1 > 0.9 and y1 > 0.9  # the logo's lower right corner
        assert compare("photo_q60.jpg")["pixels"] == {
            "share": 0.0, "regions": [], "words": "no visible difference (resampling or compression noise only)"}
        response = browser.get(f"/api/groups/{gid}/difference.png", params={"a": ids["photo.jpg"],
                                                                            "b": ids["photo_logo.jpg"]})
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        heat = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"), dtype=np.int16)
        red = (heat[..., 0] - heat[..., 1]) > 60
        h, w = red.shape
        assert red[int(h * 0.75):, int(w * 0.6):].sum() > 0.9 * red.sum() > 0  # red only where the logo is
        assert browser.get(f"/api/groups/{gid}/difference.png", params={"a": ids["photo.jpg"], "b": 10**6}
                           ).status_code == 400


def test_compare_names_the_differences(client, review_library):
    lib = review_library
    ids, gid = lib["ids"], lib["groups"]["A"]
    data = client.get(f"/api/groups/{gid}/compare", params={"a": ids["2019/a.jpg"], "b": ids["a_small.jpg"]}).json()
    assert data["a"]["file_id"] == ids["2019/a.jpg"] and data["b"]["file_id"] == ids["a_small.jpg"]
    assert "resolution: 400x300 and 200x150" in data["differences"]
    same = client.get(f"/api/groups/{gid}/compare",
                      params={"a": ids["2019/a.jpg"], "b": ids["2019/copies/a_copy.jpg"]}).json()
    assert same["differences"] == ["identical bytes (same md5)"]
    response = client.get(f"/api/groups/{gid}/compare", params={"a": ids["2019/a.jpg"], "b": ids["b.jpg"]})
    assert response.status_code == 400


def test_labels_export_in_the_truth_format(client, review_library, tmp_path):
    lib = review_library
    client.post(f"/api/groups/{lib['groups']['A']}/keep", json={"file_id": lib["ids"]["2019/a.jpg"]})
    client.post(f"/api/groups/{lib['groups']['B']}/not-duplicates", json={"value": True})
    data = client.get("/api/labels", params={"root": str(lib["root"])}).json()
    assert data["groups"] == [["2019/a.jpg", "2019/copies/a_copy.jpg", "a_small.jpg"]]
    assert data["unrelated"] == ["b.jpg", "b_q70.jpg"]

    from typer.testing import CliRunner

    from photodedup.cli import app

    out = tmp_path / "labels.json"
    result = CliRunner().invoke(app, ["review", "--catalog", str(lib["catalog"]), "--export-labels", str(out),
                                      "--labels-root", str(lib["root"])])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"1 labelled groups written to {out}"
    assert json.loads(out.read_text())["groups"] == data["groups"]

    from photodedup.eval import load_truth

    truth = load_truth(out)  # what `photodedup eval --truth` reads
    assert truth.root == lib["root"]
    assert truth.groups == [[lib["paths"][n] for n in ("2019/a.jpg", "2019/copies/a_copy.jpg", "a_small.jpg")]]


def test_files_are_served_by_catalog_id_only(client, review_library):
    lib = review_library
    response = client.get(f"/files/{lib['ids']['b.jpg']}/thumb")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    response = client.get(f"/files/{lib['ids']['b.jpg']}/image")
    assert response.status_code == 200 and response.content == Path(lib["paths"]["b.jpg"]).read_bytes()
    secret = b"root:x:0:0"
    for url in ["/files/999999/image", "/files/../../../../etc/passwd", "/files/..%2f..%2f..%2fetc%2fpasswd/image",
                "/files/%2e%2e/image", "/static/../../apply.py", "/static/..%2f..%2fapply.py", "/static/index.html%00",
                "/static/%2e%2e%2fdecisions.py", f"/files/{lib['paths']['b.jpg']}/image", "/etc/passwd"]:
        response = client.get(url)
        assert response.status_code in (404, 422), url
        assert secret not in response.content and b"import" not in response.content, url


def test_full_resolution_view_applies_exif_orientation(client, review_library):
    lib = review_library
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    path = write_photo(lib["root"] / "rotated.jpg", size=(400, 300), exif=exif, pattern=4)
    scan([lib["root"]], catalog=lib["catalog"], workers=1)
    with Catalog(lib["catalog"]) as cat:
        file_id = cat.conn.execute("SELECT id FROM files WHERE path = ?", (str(path),)).fetchone()[0]
    response = client.get(f"/files/{file_id}/image")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as shown:
        assert shown.size == (300, 400)
        assert shown.getexif().get(0x0112, 1) == 1


def test_apply_and_undo_from_the_page_and_a_changed_file_is_refused(client, review_library):
    lib = review_library
    client.post(f"/api/groups/{lib['groups']['A']}/keep", json={"file_id": lib["ids"]["2019/a.jpg"]})
    client.post(f"/api/groups/{lib['groups']['B']}/keep", json={"file_id": lib["ids"]["b.jpg"]})
    with open(lib["paths"]["b_q70.jpg"], "ab") as handle:
        handle.write(b"changed after the scan")
    plan = client.post("/api/apply", json={"dry_run": True}).json()
    assert len(plan["moved"]) == 2 and Path(lib["paths"]["a_small.jpg"]).exists()
    assert plan["skipped"] == [{"path": lib["paths"]["b_q70.jpg"],
                                "reason": "changed since the scan (md5 differs); scan again"}]
    done = client.post("/api/apply", json={"dry_run": False}).json()
    assert len(done["moved"]) == 2 and not Path(lib["paths"]["a_small.jpg"]).exists()
    assert client.get(f"/api/groups/{lib['groups']['A']}").json()["state"] == "applied"
    assert client.post("/api/apply", json={"dry_run": False}, headers={TOKEN_HEADER: ""}).status_code == 401
    undone = client.post("/api/undo").json()
    assert len(undone["restored"]) == 2 and Path(lib["paths"]["a_small.jpg"]).exists()


def test_review_command_serves_on_loopback_with_the_printed_url(review_library, server_processes):
    lib = review_library
    port = server_processes.free_port()
    cmd = cli_command("review", "--catalog", lib["catalog"], "--port", port, "--trash-dir", lib["trash"])
    server = server_processes.start(cmd, f"http://127.0.0.1:{port}/healthz", timeout=180)
    try:
        line = next(ln for ln in server.output().splitlines() if ln.startswith("Review at "))
        url = line.split()[2]
        assert url.startswith(f"http://127.0.0.1:{port}/?code=")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            assert http.get("/api/overview").status_code == 401
            assert http.get("/healthz", headers={"host": f"attacker.example:{port}"}).status_code == 400
            assert http.get(url, follow_redirects=True).status_code == 200
            assert http.get("/api/overview").json()["totals"]["groups"] == 2
            assert http.post(f"/api/groups/{lib['groups']['B']}/reset").status_code == 403
        listening = [c for c in __import__("psutil").Process(server.proc.pid).net_connections()
                     if c.status == "LISTEN"]
        assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
    finally:
        server.stop()


def test_differences_name_border_grayscale_crop_mirror_resolution_and_format():
    from photodedup.duplicate_groups import Member
    from photodedup.duplicate_groups.compare import differences

    def m(name, **kw):
        base = {"evidence": "perceptual", "score": 1.0, "width": 4000, "height": 3000, "size": 5_000_000,
                "format": "JPEG", "camera": "Canon EOS R6", "taken_at": "2021-06-01T10:00:00", "md5": name,
                "grayscale": 0}
        return Member(len(name), f"/p/{name}", **(base | kw))

    original = m("IMG_1.jpg", keeper=True, evidence="keeper")
    framed = m("framed.jpg", width=4400, height=3400, content_width=4000, content_height=3000, grayscale=1,
               match={"kind": "perceptual", "bits": 2, "variant": "mirrored"})
    assert differences(original, framed) == [
        "border: framed.jpg has a uniform border (content 4000x3000 in 4400x3400)",
        "grayscale: framed.jpg is grayscale, IMG_1.jpg colour",
        "mirror: framed.jpg is the keeper mirrored"]
    crop = m("crop.png", width=3000, height=3000, format="PNG", size=9_000_000, camera=None, taken_at=None,
             match={"kind": "verified", "inliers": 180, "coverage": 0.93})
    assert differences(original, crop) == [
        "crop: the aspect ratios differ (4000x3000 and 3000x3000), so one shows less",
        "crop or overlay: crop.png matches on 93% of the smaller picture (180 matching features)",
        "resolution: 4000x3000 and 3000x3000", "format: JPEG and PNG", "file size: 5.0 MB and 9.0 MB",
        "EXIF: Canon EOS R6, 2021-06-01T10:00:00 and no camera, no date"]
