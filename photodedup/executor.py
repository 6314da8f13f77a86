"""Where per-file work runs: worker processes on this machine (``local``) or tasks on a Ray cluster (``ray``).

``scan`` (read, MD5, reduced-size decode, hashes, EXIF, crop) and ``embed`` (decoding originals that have
no stored crop) hand a module-level function and a list of jobs to ``Executor.map`` and get the results
back in job order; the caller stays the one writer of the catalog. Both executors keep a bounded number
of jobs in flight (back-pressure: memory stays bounded however many files there are) and neither knows
anything about photos.

The Ray executor connects to a cluster (``address``: ``ray://...``, ``host:port`` or ``auto``) or, without
one, starts a Ray runtime on this machine for the run. Jobs travel in chunks (a few milliseconds of
overhead spread over several files). On a cluster that was running already, chunks go to warm workers:
detached actors, one per CPU of each node, that outlive the run and serve the next one with their
imports done (a Ray job otherwise starts and imports its own worker processes: seconds); they hold no
CPU reservation, exit after ``RAY_WARM_SECONDS`` idle, and are named by the code and runtime
environment they run, so another version never reuses them. A chunk whose worker died is run again as a
plain Ray task, which Ray itself re-runs when its worker dies (the functions are pure, so a re-run
cannot duplicate anything). Inference can run in Ray actors too:
``RayActorBackend`` wraps a local backend (onnx, torch-local) in one actor per replica.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from photodedup.backends.base import Backend
from photodedup.errors import BackendUnavailableError, BadInputError, ignore_interrupts

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: Files per Ray task: enough to hide the task overhead (about 1 ms) behind 4 x 25-130 ms of decoding.
RAY_CHUNK = 4
#: Object store of a Ray runtime started here (it only carries results in flight).
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2
#: Seconds a warm Ray worker (``_ChunkRunner``) waits for the next run before it exits.
RAY_WARM_SECONDS = 300
#: The Ray namespace of the warm workers.
RAY_NAMESPACE = "photodedup"


class Executor(Protocol):
    """Runs ``fn`` over jobs, results in job order, a bounded number in flight."""

    name: str
    workers: int

    def map(self, fn: Callable, jobs: Sequence, *, chunksize: int = 1) -> Iterator: ...

    def close(self) -> None: ...


def open_executor(engine: str = "local", *, workers: int | None = None, address: str | None = None) -> Executor:
    """The executor for ``engine``: ``local`` (``workers`` processes) or ``ray`` (the cluster at
    ``address``, or a Ray runtime started here with ``workers`` CPUs)."""
    if engine == "local":
        if address:
            raise BadInputError("--ray-address needs --engine ray")
        return LocalExecutor(workers)
    if engine == "ray":
        return RayExecutor(address=address, workers=workers)
    raise BadInputError(f"unknown engine {engine!r}", hint=f"choose one of: {', '.join(ENGINES)}")


class _Closing:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def worker_pool(workers: int, **options):
    """A process pool whose workers are forked from this process when that is safe (``fork_is_safe``), and
    otherwise start from a clean process.

    A fork copies the state of every native thread pool the parent has used (OpenMP in faiss,
    PyTorch or LibRaw, ONNX Runtime's threads), and GNU libgomp deadlocks in a forked child once the
    parent has run a parallel region: a scan after a ``group`` or an ``embed`` in the same process
    hung in LibRaw. Such a process gets workers from the forkserver, which starts one clean process and
    forks the workers from it. A process with none of those (a ``scan`` command) forks its workers
    itself, at once: they inherit its imports, and no forkserver (an interpreter importing numpy and
    Pillow, about 0.3 s of CPU) nor resource tracker (0.04 s) starts.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if fork_is_safe():
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"), **options)
        gc.freeze()  # what this process holds (an open catalog among it) is never collected in a worker
        try:
            with warnings.catch_warnings():  # Python 3.12+ counts OpenBLAS's threads (see fork_is_safe)
                warnings.filterwarnings("ignore", message=r"This process .* is multi-threaded",
                                        category=DeprecationWarning)
                pool.submit(os.getpid)  # forks every worker now, before the pool starts its threads here
        finally:
            gc.unfreeze()
        pool.forked = True
        return pool
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(POOL_PRELOAD)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, **options)
    pool.forked = False
    return pool


