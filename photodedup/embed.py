"""``photodedup embed``: an embedding for every scanned image that has none for the backend's model.

The model crop that ``scan`` stored (JPEG bytes, ``PreprocessConfig.spec``) is decoded (about 1 ms);
only files without a crop of the right spec are decoded from the original, at reduced DCT scale, in
worker processes; or, when the backend runs on a GPU (or ``decode="torchvision"``), in batches on the
backend's device with torchvision (nvJPEG on CUDA, ``gpu.JpegCropper``). Batches are assembled ahead
of inference in a background thread, so reading and
decoding overlap with the model. Each batch is committed in one transaction with
``Catalog.add_embeddings``: a run killed at any moment resumes with what is left, redoing nothing.
Files that cannot be decoded are recorded as per-file errors for the model and counted, never fatal.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from photodedup.backends import Backend, embed_batches, get_backend
from photodedup.catalog import Catalog
from photodedup.errors import BadInputError, Interrupted
from photodedup.executor import Executor, open_executor
from photodedup.preprocess import PreprocessConfig, decode_crop
from photodedup.progress import ProgressCallback, no_progress
from photodedup.text import printable
from photodedup.vectors import decode_original, register

log = logging.getLogger(__name__)

#: Batches assembled ahead of the one being embedded.
PREFETCH = 2
#: How originals without a stored crop are decoded: ``auto`` (torchvision on the backend's device when
#: that is a GPU, else PIL), ``pil`` (worker processes) or ``torchvision`` (on the backend's device).
DECODERS = ("auto", "pil", "torchvision")


@dataclass
class EmbedSummary:
    """What an embed run did. ``skipped``: OK files that already had an embedding (or error) for
    the model; ``errors``: files recorded with an error in this run. ``timings`` are seconds spent
    per stage (read: catalog reads; decode: crops and originals, overlapped with infer; infer; write)."""

    embedded: int = 0
    skipped: int = 0
    errors: int = 0
    from_crops: int = 0
    from_originals: int = 0
    backend: str = ""
    model: str = ""
    is_random: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "decode": 0.0, "infer": 0.0, "write": 0.0})
    catalog: str = ""
    #: images embedded per backend that did it (``auto`` may use the remote and the local one)
    backends: dict[str, int] = field(default_factory=dict)
    #: what decoded originals and stored crops: ``pil`` or ``torchvision on <device>``
    decoder: str = "pil"

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        data = asdict(self) | {"images_per_second": round(self.images_per_second, 1)}
        data["seconds"] = round(self.seconds, 3)
        data["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return data

    def render(self) -> str:
        t = self.timings
        return "\n".join([
            f"Embedded {self.embedded} images in {self.seconds:.1f}s ({self.images_per_second:.1f} images/s) "
            f"with {self.backend}, model {self.model}",
            f"  skipped {self.skipped} (already embedded), errors {self.errors}, "
            f"from stored crops {self.from_crops}, decoded from originals {self.from_originals}",
            f"  time: read {t['read']:.1f}s, decode {t['decode']:.1f}s (overlapped), "
            f"infer {t['infer']:.1f}s, write {t['write']:.1f}s",
            f"Catalog: {printable(self.catalog)}",
        ])


def open_backend(name: str = "onnx", *, engine: str = "local", ray_address: str | None = None, actors: int = 1,
                 gpus_per_actor: float = 0, **options) -> Backend:
    """``get_backend(name, **options)``; with ``engine="ray"`` the local backends (onnx, torch-local) run
    in ``actors`` Ray actors on the cluster, the remote ones are called from here as always."""
    if engine == "ray" and name in ("onnx", "torch-local"):
        from photodedup.executor import RayActorBackend

        return RayActorBackend(get_backend, {"name": name, **options}, name=name, replicas=actors,
                               num_gpus=gpus_per_actor, address=ray_address)
    return get_backend(name, **options)


def decode_device(backend: Backend, decode: str = "auto") -> str | None:
    """The torch device that decodes originals for ``backend`` (see ``DECODERS``); None means PIL."""
    if decode not in DECODERS:
        raise BadInputError(f"--decode {decode!r} is not one of {', '.join(DECODERS)}")
    device = backend.device
    on_gpu = device.startswith("cuda")
    if decode == "pil" or (decode == "auto" and not on_gpu):
        return None
    if decode == "auto" and importlib.util.find_spec("torchvision") is None:
        return None
    return device if on_gpu else "cpu"


def embed(backend: Backend, *, catalog: Path | str | None = None, batch_size: int = 32,
          progress: ProgressCallback | None = None, workers: int | None = None,
          engine: str | Executor = "local", ray_address: str | None = None, decode: str = "auto") -> EmbedSummary:
    """Embed every OK file in the catalog that has no embedding for ``backend.embedding_id``.

    Originals without a stored crop are decoded by ``engine`` (local processes, Ray tasks, or an open
    ``Executor``), or on the backend's GPU (``decode``, see ``DECODERS``); inference runs where the
    backend runs.
    """
    progress = progress or no_progress
    start = time.perf_counter()
    batch_size = max(1, int(batch_size))
    device = decode_device(backend, decode)
    summary = EmbedSummary(backend=backend.name, model=backend.embedding_id,
                           decoder="pil" if device is None else f"torchvision on {device}")
    with Catalog(catalog, create=False) as cat, cat.writer("embed"), _interrupt_says_what_was_saved(cat, summary):
        summary.catalog = str(cat.path)
        summary.is_random = register(cat, backend)
        todo = cat.files_without_embedding(backend.embedding_id)
        summary.skipped = cat.counts().get("ok", 0) - len(todo)
        total = len(todo)
        progress(0, total)
        if not todo:
            summary.seconds = time.perf_counter() - start
            return summary
        with _Assembler(cat, backend.preprocess, summary, engine, workers, ray_address, device) as assembler:
            metas: deque[tuple[list[int], dict[int, str]]] = deque()
            pending_errors: dict[int, str] = {}

            def batches() -> Iterator[np.ndarray]:
                for ids, images, errors in assembler.assemble(todo, batch_size):
                    pending_errors.update(errors)
                    if len(ids):
                        metas.append((ids, dict(pending_errors)))
                        pending_errors.clear()
                        yield images

            done = 0
            for result in embed_batches(backend, batches(), in_flight=backend.in_flight):
                ids, errors = metas.popleft()
                summary.timings["infer"] += result.seconds
                _write(cat, summary, backend, ids, result.embeddings, errors, result.backend)
                done += len(ids) + len(errors)
                progress(done, total)
            if pending_errors:  # failures after the last good image
                _write(cat, summary, backend, [], None, pending_errors, backend.name)
                done += len(pending_errors)
                progress(done, total)
    summary.seconds = time.perf_counter() - start
    return summary


@contextmanager
def _interrupt_says_what_was_saved(cat: Catalog, summary: EmbedSummary) -> Iterator[None]:
    """Ctrl-C: every finished batch is committed; say so (``Interrupted``, exit 130)."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: this embed saved {summary.embedded} embeddings of {summary.model} to "
                          f"{cat.path}; run the same command again to continue where it stopped") from None


