"""The review page as an attacker sees it (issue 13): swapped files, huge ids, a busy port.

A real ``photodedup review`` process on a free loopback port, reached over HTTP with its token.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import httpx
import pytest
from helpers import cli_command, run_cli

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
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Photodedup-Token": TOKEN}) as client:
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
