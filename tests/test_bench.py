"""``photodedup bench``: statistics with known answers, the load engine on a fake backend, outputs,
and short real runs against the in-process ONNX backend and the real local service."""

from __future__ import annotations

import csv
import json
import math
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_command, run_cli

from photodedup.backends.base import Backend
from photodedup.bench import BenchSettings, Target, bench, parse_list, run_targets, save, serialization
from photodedup.bench import report as render
from photodedup.bench.load import Sample, Window, run_load
from photodedup.bench.payloads import bytes_per_image, decode, encode, sample_crops
from photodedup.bench.server_stats import breakdown, from_triton, parse_service_metrics
from photodedup.bench.stats import StabilityRule, latency_summary, percentile, rate
from photodedup.errors import BadInputError

REQUIRED_COLUMNS = ["backend", "payload", "concurrency", "batch_size", "images_per_second", "p50_ms", "p95_ms",
                    "p99_ms", "errors", "bytes_per_image"]
FAST = {"duration": 0.6, "window": 0.15, "warmup": 0.05}


class FakeBackend(Backend):
    """Sleeps ``delay`` seconds per batch; fails every call when ``fail`` is set."""

    name = "fake"
    model_id = "fake/0"
    max_batch_size = 16

    def __init__(self, delay: float = 0.01, fail: bool = False, **options) -> None:
        self.delay, self.fail, self.options, self.closed = delay, fail, options, False

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        if self.fail:
            raise ConnectionError("server went away")
        out = np.ones((len(images), 512), dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def close(self) -> None:
        self.closed = True


def fake_factory(name: str, **options):
    if name == "broken":
        raise RuntimeError("cannot connect")
    return FakeBackend(fail=name == "failing", **options)


# -- statistics -------------------------------------------------------------------------------------
def test_percentiles_follow_perf_analyzer_nearest_rank():
    values = list(range(100, 0, -1))  # 1..100, unsorted
    assert [percentile(values, p) for p in (0, 50, 90, 95, 99, 100)] == [1, 51, 90, 95, 99, 100]
    assert percentile([10, 20, 30, 40], 50) == 30
    assert percentile([7.5], 99) == 7.5
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_latency_summary_is_in_milliseconds():
    summary = latency_summary([0.001 * i for i in range(1, 101)])
    assert summary["p50_ms"] == pytest.approx(51)
    assert summary["p99_ms"] == pytest.approx(99)
    assert summary["max_ms"] == pytest.approx(100)
    assert summary["mean_ms"] == pytest.approx(50.5)


def test_stability_rule_needs_three_windows_within_ten_percent_of_their_mean():
    rule = StabilityRule()
    assert rule.is_stable([100, 105, 95])
    assert not rule.is_stable([100, 120, 100])  # 120 is 12.5% over the mean of 106.7
    assert not rule.is_stable([100, 100])  # too few windows
    assert rule.is_stable([10, 500, 100, 104, 97])  # only the last three count
    assert rule.is_stable([0, 0, 0])
    assert not rule.is_stable([1, 1, float("nan")])
    assert StabilityRule(windows=2, tolerance=0.25).is_stable([100, 120])


def test_rates_from_windows_of_known_samples():
    window = Window(2.0, [Sample(1.0, 0.1, 4), Sample(1.5, 0.3, 4), Sample(1.9, 0.2, 0, "Boom")], cpu_seconds=0.5)
    assert window.images_per_second == 4.0
    assert window.mean_latency == pytest.approx(0.2)
    assert rate(10, 0) == 0.0


# -- the load engine --------------------------------------------------------------------------------
def test_closed_loop_keeps_exactly_n_requests_in_flight_and_stops_when_stable():
    in_flight, peak, lock = [0], [0], threading.Lock()

    def request() -> int:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.01)
        with lock:
            in_flight[0] -= 1
        return 2

    # max_s only bounds a machine too busy to give three steady windows: the run stops once it is stable
    result = run_load(request, concurrency=3, window_s=0.2, warmup_s=0.05, max_s=120.0,
                      rule=StabilityRule(tolerance=0.5))
    summary = result.summary()
    assert peak[0] == 3
    assert result.stable and summary["stable"]
    assert len(result.used) == 3 and summary["windows"] >= 3
    assert summary["errors"] == 0
    assert summary["images_per_second"] == pytest.approx(2 * summary["requests_per_second"])
    assert summary["p50_ms"] >= 10
    # closed loop: throughput cannot beat concurrency / latency (10% for requests crossing window edges)
    assert summary["requests_per_second"] <= 3 / 0.010 * 1.1


