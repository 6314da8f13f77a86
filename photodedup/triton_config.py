"""``photodedup triton-config``: write a Triton model repository from an ONNX export.

Each variant gets ``<out>/<variant>/config.pbtxt`` (committed) and a version folder ``1/`` holding the
export's ``model.onnx``, ``metadata.json`` and ``preprocess.json`` (symlinked, or copied with
``copy=True``; git-ignored). The CPU variant also gets ``1/model.py``, the Python-backend model. The
torch variant gets only its ``1/model.py`` (it builds the model from ``--weights``; no export needed).
Every written config is parsed back with Triton's schema before the function returns.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from photodedup.errors import BadInputError
from photodedup.exports import MODEL_FILES, find_export, read_metadata
from photodedup.text import printable
from photodedup.triton import config as tc

log = logging.getLogger(__name__)

VERSION = "1"
#: Files of an export that each model version folder needs (plus any external-data files).


@dataclass
class TritonConfigSummary:
    repository: Path
    model_dir: Path
    model_id: str
    input_dtype: str
    linked: str
    variants: dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"repository": str(self.repository), "model_dir": str(self.model_dir), "model_id": self.model_id,
                "input_dtype": self.input_dtype, "linked": self.linked, "variants": self.variants}

    def render(self) -> str:
        lines = [f"Triton model repository {printable(self.repository)} for {self.model_id} ({self.input_dtype} input, "
                 f"model files {self.linked}):"]
        for name, info in self.variants.items():
            lines.append(f"  {name:<22} backend {info['backend']:<12} max batch {info['max_batch_size']}, "
                         f"{info['instances']}")
        lines.append("Serve it: photodedup serve --engine triton --model-repository " + printable(self.repository))
        return "\n".join(lines)


def triton_config(
    model_dir: Path | None = None,
    out: Path = Path("model_repository"),
    *,
    variants: tuple[str, ...] = tc.VARIANTS,
    options: tc.TritonSettings | None = None,
    input_kind: str | None = None,
    copy: bool = False,
    weights: str | None = None,
) -> TritonConfigSummary:
    """Generate (and validate) ``config.pbtxt`` for each variant and put the model files beside it."""
    options = (options or tc.TritonSettings()).check()
    if weights is not None:
        options = replace(options, weights=weights)
    if all(variant == tc.TORCH_MODEL for variant in variants):  # no export involved
        return _torch_only(out, options)
    model_dir = find_export(model_dir, _dtype_of(input_kind or "uint8"), weights=weights).resolve()
    metadata = read_metadata(model_dir)
    if input_kind and metadata.get("input_dtype") != _dtype_of(input_kind):
        raise BadInputError(f"--input {input_kind} was asked for, but {model_dir} takes {metadata.get('input_dtype')}",
                            hint=f"export that variant: photodedup export-onnx --input {_dtype_of(input_kind)}")
    summary = TritonConfigSummary(out, model_dir, metadata.get("model_id", "unknown"), metadata.get("input_dtype", "?"),
                                  "copied" if copy else "symlinked")
    for variant in variants:
        _write_variant(summary, variant, metadata, options, model_dir, copy)
    return summary


def _torch_only(out: Path, options: tc.TritonSettings) -> TritonConfigSummary:
    from photodedup.model import model_id_for

    metadata = {**tc.TORCH_IO, "model_id": model_id_for(options.weights, seed=options.seed)}
    summary = TritonConfigSummary(out, Path(), metadata["model_id"], "uint8", "none (built from --weights)")
    _write_variant(summary, tc.TORCH_MODEL, metadata, options, None, False)
    return summary


def _write_variant(summary: TritonConfigSummary, variant: str, metadata: dict, options: tc.TritonSettings,
                   model_dir: Path | None, copy: bool) -> None:
    config = tc.build_config(variant, metadata, options)
    folder = summary.repository / variant
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
    summary.variants[variant] = {"config": str(config_path), "backend": config.backend,
                                 "max_batch_size": config.max_batch_size, "instances": groups,
                                 "dynamic_batching": config.HasField("dynamic_batching")}
    log.info("wrote %s", config_path)


def mc_kind(kind: int) -> str:
    return tc.mc.ModelInstanceGroup.Kind.Name(kind).removeprefix("KIND_")


def _dtype_of(input_kind: str) -> str:
    kinds = {"uint8": "uint8", "fp32": "float32", "float32": "float32"}
    if input_kind not in kinds:
        raise BadInputError(f"--input must be uint8 or fp32, got {input_kind!r}")
    return kinds[input_kind]


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
