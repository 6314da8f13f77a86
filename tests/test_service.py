"""``photodedup serve``: the dynamic batcher, the request limits, and the real service in a subprocess.

The server tests start ``python -m photodedup serve`` on a free loopback port with the real random-weight
ViT-B/32 export and talk to it over HTTP. Tolerances: the service and the local onnx backend run the same
ONNX graph on the same uint8 crops; only the batch composition differs, which moves float32 results by
well under 1e-5, so we require max |difference| <= 1e-5 per component.
"""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from helpers import cli_command, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from photodedup.backends.base import Backend
from photodedup.backends.http_service import encode_npy
from photodedup.errors import BackendUnavailableError, InferenceError
from photodedup.preprocess import DEFAULT_PREPROCESS, crop_from_source
from photodedup.service.batcher import DynamicBatcher
from photodedup.service.limits import Limits, RequestRejected, decode_image, parse_npy
from photodedup.service.metrics import Metrics

TOKEN = "s3cret-token"


# -- helpers --------------------------------------------------------------------------------------------
class FakeBackend(Backend):
    """Deterministic embeddings (row i depends only on image i) and a record of every model call."""

    name = "fake"
    model_id = "fake/1"
    max_batch_size = 256

    def __init__(self, delay: float = 0.0, fail: bool = False, gate: threading.Event | None = None) -> None:
        self.delay, self.fail, self.calls, self.gate = delay, fail, [], gate

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(len(images))
        if self.gate is not None:  # the model call waits until the test has queued everything
            assert self.gate.wait(600), "the test never opened the gate"
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("boom")
        return fake_embed(images)

    def close(self) -> None:
        pass


def fake_embed(images: np.ndarray) -> np.ndarray:
    means = images.reshape(len(images), -1).mean(axis=1, dtype=np.float64)
    return np.stack([np.full(4, m, np.float32) for m in means])


def crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + data + chunk(b"IEND", b"")


def image_bytes(size=(64, 48), fmt="JPEG", color=(200, 30, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def raw_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


async def submit_all(batcher: DynamicBatcher, requests: list[np.ndarray]) -> list[np.ndarray]:
    return await asyncio.gather(*(batcher.submit(r) for r in requests))


# -- the dynamic batcher ----------------------------------------------------------------------------------
def assert_each_gets_its_rows(batcher, requests) -> None:
    """Send the requests concurrently, close the batcher, and check every request got exactly its rows."""
    try:
        results = asyncio.run(submit_all(batcher, requests))
    finally:
        batcher.close()
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result, fake_embed(request))


def test_batcher_merges_concurrent_requests_and_returns_each_its_rows():
    # The first model call (of however many requests the worker had taken) waits until all 16 are queued, so
    # the next call finds at least 8 waiting, whatever the scheduler did: not a race against max_queue_delay.
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    metrics = Metrics()
    batcher = DynamicBatcher(backend, max_batch_size=8, max_queue_delay=0.05, metrics=metrics)
    requests = [crops(1, seed) for seed in range(16)]

    async def queue_all_then_open():
        tasks = [asyncio.create_task(batcher.submit(r)) for r in requests]
        await asyncio.sleep(0)  # each task runs up to its await: all sixteen are queued
        gate.set()
        return await asyncio.gather(*tasks)

    try:
        results = asyncio.run(queue_all_then_open())
    finally:
        batcher.close()
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result, fake_embed(request))
    assert sum(backend.calls) == 16
    assert max(backend.calls) == 8  # merged up to the maximum batch size
    assert metrics.value("photodedup_batch_requests_count") == len(backend.calls)
    assert metrics.value("photodedup_images_total") == 16


def test_batcher_splits_a_request_larger_than_the_maximum_batch():
    backend = FakeBackend()
    batcher = DynamicBatcher(backend, max_batch_size=4, max_queue_delay=0.0)
    images = crops(10)
    assert_each_gets_its_rows(batcher, [images])
    assert sorted(backend.calls) == [2, 4, 4]


def test_batcher_hands_a_failed_model_call_to_every_request_and_keeps_running():
    backend = FakeBackend(fail=True)
    batcher = DynamicBatcher(backend, max_batch_size=8, max_queue_delay=0.01)
    try:
        with pytest.raises(InferenceError, match="inference failed: boom"):
            asyncio.run(submit_all(batcher, [crops(1), crops(2)]))
        backend.fail = False
        np.testing.assert_array_equal(batcher.embed_sync(crops(1), timeout=600), fake_embed(crops(1)))
    finally:
        batcher.close()