#: What the forkserver imports once for every worker (numpy, Pillow, OpenCV: no thread pool started).
POOL_PRELOAD = ["photodedup.scan", "photodedup.verify"]

#: Names in the paths of native libraries whose threads or runtime state a forked child inherits broken:
#: OpenMP runtimes (GNU, Intel, LLVM), TBB, ONNX Runtime, PyTorch, faiss, OpenCV, CUDA, gRPC (Ray).
_FORK_UNSAFE = ("gomp", "iomp", "libomp", "tbb", "onnxruntime", "torch", "faiss", "cv2", "opencv", "cuda",
                "grpc")


def _native_threads() -> int | None:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux
        return None


#: This process's threads once numpy is imported (OpenBLAS's, which stop for a fork and restart after it).
_THREADS_AT_IMPORT = _native_threads()


def fork_is_safe() -> bool:
    """Whether worker processes may be forked from this process: Linux, one Python thread, no more native
    threads than when this module was imported (numpy's OpenBLAS threads, fork-aware), and none of the
    native libraries of ``_FORK_UNSAFE`` loaded. A thread alive at the fork (a progress bar's refresh, a
    pool's feeder) could hold a lock the child then waits on forever."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return False
    threads = _native_threads()
    if threads is None or _THREADS_AT_IMPORT is None or threads > _THREADS_AT_IMPORT:
        return False
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return not any(name in maps for name in _FORK_UNSAFE)


def start_forkserver() -> None:
    """Start the forkserver of ``worker_pool`` now, in the background, for a command that will make a pool
    that cannot fork (``fork_is_safe``): its interpreter start and imports (about 0.2 s of CPU) then run on
    another core while the command parses its options and imports its own modules, and the pool finds it
    ready. Returns at once (a fork and exec); a forkserver running already is kept, and one that no pool
    uses exits with this process."""
    try:
        from multiprocessing import forkserver

        forkserver.set_forkserver_preload(POOL_PRELOAD)
        forkserver.ensure_running()
    except (ImportError, OSError, ValueError) as error:  # the pool, when it is made, says what is wrong
        log.debug("the forkserver did not start early: %s", error)


class LocalExecutor(_Closing):
    """Worker processes on this machine (the pool starts on first use); one worker runs jobs inline."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool = None
        self._lock = threading.Lock()
        self._starting: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker processes: forked here at once (``worker_pool``), or in the background (a
        forkserver imports the scan's modules once, about half a second), so that they are ready when
        ``map`` is called; a no-op with one worker."""
        if self.workers > 1 and self._starting is None:
            pool = self._get_pool()
            if pool.forked:  # up already
                return
            self._starting = threading.Thread(target=lambda: [pool.submit(os.getpid) for _ in range(self.workers)],
                                              name="pool-start", daemon=True)
            self._starting.start()

    def _get_pool(self):
        with self._lock:
            if self._pool is None:
                self._pool = worker_pool(self.workers, initializer=ignore_interrupts)
            return self._pool

    def map(self, fn: Callable, jobs: Sequence, *, chunksize: int = 1) -> Iterator:
        if self.workers <= 1 or (len(jobs) < 4 and self._starting is None and self._pool is None):
            return map(fn, jobs)
        if self._starting is not None and self._starting.is_alive():
            return self._map_while_starting(fn, jobs, chunksize)
        return self._get_pool().map(fn, jobs, chunksize=chunksize)

    def _map_while_starting(self, fn: Callable, jobs: Sequence, chunksize: int) -> Iterator:
        """While the pool is still starting (its forkserver importing: a core's worth of idle time in this
        process), this process runs the first jobs itself, in order; the rest go to the pool once it is up."""
        done = 0
        while done < len(jobs) and self._starting.is_alive():
            yield fn(jobs[done])
            done += 1
        if done < len(jobs):
            yield from self._get_pool().map(fn, jobs[done:], chunksize=chunksize)

    def close(self) -> None:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _run_chunk(fn: Callable, jobs: list) -> list:
    """One Ray task: a chunk of jobs, run one after another in a Ray worker."""
    return [fn(job) for job in jobs]


class _ChunkRunner:
    """A warm Ray worker: a detached actor that runs chunks for any run of the same code, and exits
    (``ray.kill`` of itself, no restart) once idle for ``idle_seconds``."""

    def __init__(self, idle_seconds: float) -> None:
        self._busy = 0
        self._last = time.monotonic()
        threading.Thread(target=self._exit_when_idle, args=(idle_seconds,), name="idle-exit", daemon=True).start()

    def _run_chunk(self, fn: Callable, jobs: list) -> list:  # the task's name: a process listing reads the same
        self._busy += 1
        try:
            return [fn(job) for job in jobs]
        finally:
            self._busy -= 1
            self._last = time.monotonic()

    def _exit_when_idle(self, idle_seconds: float) -> None:
        import ray

        while self._busy or time.monotonic() - self._last < idle_seconds:
            time.sleep(min(idle_seconds, 5.0))
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


def _code_key(ray) -> str:
    """What the warm workers run: photodedup's files (size and mtime), this job's runtime environment and the
    worker class."""
    import photodedup

    digest = hashlib.sha256()
    package = Path(photodedup.__file__).parent
    for path in sorted(package.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    digest.update(json.dumps(dict(ray.get_runtime_context().runtime_env), sort_keys=True, default=str).encode())
    digest.update(f"{_ChunkRunner.__module__}.{_ChunkRunner.__qualname__}".encode())  # the class the workers run
    return digest.hexdigest()[:16]


def _import_ray():
    try:
        import ray
    except ImportError as error:
        raise BackendUnavailableError("the ray engine needs the ray package",
                                      hint="pip install 'photodedup[ray]'") from error
    return ray


#: Tries at starting a local Ray runtime: Ray gives a new raylet a fixed 30 s to register, which a busy
#: machine can miss ("timed out during startup"); a second try then finds the machine less busy.
RAY_START_TRIES = 3


def _start_local_ray(ray, workers: int | None) -> None:
    for attempt in range(RAY_START_TRIES):
        try:
            ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, log_to_driver=False,
                     logging_level=logging.WARNING)
            return
        except Exception as error:  # noqa: BLE001 - Ray raises a bare Exception for this timeout
            if "timed out during startup" not in str(error) or attempt == RAY_START_TRIES - 1:
                raise
            log.warning("the Ray runtime did not start in Ray's 30 s (a busy machine?): trying again")
            ray.shutdown()


def connect_ray(address: str | None = None, workers: int | None = None) -> bool:
    """Connect to the Ray cluster at ``address`` or start one here; True when this call started it."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:  # a runtime for this run only: no dashboard, a small object store
            _start_local_ray(ray, workers)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise BackendUnavailableError(f"cannot reach the Ray cluster at {address or 'a local runtime'}: {error}",
                                      hint="start one with `ray start --head`, or leave out --ray-address "
                                           "to start a Ray runtime on this machine") from error
    return True


class RayExecutor(_Closing):
    """Ray tasks across the cluster's CPUs (on a running cluster: its warm workers), ``2 x CPUs`` chunks in
    flight, results in order."""

    name = "ray"

    def __init__(self, *, address: str | None = None, workers: int | None = None,
                 in_flight: int | None = None, warm: bool = True) -> None:
        self._ray = _import_ray()
        self._owned = connect_ray(address, workers)
        self.workers = max(1, int(self._ray.cluster_resources().get("CPU", 1)))
        self.in_flight = in_flight or 2 * self.workers
        # Pure functions: a task whose worker died is simply run again (Ray's default for system failures).
        self._task = self._ray.remote(_run_chunk).options(max_retries=5, retry_exceptions=False)
        # a runtime started here ends with the run: nothing to keep warm
        self.runners = self._warm_runners() if warm and not (self._owned and not address) else []
        self._load = [0] * len(self.runners)

    def _warm_runners(self) -> list:
        """The warm workers of this code: found by name, or started (one per CPU of each live node)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self._ray
        key = _code_key(ray)
        runner = ray.remote(_ChunkRunner)
        runners = []
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            for index in range(int(node.get("Resources", {}).get("CPU", 0))):
                runners.append(runner.options(
                    name=f"chunks-{key}-{node['NodeID'][:12]}-{index}", namespace=RAY_NAMESPACE,
                    lifetime="detached", get_if_exists=True, num_cpus=0, max_restarts=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                ).remote(RAY_WARM_SECONDS))
        return runners

    def map(self, fn: Callable, jobs: Sequence, *, chunksize: int = RAY_CHUNK) -> Iterator:
        ray = self._ray
        size = max(1, chunksize)
        fn_ref = ray.put(fn)
        pending: deque = deque()
        try:
            for start in range(0, len(jobs), size):
                pending.append(self._submit(fn_ref, list(jobs[start:start + size])))
                if len(pending) >= self.in_flight:
                    yield from self._get(fn_ref, *pending.popleft())
            while pending:
                yield from self._get(fn_ref, *pending.popleft())
        finally:
            for ref, _, _ in pending:  # interrupted: drop what nobody will read
                ray.cancel(ref, force=False)

    def _submit(self, fn_ref, chunk: list) -> tuple:
        """``(ref, chunk, runner index or None)``: to the least loaded warm worker, else as a task."""
        live = [i for i, runner in enumerate(self.runners) if runner is not None]
        if not live:
            return self._task.remote(fn_ref, chunk), chunk, None
        index = min(live, key=self._load.__getitem__)
        self._load[index] += 1
        return self.runners[index]._run_chunk.remote(fn_ref, chunk), chunk, index

    def _get(self, fn_ref, ref, chunk: list, index: int | None) -> list:
        try:
            return self._ray.get(ref)
        except (self._ray.exceptions.RayActorError,  # the warm worker died (or exited idle): a task instead
                self._ray.exceptions.ActorUnschedulableError):  # (its node is gone: it is pinned there)
            self.runners[index] = None
            return self._get(fn_ref, self._task.remote(fn_ref, chunk), chunk, None)
        except self._ray.exceptions.RayError as error:  # retries exhausted, cluster gone
            raise BackendUnavailableError(f"a Ray task failed: {error}",
                                          hint="what was committed is kept; run the command again to "
                                               "resume") from error
        finally:
            if index is not None:
                self._load[index] -= 1

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
            self._owned = False


class _Replica:
    """A Ray actor holding one local backend (created on the actor's node)."""

    def __init__(self, factory: Callable, options: dict) -> None:
        self.backend = factory(**options)

    def info(self) -> dict:
        b = self.backend
        return {"model_id": b.model_id, "max_batch_size": b.max_batch_size, "preprocess": b.preprocess,
                "is_random": b.is_random, "weights": b.weights, "precision": b.precision}

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        return self.backend.embed_batch(images)


class RayActorBackend(Backend):
    """A local backend (onnx, torch-local) served by ``replicas`` Ray actors; batches go to a free one.

    ``factory(**options)`` builds the backend inside each actor; ``num_gpus`` per actor places them on
    GPU nodes. The driver sends uint8 crops (150 KB an image) and gets float32 rows back.
    """

    def __init__(self, factory: Callable, options: dict, *, name: str, replicas: int = 1,
                 num_gpus: float = 0, address: str | None = None, workers: int | None = None) -> None:
        ray = _import_ray()
        self._ray = ray
        self._owned = connect_ray(address, workers)
        actor = ray.remote(_Replica).options(num_cpus=1, num_gpus=num_gpus)
        self._actors = [actor.remote(factory, options) for _ in range(max(1, replicas))]
        try:
            info = ray.get(self._actors[0].info.remote())
        except ray.exceptions.RayActorError as error:
            raise BackendUnavailableError(f"the {name} backend did not start in a Ray actor: {error}") from error
        self.name = f"{name} (ray actors)"
        self.model_id = info["model_id"]
        self.precision = info["precision"]
        self.max_batch_size = info["max_batch_size"]
        self.is_random = info["is_random"]
        self.weights = info["weights"]
        self.preprocess = info["preprocess"]
        self.in_flight = len(self._actors)
        self._free: deque = deque(self._actors)
        self._cond = threading.Condition()

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        with self._cond:
            self._cond.wait_for(lambda: self._free)
            actor = self._free.popleft()
        try:
            return self._ray.get(actor.embed_batch.remote(images))
        finally:
            with self._cond:
                self._free.append(actor)
                self._cond.notify()

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
            self._owned = False