def _write(cat: Catalog, summary: EmbedSummary, backend: Backend, ids: list[int],
           vectors: np.ndarray | None, errors: dict[int, str], used: str) -> None:
    started = time.perf_counter()
    cat.add_embeddings(backend.embedding_id, ids, vectors, backend=used, errors=errors)
    summary.timings["write"] += time.perf_counter() - started
    summary.embedded += len(ids)
    summary.errors += len(errors)
    if ids:
        summary.backends[used] = summary.backends.get(used, 0) + len(ids)


class _Assembler:
    """Turns catalog rows into ``(file_ids, uint8 [n,224,224,3], errors)`` batches, ``PREFETCH``
    batches ahead: stored crops decoded in a thread, originals by the executor (opened on first need),
    or, with a ``device``, both in that thread on the device."""

    def __init__(self, cat: Catalog, preprocess: PreprocessConfig, summary: EmbedSummary,
                 engine: str | Executor, workers: int | None, ray_address: str | None,
                 device: str | None = None) -> None:
        self.cropper = None
        if device is not None:
            from photodedup.gpu import JpegCropper

            self.cropper = JpegCropper(preprocess, device=device)
        self.cat = cat
        self.preprocess = preprocess
        self.summary = summary
        self.threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-decode")
        self.engine, self.workers, self.ray_address = engine, workers, ray_address
        self.executor: Executor | None = None

    def __enter__(self) -> _Assembler:
        return self

    def __exit__(self, *exc) -> None:
        self.threads.shutdown(wait=True, cancel_futures=True)
        if self.executor is not None and self.executor is not self.engine:
            self.executor.close()

    def assemble(self, rows: Sequence, batch_size: int) -> Iterator[tuple[list[int], np.ndarray, dict[int, str]]]:
        chunks = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
        futures: deque[Future] = deque()
        for chunk in chunks:
            futures.append(self._submit(chunk))
            if len(futures) > PREFETCH:
                yield futures.popleft().result()
        while futures:
            yield futures.popleft().result()

    def _submit(self, chunk: Sequence) -> Future:
        """Read the stored crops here (the catalog connection stays in this thread), decode in a thread."""
        started = time.perf_counter()
        ids = [row["id"] for row in chunk]
        stored = self.cat.crops(ids, self.preprocess.spec)
        self.summary.timings["read"] += time.perf_counter() - started
        missing = [(row["id"], row["path"]) for row in chunk if row["id"] not in stored]
        originals = None
        if missing and self.cropper is not None:
            originals = self.cropper
        elif missing:
            if self.executor is None:
                self.executor = (open_executor(self.engine, workers=self.workers, address=self.ray_address)
                                 if isinstance(self.engine, str) else self.engine)
            originals = self.executor.map(decode_original, [(path, self.preprocess) for _, path in missing])
        return self.threads.submit(self._decode, ids, stored, missing, originals)

    def _decode(self, ids, stored: dict[int, bytes], missing, originals):
        started = time.perf_counter()
        crops: dict[int, np.ndarray] = {}
        errors: dict[int, str] = {}
        if self.cropper is not None and stored:  # one batched decode on the device
            order = list(stored)
            good, arrays, failed = self.cropper.crops([stored[i] for i in order])
            crops.update({order[index]: arrays[row] for row, index in enumerate(good)})
            errors.update({order[index]: f"stored crop unreadable: {reason}" for index, reason in failed.items()})
            self.summary.from_crops += len(good)
            stored = {}
        for file_id, data in stored.items():
            try:
                crops[file_id] = decode_crop(data)
                self.summary.from_crops += 1
            except (OSError, SyntaxError, ValueError) as error:  # a damaged stored crop: use the original
                log.warning("stored crop of file %s is unreadable (%s)", file_id, error)
                errors[file_id] = f"stored crop unreadable: {error}"
        if originals is not None and originals is self.cropper:
            originals = _decode_on_device(self.cropper, [path for _, path in missing], self.preprocess)
        if originals is not None:
            for (file_id, _), (crop, reason) in zip(missing, originals, strict=True):
                if crop is None:
                    errors[file_id] = reason
                else:
                    crops[file_id] = crop
                    self.summary.from_originals += 1
        good = [i for i in ids if i in crops]
        images = np.stack([crops[i] for i in good]) if good else np.zeros((0, 224, 224, 3), np.uint8)
        self.summary.timings["decode"] += time.perf_counter() - started
        return good, images, errors


def _decode_on_device(cropper, paths: list[str], preprocess: PreprocessConfig) -> list[tuple[np.ndarray | None, str]]:
    """``decode_original``'s answers for ``paths``, decoded in one batch on the cropper's device; a file
    the device path cannot decode (a camera RAW, a broken file) gets ``decode_original``'s own answer."""
    from photodedup.gpu import read_files

    blobs, unreadable = read_files(paths)
    good, crops, errors = cropper.crops(blobs)
    answers: list[tuple[np.ndarray | None, str]] = [(None, "") for _ in paths]
    for row, index in enumerate(good):
        answers[index] = (crops[row], "")
    for index in errors:
        answers[index] = (None, unreadable[index]) if index in unreadable else decode_original(
            (paths[index], preprocess))
    return answers
