"""The review page as an attacker sees it (issue 13): swapped files, huge ids, a busy port.

A real ``photodedup review`` process on a free loopback port, reached over HTTP with its token.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path

import httpx
import pytest
from helpers import cli_command, idle_connections, run_cli

from photodedup.catalog import Catalog

TOKEN = "review-security-token"
SECRET = b"root:$6$not-for-your-eyes:19000:0:99999:7:::\n" * 50


@pytest.fixture
def served(review_library, server_processes):
    """The review page of the fixture library, as a real server; yields ``(client, library)``."""
    lib = review_library
    port = server_processes.free_port()
    cmd = cli_command("review", "--catalog", lib["catalog"], "--port", port, "--trash-dir", lib["trash"],
                      "--token", TOKEN)
    server = server_processes.start(cmd, f"http://127.0.0.1:{port}/healthz", timeout=180)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Photodedup-Token": TOKEN},
                      timeout=120) as client:
        yield client, lib
    server.stop()


def test_only_the_scanned_file_is_served(served, tmp_path):
    client, lib = served
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    photo = Path(lib["paths"]["b.jpg"])
    image = f"/files/{lib['ids']['b.jpg']}/image"
    assert client.get(image).content == photo.read_bytes()

    scanned = photo.read_bytes()
    photo.rename(tmp_path / "scanned-b.jpg")  # kept, so its inode is not handed to the next file
    os.symlink(secret, photo)  # the scanned photo is now a link to a secret
    refused = client.get(image)
    assert refused.status_code == 404 and SECRET[:20] not in refused.content
    assert "not the file that was scanned" in refused.json()["detail"]

    photo.unlink()  # a different file with the same name, size and mtime: another inode
    photo.write_bytes(scanned[:-16] + b"\0" * 16)
    with Catalog(lib["catalog"]) as cat:
        mtime = cat.file(lib["ids"]["b.jpg"])["mtime_ns"]
    os.utime(photo, ns=(mtime, mtime))
    assert client.get(image).status_code == 404

    folder = Path(lib["paths"]["2019/a.jpg"]).parent  # a folder swapped for a link to another one
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folder, elsewhere)
    (tmp_path / "decoy").mkdir()
    (tmp_path / "decoy" / "a.jpg").write_bytes(SECRET)
    os.symlink(tmp_path / "decoy", folder)
    response = client.get(f"/files/{lib['ids']['2019/a.jpg']}/image")
    assert response.status_code == 404 and SECRET[:20] not in response.content


def test_an_id_beyond_int64_is_not_found(served):
    client, lib = served
    huge = 2**64 + 5
    assert client.get(f"/files/{huge}/image").status_code == 404
    assert client.get(f"/files/{huge}/thumb").status_code == 404
    assert client.get(f"/api/groups/{huge}").status_code == 404
    assert client.post(f"/api/groups/{huge}/reset").status_code == 404


def test_a_port_in_use_is_a_clear_error_before_any_url(review_library):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("review", "--catalog", review_library["catalog"], "--port", port, timeout=60)
    assert result.returncode == 3
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "Review at" not in result.stderr + result.stdout and "token=" not in result.stderr


def test_open_hands_the_browser_a_one_time_code_never_the_session_token(review_library, server_processes, tmp_path):
    """``--open`` runs ``$BROWSER URL``: the URL is in that process's command line, which every local user
    can read in /proc. It must not hold the session token, and the code it holds works once."""
    lib = review_library
    seen = tmp_path / "browser-argv.json"
    browser = tmp_path / "browser.py"
    browser.write_text(f"import json, sys\nopen({str(seen)!r}, 'w').write(json.dumps(sys.argv))\n")
    port = server_processes.free_port()
    cmd = cli_command("review", "--catalog", lib["catalog"], "--port", port, "--trash-dir", lib["trash"],
                      "--token", TOKEN, "--open")
    env = {"BROWSER": f"{sys.executable} {browser} %s"}
    server = server_processes.start(cmd, f"http://127.0.0.1:{port}/healthz", timeout=180, env=env)
    try:  # webbrowser waits for a $BROWSER command: it ran before the server listened
        argv = json.loads(seen.read_text())
        assert TOKEN not in " ".join(argv) and TOKEN not in server.output()
        url = argv[-1]
        assert url.startswith(f"http://127.0.0.1:{port}/?code=")
        with httpx.Client(timeout=120) as first:
            answer = first.get(url, follow_redirects=False)
            assert answer.status_code == 303 and answer.headers["location"] == "/"
            assert first.get(f"http://127.0.0.1:{port}/api/overview").json()["totals"]["groups"] == 2
        with httpx.Client(timeout=120) as second:  # the same link again: spent
            assert second.get(url, follow_redirects=False).status_code == 401
            assert second.get(f"http://127.0.0.1:{port}/api/overview").status_code == 401
    finally:
        server.stop()


def test_another_site_or_port_cannot_load_a_photo(served):
    client, lib = served
    photo = f"/files/{lib['ids']['b.jpg']}/image"
    for site in ("cross-site", "same-site"):  # same-site: a page on 127.0.0.1 at another port
        answer = client.get(photo, headers={"Sec-Fetch-Site": site, "Sec-Fetch-Dest": "image"})
        assert answer.status_code == 403 and answer.headers["content-type"] == "application/json"
        assert answer.headers["cross-origin-resource-policy"] == "same-origin"
    for site in ("same-origin", "none", None):
        answer = client.get(photo, headers={"Sec-Fetch-Site": site} if site else {})
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        assert answer.headers["cross-origin-resource-policy"] == "same-origin"


def test_a_non_ascii_token_anywhere_is_refused_not_an_error(served):
    client, lib = served
    port = client.base_url.port
    wrong = "tök€n".encode()
    with httpx.Client(base_url=client.base_url, timeout=120) as anonymous:
        answers = [anonymous.get("/api/overview", headers={"X-Photodedup-Token": wrong}),
                   anonymous.get("/api/overview", headers={"Cookie": b"photodedup_review_%d=%s" % (port, wrong)}),
                   anonymous.get("/?token=t%C3%B6k%E2%82%AC", follow_redirects=False),
                   anonymous.get("/?code=%C3%A9", follow_redirects=False)]
    assert [a.status_code for a in answers] == [401, 401, 401, 401]
    assert all("error" in a.json() for a in answers)


def test_idle_connections_beyond_the_descriptor_limit_never_stop_the_page(review_library, server_processes):
    import resource

    lib, limit, idle_count = review_library, 128, 400
    port = server_processes.free_port()
    cmd = cli_command("review", "--catalog", lib["catalog"], "--port", port, "--trash-dir", lib["trash"],
                      "--token", TOKEN)
    server = server_processes.start(cmd, f"http://127.0.0.1:{port}/healthz", timeout=180,
                                    preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
    idle = []
    try:
        idle = idle_connections(port, idle_count)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Photodedup-Token": TOKEN}) as client:
            assert client.get("/healthz", timeout=120).status_code == 200
            assert client.get("/api/overview", timeout=120).json()["totals"]["groups"] == 2
        assert server.proc.poll() is None
    finally:
        for sock in idle:
            sock.close()
        server.stop()
