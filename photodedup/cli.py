"""The ``photodedup`` command. Typer only: parse arguments, call one library function, render.

Results go to stdout; logs, warnings and progress to stderr. Errors are ``PhotodedupError``s,
printed once by ``main`` and mapped to their exit code (2 stays Click's for usage errors).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from photodedup import __version__, config, keeper
from photodedup import cluster as grouping
from photodedup.cli_params import fast_coercion
from photodedup.errors import PhotodedupError
from photodedup.text import printable

if TYPE_CHECKING:
    from rich.console import Console


class _PipelineOrder(TyperGroup):
    """List commands in the order of the pipeline, not the order they are defined in."""

    ORDER = ("scan", "embed", "group", "export-parquet", "run", "eval", "review", "apply", "undo", "export-onnx",
             "serve", "triton-config", "bench", "sample-library")

    #: Commands that run their per-file work in a local process pool (with the default ``--engine local``).
    POOL_COMMANDS = ("scan", "run")

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        """Before anything is parsed (Typer's parsing imports pydantic: 0.1 s of CPU), a command that will
        make a process pool starts its forkserver, whose start then overlaps the command's own (issue 24).
        The command is the first word that is not an option (the group's options take no value)."""
        command = next((arg for arg in args if not arg.startswith("-")), None)
        if command in self.POOL_COMMANDS and "--help" not in args:
            from photodedup.executor import fork_is_safe, start_forkserver

            # a scan with no model in its process and no progress bar's thread forks its workers itself
            quiet = {"--quiet", "-q"} & set(args) or not sys.stderr.isatty()
            if not (command == "scan" and quiet and not any(a.startswith("--embed") for a in args)
                    and fork_is_safe()):
                start_forkserver()
        for param in self.get_params(ctx):
            fast_coercion(param)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx) -> list[str]:
        rank = {name: i for i, name in enumerate(self.ORDER)}
        return sorted(super().list_commands(ctx), key=lambda name: rank.get(name, len(rank)))

    def get_command(self, ctx, name: str):
        """Readable help: a repeatable option or a list argument shows a word (``GLOB``, ``FOLDER...``),
        not its Python type, and a default the help text states itself is not printed a second time.
        Values are coerced without pydantic where the answer is plain (``cli_params``)."""
        command = super().get_command(ctx, name)
        for param in command.get_params(ctx) if command is not None else []:
            fast_coercion(param)  # a plain value without pydantic (issue 24)
            if getattr(param, "multiple", False) or param.nargs == -1:
                param.metavar = _METAVARS.get(param.name, param.name.upper())
                param.display_type = lambda ctx: ""  # not "<list[Path]>": the word above says it
            if "[default:" in (getattr(param, "help", None) or ""):
                param.show_default = False
        return command


_METAVARS = {"roots": "FOLDER...", "paths": "PATH...", "include": "GLOB", "exclude": "GLOB", "variant": "NAME",
             "gpu": "ID", "preferred_batch_size": "N", "evidence": "KIND"}


app = typer.Typer(
    cls=_PipelineOrder,
    name="photodedup",
    help="Find duplicate and near-duplicate photos in large libraries.\n\n"
    "Example: photodedup sample-library /tmp/lib --originals 4 --megapixels 1 && "
    "photodedup run /tmp/lib --weights random",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@functools.cache
def stderr_console() -> Console:
    """rich's console on stderr, made on first use: a command that writes nothing there (``--json --quiet``)
    does not import rich (25 ms of CPU a command; docs/BENCHMARKS.md, issue 24)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


class _StderrConsole:
    """``err.print(...)``: the calls go to ``stderr_console()``."""

    def __getattr__(self, name: str):
        return getattr(stderr_console(), name)


err = _StderrConsole()
_state = {"debug": False, "quiet": False}

# -- shared options, defined once ------------------------------------------------------------------
CatalogOpt = Annotated[
    Path | None,
    typer.Option("--catalog", envvar="PHOTODEDUP_CATALOG",
                 help="Catalog file [default: $PHOTODEDUP_HOME/catalog.sqlite, "
                      "PHOTODEDUP_HOME defaults to ~/.local/share/photodedup]."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
PrecisionOpt = Annotated[str | None, typer.Option(
    "--precision", help="onnx: the export, fp32, fp16 or int8 (dynamic quantisation: ~3x fp32 on a CPU) "
    "[default: int8 on a CPU, fp32 on a GPU: the same for every command]; torch-local: fp32, fp16 or bf16 "
    "[default: fp16 on a GPU, fp32 on the CPU].")]
ModeOpt = Annotated[str, typer.Option(
    "--mode", help="How torch-local runs the model: eager, cuda-graphs, compile (torch.compile), or auto "
    "(cuda-graphs on a GPU, eager on the CPU).")]

EngineOpt = Annotated[str, typer.Option(envvar="PHOTODEDUP_ENGINE", help="Where per-file work runs: local "
                                        "(worker processes) or ray (tasks on a Ray cluster).")]
RayAddressOpt = Annotated[str | None, typer.Option("--ray-address", envvar="PHOTODEDUP_RAY_ADDRESS",
                                                   help="Ray cluster for --engine ray (host:port, ray://host:10001 "
                                                        "or auto) [default: start a Ray runtime here].")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"photodedup {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    _state["debug"] = debug
    if debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=logging.DEBUG, handlers=[handler])
    else:  # the library's warnings read like the CLI's own, each said once
        logging.basicConfig(level=logging.WARNING, handlers=[_WarningHandler()])


def progress(quiet: bool, label: str):
    """A progress-callback factory for long stages: a rich bar on a terminal, silent otherwise."""
    from photodedup.progress import make_progress

    if quiet:
        return make_progress(enabled=False, label=label)
    console = stderr_console()
    return make_progress(enabled=console.is_terminal, label=label, console=console)


def show(result, json_out: bool) -> None:
    """Print a stage's result: its JSON (``as_dict``) with ``--json``, else its readable ``render`` (each
    line printable: a render escapes the names it holds, this catches a control character it missed)."""
    if json_out:
        emit_json(result.as_dict())
    else:
        typer.echo("\n".join(map(printable, result.render().split("\n"))))


def emit_json(data: dict) -> None:
    """``--json``: one JSON object, whatever the command (a list goes under a key of one)."""
    if not isinstance(data, dict):
        raise TypeError(f"--json prints one object, not a {type(data).__name__}")
    typer.echo(json.dumps(data, indent=2, default=str))


def warn(message: str) -> None:
    """Print a warning on stderr, once per message per command."""
    if message in _said:
        return
    _said.add(message)
    from rich.markup import escape

    err.print(f"[yellow]Warning:[/yellow] {escape(printable(message, newlines=True))}", highlight=False)


_said: set[str] = set()


class _PrintableFormatter(logging.Formatter):
    """Debug logs name files too: escaped as every other line (``text.printable``)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), newlines=True)


