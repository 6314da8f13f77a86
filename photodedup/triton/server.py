"""Find, start, watch and stop a local ``tritonserver`` on a model repository.

Two installs are supported:

- a system Triton (``$PHOTODEDUP_TRITONSERVER``, ``tritonserver`` on ``PATH`` or
  ``/opt/tritonserver/bin/tritonserver``, as in NVIDIA's container), with its own ``backends/``;
- the one bundled in the ``nvidia-pytriton`` wheel (Triton 2.51, Python backend only). It needs three
  things to run a plain repository (docs/TRITON.md): the Python-backend stub built for this Python
  copied into ``backends/python/`` (done in a private work folder, the wheel is not touched);
  ``LD_LIBRARY_PATH`` starting with this Python's ``LIBDIR`` (else the stub loads an older system
  libpython); and this environment's ``bin/`` first on ``PATH`` so the stub's embedded Python finds
  this environment (onnxruntime, numpy < 2).

Only the models whose backend the install has are loaded (``--model-control-mode=explicit``), so the
same repository serves its CPU variant here and every variant in NVIDIA's container.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from photodedup import config as app_config
from photodedup.errors import BackendUnavailableError, BadInputError
from photodedup.triton import config as tc

log = logging.getLogger(__name__)

SYSTEM_TRITON = Path("/opt/tritonserver/bin/tritonserver")
_PLATFORM_BACKEND = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt",
                     "pytorch_libtorch": "pytorch", "tensorflow_savedmodel": "tensorflow"}


@dataclass(frozen=True)
class TritonInstall:
    """Where a tritonserver and its backends live, and how it must be run."""

    executable: Path
    backends: Path
    kind: str  # "system" or "pytriton"
    lib_dirs: tuple[Path, ...] = ()
    python_stub: Path | None = None  # pytriton: the stub to copy into backends/python/

    def available_backends(self) -> set[str]:
        return {p.name for p in self.backends.iterdir() if p.is_dir() and not p.name.startswith("_")}


def find_tritonserver(executable: Path | None = None) -> TritonInstall:
    """A system tritonserver when there is one (explicit, env, PATH, /opt), else nvidia-pytriton's."""
    env = os.environ.get("PHOTODEDUP_TRITONSERVER")
    explicit = executable or (Path(env) if env else None)
    if explicit is not None:
        if not explicit.is_file():
            raise BackendUnavailableError(f"tritonserver not found at {explicit}")
        return TritonInstall(explicit, explicit.parent.parent / "backends", "system")
    for candidate in (_which("tritonserver"), SYSTEM_TRITON):
        if candidate is not None and candidate.is_file():
            return TritonInstall(candidate, candidate.parent.parent / "backends", "system")
    # Located, not imported: its Python API (and its dependencies) is not needed to run its tritonserver,
    # so a machine given only the wheel (--no-deps, docs/GPU.md) finds it too.
    spec = importlib.util.find_spec("pytriton")
    if spec is not None and spec.origin:
        package = Path(spec.origin).parent
        root = package / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
        if (root / "bin" / "tritonserver").is_file():
            if not stub.is_file():
                raise BackendUnavailableError(f"nvidia-pytriton has no Python-backend stub for Python {version}")
            libs = package.parent / "nvidia_pytriton.libs"
            return TritonInstall(root / "bin" / "tritonserver", root / "backends", "pytriton", (libs,), stub)
    raise BackendUnavailableError(
        "no tritonserver found (not on PATH, not in /opt/tritonserver, no nvidia-pytriton)",
        hint="pip install nvidia-pytriton, set PHOTODEDUP_TRITONSERVER, or use NVIDIA's container (docs/TRITON.md)")


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def model_backend(config: tc.mc.ModelConfig) -> str:
    """The backend a model config needs on the server."""
    return config.backend or _PLATFORM_BACKEND.get(config.platform, config.platform)