def test_unstable_load_stops_at_the_time_limit_and_says_so():
    slow = [False]

    def request() -> int:
        time.sleep(0.03 if slow[0] else 0.002)
        return 1

    def snapshot() -> int:  # called at every window boundary: flip the speed each window
        slow[0] = not slow[0]
        return 0

    result = run_load(request, concurrency=1, window_s=0.1, warmup_s=0.0, max_s=0.5, snapshot=snapshot)
    assert not result.stable
    assert len(result.windows) >= 3
    assert result.summary()["stable"] is False


def test_failing_requests_are_counted_not_raised():
    def request() -> int:
        raise ConnectionError("connection refused\nsecond line")

    summary = run_load(request, concurrency=2, window_s=0.1, warmup_s=0.0, max_s=0.3).summary()
    assert summary["errors"] > 0
    assert summary["requests"] == 0 and summary["images_per_second"] == 0
    assert summary["error"] == "ConnectionError: connection refused"
    assert math.isnan(summary["p50_ms"])


# -- payloads and server statistics -----------------------------------------------------------------
def test_payload_sizes_and_round_trips():
    crops = sample_crops(3, seed=1)
    assert bytes_per_image("uint8", crops) == 150_528
    assert bytes_per_image("fp32", crops) == 602_112
    assert 5_000 < bytes_per_image("jpeg", crops) < 150_528
    assert bytes_per_image("fp32-json", crops) > 4 * 602_112
    assert np.array_equal(decode("uint8", encode("uint8", crops), 3), crops)
    fp32 = decode("fp32", encode("fp32", crops), 3)
    assert fp32.shape == (3, 3, 224, 224) and fp32.dtype == np.float32
    # JSON of float32 values read back as float32 is exact (repr round-trips)
    assert np.array_equal(decode("fp32-json", encode("fp32-json", crops), 3), fp32)
    # JPEG at quality 95 without chroma subsampling: close, not exact
    assert np.abs(decode("jpeg", encode("jpeg", crops), 3).astype(int) - crops).mean() < 4


def test_serialization_experiment_has_one_row_per_payload():
    rows = serialization(4, repeats=1)
    assert [row["payload"] for row in rows] == ["jpeg", "uint8", "fp32", "fp32-json"]
    by = {row["payload"]: row for row in rows}
    assert by["uint8"]["bytes_vs_uint8"] == 1.0 and by["fp32"]["bytes_vs_uint8"] == 4.0
    assert all(row["total_ms"] == pytest.approx(row["encode_ms"] + row["decode_ms"]) for row in rows)


def test_triton_statistics_breakdown_per_request():
    def stats(requests, images, executions, **ns):
        out = {"inference_count": images, "execution_count": executions}
        for stage in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
            out[f"{stage}_count"], out[f"{stage}_ns"] = requests, ns.get(stage, 0)
        return out

    before = from_triton(stats(10, 10, 10, success=10e6))
    after = from_triton(stats(30, 90, 20, success=10e6 + 20 * 50e6, queue=20 * 5e6, compute_input=20 * 1e6,
                              compute_infer=20 * 40e6, compute_output=20 * 0.5e6))
    parts = breakdown(before, after)
    assert parts["server_ms"] == pytest.approx(50)
    assert parts["queue_ms"] == pytest.approx(5)
    assert parts["compute_input_ms"] == pytest.approx(1)
    assert parts["compute_infer_ms"] == pytest.approx(40)
    assert parts["compute_output_ms"] == pytest.approx(0.5)
    assert parts["server_requests"] == 20
    assert parts["server_batch"] == pytest.approx(8)  # 80 images in 10 model calls
    assert breakdown(None, after) == {}


def test_service_metrics_breakdown_from_the_real_metrics_text():
    from photodedup.service.metrics import Metrics

    metrics = Metrics()
    metrics.latency.labels(endpoint="/healthz").observe(0.5)  # other endpoints do not count
    before = parse_service_metrics(metrics.render())
    for _ in range(4):
        metrics.latency.labels(endpoint="/embed").observe(0.100)
        metrics.decode.observe(0.010)
        metrics.queue.observe(0.020)
    metrics.inference.observe(0.060)
    metrics.batch_size.observe(8)
    metrics.images.inc(8)
    parts = breakdown(before, parse_service_metrics(metrics.render()))
    assert parts["server_ms"] == pytest.approx(100)
    assert parts["compute_input_ms"] == pytest.approx(10)
    assert parts["queue_ms"] == pytest.approx(20)
    assert parts["compute_infer_ms"] == pytest.approx(60)
    assert parts["server_requests"] == 4
    assert parts["server_batch"] == pytest.approx(8)


def test_verdict_names_where_the_time_goes():
    row = {"backend": "triton-http", "payload": "uint8", "concurrency": 8, "batch_size": 1, "requests": 100,
           "images_per_second": 50.0, "p50_ms": 150.0, "mean_ms": 160.0, "server_ms": 150.0, "queue_ms": 110.0,
           "compute_input_ms": 1.0, "compute_infer_ms": 35.0, "compute_output_ms": 0.0, "errors": 0}
    line = render.verdict([row])
    assert line.startswith("triton-http: best 50.0 img/s at concurrency 8, batch 1, p50 150 ms; of 160 ms a request:")
    assert "compute 22%, queue 69%, outside 6% -> queue-bound" in line
    assert render.verdict([{**row, "requests": 0, "error": "ConnectError: refused"}]) == \
        "triton-http: failed, ConnectError: refused"