def test_an_answer_nobody_can_receive_does_not_stop_the_batcher():
    # Two requests in two model calls; the first fails, so the caller's event loop ends (gather raises)
    # while the second call runs: its answer is for a closed loop. This used to kill the worker thread,
    # and every later request waited for its timeout.
    backend = FakeBackend(fail=True, delay=0.05)
    batcher = DynamicBatcher(backend, max_batch_size=1, max_queue_delay=0.0)
    try:
        with pytest.raises(InferenceError):
            asyncio.run(submit_all(batcher, [crops(1), crops(1, 1)]))
        backend.fail = False
        np.testing.assert_array_equal(batcher.embed_sync(crops(1), timeout=600), fake_embed(crops(1)))
    finally:
        batcher.close()


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 7), min_size=1, max_size=12), max_batch=st.integers(1, 9))
def test_batching_does_not_change_results(sizes, max_batch):
    """The law: whatever the batcher merges or splits, each request gets exactly its own rows."""
    backend = FakeBackend()
    batcher = DynamicBatcher(backend, max_batch_size=max_batch, max_queue_delay=0.001)
    requests = [crops(n, seed) for seed, n in enumerate(sizes)]
    assert_each_gets_its_rows(batcher, requests)
    assert max(backend.calls) <= max_batch


def test_batcher_finishes_queued_work_when_closed():
    backend = FakeBackend(delay=0.02)
    batcher = DynamicBatcher(backend, max_batch_size=2, max_queue_delay=0.0)

    async def six_then_close():
        tasks = [asyncio.create_task(batcher.submit(crops(1, i))) for i in range(6)]
        await asyncio.sleep(0)  # each task runs up to its await: all six are queued
        batcher.close()
        return await asyncio.gather(*tasks)

    results = asyncio.run(six_then_close())
    assert [r.tolist() for r in results] == [fake_embed(crops(1, i)).tolist() for i in range(6)]
    with pytest.raises(BackendUnavailableError, match="shutting down"):
        asyncio.run(batcher.submit(crops(1)))


# -- limits and decoding -------------------------------------------------------------------------------
def test_pixel_count_is_refused_from_the_header_before_decoding():
    limits = Limits(max_pixels=1_000_000)
    with pytest.raises(RequestRejected) as caught:
        decode_image(image_bytes((1200, 1000), "PNG"), DEFAULT_PREPROCESS, limits)
    assert (caught.value.http_status, caught.value.code) == (413, "too_many_pixels")
    assert "1200x1000 = 1200000 pixels is over the limit of 1000000" in str(caught.value)
    with pytest.raises(RequestRejected) as caught:
        decode_image(png_declaring(30000, 30000), DEFAULT_PREPROCESS, Limits())
    assert caught.value.http_status == 413


def test_decoding_matches_the_catalogs_crop():
    data = image_bytes((640, 480))
    np.testing.assert_array_equal(decode_image(data, DEFAULT_PREPROCESS, Limits()), crop_from_source(data))


@pytest.mark.parametrize(("body", "message"), [
    (b"not an npy file at all", "the body is not a valid .npy array"),
    (encode_npy(np.zeros((2, 224, 224, 3), np.float32)), "expected uint8 [N,224,224,3] in C order, got float32"),
    (encode_npy(np.zeros((2, 3, 224, 224), np.uint8)), "got uint8 [2, 3, 224, 224] in C order"),
    (encode_npy(np.zeros((2, 224, 224, 3), np.uint8))[:-10],
     "the header promises 301056 bytes of data, the body holds 301046"),
    (encode_npy(np.zeros((0, 224, 224, 3), np.uint8)), "the tensor holds no images"),
    (raw_npy(np.asfortranarray(np.zeros((2, 224, 224, 3), np.uint8))), "in Fortran order"),
])
def test_malformed_tensors_are_rejected_with_the_reason(body, message):
    with pytest.raises(RequestRejected) as caught:
        parse_npy(body, Limits())
    assert caught.value.http_status == 400
    assert message in str(caught.value)


