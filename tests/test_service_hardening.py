"""The embedding service against slow, lying and greedy clients (issue 13). A real ``photodedup serve``
with short deadlines, spoken to over raw sockets where an HTTP client library would be too polite."""

from __future__ import annotations

import io
import socket
import time

import httpx
import pytest
from helpers import cli_command, idle_connections
from PIL import Image

TOKEN = "hardening-token"
TIMEOUT = 2  # --request-timeout of the service under test
CONNECTIONS = 6  # --max-connections
MAX_PIXELS = 1_000_000  # --max-pixels (the default is 50,000,000)


@pytest.fixture(scope="module")
def service(onnx_model_dir, server_processes):
    port = server_processes.free_port()
    cmd = cli_command("serve", "--model-dir", onnx_model_dir, "--port", port, "--token", TOKEN,
                      "--request-timeout", TIMEOUT, "--max-connections", CONNECTIONS, "--max-body-mb", "8",
                      "--access-log", "--max-pixels", MAX_PIXELS)
    server = server_processes.start(cmd, f"http://127.0.0.1:{port}/readyz", timeout=180)
    yield {"port": port, "url": f"http://127.0.0.1:{port}", "process": server}
    server.stop()


def encoded(fmt: str, size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, fmt)
    return buffer.getvalue()


def read_response(sock: socket.socket, limit: float) -> bytes:
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


