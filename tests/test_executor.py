"""The executor seam: local worker processes or Ray tasks, the same catalog either way.

The Ray tests start real Ray runtimes (``ray.init`` inside the CLI, and a head plus a worker node started
with ``ray start`` as separate processes); they are slow (Ray takes seconds to start) and few.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from photodedup.errors import BadInputError
from photodedup.executor import LocalExecutor, open_executor
from tests.helpers import cli_env, run_cli, start_cli, wait_paused, write_photo

EMBEDDING_TOLERANCE = 1e-5  # the same ONNX graph on the same CPU: only thread scheduling could differ


def _cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_cli(*args, env=env, timeout=timeout)


def catalog_state(path: Path) -> dict:
    """What scan and embed wrote, by path: the file rows (hashes byte for byte), crops, thumbnails, vectors."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    columns = ("root", "size", "mtime_ns", "status", "error_kind", "md5", "phash", "dhash", "width", "height",
               "format", "taken_at", "camera", "exif_tags")
    files = {r["path"]: tuple(r[c] for c in columns) for r in conn.execute("SELECT * FROM files")}
    joined = "SELECT f.path, x.{col} FROM {table} x JOIN files f ON f.id = x.file_id"
    crops = dict(conn.execute(joined.format(col="jpeg", table="crops")).fetchall())
    thumbs = dict(conn.execute(joined.format(col="jpeg", table="thumbs")).fetchall())
    vectors = {p: np.frombuffer(v, np.float32) for p, v in
               conn.execute(joined.format(col="vector", table="embeddings") + " WHERE x.vector IS NOT NULL")}
    conn.close()
    return {"files": files, "crops": crops, "thumbs": thumbs, "vectors": vectors}


def assert_same_catalog(ours: dict, reference: dict, *, crops: bool = True) -> None:
    assert ours["files"] == reference["files"]
    if crops:
        assert ours["crops"] == reference["crops"]
    assert ours["thumbs"] == reference["thumbs"]
    assert ours["vectors"].keys() == reference["vectors"].keys()
    for path, vector in reference["vectors"].items():
        np.testing.assert_allclose(ours["vectors"][path], vector, rtol=0, atol=EMBEDDING_TOLERANCE)