def test_a_valid_tensor_parses_without_copying_semantics_changing():
    images = crops(3)
    np.testing.assert_array_equal(parse_npy(encode_npy(images), Limits()), images)
    with pytest.raises(RequestRejected, match="4 images are over the limit of 3 per request"):
        parse_npy(encode_npy(crops(4)), Limits(max_images=3))


def test_each_limit_admits_exactly_its_value_and_refuses_one_more():
    from photodedup.service.limits import check_declared_length, decode_images

    limits = Limits(max_body_bytes=1000, max_images=2, max_pixels=64 * 48)
    check_declared_length("1000", limits)  # at the limit: taken
    with pytest.raises(RequestRejected) as caught:
        check_declared_length("1001", limits)
    assert caught.value.http_status == 413
    small = image_bytes((64, 48), "PNG")
    assert decode_images([small, small], DEFAULT_PREPROCESS, limits).shape == (2, 224, 224, 3)
    with pytest.raises(RequestRejected, match="3 images are over the limit of 2 per request"):
        decode_images([small] * 3, DEFAULT_PREPROCESS, limits)
    with pytest.raises(RequestRejected, match="the request holds no images"):
        decode_images([], DEFAULT_PREPROCESS, limits)
    with pytest.raises(RequestRejected, match="65x48 = 3120 pixels is over the limit of 3072"):
        decode_image(image_bytes((65, 48), "PNG"), DEFAULT_PREPROCESS, limits)
    assert parse_npy(encode_npy(crops(2)), limits).shape == (2, 224, 224, 3)
    with pytest.raises(RequestRejected, match="3 images are over the limit of 2 per request"):
        parse_npy(encode_npy(crops(3)), limits)


def test_metrics_render_cumulative_histograms():
    metrics = Metrics()
    metrics.batch_size.observe(3)
    metrics.batch_size.observe(20)
    metrics.requests.labels(endpoint="/embed", status="200").inc()
    text = metrics.render()
    assert 'photodedup_batch_size_bucket{le="4.0"} 1.0' in text
    assert 'photodedup_batch_size_bucket{le="32.0"} 2.0' in text
    assert 'photodedup_batch_size_bucket{le="+Inf"} 2.0' in text
    assert "photodedup_batch_size_count 2.0" in text
    assert 'photodedup_requests_total{endpoint="/embed",status="200"} 1.0' in text


# -- the real service ------------------------------------------------------------------------------------
def serve_args(model_dir, port: int, *extra: str) -> tuple:
    return ("serve", "--model-dir", model_dir, "--port", port, *extra)


@pytest.fixture(scope="module")
def service(onnx_model_dir, server_processes):
    """One service for the module: small limits so the oversize cases stay small, and a token."""
    port = server_processes.free_port()
    cmd = cli_command(*serve_args(onnx_model_dir, port, "--max-body-mb", "4", "--max-images", "8",
                                  "--max-batch-size", "16", "--max-queue-delay-us", "5000", "--token", TOKEN))
    server = server_processes.start(cmd, f"http://127.0.0.1:{port}/readyz", timeout=180)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service.url.removesuffix("/readyz"), timeout=60,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield http


@pytest.fixture(scope="module")
def local_onnx(onnx_model_dir):
    from photodedup.backends.onnx import OnnxBackend

    backend = OnnxBackend(onnx_model_dir)
    yield backend
    backend.close()


def metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
               or line.startswith(name + "{"))


@pytest.mark.slow
def test_service_answers_health_readiness_metadata_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "model": "ViT-B-32/random-seed0"}
    info = client.get("/v1/model").json()
    assert info["model"] == "ViT-B-32/random-seed0"
    assert info["dim"] == 512
    assert info["input"]["dtype"] == "uint8" and info["input"]["shape"] == [-1, 224, 224, 3]
    assert (info["max_batch_size"], info["max_images_per_request"]) == (16, 8)
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/embed"]["post"]["requestBody"]["content"]
    assert set(body) == {"image/jpeg", "image/png", "image/webp", "multipart/form-data", "application/x-npy"}