# -- bench: rows, outputs, errors -------------------------------------------------------------------
def test_bench_gives_one_row_per_configuration_and_writes_json_csv_and_plots(tmp_path):
    settings = BenchSettings(backends=("fake",), concurrency=(1, 2), batch_sizes=(1, 4), **FAST)
    report = bench(settings, backend_factory=fake_factory)
    assert [(r["concurrency"], r["batch_size"]) for r in report.rows] == [(1, 1), (2, 1), (1, 4), (2, 4)]
    for row in report.rows:
        assert row["backend"] == "fake" and row["payload"] == "uint8" and row["errors"] == 0
        assert row["images_per_second"] > 0 and row["p50_ms"] >= 10 and row["bytes_per_image"] == 150_528
    paths = save(report, json_file=tmp_path / "out.json", csv_file=tmp_path / "out.csv", plot_dir=tmp_path / "plots")
    assert [p.name for p in paths] == ["out.json", "out.csv", "throughput.png", "latency.png"]
    with (tmp_path / "out.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and list(rows[0])[:10] == REQUIRED_COLUMNS
    data = json.loads((tmp_path / "out.json").read_text())
    assert len(data["rows"]) == 4 and data["verdicts"][0].startswith("fake: best ")
    for name in ("throughput.png", "latency.png"):
        png = (tmp_path / "plots" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_a_backend_that_errors_shows_up_as_errors_in_the_table():
    settings = BenchSettings(backends=("fake", "failing", "broken"), concurrency=(1,), batch_sizes=(1, 32), **FAST)
    report = bench(settings, backend_factory=fake_factory)
    by = {(r["backend"], r["batch_size"]): r for r in report.rows}
    assert by[("fake", 1)]["errors"] == 0
    assert by[("fake", 32)]["error"] == "batch size 32 is over the backend's maximum of 16"
    assert by[("failing", 1)]["errors"] > 0 and by[("failing", 1)]["error"] == "ConnectionError: server went away"
    assert by[("broken", 1)]["error"] == "RuntimeError: cannot connect"
    text = _render(report.rows)
    assert "failing" in text and "broken" in text
    assert "broken c=1 b=1: 1 errors, first: RuntimeError: cannot connect" in render.error_lines(report.rows)


def test_when_every_backend_fails_to_start_the_first_error_is_raised():
    settings = BenchSettings(backends=("http-service",), payload="fp32", **FAST)
    with pytest.raises(BadInputError, match="http-service cannot send payload 'fp32'"):
        bench(settings, backend_factory=fake_factory)


def test_parse_list():
    assert parse_list("1, 4,8", int) == (1, 4, 8)
    with pytest.raises(BadInputError, match="--concurrency takes a comma-separated list of ints, got '1,x'"):
        parse_list("1,x", int, option="--concurrency")


# -- real backends ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_run_against_the_in_process_onnx_backend(onnx_model_dir):
    # up to 10 s (stable sooner on a quiet machine): windows stretch until a request finishes, so even a
    # busy machine measures requests
    settings = BenchSettings(backends=("onnx",), concurrency=(1, 2), batch_sizes=(2,), model_dir=onnx_model_dir,
                           duration=10, window=0.3, warmup=0.2)
    report = bench(settings)
    assert [(r["backend"], r["payload"], r["concurrency"]) for r in report.rows] == [
        ("onnx", "in-process", 1), ("onnx", "in-process", 2)]
    for row in report.rows:
        assert row["errors"] == 0 and row["requests"] > 0 and row["bytes_per_image"] == 0
        assert row["model_id"] == "ViT-B-32/random-seed0"
        assert row["client_cpu_percent"] > 0


@pytest.mark.slow
def test_real_run_against_the_local_service_with_server_breakdown(onnx_model_dir, server_processes):
    port = server_processes.free_port()
    url = f"http://127.0.0.1:{port}"
    server = server_processes.start(cli_command("serve", "--port", port, "--model-dir", onnx_model_dir),
                                    f"{url}/readyz")
    try:
        settings = BenchSettings(backends=("http-service",), concurrency=(1, 2), batch_sizes=(1,), url=url,
                               duration=10, window=0.3, warmup=0.2)
        rows = bench(settings).rows
    finally:
        server.stop()
    assert [(r["backend"], r["payload"], r["concurrency"]) for r in rows] == [
        ("http-service", "jpeg", 1), ("http-service", "jpeg", 2)]
    for row in rows:
        assert row["errors"] == 0 and row["requests"] > 0
        assert 5_000 < row["bytes_per_image"] < 150_528
        # the service's own /metrics, read at the window's edges: about the time we saw, less the network.
        # A request that straddles an edge is counted by one side only, so with the few requests of a
        # short window on a loaded machine the server's mean can come out a little above ours.
        assert row["server_ms"] is not None and 0 < row["server_ms"] <= 1.5 * row["mean_ms"]
        assert row["compute_infer_ms"] > 0
        assert row["outside_server_ms"] == pytest.approx(row["mean_ms"] - row["server_ms"])


def test_run_targets_reports_a_target_known_to_be_unusable():
    target = Target("onnx", "onnx", {}, "in-process", error=BadInputError("no export"))
    ok = Target("fake", "fake", {}, "uint8")
    report = run_targets([target, ok], BenchSettings(concurrency=(1,), **FAST), backend_factory=fake_factory)
    assert [r["error"] for r in report.rows] == ["BadInputError: no export", ""]


# -- the command -------------------------------------------------------------------------------------
def _render(rows: list[dict]) -> str:
    from rich.console import Console

    console = Console(width=250, record=True, file=open(os.devnull, "w"))
    console.print(render.table(rows))
    return console.export_text()


def test_cli_default_without_an_export_names_export_onnx():
    result = run_cli("bench", "--concurrency", "32")  # the default precision: every command's (int8 on a CPU)
    assert result.returncode == 7
    # the one default precision (int8 on a CPU), as every other command
    model_dir = Path(os.environ["PHOTODEDUP_HOME"]) / "models" / "ViT-B-32-laion2b_s34b_b79k-uint8-int8"
    assert result.stderr.splitlines()[-2:] == [
        f"Error: no ONNX export in {model_dir}",
        "Hint: run `photodedup export-onnx --weights laion2b_s34b_b79k --precision int8` first, or point "
        "--model-dir (PHOTODEDUP_MODEL_DIR) at an export",
    ]


def test_cli_bad_concurrency_is_a_usage_error_with_exact_text():
    result = run_cli("bench", "--concurrency", "1,many")
    assert result.returncode == 3
    assert result.stderr.strip() == "Error: --concurrency takes a comma-separated list of ints, got '1,many'"


def test_cli_serialization_json():
    result = run_cli("bench", "--serialization", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # one object, as every --json
    assert list(data) == ["rows"]
    assert [row["payload"] for row in data["rows"]] == ["jpeg", "uint8", "fp32", "fp32-json"]


def test_cli_runs_the_onnx_backend_and_writes_files(onnx_model_dir, tmp_path):
    result = run_cli("bench", "--model-dir", str(onnx_model_dir), "--concurrency", "1", "--batch-size", "1",
                  "--duration", "0.9", "--window", "0.3", "--warmup", "0.1", "--csv", str(tmp_path / "rows.csv"),
                  "--plot-dir", str(tmp_path / "plots"))
    assert result.returncode == 0, result.stderr
    assert "img/s" in result.stdout and "onnx" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("onnx: best ")
    assert (tmp_path / "rows.csv").read_text().splitlines()[0].startswith(",".join(REQUIRED_COLUMNS))
    assert (tmp_path / "plots" / "throughput.png").stat().st_size > 10_000


@pytest.mark.slow
def test_pipeline_mode_against_the_naive_script(tiny_library, random_export, tmp_path, monkeypatch):
    """`bench --pipeline`: the naive script and scan + embed embed the same images, timed per stage."""
    from conftest import home_with_export

    # a home holding the cached fp32 export, where the pipeline's export-onnx finds it (no second export)
    monkeypatch.setenv("PHOTODEDUP_HOME", str(home_with_export(tmp_path / "home", random_export("fp32"))))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = run_cli("bench", "--pipeline", tiny_library["root"], "--weights", "random", "--precision", "fp32",
                     "--json", env={"TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    decodable = tiny_library["files"] - tiny_library["broken"]
    assert [r["path"] for r in data["rows"]] == ["naive script", "scan + embed onnx fp32"]
    assert [r["images"] for r in data["rows"]] == [decodable, decodable]
    assert data["rows"][0]["x_naive"] == 1.0 and data["rows"][1]["images_per_second"] > 0
    assert {"scan", "embed", "infer"} <= set(data["rows"][1]["stages"])
    # its scratch catalogs are gone (no --work given); torch may keep its per-user compile cache there
    assert [p.name for p in scratch.iterdir() if p.name.startswith("photodedup-")] == []


def test_pipeline_mode_needs_a_library(tmp_path):
    result = run_cli("bench", "--pipeline", tmp_path / "none")
    assert result.returncode == 3
    assert result.stderr.splitlines()[0] == f"Error: no library folder at {tmp_path / 'none'}"
