"""Shared fixtures. Expensive ones (the ONNX export) are session-scoped and cached across runs."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Steady on a busy machine: no per-example time limit and no "data generation too slow" failure (a test's
# own @settings still choose its examples)
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

#: Fixtures that export ViT-B/32 (hundreds of MB, minutes) or start servers: a test using one is slow.
SLOW_FIXTURES = {"onnx_model_dir", "random_export", "separating_checkpoint", "separating_model_dir",
                 "triton_server", "server_processes"}


#: Tests that run the real CLI again and again (kill it, edit under it, recover, rerun): seconds each, so
#: slow, by file ("*": every test of it) or by test name (parameters aside).
SLOW_TESTS = {
    "test_apply_loss.py": {"*"},
    "test_apply_faults.py": {"*"},
    "test_chaos.py": {"*"},
    "test_media.py": {"*"},
    "test_privacy.py": {"*"},
    "test_scan_robustness.py": {"*"},
    "test_cli_consistency.py": {"test_no_catalog_is_exit_4_everywhere"},
    "test_architecture.py": {"test_the_serving_path_imports_no_torch"},
    # group a sample library again and again (sweeps, the pixel check over many pairs), run ExifTool over the
    # real files, or drive `bench` for seconds: seconds each (issue 23's one-minute loop)
    "test_capture_time.py": {"test_capture_times_agree_with_exiftool_on_real_files"},
    "test_confirm.py": {"test_a_resized_drawn_graphic_is_one_group"},
    "test_bench.py": {"test_payload_sizes_and_round_trips",
                      "test_bench_gives_one_row_per_configuration_and_writes_json_csv_and_plots",
                      "test_cli_serialization_json", "test_cli_default_without_an_export_names_export_onnx"},
    "test_apply.py": {"test_a_kill_mid_apply_loses_nothing_and_the_next_apply_finishes", "test_cli_dry_run_and_errors",
                      "test_a_catalog_from_before_the_trash_was_data_still_knows_its_trash_and_undo_restores_it"},
    # the slowest of the rest (`-m "not slow" --durations=30`, issue 23): a library through every stage, or
    # the CLI run several times over one
    "test_odd_images.py": {"test_every_stage_takes_odd_images"},
    "test_matching.py": {"test_group_json_says_what_joined_each_member",
                         "test_each_new_evidence_kind_can_be_turned_off",
                         "test_every_edit_kind_joins_the_original_and_the_look_alike_stays_apart"},
    "test_model.py": {"test_a_file_that_is_not_a_checkpoint_is_a_clear_error"},
    "test_real_files.py": {"test_every_stage_finishes_on_the_real_files"},
    "test_group.py": {"test_cli_group_json_and_errors",
                      "test_faiss_search_finds_the_planted_pairs_the_exact_search_finds",
                      "test_cli_prefer_a_reference_folder_and_change_the_rule_order",
                      "test_csv_and_self_contained_html", "test_group_finds_the_planted_groups_and_stores_them",
                      "test_random_embeddings_are_never_evidence_unless_allowed"},
    "test_eval.py": {"test_evaluate_on_the_sample_library", "test_sweep_recall_grows_with_the_hash_threshold",
                     "test_cli_eval_and_sweep_plot", "test_partial_labels_score_only_the_files_they_list"},
    "test_run.py": {"test_cli_run", "test_run_without_embedding_scans_groups_and_reports"},
    "test_formats.py": {"test_solid_frames_are_not_called_grayscale_copies_or_added_borders",
                        "test_the_scan_counts_what_it_did_not_look_at_by_kind"},
    "test_identity.py": {"*"},
    "test_provenance.py": {"test_a_jpeg_of_a_lossless_picture_is_its_encoding_in_any_orientation"},
    "test_review.py": {"test_marked_for_trash_counts_the_raw_jpeg_companions_as_apply_moves_them"},
    "test_sample_library.py": {"test_no_two_originals_of_a_400_original_library_are_perceptually_near"},
    # the slowest of the rest again (`-m "not slow" --durations=60`, issue 23, session 5: 65.7 s quiet against
    # the 60 s goal): the pixel check over proposals, a scan with forked RAW decoders, sharded and FAISS
    # searches over thousands of vectors
    "test_group_proposals.py": {"test_the_crop_no_hash_reaches_is_proposed_by_colour_and_confirmed_by_pixels",
                                "test_a_small_logo_on_a_flat_frame_is_a_copy_and_another_colour_is_not",
                                "test_a_stretched_half_of_a_sky_photo_is_not_grouped_with_the_photo"},
    "test_parquet.py": {"test_sharded_search_finds_the_exact_pairs_in_a_small_memory_budget",
                        "test_group_parquet_errors_are_clear"},  # three CLI runs that load pyarrow
    "test_difference.py": {"test_a_white_margin_photo_does_not_carry_a_mark_against_its_frame_copy"},
    # session 7 (issue 23, per-test CPU in a cgroup each): the loop's heaviest left, 2.8-5.2 CPU s each (a
    # name with its parameters marks that case only)
    "test_preprocess.py": {"test_parity_with_open_clip_eval_transform[size9-RGB]"},  # 3000 x 2000 through torch
    "test_raw.py": {"test_raw_jpeg_pairs_through_the_scan", "test_forked_workers_decode_after_an_in_process_decode",
                    "test_dng_with_and_without_preview_through_the_scan"},
    "test_framed.py": {"test_a_framed_page_is_one_group_with_its_page_and_its_look_alikes_stay_apart"},
}


#: The files that take longest (``--durations``, issue 23), longest first. They run first: with
#: ``--dist loadfile --no-loadscope-reorder`` (``make test``) xdist hands files out in this order, so no long
#: file starts last and runs alone while the other worker idles (by default xdist orders by test count).
LONGEST_FIRST = [
    "test_gpu_check.py", "test_executor.py", "test_cli_consistency.py", "test_confirm.py", "test_matching.py",
    "test_parquet.py", "test_review_browser.py", "test_apply_loss.py", "test_bench.py", "test_service.py",
    "test_export_onnx.py", "test_triton_torch.py", "test_odd_images.py", "test_eval.py",
]


#: Files whose loop tests import PyTorch and open_clip in the worker process (about 4 CPU s each time): with
#: ``-n 2`` (the README's loop, xdist's ``load``) their tests go to one worker, so that one pays that, not both.
ONE_WORKER = {"test_model.py": "torch", "test_gpu.py": "torch", "test_preprocess.py": "torch"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's ``load`` (``-n 2`` alone), except that each ``ONE_WORKER`` group is one unit of work (the other
    tests one each). Other ``--dist`` modes (``make test``'s ``loadfile``) are xdist's own. (Not xdist's own
    ``loadgroup`` marks: xdist 3.8 renames the test ids through ``item._nodeid``, which pytest 9 no longer
    reads, so the groups are silently not kept.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return ONE_WORKER.get(nodeid.split("::")[0].rsplit("/", 1)[-1], nodeid)

    return OneWorkerFiles(config, log)


def pytest_collection_modifyitems(config, items):
    """``-m "not slow"`` is the edit-test loop (about a minute): it never builds the export, starts a server
    or runs the CLI over and over. The longest files go first (``LONGEST_FIRST``)."""
    for item in items:
        names = SLOW_TESTS.get(item.path.name, set())
        if (SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or "*" in names
                or item.name.split("[")[0] in names or item.name in names):
            item.add_marker(pytest.mark.slow)
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


@pytest.fixture(scope="session")
def test_cache() -> Path:
    """Where expensive, rebuildable test artefacts (exports) are kept between runs."""
    path = Path(os.environ.get("PHOTODEDUP_TEST_CACHE", Path.home() / ".cache" / "photodedup-tests"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def cache_lock(cache: Path, name: str):
    """Hold an exclusive lock on ``cache/name.lock``: one process (an xdist worker, another checkout's run)
    builds a cached artefact while the others wait and then reuse it."""
    import fcntl

    with open(cache / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own PHOTODEDUP_HOME, so nothing touches the user's catalog or models."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("PHOTODEDUP_HOME", str(home))
    monkeypatch.delenv("PHOTODEDUP_CATALOG", raising=False)
    monkeypatch.delenv("PHOTODEDUP_MODEL_DIR", raising=False)


@pytest.fixture(scope="session")
def random_export(test_cache):
    """``random_export(precision, input_kind="uint8")``: the random-weight ViT-B/32 export at ``precision``
    (uint8 or float32 input), made once per precision and input and kept in the test cache (an export takes
    minutes)."""
    from photodedup.export_onnx import export_onnx

    made: dict[tuple[str, str], Path] = {}

    def export(precision: str = "fp32", input_kind: str = "uint8") -> Path:
        if (precision, input_kind) not in made:
            lock = f"export-random-{precision}" + ("" if input_kind == "uint8" else f"-{input_kind}")
            with cache_lock(test_cache, lock):
                made[precision, input_kind] = export_onnx(
                    "random", precision=precision, input_kind=input_kind,
                    out=test_cache / f"vit-b-32-random-{input_kind}-{precision}")
        return made[precision, input_kind]

    return export


@pytest.fixture(scope="session")
def onnx_model_dir(random_export) -> Path:
    """A real export of random-weight ViT-B/32 (uint8 input, fp32), verified against PyTorch."""
    return random_export("fp32")


def home_with_export(home: Path, export: Path) -> Path:
    """``home`` (a PHOTODEDUP_HOME) holding ``export`` where ``export-onnx`` would write it (hard links where
    the filesystem allows: no copy of the model), so a fresh setup's ``export-onnx`` reuses it."""
    import json
    import shutil

    from photodedup import config
    from photodedup.exports import default_export_dir

    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    meta = json.loads((export / "metadata.json").read_text())
    # the folder export-onnx picks (named by model id, input and precision), not the cache's name for it
    name = default_export_dir(meta["weights"], meta["precision"], meta["input_kind"]).name
    target = home / config.models_dir().relative_to(config.home()) / name
    # not a graph the onnx backend is writing into the export's session cache right now (it renames it when done)
    shutil.copytree(export, target, copy_function=link_or_copy, ignore=shutil.ignore_patterns("*.partial"))
    return home


@pytest.fixture(scope="session")
def separating_checkpoint(test_cache) -> Path:
    """A constructed ViT-B/32 checkpoint whose embeddings tell images apart (``separating_model.py``):
    use it wherever a test claims two paths give the same embeddings."""
    import separating_model

    path = test_cache / f"vit-b-32-separating-v{separating_model.VERSION}.pt"
    with cache_lock(test_cache, path.name):
        return path if path.is_file() else separating_model.build(path)


@pytest.fixture(scope="session")
def separating_model_dir(separating_checkpoint, test_cache) -> Path:
    """The separating checkpoint exported (uint8 input, fp32), verified against PyTorch."""
    from photodedup.export_onnx import export_onnx

    with cache_lock(test_cache, "export-separating-fp32"):
        return export_onnx(str(separating_checkpoint), precision="fp32", input_kind="uint8",
                           out=test_cache / "vit-b-32-separating-uint8-fp32")


@pytest.fixture(scope="session")
def _tiny_library_made(tmp_path_factory) -> dict:
    from photodedup.sample_library import make_library

    return make_library(tmp_path_factory.mktemp("tiny") / "lib", originals=4, megapixels=0.3, seed=0)


@pytest.fixture
def tiny_library(_tiny_library_made, tmp_path) -> dict:
    """A small generated library: 4 originals with near-duplicates, exact copies, unrelated and broken files.
    Each test gets its own copy (in ``tmp_path / "lib"``, files and times as made) of one library made once
    per session: the library is the same for the same arguments, and making it costs seconds."""
    import shutil

    root = shutil.copytree(_tiny_library_made["root"], tmp_path / "lib")
    return {**_tiny_library_made, "root": str(root), "truth": str(root / "truth.json")}


@pytest.fixture(scope="session")
def shared_library(tmp_path_factory) -> dict:
    """A sample library of 92 files (more than one scan batch), made once per session: READ-ONLY, for the
    tests that scan it and kill or interrupt the scan (each with its own catalog)."""
    from photodedup.sample_library import make_library

    return make_library(tmp_path_factory.mktemp("shared") / "lib", originals=24, megapixels=0.5, seed=3)


# -- real server processes (shared: the service and Triton tests) ---------------------------------------
class ServerProcess:
    """A server started as a real subprocess; its stdout and stderr go to a log file."""

    def __init__(self, cmd: list[str], url: str, log_path: Path, env: dict | None = None, preexec_fn=None) -> None:
        import subprocess

        from helpers import REPO, cli_env

        self.cmd, self.url, self.log_path = cmd, url, log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=cli_env(env), cwd=REPO,
                                     preexec_fn=preexec_fn)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_until_responds(self, url: str, timeout: float) -> None:
        """Poll ``url`` until it answers 200; fail at once with the output if the process died."""
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{' '.join(self.cmd)} exited with {self.proc.returncode} before {url} answered:\n"
                            f"{self.output()}", pytrace=False)
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"{url} did not answer 200 within {timeout} s; output:\n{self.output()}", pytrace=False)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful), then SIGKILL after ``timeout``; returns the exit code."""
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class ServerProcesses:
    """Start servers on free loopback ports; whatever a test leaves running is stopped at session end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[ServerProcess] = []

    @staticmethod
    def free_port() -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def start(self, cmd: list[str], url: str, *, timeout: float = 120.0, env: dict | None = None,
              preexec_fn=None) -> ServerProcess:
        """Start ``cmd`` (``helpers.cli_command(...)``; ``env`` adds to the environment; ``preexec_fn`` runs in
        the child before it starts, e.g. to set a resource limit) and return once ``url`` answers 200
        (``pytest.fail`` with its output otherwise)."""
        server = ServerProcess(cmd, url, self.log_dir / f"server-{len(self.started)}.log", env, preexec_fn)
        self.started.append(server)
        server.wait_until_responds(url, timeout)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture(scope="session")
