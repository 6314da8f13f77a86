"""Loading OpenCLIP ViT-B/32: a pretrained tag, a local checkpoint file, or seeded random weights.

Model ids name architecture and weights: ``ViT-B-32/<pretrained tag>``, ``ViT-B-32/random-seed<N>``,
``ViT-B-32/file-<first 12 hex of the checkpoint's sha256>``. Random weights are announced loudly
(``logging.warning``): their embeddings carry no meaning.

Pretrained tags resolve through open_clip's pretrained table and the Hugging Face cache. The cache is
checked first (``local_files_only``); a download is only tried when the hub is reachable within a few
seconds and ``HF_HUB_OFFLINE`` is not set, so an offline machine gets a clear error at once instead
of a long retry loop.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from photodedup import config
from photodedup.errors import ModelNotFoundError
from photodedup.preprocess import PreprocessConfig

log = logging.getLogger(__name__)

ARCH = config.DEFAULT_MODEL_NAME
RANDOM = "random"
RANDOM_WARNING = ("model weights are random (--weights random): its embeddings carry no meaning; "
                  "use them for tests and timing only")
_RANDOM_SEED = re.compile(r"^random(?:-seed(\d+))?$")
_HUB_HOST = ("huggingface.co", 443)
_HUB_PROBE_SECONDS = 3.0


@dataclass
class LoadedModel:
    """An open_clip model ready for inference (eval mode) and what identifies it."""

    model: object  # open_clip.CLIP
    model_id: str
    weights: str
    is_random: bool
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)


def is_random_weights(weights: str) -> bool:
    return bool(_RANDOM_SEED.match(weights))


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_id_for(weights: str, *, seed: int = 0) -> str:
    """The model id for ``weights`` (tag, checkpoint file or ``random``) without loading anything.

    ``random-seed<N>`` is accepted as a spelling of ``random`` with ``seed=N``.
    """
    if match := _RANDOM_SEED.match(weights):
        return f"{ARCH}/random-seed{int(match.group(1)) if match.group(1) else seed}"
    path = Path(weights).expanduser()
    if path.is_file():
        return f"{ARCH}/file-{file_sha256(path)[:12]}"
    return f"{ARCH}/{weights}"


def load_model(weights: str = config.DEFAULT_WEIGHTS, *, seed: int = 0, device: str = "cpu") -> LoadedModel:
    """Build ViT-B/32 with ``weights`` (tag, checkpoint path or ``random``) in eval mode on ``device``."""
    import open_clip
    import torch

    model_id = model_id_for(weights, seed=seed)
    preprocess = PreprocessConfig()
    if is_random_weights(weights):
        seed = int(model_id.rsplit("seed", 1)[1])
        log.warning(RANDOM_WARNING)
        torch.manual_seed(seed)
        model = _quietly(lambda: open_clip.create_model(ARCH, pretrained=None, device=device))
        model.eval()
        return LoadedModel(model, model_id, RANDOM, True, preprocess)
    path = Path(weights).expanduser()
    if path.is_file():
        checkpoint, label = str(path), str(path.resolve())
    elif path.suffix or os.sep in weights:
        raise ModelNotFoundError(f"checkpoint file {weights} does not exist",
                                 hint="pass an open_clip checkpoint file, a pretrained tag or `random`")
    else:
        checkpoint, label = _pretrained_checkpoint(weights), weights
        preprocess = _preprocess_for_tag(weights)
    model = _quietly(lambda: open_clip.create_model(ARCH, pretrained=None, device=device))
    try:
        open_clip.load_checkpoint(model, checkpoint, device=device)
    except Exception as error:  # torch.load and load_state_dict raise many kinds; wrapped here
        raise ModelNotFoundError(f"cannot load {ARCH} weights from {checkpoint}: {error}",
                                 hint="the file must be an open_clip ViT-B-32 checkpoint (state dict)") from error
    model.eval()
    return LoadedModel(model, model_id, label, False, preprocess)


def _quietly(build):
    """open_clip logs 'initialized randomly' on the root logger; we say it ourselves, once."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        return build()
    finally:
        root.setLevel(level)


def _preprocess_for_tag(tag: str) -> PreprocessConfig:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(ARCH, tag) or {}
    base = PreprocessConfig()
    return PreprocessConfig(mean=tuple(cfg.get("mean", base.mean)), std=tuple(cfg.get("std", base.std)),
                            interpolation=cfg.get("interpolation", base.interpolation),
                            resize_mode=cfg.get("resize_mode", base.resize_mode))


def _how_to_get(tag: str) -> str:
    return (f"on a machine with internet run `photodedup export-onnx --weights {tag}` (open_clip caches the "
            "weights under ~/.cache/huggingface) and copy the cache or the export here, or pass a checkpoint "
            "file with --weights /path/to/open_clip_pytorch_model.bin, or use --weights random for tests")


def _pretrained_checkpoint(tag: str) -> str:
    """The local path of the checkpoint for an open_clip tag: from the cache, else downloaded."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(ARCH, tag)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(ARCH))
        raise ModelNotFoundError(f"unknown weights {tag!r} for {ARCH}",
                                 hint=f"use a pretrained tag ({tags}), a checkpoint file or `random`")
    if "file" in cfg:
        return cfg["file"]
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)
        candidates = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if cached := _hf_cached(repo, candidates):
            return cached
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or not _hub_reachable():
        raise ModelNotFoundError(
            f"the weights {ARCH}/{tag} are not cached here and cannot be downloaded (offline)",
            hint=_how_to_get(tag))
    log.info("downloading %s/%s through open_clip", ARCH, tag)
    try:
        return open_clip.download_pretrained(cfg)
    except Exception as error:  # network errors of many kinds, wrapped where they enter
        raise ModelNotFoundError(f"could not download the weights {ARCH}/{tag}: {error}",
                                 hint=_how_to_get(tag)) from error


def _hf_cached(repo: str, filenames: list[str]) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - open_clip depends on huggingface_hub
        return None
    for filename in filenames:
        path = try_to_load_from_cache(repo_id=repo, filename=filename)
        if isinstance(path, str) and Path(path).is_file():
            return path
    return None


def _hub_reachable() -> bool:
    try:
        with socket.create_connection(_HUB_HOST, timeout=_HUB_PROBE_SECONDS):
            return True
    except OSError:
        return False


def image_encoder(loaded: LoadedModel, input_kind: str = "uint8"):
    """The image tower as exported: ``uint8 [N,224,224,3]`` (or normalised ``float32 [N,3,224,224]``)
    in, L2-normalised ``float32 [N,512]`` out. /255, mean/std and NHWC->NCHW happen inside."""
    import torch

    cfg = loaded.preprocess

    class ImageEncoder(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.visual = model.visual
            std = torch.tensor(cfg.std)
            self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, 3, 1, 1))
            self.register_buffer("shift", (torch.tensor(cfg.mean) / std).view(1, 3, 1, 1))

        def forward(self, images):
            if input_kind == "uint8":
                # (x/255 - mean)/std == x * 1/(255 std) - mean/std
                images = images.permute(0, 3, 1, 2).float() * self.scale - self.shift
            return torch.nn.functional.normalize(self.visual(images), dim=-1)

    return ImageEncoder(loaded.model).eval()


def embed_with_torch(encoder, crops):
    """Run a uint8 ``image_encoder`` on ``uint8 [N,224,224,3]`` crops; float32 ``[N,512]``."""
    import numpy as np
    import torch

    device = next(encoder.parameters()).device
    with torch.inference_mode():
        batch = torch.from_numpy(np.ascontiguousarray(crops)).to(device)
        return encoder(batch).float().cpu().numpy()