@pytest.mark.slow
def test_token_is_required_except_for_probes(client, service):
    base = service.url.removesuffix("/readyz")
    answer = httpx.post(f"{base}/embed", content=image_bytes(), headers={"Content-Type": "image/jpeg"}, timeout=120)
    assert answer.status_code == 401
    assert answer.json() == {"error": "unauthorized",
                             "message": "a valid bearer token is required (Authorization: Bearer ...)"}
    assert httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=120).status_code == 401
    assert httpx.get(f"{base}/readyz", timeout=120).status_code == 200
    assert httpx.get(f"{base}/healthz", timeout=120).status_code == 200


@pytest.mark.slow
def test_embeddings_equal_the_local_backend(client, local_onnx):
    images = crops(5, seed=7)
    local = local_onnx.embed_batch(images)
    answer = client.post("/embed", content=encode_npy(images),
                         headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-npy"
    remote = np.load(io.BytesIO(answer.content))
    assert remote.dtype == np.float32 and remote.shape == (5, 512)
    np.testing.assert_allclose(remote, local, atol=1e-5)

    photo = image_bytes((640, 427), "JPEG", (10, 120, 200))
    answer = client.post("/embed", content=photo, headers={"Content-Type": "image/jpeg"}).json()
    assert (answer["model"], answer["dim"], answer["count"]) == ("ViT-B-32/random-seed0", 512, 1)
    np.testing.assert_allclose(answer["embeddings"], local_onnx.embed_batch(crop_from_source(photo)[None]), atol=1e-5)

    files = [("image", (f"{i}.png", image_bytes((50 + i, 40), "PNG", (i * 40, 0, 0)), "image/png")) for i in range(3)]
    answer = client.post("/embed", files=files).json()
    expected = local_onnx.embed_batch(np.stack([crop_from_source(f[1][1]) for f in files]))
    np.testing.assert_allclose(answer["embeddings"], expected, atol=1e-5)


def truncated_jpeg() -> bytes:
    data = image_bytes((320, 240))
    return data[: len(data) // 2]


BAD_REQUESTS = {
    "garbage bytes": (dict(content=b"\x00\x01garbage" * 50, headers={"Content-Type": "image/jpeg"}),
                      400, "undecodable_image"),
    "truncated jpeg": (dict(content=truncated_jpeg(), headers={"Content-Type": "image/jpeg"}),
                       400, "undecodable_image"),
    "30000x30000 declared": (dict(content=png_declaring(30000, 30000), headers={"Content-Type": "image/png"}),
                             413, "too_many_pixels"),
    "wrong content type": (dict(content=b"hello", headers={"Content-Type": "text/plain"}),
                           415, "unsupported_media_type"),
    "no content type": (dict(content=b"hello"), 415, "unsupported_media_type"),
    "oversize body": (dict(content=b"\xff" * (5 * 1024 * 1024), headers={"Content-Type": "image/jpeg"}),
                      413, "body_too_large"),
    "malformed npy": (dict(content=b"\x93NUMPY\x01\x00garbage", headers={"Content-Type": "application/x-npy"}),
                      400, "malformed_tensor"),
    "float npy": (dict(content=encode_npy(np.zeros((1, 224, 224, 3), np.float32)),
                       headers={"Content-Type": "application/x-npy"}), 400, "malformed_tensor"),
    "empty multipart": (dict(content=b"--xyz--\r\n", headers={"Content-Type": "multipart/form-data; boundary=xyz"}),
                        400, "no_images"),
    "multipart without boundary": (dict(content=b"abc", headers={"Content-Type": "multipart/form-data"}),
                                   400, "malformed_multipart"),
    "empty body": (dict(content=b"", headers={"Content-Type": "image/png"}), 400, "empty_body"),
    "too many images": (dict(files=[("image", (f"{i}.jpg", image_bytes(), "image/jpeg")) for i in range(9)]),
                        413, "too_many_images"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_naming_the_problem(client, case):
    kwargs, status, code = BAD_REQUESTS[case]
    answer = client.post("/embed", **kwargs)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code
    assert answer.json()["message"]


@pytest.mark.slow
def test_after_the_bad_requests_the_service_is_ready_and_embeds_a_1x1_image(client):
    for kwargs, _, _ in BAD_REQUESTS.values():
        assert 400 <= client.post("/embed", **kwargs).status_code < 500
    assert client.get("/readyz").status_code == 200
    answer = client.post("/embed", content=image_bytes((1, 1), "PNG"), headers={"Content-Type": "image/png"})
    assert answer.status_code == 200 and len(answer.json()["embeddings"][0]) == 512
    assert 'status="500"' not in client.get("/metrics").text


@pytest.mark.slow
def test_32_concurrent_clients_get_answers_and_requests_are_batched(client, service):
    base = service.url.removesuffix("/readyz")
    before = client.get("/metrics").text
    payloads = [encode_npy(crops(1, seed)) for seed in range(4)]
    per_client = 4  # 32 clients at once is the claim; more requests each only make the CPU model work longer

    def one_client(index: int) -> list[tuple[int, int, str]]:
        """The requests that did not get 200: (request, status, body)."""
        with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            failed = []
            for i in range(per_client):
                if (index + i) % 4 == 0:
                    answer = http.post("/embed", content=image_bytes((80, 60)), headers={"Content-Type": "image/jpeg"})
                else:
                    answer = http.post("/embed", content=payloads[(index + i) % 4],
                                       headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"})
                if answer.status_code != 200:
                    failed.append((index * per_client + i, answer.status_code, answer.text[:300]))
            return failed

    with ThreadPoolExecutor(32) as pool:
        failed = [bad for result in pool.map(one_client, range(32)) for bad in result]
    assert not failed, (f"{len(failed)} of {32 * per_client} requests failed: {failed[:5]}; server log:\n"
                        f"{service.output()[-4000:]}")
    after = client.get("/metrics").text
    calls = metric(after, "photodedup_batch_size_count") - metric(before, "photodedup_batch_size_count")
    images = metric(after, "photodedup_batch_size_sum") - metric(before, "photodedup_batch_size_sum")
    assert images == 32 * per_client
    assert calls < 32 * per_client  # some model calls merged several requests
    assert 'photodedup_batch_requests_bucket{le="1.0"}' in after


@pytest.mark.slow
def test_shutdown_lets_in_flight_requests_finish(onnx_model_dir, server_processes):
    port = server_processes.free_port()
    server = server_processes.start(cli_command(*serve_args(onnx_model_dir, port)), f"http://127.0.0.1:{port}/readyz",
                                    timeout=180)
    base = f"http://127.0.0.1:{port}"
    result = {}

    def long_request():
        result["answer"] = httpx.post(f"{base}/embed", content=encode_npy(crops(32)), timeout=120,
                                      headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"})

    thread = threading.Thread(target=long_request)
    thread.start()
    deadline = time.monotonic() + 600  # only guards a hang
    while metric(httpx.get(f"{base}/metrics", timeout=120).text, "photodedup_requests_in_flight") < 1:
        assert time.monotonic() < deadline, "the request never reached the service"
        time.sleep(0.01)
    assert server.stop() in (0, -15)  # uvicorn re-raises the SIGTERM it handled once it has shut down
    thread.join()
    assert result["answer"].status_code == 200
    assert np.load(io.BytesIO(result["answer"].content)).shape == (32, 512)
    assert "Waiting for application shutdown" in server.output()
    assert "Finished server process" in server.output()


# -- the CLI ------------------------------------------------------------------------------------------------
def test_serve_without_an_export_exits_7_with_the_reason(tmp_path, server_processes):
    missing = tmp_path / "nowhere"
    port = server_processes.free_port()
    run = run_cli(*serve_args(missing, port), timeout=120)
    assert run.returncode == 7, run.stderr
    assert f"Error: no ONNX export in {missing}" in run.stderr


def test_serve_on_a_busy_port_exits_3(tmp_path, server_processes):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = run_cli(*serve_args(tmp_path, port), timeout=120)
    assert run.returncode == 3, run.stderr
    assert f"Error: cannot listen on 127.0.0.1:{port}: Address already in use" in run.stderr


def test_accepted_connections_have_nagle_off():
    """Kept-alive requests stalled ~40 ms (Nagle + delayed ACK) when the listening socket did not say TCP."""
    import asyncio
    import socket

    from photodedup.listener import listen

    sock = listen("127.0.0.1", 0)
    seen: list[int] = []

    async def main() -> None:
        done = asyncio.Event()

        def accepted(reader, writer):
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()
            done.set()

        server = await asyncio.start_server(accepted, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        await asyncio.wait_for(done.wait(), 600)  # the server's side of the connection, however late
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert seen and seen[0] != 0