def _count_rows(catalog: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT count(*) FROM files").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet
        return 0


# -- the seam without Ray ------------------------------------------------------------------------------
def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_local_executor_returns_results_in_job_order(workers):
    with LocalExecutor(workers) as executor:
        assert list(executor.map(_square, list(range(23)), chunksize=4)) == [x * x for x in range(23)]


_STARTING: list = []  # the gate that holds the pool's start open (this process only)


def _pid_after_the_start(job: int) -> tuple[int, int]:
    """``(job, pid)``; job 0 (which runs here, while the pool starts) opens the gate and waits for the start."""
    if job == 0 and _STARTING:
        gate, starting = _STARTING
        gate.set()
        starting.join()
    return job, os.getpid()


def test_this_process_runs_the_first_jobs_while_the_pool_starts_then_the_pool_the_rest():
    """The forkserver's start (imports: a core idle for about half a second) is spent on the first jobs here;
    once the workers are up they take the rest; results stay in job order. A forkserver already running
    (an earlier test's) can bring the pool up before ``map`` looks, so the start is held open by a gate that
    job 0 opens: the test does not race the start it tests."""
    held = threading.Event()  # a thread alive: the pool cannot fork, it starts from the forkserver
    threading.Thread(target=held.wait, daemon=True).start()
    with LocalExecutor(2) as executor:
        executor.start()  # what scan does at its first file to read
        held.set()
        gate, real_start = threading.Event(), executor._starting
        executor._starting = threading.Thread(target=lambda: (gate.wait(), real_start.join()), daemon=True)
        executor._starting.start()
        _STARTING[:] = [gate, executor._starting]
        try:
            results = list(executor.map(_pid_after_the_start, list(range(12)), chunksize=2))
        finally:
            _STARTING.clear()
            gate.set()
    assert [job for job, _ in results] == list(range(12))
    assert results[0][1] == os.getpid()  # the start was still going when map looked
    assert all(pid != os.getpid() for _, pid in results[1:])  # job 0 waited for it: the pool ran the rest


def test_unknown_engine_and_address_without_ray_are_refused():
    with pytest.raises(BadInputError, match="unknown engine 'spark'"):
        open_executor("spark")
    with pytest.raises(BadInputError, match="--ray-address needs --engine ray"):
        open_executor("local", address="127.0.0.1:6379")


def test_cli_names_a_bad_engine(tmp_path):
    write_photo(tmp_path / "lib" / "a.jpg")
    result = _cli("scan", str(tmp_path / "lib"), "--catalog", str(tmp_path / "c.sqlite"), "--engine", "spark")
    assert result.returncode == 3
    assert "Error: unknown engine 'spark'" in result.stderr
    assert "Hint: choose one of: local, ray" in result.stderr


def test_embed_after_decode_stores_no_crops_and_matches_scan_then_embed(tmp_path, onnx_model_dir):
    """``scan --embed`` embeds the crops it would have stored: the vectors ``embed`` makes from them."""
    library = tmp_path / "lib"
    for k in range(5):
        write_photo(library / f"p{k}.jpg", size=(300 + 20 * k, 240), color=(40 * k, 90, 200 - 30 * k))
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    two_stage, streamed = tmp_path / "two.sqlite", tmp_path / "streamed.sqlite"
    assert _cli("scan", str(library), "--catalog", str(two_stage)).returncode == 0
    assert _cli("embed", "--model-dir", str(onnx_model_dir), "--catalog", str(two_stage)).returncode == 0
    result = _cli("scan", str(library), "--catalog", str(streamed), "--embed", "onnx", "--model-dir",
                  str(onnx_model_dir))
    assert result.returncode == 0, result.stderr
    ours, reference = catalog_state(streamed), catalog_state(two_stage)
    assert ours["crops"] == {}
    assert len(ours["vectors"]) == 5
    assert_same_catalog(ours, reference, crops=False)
    # nothing left to do for embed afterwards
    again = _cli("embed", "--model-dir", str(onnx_model_dir), "--catalog", str(streamed), "--json")
    assert '"embedded": 0' in again.stdout


# -- a Ray runtime started by the command (2 CPUs) ------------------------------------------------------
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """The sample library (every kind of duplicate, plus empty, truncated and non-image files)."""
    out = tmp_path_factory.mktemp("sample") / "lib"
    assert _cli("sample-library", str(out), "--originals", "8", "--megapixels", "0.5").returncode == 0
    return out


@pytest.fixture(scope="module")
def local_reference(sample, tmp_path_factory, onnx_model_dir) -> dict:
    """What the local engine's scan and embed write (the tables ``catalog_state`` reads; ``run`` adds the
    grouping, which writes none of them and which no test here compares: not run, it is most of a run's CPU)."""
    catalog = tmp_path_factory.mktemp("local") / "catalog.sqlite"
    for step in (["scan", str(sample)], ["embed", "--backend", "onnx", "--model-dir", str(onnx_model_dir)]):
        result = _cli(*step, "--catalog", str(catalog), "--engine", "local")
        assert result.returncode == 0, result.stderr
    return catalog_state(catalog)


@pytest.mark.slow
def test_ray_engine_run_gives_the_local_catalog(sample, local_reference, tmp_path, onnx_model_dir):
    """scan as Ray tasks on 2 CPUs, inference in a Ray actor: hashes byte for byte, vectors within 1e-5."""
    catalog = tmp_path / "catalog.sqlite"
    result = _cli("run", str(sample), "--catalog", str(catalog), "--backend", "onnx", "--model-dir",
                  str(onnx_model_dir), "--allow-random", "--engine", "ray", "--json")
    assert result.returncode == 0, result.stderr
    assert "onnx (ray actors)" in result.stdout
    state = catalog_state(catalog)
    assert len(state["files"]) == len(local_reference["files"]) > 30
    assert_same_catalog(state, local_reference)


_IDLE_EXIT = """
import time, ray
from photodedup.executor import RAY_NAMESPACE, _ChunkRunner, connect_ray
if __name__ == "__main__":
    connect_ray(workers=1)  # the product's own start of a local runtime (tried again when Ray's 30 s are missed)
    runner = ray.remote(_ChunkRunner).options(name="idle", namespace=RAY_NAMESPACE, lifetime="detached",
                                              num_cpus=0, max_restarts=0).remote(1.0)
    print(ray.get(runner._run_chunk.remote(abs, [-1, -2])))
    deadline = time.time() + 600
    while ray.util.list_named_actors(all_namespaces=True) and time.time() < deadline:
        time.sleep(0.5)
    print(ray.util.list_named_actors(all_namespaces=True))
    try:
        ray.get(runner._run_chunk.remote(abs, [-3]))
    except ray.exceptions.RayActorError as error:
        print(type(error).__name__)
"""


@pytest.mark.slow
def test_a_warm_worker_exits_once_idle(tmp_path):
    """A detached worker left idle for its time (1 s here) kills itself for good: no restart, no name left."""
    script = tmp_path / "idle.py"
    script.write_text(_IDLE_EXIT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                            env=cli_env({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}))
    assert result.stdout.split("\n")[:3] == ["[1, 2]", "[]", "ActorDiedError"], result.stderr[-2000:]


# -- a cluster: head and worker node started with `ray start`, as separate processes -------------------
class RayCluster:
    """``ray start --head`` and ``ray start --address`` (1 CPU each), each in its own process group."""

    def __init__(self, tmp: Path) -> None:
        from tests.conftest import ServerProcesses as ServerPool

        self.port = ServerPool.free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = os.environ | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex(),
                                 "RAY_USAGE_STATS_ENABLED": "0"}
        ray_cli = str(Path(sys.executable).with_name("ray"))
        common = ["--num-cpus", "1", "--block", "--disable-usage-stats"]
        self.logs = [tmp / "head.log", tmp / "worker.log"]
        self.procs = [subprocess.Popen(
            [ray_cli, "start", "--head", "--port", str(self.port), "--include-dashboard=false",
             "--ray-client-server-port", str(ServerPool.free_port()), "--dashboard-agent-listen-port",
             str(ServerPool.free_port()), "--temp-dir", str(tmp / "ray"), *common],
            stdout=self.logs[0].open("w"), stderr=subprocess.STDOUT, env=self.env, start_new_session=True)]
        self._wait_for_head()
        self.procs.append(subprocess.Popen(
            [ray_cli, "start", "--address", self.address, "--dashboard-agent-listen-port",
             str(ServerPool.free_port()), *common],
            stdout=self.logs[1].open("w"), stderr=subprocess.STDOUT, env=self.env, start_new_session=True))
        self._wait_for_cpus(2)

    def _check_alive(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=False):
            if proc.poll() is not None:
                pytest.fail(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")

    def _wait_for_head(self, timeout: float = 600) -> None:
        """Until the head's GCS takes connections (what a node joining it needs): a socket, not a Ray driver
        (each driver started to ask costs seconds of CPU)."""
        import socket

        deadline = time.time() + timeout
        while time.time() < deadline:
            self._check_alive()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"the Ray head never took connections:\n{self.logs[0].read_text()[-3000:]}")

    def _wait_for_cpus(self, cpus: int, timeout: float = 600) -> None:
        probe = ("import ray, sys, time\n"
                 f"ray.init(address='{self.address}', logging_level='ERROR', log_to_driver=False)\n"
                 f"deadline = time.time() + {timeout}\n"
                 f"while ray.cluster_resources().get('CPU', 0) < {cpus}:\n"
                 "    if time.time() > deadline: sys.exit(1)\n"
                 "    time.sleep(0.5)\n")
        deadline = time.time() + timeout
        while time.time() < deadline:
            self._check_alive()
            done = subprocess.run([sys.executable, "-c", probe], env=self.env, capture_output=True, text=True)
            if done.returncode == 0:
                return
            time.sleep(1)
        pytest.fail(f"the Ray cluster never had {cpus} CPUs:\n{self.logs[0].read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGKILL our own process groups (the `ray start` processes, raylet, gcs, workers): the cluster's
        state is a temporary folder, removed afterwards; `ray start --block` took 30 s to give up on a SIGTERM."""
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            proc.wait(timeout=60)


@pytest.fixture(scope="module")
def cluster():
    import shutil
    import tempfile

    # a short folder: Ray's socket paths under it must fit AF_UNIX's 107 bytes (pytest-xdist's tmp_path is longer)
    tmp = Path(tempfile.mkdtemp(prefix="ray-"))
    cluster = RayCluster(tmp)
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def bigger(shared_library, tmp_path_factory) -> tuple[Path, dict]:
    """conftest's read-only library of 92 files (more than one scan batch, many Ray tasks: the kills land
    mid-scan through pause hooks, not by timing), and its local catalog."""
    library, catalog = Path(shared_library["root"]), tmp_path_factory.mktemp("bigger") / "local.sqlite"
    assert _cli("scan", str(library), "--catalog", str(catalog)).returncode == 0
    return library, catalog_state(catalog)


def _scan_on(cluster: RayCluster, library: Path, catalog: Path, *extra: str) -> list[str]:
    return ["scan", str(library), "--catalog", str(catalog), "--engine", "ray",
            "--ray-address", cluster.address, "--json", *extra]


@pytest.mark.slow
def test_scan_on_a_two_node_cluster_gives_the_local_catalog(cluster, sample, local_reference, tmp_path):
    catalog = tmp_path / "catalog.sqlite"
    result = run_cli(*_scan_on(cluster, sample, catalog), env=cluster.env)
    assert result.returncode == 0, result.stderr
    state = catalog_state(catalog)
    reference = dict(local_reference, vectors={})  # scan only
    assert_same_catalog(dict(state, vectors={}), reference)


def _warm_workers(cluster: RayCluster) -> dict[int, int]:
    """The warm Ray workers (``_ChunkRunner`` actors) of this cluster: process id -> node (0: the head)."""
    import psutil

    found = {}
    for node, proc in enumerate(cluster.procs):
        for child in psutil.Process(proc.pid).children(recursive=True):
            if child.cmdline()[:1] and child.cmdline()[0].startswith("ray::_ChunkRunner"):
                found[child.pid] = node
    return found


@pytest.mark.slow
def test_the_next_scan_on_a_running_cluster_finds_warm_workers_that_reserve_no_cpu(cluster, sample, local_reference,
                                                                                   tmp_path):
    """The chunks go to detached workers, one per CPU of each node, that outlive the Ray job: the next scan
    (another job) is served by the same processes, with their imports done. They hold none of the
    cluster's CPUs (other jobs can schedule), and the catalogs are the local engine's."""
    first, second = tmp_path / "first.sqlite", tmp_path / "second.sqlite"
    assert run_cli(*_scan_on(cluster, sample, first), env=cluster.env).returncode == 0
    warm = _warm_workers(cluster)
    assert sorted(warm.values()) == [0, 1]  # one on the head, one on the worker node (1 CPU each)
    assert run_cli(*_scan_on(cluster, sample, second), env=cluster.env).returncode == 0
    assert _warm_workers(cluster) == warm
    probe = ("import ray, time\n"
             f"ray.init(address='{cluster.address}', logging_level='ERROR', log_to_driver=False)\n"
             "deadline = time.time() + 600\n"
             "while ray.available_resources().get('CPU', 0) < 2 and time.time() < deadline:\n"
             "    time.sleep(0.5)\n"
             "print(ray.available_resources().get('CPU', 0))\n")
    free = subprocess.run([sys.executable, "-c", probe], env=cluster.env, capture_output=True, text=True)
    assert free.stdout.split()[-1:] == ["2.0"], free.stderr[-2000:]
    for catalog in (first, second):
        assert_same_catalog(dict(catalog_state(catalog), vectors={}), dict(local_reference, vectors={}))


@pytest.mark.slow
def test_embed_decodes_originals_on_the_cluster_like_the_local_engine(cluster, sample, tmp_path, onnx_model_dir):
    """Without stored crops, embed decodes the originals: Ray tasks on the cluster, inference in an actor."""
    import shutil

    scanned = tmp_path / "scanned.sqlite"
    assert _cli("scan", str(sample), "--catalog", str(scanned)).returncode == 0
    conn = sqlite3.connect(scanned)
    conn.execute("DELETE FROM crops")
    conn.commit()
    conn.close()
    on_ray, local = tmp_path / "ray.sqlite", tmp_path / "local.sqlite"
    shutil.copy(scanned, on_ray)
    shutil.copy(scanned, local)
    embed = ["embed", "--model-dir", str(onnx_model_dir), "--json"]
    ours = run_cli(*embed, "--catalog", str(on_ray), "--engine", "ray", "--ray-address", cluster.address,
                   env=cluster.env)
    assert ours.returncode == 0, ours.stderr
    summary = json.loads(ours.stdout)
    assert summary["from_originals"] == summary["embedded"] > 20 and summary["from_crops"] == 0
    assert _cli(*embed, "--catalog", str(local)).returncode == 0
    assert_same_catalog(catalog_state(on_ray), catalog_state(local))


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing(cluster, bigger, tmp_path):
    library, reference = bigger
    catalog = tmp_path / "catalog.sqlite"
    # every Ray task writes its worker's pid and waits for `go`: the kill always lands inside a running task
    hooks = tmp_path / "tasks"
    hooks.mkdir()
    pause = {"PHOTODEDUP_TEST_TASK_PAUSE": str(hooks)}
    driver = start_cli(*_scan_on(cluster, library, catalog), env=cluster.env | pause)
    deadline = time.monotonic() + 600  # only guards a hang
    while not (started := sorted(hooks.glob("task-*"))):
        if driver.poll() is not None or time.monotonic() > deadline:
            driver.kill()
            _, errors = driver.communicate()
            pytest.fail(f"no Ray task started (exit {driver.returncode}):\n{errors}")
        time.sleep(0.05)
    killed = int(started[0].name.removeprefix("task-"))
    os.kill(killed, signal.SIGKILL)
    (hooks / "go").touch()
    out, errors = driver.communicate(timeout=600)
    assert driver.returncode == 0, errors
    assert _count_rows(catalog) == len(reference["files"])
    assert_same_catalog(catalog_state(catalog), dict(reference, vectors={}))


@pytest.mark.slow
def test_a_killed_driver_resumes_without_loss_or_duplicates(cluster, bigger, tmp_path):
    library, reference = bigger
    catalog = tmp_path / "catalog.sqlite"
    # the driver pauses once its first batch is committed: the kill always lands mid-scan
    pause = {"PHOTODEDUP_TEST_PAUSE": "record_files:1"}
    driver = start_cli(*_scan_on(cluster, library, catalog), env=cluster.env | pause)
    wait_paused(driver)
    driver.kill()
    driver.wait(timeout=60)
    first = _count_rows(catalog)
    assert 0 < first < len(reference["files"])

    result = run_cli(*_scan_on(cluster, library, catalog), env=cluster.env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["new"] == len(reference["files"]) - first  # only what the killed run had not committed
    assert summary["unchanged"] == first
    assert_same_catalog(catalog_state(catalog), dict(reference, vectors={}))


class _SlowRay:
    """A stand-in for the ray module (a unit test of ``_start_local_ray`` alone): ``init`` fails with
    ``errors`` in turn, then starts."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.inits, self.shutdowns = list(errors), 0, 0

    def init(self, **options) -> None:
        self.inits += 1
        if self.errors:
            raise self.errors.pop(0)

    def shutdown(self) -> None:
        self.shutdowns += 1


def test_a_local_ray_runtime_that_misses_ray_s_startup_window_is_tried_again():
    from photodedup.executor import RAY_START_TRIES, _start_local_ray

    late = Exception("The current node timed out during startup. This could happen because ...")
    ray = _SlowRay(late)
    _start_local_ray(ray, 1)
    assert (ray.inits, ray.shutdowns) == (2, 1)
    ray = _SlowRay(*[late] * RAY_START_TRIES)
    with pytest.raises(Exception, match="timed out during startup"):
        _start_local_ray(ray, 1)
    assert ray.inits == RAY_START_TRIES
    ray = _SlowRay(ValueError("object store too small"))  # any other error is not tried again
    with pytest.raises(ValueError):
        _start_local_ray(ray, 1)
    assert ray.inits == 1