def server_processes(tmp_path_factory):
    """``server_processes.start(cmd, url, timeout=...)`` and ``server_processes.free_port()``."""
    processes = ServerProcesses(tmp_path_factory.mktemp("servers"))
    yield processes
    processes.stop_all()


# -- review, apply, undo ---------------------------------------------------------------------------------
@pytest.fixture
def review_library(tmp_path) -> dict:
    """A scanned mini library with two hand-made groups in the catalog (as ``photodedup group`` stores them).

    Group A: a.jpg (keeper), a_copy.jpg (exact copy), a_small.jpg (resized). Group B: b.jpg (keeper),
    b_q70.jpg (re-encoded). Plus c.jpg in no group. Returns {root, catalog, trash, paths, ids, groups}.
    """
    import shutil

    from helpers import write_photo
    from PIL import Image

    from photodedup.catalog import Catalog
    from photodedup.scan import scan

    root = tmp_path / "photos"
    a = write_photo(root / "2019" / "a.jpg", size=(400, 300), pattern=1)
    (root / "2019" / "copies").mkdir()
    shutil.copyfile(a, root / "2019" / "copies" / "a_copy.jpg")
    Image.open(a).resize((200, 150)).save(root / "a_small.jpg", quality=90)
    b = write_photo(root / "b.jpg", size=(360, 240), color=(20, 90, 160), pattern=2)
    Image.open(b).save(root / "b_q70.jpg", quality=70)
    write_photo(root / "c.jpg", size=(300, 300), color=(200, 200, 40), pattern=3)
    catalog = tmp_path / "catalog.sqlite"
    scan([root], catalog=catalog, workers=1)
    names = ["2019/a.jpg", "2019/copies/a_copy.jpg", "a_small.jpg", "b.jpg", "b_q70.jpg", "c.jpg"]
    paths = {n: str(root / n) for n in names}
    with Catalog(catalog) as cat:
        ids = {n: cat.conn.execute("SELECT id FROM files WHERE path = ?", (p,)).fetchone()[0] for n, p in paths.items()}
        specs = [("A", "mixed", "2019/a.jpg", [("2019/a.jpg", "exact", 1.0), ("2019/copies/a_copy.jpg", "exact", 1.0),
                                                ("a_small.jpg", "perceptual", 0.953)]),
                 ("B", "perceptual", "b.jpg", [("b.jpg", "perceptual", 1.0), ("b_q70.jpg", "perceptual", 0.969)])]
        _, group_ids = cat.store_group_run({"method": "fixture"}, [
            (kind, ids[keeper], "largest resolution", [(ids[n], evidence, score, "") for n, evidence, score in members])
            for _, kind, keeper, members in specs])
        groups = {spec[0]: gid for spec, gid in zip(specs, group_ids, strict=True)}
    return {"root": root, "catalog": catalog, "trash": tmp_path / "trash", "paths": paths, "ids": ids,
            "groups": groups}