def servable_models(repository: Path, backends: set[str]) -> tuple[list[str], dict[str, str]]:
    """Models in ``repository`` whose backend is in ``backends``, and the others with the reason."""
    load, skipped = [], {}
    for config_path in sorted(repository.glob("*/config.pbtxt")):
        config = tc.parse_config(config_path)
        backend = model_backend(config)
        if backend in backends:
            load.append(config.name or config_path.parent.name)
        else:
            skipped[config_path.parent.name] = f"this tritonserver has no {backend!r} backend"
    return load, skipped


class TritonServer:
    """One tritonserver process. Use as a context manager, or ``start()``/``wait_ready()``/``stop()``."""

    def __init__(
        self,
        model_repository: Path,
        *,
        host: str = "127.0.0.1",
        http_port: int = app_config.TRITON_HTTP_PORT,
        grpc_port: int = app_config.TRITON_GRPC_PORT,
        metrics_port: int = app_config.TRITON_METRICS_PORT,
        models: list[str] | None = None,
        install: TritonInstall | None = None,
        stream_output: bool = False,
        exit_timeout: int = 10,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.repository = Path(model_repository).resolve()
        if not self.repository.is_dir():
            raise BadInputError(f"model repository {model_repository} does not exist",
                                hint="create it with: photodedup triton-config")
        self.host, self.http_port, self.grpc_port, self.metrics_port = host, http_port, grpc_port, metrics_port
        self.install = install or find_tritonserver()
        available = self.install.available_backends()
        if models is None:
            models, skipped = servable_models(self.repository, available)
            for name, reason in skipped.items():
                log.warning("not loading %s: %s", name, reason)
        if not models:
            raise BadInputError(f"no model in {self.repository} can be served by {self.install.executable} "
                                f"(its backends: {', '.join(sorted(available))})")
        self.models = list(models)
        self.stream_output = stream_output
        self.exit_timeout = exit_timeout
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self._log_path: Path | None = None

    # -- addresses ---------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"{_url_host(self.host)}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{_url_host(self.host)}:{self.grpc_port}"

    # -- lifecycle ---------------------------------------------------------------------------------
    def command(self, backend_dir: Path) -> list[str]:
        args = [
            str(self.install.executable),
            f"--model-repository={self.repository}",
            f"--backend-directory={backend_dir}",
            f"--http-address={self.host}", f"--http-port={self.http_port}",
            f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
            "--model-control-mode=explicit",
            *[f"--load-model={name}" for name in self.models],
            # On SIGTERM Triton waits this long for in-flight requests and open HTTP keep-alive
            # connections, then unloads the models (exit code 1 if the wait ran out).
            f"--exit-timeout-secs={self.exit_timeout}",
            "--log-verbose=0",
        ]
        if self.install.kind == "pytriton":
            args.append("--allow-gpu-metrics=false")
            # Grow the stub's shared-memory pool in big steps: a 64-image uint8 batch is ~9.6 MB.
            args.append("--backend-config=python,shm-growth-byte-size=16777216")
        return args + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = [sysconfig.get_config_var("LIBDIR") or "", *map(str, self.install.lib_dirs)]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([p for p in libs if p] + [env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def start(self) -> TritonServer:
        if self.process is not None:
            return self
        self._workdir = Path(tempfile.mkdtemp(prefix="photodedup-triton-"))
        backend_dir = self._prepare_backends(self._workdir)
        command = self.command(backend_dir)
        log.info("starting %s", " ".join(command))
        if self.stream_output:
            output = None
        else:
            self._log_path = self._workdir / "tritonserver.log"
            output = self._log_path.open("wb")
        try:
            self.process = subprocess.Popen(command, env=self.environment(), stdout=output,
                                            stderr=subprocess.STDOUT if output else None,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_die_with_parent(os.getpid()))
        finally:
            if output is not None:
                output.close()
        self._start_watchdog()
        return self

    def _start_watchdog(self) -> None:
        """A small process that, if this one dies without stopping Triton, ends it and removes the
        work folder (``photodedup.triton.watchdog``)."""
        read, self._watch_fd = os.pipe()
        try:
            subprocess.Popen([sys.executable, "-m", "photodedup.triton.watchdog", str(read), str(self.process.pid),
                              str(self._workdir), str(self.exit_timeout + 10)], pass_fds=(read,),
                             stdin=subprocess.DEVNULL, start_new_session=True,
                             env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                 [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])))
        finally:
            os.close(read)

    def _prepare_backends(self, workdir: Path) -> Path:
        if self.install.kind != "pytriton":
            return self.install.backends
        backends = workdir / "backends"
        python = backends / "python"
        python.mkdir(parents=True)
        for source in (self.install.backends / "python").iterdir():
            if source.is_file():
                shutil.copy2(source, python / source.name)
        shutil.copy2(self.install.python_stub, python / "triton_python_backend_stub")
        return backends

    def wait_ready(self, timeout: float = 180.0) -> TritonServer:
        """Poll readiness (server and every loaded model); fail at once, with its output, if it died."""
        deadline = time.monotonic() + timeout
        paths = ["/v2/health/ready", *[f"/v2/models/{name}/ready" for name in self.models]]
        while True:
            if self.process is None:
                raise BackendUnavailableError("tritonserver was not started")
            code = self.process.poll()
            if code is not None:
                raise BackendUnavailableError(
                    f"tritonserver exited with code {code} before it was ready; its output:\n{self.output()}")
            if all(_http_ok(f"http://{self.http_url}{path}") for path in paths):
                log.info("tritonserver ready: HTTP %s, gRPC %s, models %s", self.http_url, self.grpc_url, self.models)
                return self
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"tritonserver on {self.http_url} not ready after {timeout:.0f}s; its output:\n{self.output()}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM (Triton drains, unloads models and exits), then SIGKILL to its process group after
        ``timeout`` (default: the exit timeout plus 10 s). Returns tritonserver's exit code."""
        timeout = self.exit_timeout + 10 if timeout is None else timeout
        process, self.process = self.process, None
        if getattr(self, "_watch_fd", None) is not None:  # a clean stop: the watchdog has nothing to do
            try:
                os.write(self._watch_fd, b"s")
            finally:
                os.close(self._watch_fd)
                self._watch_fd = None
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("tritonserver did not stop in %.0fs; killing it", timeout)
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            code = process.returncode
        if self._workdir is not None:
            self._keep_output = self.output()
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        return code

    def output(self, max_chars: int = 8000) -> str:
        """The last part of the server's output (when it is captured)."""
        if self._log_path is not None and self._log_path.exists():
            return self._log_path.read_text(errors="replace")[-max_chars:]
        return getattr(self, "_keep_output", "") or "(output not captured)"

    def __enter__(self) -> TritonServer:
        try:
            return self.start().wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def _die_with_parent(parent: int) -> Callable[[], None]:
    """``preexec_fn``: the kernel sends the child SIGTERM when its parent dies (``PR_SET_PDEATHSIG``),
    even by SIGKILL; Triton then drains and exits. (It follows the thread that started it: start the
    server from a thread that lives as long as the server.)"""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it

    def set_death_signal() -> None:
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the prctl: follow it now
            os.kill(os.getpid(), signal.SIGTERM)

    return set_death_signal


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def serve_forever(
    model_repository: Path,
    host: str = "127.0.0.1",
    http_port: int = app_config.TRITON_HTTP_PORT,
    grpc_port: int = app_config.TRITON_GRPC_PORT,
    metrics_port: int = app_config.TRITON_METRICS_PORT,
    *,
    models: list[str] | None = None,
    ready_timeout: float = 300.0,
) -> None:
    """Run tritonserver in the foreground (its log on this process's stderr) until SIGINT/SIGTERM.

    Returns after a clean stop; raises ``BackendUnavailableError`` if the server dies or never gets ready.
    """
    server = TritonServer(model_repository, host=host, http_port=http_port, grpc_port=grpc_port,
                          metrics_port=metrics_port, models=models, stream_output=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start().wait_ready(ready_timeout)
        while not stop.wait(0.5):
            if not server.alive():
                code = server.process.returncode if server.process else None
                raise BackendUnavailableError(f"tritonserver exited unexpectedly with code {code}")
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