def secret_on_command_line(ctx: typer.Context, name: str, env: str) -> None:
    """Warn when a secret came as an argument: every local user can read a command line (ps, /proc)."""
    if str(getattr(ctx.get_parameter_source(name), "name", "")) == "COMMANDLINE":
        warn(f"--{name} on the command line can be read by every user of this machine (ps, /proc/PID/cmdline); "
             f"set {env} instead")


class _WarningHandler(logging.Handler):
    """Routes library log records (WARNING and up) through ``warn``."""

    def emit(self, record: logging.LogRecord) -> None:
        warn(record.getMessage())


# -- commands --------------------------------------------------------------------------------------
@app.command()
def scan(
    roots: Annotated[list[Path], typer.Argument(help="Folders (or files) to scan.", readable=False)],  # scan says
    catalog: CatalogOpt = None,
    include: Annotated[list[str], typer.Option("--include", help="Only paths matching this glob (repeatable).")] = [],
    exclude: Annotated[list[str], typer.Option("--exclude", help="Skip paths matching this glob (repeatable).")] = [],
    workers: Annotated[int, typer.Option(help="Worker processes for decoding and hashing [default: CPU count].")] = 0,
    follow_links: Annotated[bool, typer.Option(
        "--follow-links", help="Also follow folder symlinks that lead outside the scanned folders (files "
        "found there can then be trashed by apply).")] = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    embed_with: Annotated[str | None, typer.Option("--embed", help="Embed each image right after decoding with "
                          "this backend (as in `embed --backend`) and store no model crops.")] = None,
    url: Annotated[str | None, typer.Option(envvar="PHOTODEDUP_SERVICE_URL", help="Server URL for --embed "
                   "http-service/triton-*.")] = None,
    weights: Annotated[str | None, typer.Option(help="Weights for --embed onnx/torch-local.")] = None,
    model_dir: Annotated[Path | None, typer.Option(envvar="PHOTODEDUP_MODEL_DIR", help="ONNX export for "
                         "--embed onnx.")] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Walk folders and record every image (MD5, pHash/dHash, EXIF, model crop) in the catalog.

    Example: photodedup sample-library /tmp/lib --originals 4 --megapixels 1 && photodedup scan /tmp/lib
    """
    from photodedup.scan import scan as run_scan

    embedder = None
    if embed_with:
        from photodedup.embed import open_backend

        embedder = open_backend(embed_with, model_dir=model_dir, weights=weights, url=url, engine=engine,
                                ray_address=ray_address)
    try:
        with progress(quiet, "scan") as callback:
            summary = run_scan(roots, catalog=catalog, include=include, exclude=exclude, workers=workers or None,
                               progress=callback, engine=engine, ray_address=ray_address, embedder=embedder,
                               follow_links=follow_links)
    finally:
        if embedder is not None:
            embedder.close()
    show(summary, json_out)


@app.command("sample-library")
def sample_library(
    out: Annotated[Path, typer.Argument(help="Folder to create the library in.")],
    originals: Annotated[int, typer.Option(help="How many distinct original photos.")] = 12,
    megapixels: Annotated[float, typer.Option(help="Size of the originals (phones: about 12).")] = 12.0,
    seed: Annotated[int, typer.Option(help="Everything follows from this seed.")] = 0,
    lookalikes: Annotated[int, typer.Option(
        help="Add look-alikes that are not duplicates (screenshots, documents, bursts, memes...): this many "
             "pictures of each kind, with true copies of some (0: none).")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Generate a realistic photo library with near-duplicates, broken files and a ground truth.

    Example: photodedup sample-library /tmp/lib --originals 8 --megapixels 1 --lookalikes 3
    """
    from photodedup.sample_library.lookalikes import make_library

    result = make_library(out, originals=originals, megapixels=megapixels, seed=seed, lookalikes=lookalikes)
    if json_out:
        emit_json(result)
    else:
        typer.echo(f"{result['files']} files in {printable(out)} ({result['groups']} duplicate groups, "
                   f"{result['broken']} broken files); ground truth: {result['truth']}")


@app.command()
def serve(
    ctx: typer.Context,
    engine: Annotated[str, typer.Option(help="service (our FastAPI service) or triton (NVIDIA Triton).")] = "service",
    host: Annotated[str, typer.Option(help="Address to bind (use 0.0.0.0 with --token to serve others).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port of the service.")] = config.SERVICE_PORT,
    model_dir: Annotated[Path | None, typer.Option("--model-dir", envvar="PHOTODEDUP_MODEL_DIR",
                                                      help="Exported model directory (onnx backend).")] = None,
    weights: Annotated[str | None, typer.Option(help="Weights (torch-local; or which default export).")] = None,
    backend: Annotated[str, typer.Option(help="What runs the model: onnx or torch-local.")] = "onnx",
    device: Annotated[str, typer.Option(help="cpu, cuda or tensorrt.")] = "cpu",
    precision: PrecisionOpt = None,
    mode: ModeOpt = "auto",
    threads: Annotated[int, typer.Option(help="Inference threads [default: CPU count].")] = 0,
    max_batch_size: Annotated[int, typer.Option(help="Most images per model call [default: 256 with --device cuda, "
                                                "else 32].")] = 0,
    max_queue_delay_us: Annotated[int, typer.Option(help="Longest wait to fill a batch, microseconds.")] = 2000,
    max_images: Annotated[int, typer.Option(help="Most images per request.")] = 64,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body, MB (10^6 bytes).")] = 64.0,
    max_pixels: Annotated[int, typer.Option(help="Most pixels per image, checked before decoding (a PNG "
                                            "cannot be decoded smaller: about 12 bytes of memory a pixel).")]
    = 50_000_000,
    token: Annotated[str | None, typer.Option(envvar="PHOTODEDUP_TOKEN", help="Require this bearer token on "
                                              "/embed, /metrics, /v1/model, /docs, /openapi.json (not with "
                                              "--engine triton: see docs/TRITON.md).")]
    = None,
    request_timeout: Annotated[float, typer.Option(help="Seconds a request's headers, and then its body, may "
                                                   "take to arrive (408 after).")] = 30.0,
    max_connections: Annotated[int, typer.Option(help="Most open connections (kept below the open-file limit): "
                                                 "one more closes the longest-idle one, or gets 503 when every "
                                                 "one is busy.")] = 256,
    graceful_timeout: Annotated[float, typer.Option(help="Seconds in-flight requests get on shutdown.")] = 30.0,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    model_repository: Annotated[Path, typer.Option(help="Triton model repository (--engine triton).")]
    = Path("model_repository"),
    http_port: Annotated[int, typer.Option(help="Triton HTTP port.")] = config.TRITON_HTTP_PORT,
    grpc_port: Annotated[int, typer.Option(help="Triton gRPC port.")] = config.TRITON_GRPC_PORT,
    metrics_port: Annotated[int, typer.Option(help="Triton metrics port.")] = config.TRITON_METRICS_PORT,
) -> None:
    """Serve embeddings over HTTP (POST /embed, /healthz, /readyz, /metrics, /v1/model) until Ctrl-C.

    Example: photodedup export-onnx --weights random && photodedup serve --weights random --port 8012
    """
    logging.getLogger("photodedup").setLevel(logging.DEBUG if _state["debug"] else logging.INFO)
    secret_on_command_line(ctx, "token", "PHOTODEDUP_TOKEN")
    if engine == "triton":
        from photodedup.triton.server import serve_forever

        if token:
            from photodedup.errors import BadInputError

            raise BadInputError("--token does not protect Triton: Triton has no bearer-token check, so "
                                "every client could still use it (and load or unload models)",
                                hint="keep it on 127.0.0.1 (the default) or put an authenticating proxy in "
                                     "front; see docs/TRITON.md (and unset PHOTODEDUP_TOKEN for this command)")
        serve_forever(model_repository=model_repository, host=host, http_port=http_port,
                      grpc_port=grpc_port, metrics_port=metrics_port)
        return
    if engine != "service":
        raise typer.BadParameter(f"{engine!r} is not one of: service, triton", param_hint="--engine")
    from photodedup.serve import serve as run_serve
    from photodedup.serve import service_settings
    from photodedup.service.limits import Limits

    settings = service_settings(
        device, max_batch_size=max_batch_size or None, max_queue_delay=max_queue_delay_us / 1e6, token=token or None,
        request_timeout=request_timeout, max_connections=max_connections,
        limits=Limits(max_body_bytes=int(max_body_mb * config.MB), max_images=max_images, max_pixels=max_pixels))
    run_serve(host=host, port=port, backend=backend, model_dir=model_dir, weights=weights, device=device,
              precision=precision, mode=mode, threads=threads or None, settings=settings,
              graceful_timeout=graceful_timeout, access_log=access_log)


@app.command()
def bench(
    backend: Annotated[str, typer.Option("--backend", "-b", help="Backends, comma-separated: onnx, torch-local, "
                                         "http-service, triton-http, triton-grpc, triton-trt, auto.")] = "onnx",
    concurrency: Annotated[str, typer.Option(help="Requests in flight, comma-separated (e.g. 1,4,8,16,32).")] = "1",
    batch_size: Annotated[str, typer.Option("--batch-size", help="Images per request, comma-separated.")] = "1",
    payload: Annotated[str | None, typer.Option(
        help="What remote backends send: jpeg, uint8, fp32 or fp32-json [default: the backend's own].")] = None,
    precision: Annotated[str | None, typer.Option(
        help="ONNX exports to compare, comma-separated: fp32, fp16, int8 [default: int8 on a CPU, fp32 with "
        "--device cuda: every command's].")] = None,
    duration: Annotated[float, typer.Option(help="At most this many seconds of measuring per configuration.")] = 20.0,
    window: Annotated[float, typer.Option(help="Seconds per measurement window (stable = 3 within 10%).")] = 2.0,
    warmup: Annotated[float, typer.Option(help="Seconds of load before measuring.")] = 1.0,
    url: Annotated[str | None, typer.Option(help="Server URL for remote backends [default: local ports].")] = None,
    model_dir: Annotated[Path | None, typer.Option(
        "--model-dir", envvar="PHOTODEDUP_MODEL_DIR",
        help="ONNX export for the onnx backend [default: the default export].")] = None,
    weights: Annotated[str, typer.Option(help="Weights for torch-local and the default ONNX export.")]
    = config.DEFAULT_WEIGHTS,
    all_: Annotated[bool, typer.Option("--all", help="Start our service and the local Triton server and compare "
                                       "every backend under the same load.")] = False,
    serialization: Annotated[bool, typer.Option(
        "--serialization", help="Only the serialization experiment: bytes and ms per image for a batch of "
        "--batch-size images, no server.")] = False,
    pipeline: Annotated[Path | None, typer.Option(
        "--pipeline", help="Only the whole pipeline on this library (scan + embed onnx per --precision, as "
        "fresh processes) against the naive script (md5, phash, open_clip preprocess, torch).")] = None,
    device: Annotated[str, typer.Option(help="torch-local's device (cuda: fp16/bf16 by --precision, CUDA graphs); "
                                        "with --pipeline, also JPEG bytes to embeddings with torch-local on it (cuda: "
                                        "decoded by nvJPEG) beside PIL decoding.")] = "cpu",
    json_file: Annotated[Path | None, typer.Option("--json-file", help="Also write the rows as JSON here.")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Also write the rows as CSV here.")] = None,
    plot_dir: Annotated[Path | None, typer.Option("--plot-dir", help="Write throughput.png and latency.png in this "
                                                  "folder.")]
    = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Load-test backends like perf_analyzer (closed loop, N in flight) and print one table.

    Example: photodedup export-onnx --weights random && photodedup bench --weights random --concurrency 1,4 --duration 3
    """
    from rich.console import Console as _Console

    from photodedup import bench as bench_lib
    from photodedup.backends.base import default_precision
    from photodedup.bench import report as render

    out = _Console(width=220)
    precision = precision or default_precision(device)
    if pipeline:
        from photodedup.bench.pipeline import pipeline as run_pipeline

        show(run_pipeline(pipeline, weights=weights, precisions=bench_lib.parse_list(precision, option="--precision"),
                          device=None if device == "cpu" else device), json_out)
        return
    if serialization:
        rows = bench_lib.serialization(max(bench_lib.parse_list(batch_size, int, option="--batch-size")))
        if json_out:
            emit_json({"rows": rows})
        else:
            out.print(render.serialization_table(rows))
        return
    settings = bench_lib.BenchSettings(
        backends=bench_lib.parse_list(backend, option="--backend"),
        concurrency=bench_lib.parse_list(concurrency, int, option="--concurrency"),
        batch_sizes=bench_lib.parse_list(batch_size, int, option="--batch-size"),
        payload=payload, precisions=bench_lib.parse_list(precision, option="--precision"),
        duration=duration, window=window, warmup=warmup, url=url, model_dir=model_dir, weights=weights,
        device=device)
    if all_:
        from photodedup.bench.compare import compare as run
    else:
        run = bench_lib.bench
    with progress(quiet, "bench") as callback:
        result = run(settings, progress=callback)
    for path in bench_lib.save(result, json_file=json_file, csv_file=csv_file, plot_dir=plot_dir):
        err.print(f"wrote {printable(path)}", highlight=False, markup=False)
    if json_out:
        emit_json(result.as_dict())
        return
    out.print(render.table(result.rows))
    for line in render.error_lines(result.rows):
        warn(line)
    for line in result.verdicts():
        typer.echo(line)


@app.command("triton-config")
def triton_config(
    model_dir: Annotated[Path | None, typer.Option(
        "--model-dir", envvar="PHOTODEDUP_MODEL_DIR", help="ONNX export [default: the default export].")] = None,
    weights: Annotated[str | None, typer.Option(
        help=f"Without --model-dir: use the default export of these weights [default: {config.DEFAULT_WEIGHTS}].")]
    = None,
    out: Annotated[Path, typer.Option("--out", help="Model repository to write.")] = Path("model_repository"),
    variant: Annotated[list[str], typer.Option(
        "--variant", help="openclip_vit_b32 (CUDA EP), openclip_vit_b32_trt (TensorRT EP, FP16), "
        "openclip_vit_b32_cpu (Python backend, onnxruntime), openclip_vit_b32_torch (Python backend, PyTorch on "
        "the GPU; needs no export) [default: the first three; repeatable].")] = [],
    input_kind: Annotated[str | None, typer.Option(
        "--input", help="uint8 or fp32: which input the export must take [default: the export's].")] = None,
    max_batch_size: Annotated[int, typer.Option(help="Largest batch a model instance runs.")] = 64,
    max_queue_delay_us: Annotated[int, typer.Option(help="Longest wait to fill a batch, microseconds.")] = 2000,
    preferred_batch_size: Annotated[list[int], typer.Option(
        "--preferred-batch-size", help="Batch sizes the dynamic batcher aims for [default: 8 16 32; repeatable].")]
    = [],
    instances: Annotated[int, typer.Option(help="GPU model instances (per GPU when --gpu is given).")] = 1,
    gpu: Annotated[list[int], typer.Option("--gpu", help="GPU id for an instance group (repeatable) "
                                           "[default: one group over all GPUs].")] = [],
    cpu_instances: Annotated[int, typer.Option(help="Instances of the CPU (Python-backend) variant.")] = 1,
    cpu_threads: Annotated[int, typer.Option(help="onnxruntime threads per CPU instance (0: all cores).")] = 0,
    warmup: Annotated[bool, typer.Option("--warmup/--no-warmup", help="Run warm-up batches at model load.")]
    = True,
    dynamic_batching: Annotated[bool, typer.Option("--dynamic-batching/--no-dynamic-batching",
                                                   help="Let Triton join requests into batches.")] = True,
    torch_precision: Annotated[str, typer.Option(help="Torch variant: fp16, bf16 or fp32.")] = "fp16",
    torch_mode: Annotated[str, typer.Option(help="Torch variant: auto, eager, cuda-graphs or compile.")] = "auto",
    torch_device: Annotated[str, typer.Option(help="Torch variant: cuda (GPU instances) or cpu (CPU instances).")]
    = "cuda",
    trt_cache_dir: Annotated[str, typer.Option(help="TensorRT engine cache, as the server sees it.")]
    = "/trt_cache",
    copy: Annotated[bool, typer.Option("--copy", help="Copy (or hard-link) model files instead of symlinking "
                                       "(needed to mount the repository in a container).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write a Triton model repository (config.pbtxt per variant, validated with Triton's schema).

    Example: photodedup export-onnx --weights random && photodedup triton-config --weights random --out /tmp/repo
    """
    from photodedup.triton.config import VARIANTS, TritonSettings
    from photodedup.triton_config import triton_config as run_triton_config

    options = TritonSettings(
        max_batch_size=max_batch_size, max_queue_delay_us=max_queue_delay_us,
        preferred_batch_sizes=tuple(preferred_batch_size) or None,
        instance_count=instances, gpus=tuple(gpu), cpu_instance_count=cpu_instances, cpu_threads=cpu_threads,
        warmup=warmup, trt_cache_dir=trt_cache_dir, dynamic_batching=dynamic_batching,
        weights=weights or config.DEFAULT_WEIGHTS, torch_precision=torch_precision, torch_mode=torch_mode,
        torch_device=torch_device)
    summary = run_triton_config(model_dir, out, variants=tuple(variant) or VARIANTS, options=options,
                                input_kind=input_kind, copy=copy, weights=weights)
    show(summary, json_out)


@app.command("export-onnx")
def export_onnx_cmd(
    weights: Annotated[str, typer.Option(help="open_clip pretrained tag, a checkpoint file, or 'random'.")]
    = config.DEFAULT_WEIGHTS,
    precision: Annotated[str | None, typer.Option(
        help="fp32, fp16 or int8 (dynamic quantisation) [default: int8, as every command's default on a CPU].")]
    = None,
    input_kind: Annotated[str, typer.Option("--input", help="uint8 [N,224,224,3] (normalised in the graph) "
                                            "or fp32 (also: float32) [N,3,224,224] (the baseline).")] = "uint8",
    out: Annotated[Path | None, typer.Option(help="Model directory [default: $PHOTODEDUP_HOME/models/"
                                                "<model id>-<input>-<precision>].")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Export ViT-B/32's image tower to ONNX, verified against PyTorch (reuses an identical export).

    Example: photodedup export-onnx --weights random --precision int8
    """
    from photodedup.export_onnx import export_onnx
    from photodedup.exports import read_metadata
    from photodedup.model import RANDOM_WARNING, is_random_weights

    if is_random_weights(weights):
        warn(RANDOM_WARNING)
    model_dir = export_onnx(weights, precision=precision, input_kind=input_kind, out=out)  # (None: the default)
    meta = read_metadata(model_dir)
    if json_out:
        emit_json({"model_dir": str(model_dir), **meta})
    else:
        check = ", ".join(f"{k} {v}" for k, v in meta.get("verification", {}).items())
        typer.echo(f"{meta['model_id']} ({meta['precision']}, {meta['input_dtype']} input, opset {meta['opset']}) "
                   f"in {printable(model_dir)}\n  verified against PyTorch: {check or 'not verified'}")


@app.command()
def embed(
    ctx: typer.Context,
    backend: Annotated[str, typer.Option(help="torch-local, onnx, http-service, triton-http, triton-grpc, "
                                         "triton-trt or auto.")] = "onnx",
    model_dir: Annotated[Path | None, typer.Option(envvar="PHOTODEDUP_MODEL_DIR", help="ONNX export "
                         "for the onnx backend [default: the export-onnx location for --weights].")] = None,
    weights: Annotated[str | None, typer.Option(help="Weights (tag, checkpoint file or 'random'): picks "
                       f"the default export for onnx, the model for torch-local [default: {config.DEFAULT_WEIGHTS}].")]
    = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or tensorrt (onnx); cpu or cuda (torch-local).")] = "cpu",
    threads: Annotated[int, typer.Option(help="Inference threads [default: the CPUs available].")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per inference batch.")] = 32,
    workers: Annotated[int, typer.Option(help="Processes decoding originals without a stored crop "
                                         "[default: CPU count].")] = 0,
    url: Annotated[str | None, typer.Option(envvar="PHOTODEDUP_SERVICE_URL", help="Server URL for http-service "
                   "and auto [default: http://127.0.0.1:8002] (or triton-*).")] = None,
    token: Annotated[str | None, typer.Option(envvar="PHOTODEDUP_TOKEN", help="Bearer token for the service.")]
    = None,
    payload: Annotated[str | None, typer.Option(help="What http-service/auto send: jpeg (default; about 30 KB "
                       "an image, cosine >= 0.999 to local) or uint8 (the exact crops, 150 KB an image).")] = None,
    model: Annotated[str | None, typer.Option("--triton-model", help="Triton model name [default: "
                     "openclip_vit_b32 when the "
                     "server has it, else openclip_vit_b32_cpu; openclip_vit_b32_trt for triton-trt].")] = None,
    precision: PrecisionOpt = None,
    mode: ModeOpt = "auto",
    decode: Annotated[str, typer.Option(help="Who decodes originals without a stored crop (and the crops): pil "
                                        "(worker processes), torchvision (on the backend's device: nvJPEG on a "
                                        "GPU), or auto (torchvision on a GPU, else pil).")] = "auto",
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    actors: Annotated[int, typer.Option(help="With --engine ray: Ray actors running onnx/torch-local.")] = 1,
    gpus_per_actor: Annotated[float, typer.Option(help="With --engine ray: GPUs each actor reserves.")] = 0.0,
    catalog: CatalogOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Embed every scanned image that has no embedding for the model yet (resumable).

    Example: photodedup sample-library /tmp/lib --originals 4 --megapixels 1 && photodedup scan /tmp/lib &&
    photodedup export-onnx --weights random && photodedup embed --weights random
    """
    from photodedup.embed import embed as run_embed
    from photodedup.embed import open_backend
    from photodedup.model import RANDOM_WARNING

    secret_on_command_line(ctx, "token", "PHOTODEDUP_TOKEN")

    model_runner = open_backend(backend, model_dir=model_dir, weights=weights, precision=precision, device=device,
                                threads=threads or None, url=url, token=token, payload=payload, model=model, mode=mode,
                                engine=engine, ray_address=ray_address, actors=actors, gpus_per_actor=gpus_per_actor)
    try:
        if model_runner.is_random:
            warn(RANDOM_WARNING)
        with progress(quiet, "embed") as callback:
            summary = run_embed(model_runner, catalog=catalog, batch_size=batch_size, progress=callback,
                                workers=workers or None, engine=engine, ray_address=ray_address,
                                decode=decode)
    finally:
        model_runner.close()
    show(summary, json_out)


TrashDirOpt = Annotated[
    Path | None,
    typer.Option("--trash-dir", envvar="PHOTODEDUP_TRASH_DIR",
                 help="Trash folder (its journal.jsonl records every move) [default: $PHOTODEDUP_HOME/trash]."),
]


@app.command()
def review(
    ctx: typer.Context,
    catalog: CatalogOpt = None,
    port: Annotated[int, typer.Option(help="Port to serve on.")] = config.REVIEW_PORT,
    host: Annotated[str, typer.Option(help="Address to bind (anything but loopback exposes your photos).")]
    = "127.0.0.1",
    open_browser: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
    trash_dir: TrashDirOpt = None,
    token: Annotated[str | None, typer.Option(envvar="PHOTODEDUP_REVIEW_TOKEN",
                                                 help="Session token [default: a new random one each start].")]
    = None,
    export_labels: Annotated[Path | None, typer.Option(
        "--export-labels", help="Write the decisions as labels for `photodedup eval --truth` and exit.")] = None,
    labels_root: Annotated[Path | None, typer.Option(
        "--labels-root", help="Write label paths relative to this folder [default: absolute].")] = None,
) -> None:
    """Serve a local page to compare duplicate groups and decide: keep, trash, not duplicates.

    Example: photodedup sample-library /tmp/lib --originals 4 --megapixels 1 && photodedup run /tmp/lib --no-embed &&
    photodedup review --port 8010 --open
    """
    if export_labels is not None:
        from photodedup.duplicate_groups.labels import write_labels

        count = write_labels(export_labels, catalog=catalog, root=labels_root)
        typer.echo(f"{count} labelled groups written to {printable(export_labels)}")
        return
    from photodedup.review.app import serve as run_review

    secret_on_command_line(ctx, "token", "PHOTODEDUP_REVIEW_TOKEN")

    run_review(catalog or config.default_catalog(), host=host, port=port, trash_dir=trash_dir, token=token,
               open_browser=open_browser,
               announce=lambda url: err.print(f"Review at {printable(url)}  (Ctrl-C to stop)", highlight=False,
                                              markup=False, soft_wrap=True))


@app.command()
def apply(
    catalog: CatalogOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would move; change nothing.")] = False,
    trash_dir: TrashDirOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Move the files marked trash in review into the trash folder (never deletes; undo puts them back).

    Example: photodedup sample-library /tmp/lib --originals 4 --megapixels 1 && photodedup run /tmp/lib --no-embed &&
    photodedup apply --dry-run
    """
    from photodedup.apply import apply as run_apply

    with progress(quiet, "check") as callback:
        summary = run_apply(catalog, trash_dir=trash_dir, dry_run=dry_run, progress=callback)
    show(summary, json_out)
    if summary.failed:
        from photodedup.errors import SafetyError

        tried = len(summary.moved) + len(summary.failed)
        raise SafetyError(f"{len(summary.failed)} of {tried} files could not be moved (see above); each was "
                          "rolled back and is still at its path", hint="fix the cause and run apply again")


@app.command()
def undo(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Restore only these files (original or trash paths, or folders) [default: the whole last apply].")] = None,
    catalog: CatalogOpt = None,
    apply_id: Annotated[str | None, typer.Option("--apply", help="Restore every file of this apply id.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be restored; change nothing.")] = False,
    trash_dir: TrashDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Put files back from the trash; never overwrites a file that has since appeared at the path.

    Example: photodedup sample-library /tmp/lib --originals 4 --megapixels 1 && photodedup scan /tmp/lib &&
    photodedup undo --dry-run
    """
    from photodedup.apply import undo as run_undo
    from photodedup.errors import SafetyError

    summary = run_undo(catalog, trash_dir=trash_dir, paths=paths or (), apply_id=apply_id, dry_run=dry_run)
    show(summary, json_out)
    for refused in summary.refused:
        warn(f"not restored {printable(refused['path'])}: {printable(refused['reason'])}")
    if summary.refused:
        raise SafetyError(f"{len(summary.refused)} files were not restored (see the warnings above)")


# -- group, eval, run ------------------------------------------------------------------------------
HashThresholdOpt = Annotated[int, typer.Option(
    "--hash-threshold", help="Perceptual evidence: most pHash bits (of 64) that may differ [default: "
    f"{grouping.DEFAULT_HASH_THRESHOLD}, measured on the sample library; see docs/BENCHMARKS.md].")]
CosineOpt = Annotated[float, typer.Option(
    "--cosine", help=f"Semantic evidence: least embedding cosine [default: {grouping.DEFAULT_COSINE}, Immich's "
    "ViT-B-32 default; not calibrated without pretrained weights].")]
MethodOpt = Annotated[str, typer.Option(
    "--method", help="complete (no chaining: every member within the thresholds of every other) or single "
    "(connected components; chains through bursts).")]
#: The library's defaults, shown and passed by group, eval and run (tests/test_cli_consistency.py).
HASH_THRESHOLD, COSINE, METHOD = grouping.DEFAULT_HASH_THRESHOLD, grouping.DEFAULT_COSINE, grouping.DEFAULT_METHOD
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="Model id whose embeddings are semantic evidence [default: the catalog's pretrained one].")]
AllowRandomOpt = Annotated[bool, typer.Option(
    "--allow-random", help="Let random-weight embeddings count as evidence (meaningless; tests only).")]
EvidenceOpt = Annotated[list[str] | None, typer.Option(
    "--evidence", help="Evidence kinds to use (repeatable): exact, perceptual, dihedral (mirrored/turned "
    "copies), verified (crops and overlays checked with ORB features), semantic [default: all]; e.g. "
    "--evidence exact --evidence perceptual turns the new kinds off.")]
PreferOpt = Annotated[list[Path] | None, typer.Option(
    "--prefer", help="Reference folder (repeatable): its files always win as keeper and are never proposed "
    "for, or moved to, the trash.")]
KeeperRulesOpt = Annotated[str, typer.Option(
    "--keeper-rules", help="Keeper rules in order, comma-separated: "
    + ", ".join(f"{name} (= {','.join(rules)})" for name, rules in keeper.ALIASES.items()) + ", "
    + ", ".join(r for r in keeper.RULES if not any(r in rules for rules in keeper.ALIASES.values()))
    + "; see docs/DECISIONS.md.")]
DEFAULT_KEEPER_RULES = ",".join(keeper.DEFAULT_RULES)


def _group_params(evidence, hash_threshold, cosine, method, model, allow_random, search="auto", *,
                  prefer=None, keeper_rules=DEFAULT_KEEPER_RULES):
    from photodedup.grouping import EVIDENCE, GroupSettings
    from photodedup.keeper import reference_folders

    return GroupSettings(evidence=tuple(evidence or EVIDENCE), hash_threshold=hash_threshold, cosine=cosine,
                       model=model, allow_random=allow_random, method=method, search=search,
                       keeper_rules=keeper_rules, prefer=reference_folders(prefer or ()))


@app.command()
def group(
    roots: Annotated[list[Path] | None, typer.Argument(help="Only files under these folders [default: all].")]
    = None,
    catalog: CatalogOpt = None,
    hash_threshold: HashThresholdOpt = HASH_THRESHOLD,
    cosine: CosineOpt = COSINE,
    method: MethodOpt = METHOD,
    model: ModelOpt = None,
    allow_random: AllowRandomOpt = False,
    evidence: EvidenceOpt = None,
    search: Annotated[str, typer.Option(help="Semantic search: exact, faiss, or auto (exact up to 10,000 "
                                        "embeddings).")] = "auto",
    parquet: Annotated[Path | None, typer.Option("--parquet", help="Group a Parquet export (`export-parquet`) "
                                                 "instead of the catalog; stores nothing.")] = None,
    memory_gb: Annotated[float, typer.Option(help="With --parquet: memory for embeddings; larger inputs are "
                                             "searched in shards, several passes over the file.")] = 2.0,
    prefer: PreferOpt = None,
    keeper_rules: KeeperRulesOpt = DEFAULT_KEEPER_RULES,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write one CSV row per member here.")]
    = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Also write an HTML report with "
                                                     "thumbnails here.")] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Group duplicates (exact, perceptual, semantic) and suggest a keeper for each group; moves nothing.

    Example: photodedup sample-library /tmp/lib --originals 4 --megapixels 1 && photodedup scan /tmp/lib &&
    photodedup group --html /tmp/report.html
    """
    from photodedup.catalog import Catalog
    from photodedup.group import group as run_group
    from photodedup.group import write_csv
    from photodedup.report import write_report

    params = _group_params(evidence, hash_threshold, cosine, method, model, allow_random, search,
                           prefer=prefer, keeper_rules=keeper_rules)
    if parquet:
        from photodedup.errors import BadInputError
        from photodedup.parquet import group_parquet

        if html_out or roots:
            raise BadInputError("--parquet groups the whole file and has no thumbnails",
                                hint="leave out ROOTS and --html (use --csv or --json)")
        result = group_parquet(parquet, params=params, memory_bytes=int(memory_gb * config.GB))
        for message in result.warnings:
            warn(message)
        if csv_out:
            err.print(f"CSV: {printable(write_csv(result.groups, csv_out))}", markup=False, highlight=False)
        show(result, json_out)
        return
    with Catalog(catalog, create=False) as cat:
        with progress(quiet, "group") as callback:
            result = run_group(cat, roots=roots or (), params=params, progress=callback)
        for message in result.warnings:
            warn(message)
        if csv_out:
            err.print(f"CSV: {printable(write_csv(result.groups, csv_out))}", markup=False, highlight=False)
        if html_out:
            out = write_report(result.groups, html_out, catalog=cat, warnings=result.warnings)
            err.print(f"HTML report: {printable(out)}", markup=False, highlight=False)
    show(result, json_out)


@app.command("export-parquet")
def export_parquet_cmd(
    out: Annotated[Path, typer.Argument(help="Parquet file to write.")],
    catalog: CatalogOpt = None,
    model: Annotated[str | None, typer.Option(help="Whose embeddings [default: the model with the most].")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the catalog's hashes, EXIF and embeddings as Parquet, for `group --parquet` and other tools.

    Example: photodedup sample-library /tmp/lib --originals 4 --megapixels 1 && photodedup scan /tmp/lib &&
    photodedup export-parquet /tmp/lib.parquet
    """
    from photodedup.parquet import export_parquet

    show(export_parquet(catalog, out, model=model), json_out)


@app.command("eval")
def eval_cmd(
    truth: Annotated[Path, typer.Option("--truth", help="Ground truth JSON: the sample library's truth.json "
                                        "or a `photodedup review` labels export.")],
    catalog: CatalogOpt = None,
    hash_threshold: HashThresholdOpt = HASH_THRESHOLD,
    cosine: CosineOpt = COSINE,
    method: MethodOpt = METHOD,
    model: ModelOpt = None,
    allow_random: AllowRandomOpt = False,
    evidence: EvidenceOpt = None,
    prefer: PreferOpt = None,
    keeper_rules: KeeperRulesOpt = DEFAULT_KEEPER_RULES,
    sweep: Annotated[str | None, typer.Option(help="Vary one threshold (hash or cosine) and print "
                                                 "precision/recall per value.")] = None,
    values: Annotated[str | None, typer.Option(help="Comma-separated values for --sweep [default: a "
                                                  "range that covers the useful ones].")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG plot of the sweep [default: sweep-<name>.png].")]
    = None,
    json_out: JsonOpt = False,
) -> None:
    """Score the grouping against a ground truth: pairwise precision/recall/F1, MAP, NDCG, Jaccard.

    Example: photodedup sample-library /tmp/lib --originals 4 --megapixels 1 && photodedup scan /tmp/lib &&
    photodedup eval --truth /tmp/lib/truth.json --sweep hash
    """
    from photodedup import eval as evaluation

    params = _group_params(evidence, hash_threshold, cosine, method, model, allow_random,
                           prefer=prefer, keeper_rules=keeper_rules)
    if sweep:
        try:
            points_at = [float(v) for v in values.split(",")] if values else None
        except ValueError:
            raise typer.BadParameter(f"not a list of numbers: {values!r}", param_hint="--values") from None
        points = evaluation.sweep(catalog, truth, name=sweep, values=points_at, params=params)
        image = evaluation.plot_sweep(points, sweep, plot or Path(f"sweep-{sweep}.png"))
        if json_out:
            emit_json({"sweep": sweep, "points": points, "plot": str(image)})
            return
        typer.echo(f"{sweep:>8} {'precision':>9} {'recall':>7} {'F1':>6} {'pairs':>7} {'groups':>6}")
        for p in points:
            typer.echo(f"{p['value']:>8g} {p['precision']:>9.3f} {p['recall']:>7.3f} {p['f1']:>6.3f} "
                       f"{p['predicted_pairs']:>7} {p['groups']:>6}")
        err.print(f"Plot: {printable(image)}", markup=False, highlight=False)
        return
    result = evaluation.evaluate(catalog, truth, params=params)
    for message in result.warnings:
        warn(message)
    show(result, json_out)


@app.command("run")
def run_cmd(
    roots: Annotated[list[Path], typer.Argument(help="Folders to deduplicate.")],
    catalog: CatalogOpt = None,
    backend: Annotated[str | None, typer.Option(help="Embedding backend [default: the fastest local one, "
                                                   "onnx, exporting the model if needed].")] = None,
    weights: Annotated[str | None, typer.Option(help="Weights (tag, checkpoint file or 'random') "
                                                   f"[default: {config.DEFAULT_WEIGHTS}].")] = None,
    model_dir: Annotated[Path | None, typer.Option(envvar="PHOTODEDUP_MODEL_DIR", help="ONNX export to "
                                                      "use [default: the export-onnx location for --weights].")]
    = None,
    report: Annotated[Path | None, typer.Option(help="HTML report path [default: beside the catalog].")]
    = None,
    precision: Annotated[str | None, typer.Option(help="ONNX export the default backend uses: int8, fp16 or "
                                                       "fp32 [default: int8 on a CPU, as every command].")] = None,
    no_embed: Annotated[bool, typer.Option("--no-embed", help="Skip embedding (exact and perceptual "
                                           "evidence only).")] = False,
    no_crops: Annotated[bool, typer.Option("--no-crops", help="Embed each image right after decoding; store no "
                                           "model crops (for libraries too large for crops in the catalog).")]
    = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    hash_threshold: HashThresholdOpt = HASH_THRESHOLD,
    cosine: CosineOpt = COSINE,
    method: MethodOpt = METHOD,
    allow_random: AllowRandomOpt = False,
    prefer: PreferOpt = None,
    keeper_rules: KeeperRulesOpt = DEFAULT_KEEPER_RULES,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """The whole job: scan, embed, group and write the HTML report (nothing is moved or deleted).

    Example: photodedup sample-library /tmp/lib --originals 4 --megapixels 1 && photodedup run /tmp/lib --weights random
    """
    from photodedup.run import run as run_all

    params = _group_params([], hash_threshold, cosine, method, None, allow_random, prefer=prefer,
                           keeper_rules=keeper_rules)
    result = run_all(roots, catalog=catalog, backend=backend, weights=weights, model_dir=model_dir,
                     precision=precision, report=report, params=params, embed=not no_embed,
                     engine=engine, ray_address=ray_address, store_crops=not no_crops,
                     progress=lambda label: progress(quiet, label),
                     stage=lambda message: err.print(printable(message, newlines=True), markup=False,
                                                     highlight=False))
    for message in result.warnings:
        warn(message)
    show(result, json_out)


# -- entry point -----------------------------------------------------------------------------------
def main() -> None:
    """Run the app; print a PhotodedupError once, with its hint, and exit with its code.

    Click (standalone mode) keeps its own usage errors (exit 2) and Ctrl-C handling.
    """
    try:
        app()
    except PhotodedupError as error:
        if _state["debug"]:  # the frames (the message, which may hold a name, is the line below)
            import traceback

            frames = "".join(traceback.format_tb(error.__traceback__)).rstrip("\n").split("\n")
            err.print("Traceback (most recent call last):", *map(printable, frames), f"{type(error).__name__}:",
                      sep="\n", markup=False, highlight=False)
        err.print(f"Error: {printable(error, newlines=True)}", style="red", highlight=False, markup=False)
        if error.hint:
            err.print(f"Hint: {printable(error.hint, newlines=True)}", highlight=False, markup=False)
        sys.exit(error.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
