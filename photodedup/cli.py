"""The ``photodedup`` command. Typer only: parse arguments, call one library function, render.

Results go to stdout; logs, warnings and progress to stderr. Errors are ``PhotodedupError``s,
printed once by ``main`` and mapped to their exit code (2 stays Click's for usage errors).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from photodedup import __version__, config
from photodedup.errors import PhotodedupError

app = typer.Typer(
    name="photodedup",
    help="Find duplicate and near-duplicate photos in large libraries.\n\n"
    "Example: photodedup sample-library /tmp/lib && photodedup run /tmp/lib",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
err = Console(stderr=True, soft_wrap=True)
_state = {"debug": False, "quiet": False}

# -- shared options, defined once ------------------------------------------------------------------
CatalogOpt = Annotated[
    Optional[Path],
    typer.Option("--catalog", envvar="PHOTODEDUP_CATALOG",
                 help="Catalog file [default: $PHOTODEDUP_HOME/catalog.sqlite, "
                      "PHOTODEDUP_HOME defaults to ~/.local/share/photodedup]."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


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
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def progress(quiet: bool, label: str):
    """A progress-callback factory for long stages: a rich bar on a terminal, silent otherwise."""
    from photodedup.progress import make_progress

    return make_progress(enabled=not quiet and err.is_terminal, label=label, console=err)


def emit_json(data) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def warn(message: str) -> None:
    err.print(f"[yellow]Warning:[/yellow] {message}", highlight=False)


# -- commands --------------------------------------------------------------------------------------
@app.command()
def scan(
    roots: Annotated[list[Path], typer.Argument(help="Folders (or files) to scan.")],
    catalog: CatalogOpt = None,
    include: Annotated[list[str], typer.Option("--include", help="Only paths matching this glob (repeatable).")] = [],
    exclude: Annotated[list[str], typer.Option("--exclude", help="Skip paths matching this glob (repeatable).")] = [],
    workers: Annotated[int, typer.Option(help="Worker processes for decoding and hashing [default: CPU count].")] = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Walk folders and record every image (MD5, pHash/dHash, EXIF, model crop) in the catalog.

    Example: photodedup sample-library /tmp/lib && photodedup scan /tmp/lib
    """
    from photodedup.scan import scan as run_scan

    with progress(quiet, "scan") as callback:
        summary = run_scan(roots, catalog=catalog, include=include, exclude=exclude,
                           workers=workers or None, progress=callback)
    if json_out:
        emit_json(summary.as_dict())
    else:
        typer.echo(summary.render())


@app.command("sample-library")
def sample_library(
    out: Annotated[Path, typer.Argument(help="Folder to create the library in.")],
    originals: Annotated[int, typer.Option(help="How many distinct original photos.")] = 12,
    megapixels: Annotated[float, typer.Option(help="Size of the originals (phones: about 12).")] = 12.0,
    seed: Annotated[int, typer.Option(help="Everything follows from this seed.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Generate a realistic photo library with near-duplicates, broken files and a ground truth.

    Example: photodedup sample-library /tmp/lib --originals 8 --megapixels 1
    """
    from photodedup.sample_library import make_library

    result = make_library(out, originals=originals, megapixels=megapixels, seed=seed)
    if json_out:
        emit_json(result)
    else:
        typer.echo(f"{result['files']} files in {out} ({result['groups']} duplicate groups, "
                   f"{result['broken']} broken files); ground truth: {result['truth']}")


@app.command()
def serve(
    engine: Annotated[str, typer.Option(help="service (our FastAPI service) or triton (NVIDIA Triton).")] = "service",
    host: Annotated[str, typer.Option(help="Address to bind (use 0.0.0.0 with --token to serve others).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port of the service.")] = config.SERVICE_PORT,
    model_dir: Annotated[Optional[Path], typer.Option("--model-dir", envvar="PHOTODEDUP_MODEL_DIR",
                                                      help="Exported model directory (onnx backend).")] = None,
    weights: Annotated[Optional[str], typer.Option(help="Weights (torch-local; or which default export).")] = None,
    backend: Annotated[str, typer.Option(help="What runs the model: onnx or torch-local.")] = "onnx",
    device: Annotated[str, typer.Option(help="cpu, cuda or tensorrt.")] = "cpu",
    threads: Annotated[int, typer.Option(help="Inference threads [default: CPU count].")] = 0,
    max_batch_size: Annotated[int, typer.Option(help="Most images per model call.")] = 32,
    max_queue_delay_us: Annotated[int, typer.Option(help="Longest wait to fill a batch, microseconds.")] = 2000,
    max_images: Annotated[int, typer.Option(help="Most images per request.")] = 64,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body, MiB.")] = 64.0,
    max_pixels: Annotated[int, typer.Option(help="Most pixels per image, checked before decoding.")]
    = 200_000_000,
    token: Annotated[Optional[str], typer.Option(envvar="PHOTODEDUP_TOKEN",
                                                 help="Require this bearer token on /embed, /metrics, /v1/model.")]
    = None,
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
    if engine == "triton":
        from photodedup.triton.server import serve_forever

        serve_forever(model_repository=model_repository, host=host, http_port=http_port,
                      grpc_port=grpc_port, metrics_port=metrics_port)
        return
    if engine != "service":
        raise typer.BadParameter(f"{engine!r} is not one of: service, triton", param_hint="--engine")
    from photodedup.serve import serve as run_serve
    from photodedup.service import Limits, ServiceSettings

    settings = ServiceSettings(
        max_batch_size=max_batch_size, max_queue_delay=max_queue_delay_us / 1e6, token=token or None,
        limits=Limits(max_body_bytes=int(max_body_mb * 1024 * 1024), max_images=max_images, max_pixels=max_pixels))
    run_serve(host=host, port=port, backend=backend, model_dir=model_dir, weights=weights, device=device,
              threads=threads or None, settings=settings, graceful_timeout=graceful_timeout, access_log=access_log)


# -- entry point -----------------------------------------------------------------------------------
def main() -> None:
    """Run the app; print a PhotodedupError once, with its hint, and exit with its code."""
    try:
        app(standalone_mode=False)
    except PhotodedupError as error:
        if _state["debug"]:
            err.print_exception()
        err.print(f"Error: {error}", style="red", highlight=False, markup=False)
        if error.hint:
            err.print(f"Hint: {error.hint}", highlight=False, markup=False)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err.print("Interrupted; everything finished so far is saved in the catalog.", markup=False)
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as error:  # click usage errors
        import click

        if isinstance(error, click.exceptions.ClickException):
            error.show()
            sys.exit(error.exit_code)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