# -- a real Triton server (nvidia-pytriton's tritonserver here), serving the CPU variant ----------------
@pytest.fixture(scope="session")
def triton_server(onnx_model_dir, server_processes, tmp_path_factory) -> dict:
    """``photodedup serve --engine triton`` on free ports with the CPU (Python-backend) variant of the
    real export; yields ``{"http": host:port, "grpc": host:port, "metrics": url, "repository": path}``."""
    from helpers import cli_command

    from photodedup.triton.config import CPU_MODEL
    from photodedup.triton_config import triton_config

    repository = tmp_path_factory.mktemp("triton") / "model_repository"
    triton_config(onnx_model_dir, repository, variants=(CPU_MODEL,))
    http, grpc, metrics = (server_processes.free_port() for _ in range(3))
    cmd = cli_command("serve", "--engine", "triton", "--model-repository", repository,
                      "--http-port", http, "--grpc-port", grpc, "--metrics-port", metrics)
    server = server_processes.start(cmd, f"http://127.0.0.1:{http}/v2/models/{CPU_MODEL}/ready", timeout=240)
    yield {"http": f"127.0.0.1:{http}", "grpc": f"127.0.0.1:{grpc}", "metrics": f"http://127.0.0.1:{metrics}/metrics",
           "repository": repository, "process": server}
    server.stop()


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size) -> Path``: a real, small tmpfs (root only; skipped elsewhere), unmounted afterwards.

    For full disks and read-only filesystems: fill it, or ``mount -o remount,ro`` it.
    """
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(size: str = "4m") -> Path:
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                                capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)