def test_the_access_log_shows_a_hostile_path_as_it_came_percent_encoded(service):
    answer = httpx.get(service["url"] + "/%1b]0;pwned%07%0dmoved", timeout=120)
    assert answer.status_code == 404
    line = '"GET /%1b]0;pwned%07%0dmoved HTTP/1.1" 404'
    deadline = time.monotonic() + 120  # the server's process writes the line after it answered: wait for it
    while line not in (log := service["process"].output()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert line in log and "\x1b" not in log


def test_a_non_ascii_bearer_token_is_401(service):
    answer = httpx.get(service["url"] + "/metrics", headers={"Authorization": "Bearer tök€n".encode()}, timeout=120)
    assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"


def test_the_schema_and_its_page_need_the_token(service):
    for path in ("/openapi.json", "/docs"):
        assert httpx.get(service["url"] + path, timeout=120).status_code == 401
    schema = httpx.get(service["url"] + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    assert schema.status_code == 200 and "/embed" in schema.json()["paths"]


@pytest.mark.parametrize("declared, fmt, actual", [("image/jpeg", "PNG", "image/png"),
                                                   ("image/png", "JPEG", "image/jpeg"),
                                                   ("image/webp", "PNG", "image/png")])
def test_the_declared_type_must_be_the_real_format(service, declared, fmt, actual):
    answer = httpx.post(service["url"] + "/embed", content=encoded(fmt), timeout=120,
                        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": declared})
    assert answer.status_code == 415
    assert answer.json() == {"error": "content_type_mismatch", "message": f"image 0 is declared {declared} "
                                                                          f"but is {actual}"}


def test_formats_the_service_does_not_take_are_not_decoded(service):
    answer = httpx.post(service["url"] + "/embed", timeout=120, headers={"Authorization": f"Bearer {TOKEN}"},
                        files=[("image", ("a.gif", encoded("GIF"), "application/octet-stream"))])
    assert answer.status_code == 400 and answer.json()["error"] == "undecodable_image"


def test_a_body_that_never_arrives_gets_408(service):
    with socket.create_connection(("127.0.0.1", service["port"])) as sock:
        sock.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                     b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 6000000\r\n\r\nabc")
        answer = read_response(sock, TIMEOUT + 120)  # the server answers and closes: a limit, not a wait
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"request_timeout"' in answer


def test_headers_trickled_slowly_get_408_and_the_connection_closes(service):
    with socket.create_connection(("127.0.0.1", service["port"])) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(2 * TIMEOUT):  # a byte a second keeps uvicorn's own keep-alive timer from firing
            try:
                sock.sendall(b"X")
            except OSError:
                break
            time.sleep(0.5)
        answer = read_response(sock, TIMEOUT + 120)  # the server answers and closes: a limit, not a wait
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer[:200]


def test_idle_connections_make_room_oldest_first_so_health_is_answered(service):
    idle = [socket.create_connection(("127.0.0.1", service["port"])) for _ in range(CONNECTIONS + 2)]
    try:
        assert httpx.get(service["url"] + "/healthz", timeout=120).status_code == 200
        idle[0].settimeout(120)  # a recv that times out raises: closed is b"", not "nothing yet"
        assert idle[0].recv(65536) == b""  # the oldest was closed, without an answer
    finally:
        for sock in idle:
            sock.close()


def test_when_every_connection_is_busy_a_new_one_gets_503(onnx_model_dir, server_processes):
    port, cap = server_processes.free_port(), 4
    cmd = cli_command("serve", "--model-dir", onnx_model_dir, "--port", port, "--token", TOKEN,
                      "--max-connections", cap, "--request-timeout", 300)
    server = server_processes.start(cmd, f"http://127.0.0.1:{port}/readyz", timeout=180)
    busy = [socket.create_connection(("127.0.0.1", port)) for _ in range(cap)]
    try:  # each in the middle of a request: its body still to come (100 Continue: the server read the headers)
        for sock in busy:
            sock.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nExpect: 100-continue\r\n"
                         b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 6000000\r\n\r\n")
            sock.settimeout(60)
            assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=120)
        assert answer.status_code == 503
        assert answer.json() == {"error": "busy", "message": "every connection is busy; try again"}
    finally:
        for sock in busy:
            sock.close()
        server.stop()


def test_a_huge_png_is_refused_from_its_header(service, tmp_path):
    from helpers import png_bomb

    bomb = png_bomb(tmp_path / "huge.png", 13000, 13000).read_bytes()
    answer = httpx.post(service["url"] + "/embed", content=bomb, timeout=120,
                        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"})
    assert answer.status_code == 413 and answer.json()["error"] == "too_many_pixels"
    assert f"169000000 pixels is over the limit of {MAX_PIXELS}" in answer.json()["message"]


def test_serve_max_pixels_is_the_limit_the_service_applies(service):
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/png"}
    model = httpx.get(service["url"] + "/v1/model", headers=headers, timeout=120).json()
    assert model["max_pixels"] == MAX_PIXELS
    above = httpx.post(service["url"] + "/embed", content=encoded("PNG", (1001, 1000)), headers=headers, timeout=120)
    assert above.status_code == 413 and above.json()["error"] == "too_many_pixels"
    assert f"1001x1000 = 1001000 pixels is over the limit of {MAX_PIXELS}" in above.json()["message"]
    at = httpx.post(service["url"] + "/embed", content=encoded("PNG", (1000, 1000)), headers=headers, timeout=120)
    assert at.status_code == 200, at.text


# -- fuzzing the decoders ---------------------------------------------------------------------------------
def seeds() -> list[tuple[str, bytes]]:
    """One small real file per format the service might be sent, and a valid batch tensor."""
    import numpy as np

    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    out = []
    for fmt, media in (("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"),
                       ("GIF", "image/png"), ("TIFF", "image/jpeg")):
        buffer = io.BytesIO()
        picture.save(buffer, fmt)
        out.append((media, buffer.getvalue()))
    buffer = io.BytesIO()
    np.save(buffer, rng.integers(0, 255, (1, 224, 224, 3), dtype=np.uint8))
    out.append(("application/x-npy", buffer.getvalue()))
    return out


def mutate(data: bytes, rng) -> bytes:
    """One of: flipped bytes, a cut, inserted junk, a repeated chunk, a huge size field, or random bytes."""
    import struct

    kind = rng.integers(0, 6)
    data = bytearray(data)
    if kind == 0:
        for _ in range(rng.integers(1, 12)):
            data[rng.integers(0, len(data))] ^= 1 << rng.integers(0, 8)
    elif kind == 1:
        data = data[: rng.integers(0, len(data))]
    elif kind == 2:
        at = rng.integers(0, len(data))
        data[at:at] = rng.bytes(int(rng.integers(1, 64)))
    elif kind == 3:
        at, size = rng.integers(0, len(data)), rng.integers(1, 256)
        data[at:at] = data[at : at + size] * int(rng.integers(2, 50))
    elif kind == 4:  # width/height fields where PNG, GIF and npy keep them
        if data.startswith(b"\x89PNG"):
            data[16:24] = struct.pack(">II", int(rng.integers(1, 2**31)), int(rng.integers(1, 2**31)))
        elif data.startswith(b"GIF"):
            data[6:10] = struct.pack("<HH", 65535, 65535)
        else:
            data = data.replace(b"(1, 224", f"({int(rng.integers(2, 10**9))}, 224".encode(), 1)
    else:
        data = bytearray(rng.bytes(int(rng.integers(0, 4096))))
    return bytes(data)


def test_fuzzed_bodies_never_get_a_500_and_memory_stays_bounded(service):
    import numpy as np
    import psutil

    rng = np.random.default_rng(13)
    process = psutil.Process(service["process"].proc.pid)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=service["url"], headers=headers, timeout=120) as client:
        client.post("/embed", content=seeds()[0][1], headers={"Content-Type": "image/jpeg"})  # warm
        baseline = process.memory_info().rss
        cases = [(media, mutate(data, rng)) for _ in range(50) for media, data in seeds()]
        for index, (media, body) in enumerate(cases):
            if index % 3 == 0:  # also as multipart parts, with the declared type or none
                answer = client.post("/embed", files=[("image", ("x", body, media if index % 2 else "application/"
                                                                 "octet-stream"))])
            else:
                answer = client.post("/embed", content=body, headers={"Content-Type": media})
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            assert answer.status_code < 500, (index, media, answer.text)
        grown = process.memory_info().rss - baseline
        assert client.get("/readyz").status_code == 200
    assert len(cases) == 300 and statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0, statuses
    assert grown < 300 * 2**20, f"the service grew by {grown / 2**20:.0f} MiB over {len(cases)} fuzzed requests"


def test_idle_connections_beyond_the_descriptor_limit_never_stop_health(onnx_model_dir, server_processes):
    """``ulimit -n 256`` and 1,000 idle connections (loopback): the server keeps its connections below the
    descriptor limit, drops idle ones to make room, and answers /healthz all along.

    The flood starts once the model is loaded (``/readyz``), as in the module's ``service``: ``/healthz``
    answers while the model still loads, and asyncio accepts a flood in one burst up to the descriptor
    limit ("socket.accept() out of system resource"), so a flood during the load races the loader for
    descriptors (the model, its cached graph); a failed load stops the server (``on_fatal``) and the next
    ``/healthz`` is refused. A refused ``/healthz`` fails with the server's exit code and log."""
    import resource

    limit, idle_count = 256, 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < idle_count + 256:
        pytest.skip(f"this test opens {idle_count} sockets; the descriptor limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, idle_count + 256), hard))
    port = server_processes.free_port()
    cmd = cli_command("serve", "--model-dir", onnx_model_dir, "--port", port)  # the default --max-connections
    server = server_processes.start(
        cmd, f"http://127.0.0.1:{port}/readyz", timeout=180,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
    idle = []
    try:
        idle = idle_connections(port, idle_count)
        for _ in range(5):
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=120)  # an answer, not a time
            except httpx.HTTPError as error:  # say why: the server's exit code and its log
                pytest.fail(f"/healthz: {error!r}; server exit code {server.proc.poll()}:\n{server.output()}")
            assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        assert server.proc.poll() is None
    finally:
        for sock in idle:
            sock.close()
        server.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))  # the worker's next tests get its own limit
