"""A Triton model repository written from an ONNX export: what ``photodedup triton-config`` writes and
``bench`` serves.

Each variant gets ``<out>/<variant>/config.pbtxt`` and a version folder ``1/`` holding the export's
``model.onnx``, ``metadata.json`` and ``preprocess.json`` (symlinked, or copied with ``copy=True``). The CPU
variant also gets ``1/model.py``, the Python-backend model; the torch variant only its ``1/model.py``. Every
written config is parsed back with Triton's schema.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from photodedup.exports import MODEL_FILES, read_metadata
from photodedup.triton import config as tc

log = logging.getLogger(__name__)

VERSION = "1"


def write_repository(model_dir: Path, out: Path, *, variants: tuple[str, ...] = tc.VARIANTS,
                     options: tc.TritonSettings | None = None, copy: bool = False) -> dict[str, dict]:
    """Write each variant of the export in ``model_dir`` into the repository ``out``; returns each one's
    ``write_variant`` answer, by name."""
    options = (options or tc.TritonSettings()).check()
    model_dir = Path(model_dir).resolve()  # the version folders link to it
    metadata = read_metadata(model_dir)
    return {variant: write_variant(out, variant, metadata, options, model_dir, copy) for variant in variants}


def write_variant(repository: Path, variant: str, metadata: dict, options: tc.TritonSettings,
                  model_dir: Path | None, copy: bool = False) -> dict:
    """Write one variant's folder (``config.pbtxt``, parsed back with Triton's schema, and ``1/``); returns what
    it holds: its config's path, backend, max batch size, instances and whether it batches dynamically."""
    config = tc.build_config(variant, metadata, options)
    folder = repository / variant
    version = folder / VERSION
    version.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.pbtxt"
    config_path.write_text(tc.render(config, metadata))
    tc.parse_config(config_path)  # what tritonserver will read must parse with its schema
    if variant == tc.TORCH_MODEL:
        shutil.copyfile(Path(tc.__file__).with_name("torch_model.py"), version / "model.py")
    else:
        for source in _model_files(model_dir):
            _place(source, version / source.name, copy=copy)
    if variant == tc.CPU_MODEL:
        shutil.copyfile(Path(tc.__file__).with_name("python_model.py"), version / "model.py")
    groups = ", ".join(f"{g.count}x {mc_kind(g.kind)}{'' if not g.gpus else ' gpus ' + str(list(g.gpus))}"
                       for g in config.instance_group)
    log.info("wrote %s", config_path)
    return {"config": str(config_path), "backend": config.backend, "max_batch_size": config.max_batch_size,
            "instances": groups, "dynamic_batching": config.HasField("dynamic_batching")}


def mc_kind(kind: int) -> str:
    return tc.mc.ModelInstanceGroup.Kind.Name(kind).removeprefix("KIND_")



def _model_files(model_dir: Path) -> list[Path]:
    extra = sorted(p for p in model_dir.iterdir() if p.name.endswith((".onnx.data", ".onnx_data")))
    return [model_dir / name for name in MODEL_FILES] + extra


def _place(source: Path, target: Path, *, copy: bool) -> None:
    """Symlink ``target`` to ``source``; with ``copy``, hard-link when possible, else copy."""
    if target.is_symlink() or target.exists():
        target.unlink()
    if not copy:
        target.symlink_to(source)
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
