"""``photodedup triton-config``: write a Triton model repository from an ONNX export.

This command chooses the export (``--model-dir``, ``--weights``, ``--input``) and says what it wrote;
``photodedup.triton.repository`` writes it: each variant's ``<out>/<variant>/config.pbtxt`` (committed) and
version folder ``1/`` (the export's files, symlinked or copied; git-ignored). The torch variant gets only its
``1/model.py`` (it builds the model from ``--weights``; no export needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from photodedup.errors import BadInputError
from photodedup.exports import find_export, read_metadata
from photodedup.text import printable
from photodedup.triton import config as tc
from photodedup.triton.repository import write_repository, write_variant


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
    summary.variants = write_repository(model_dir, out, variants=variants, options=options, copy=copy)
    return summary


def _torch_only(out: Path, options: tc.TritonSettings) -> TritonConfigSummary:
    from photodedup.model import model_id_for

    metadata = {**tc.TORCH_IO, "model_id": model_id_for(options.weights, seed=options.seed)}
    summary = TritonConfigSummary(out, Path(), metadata["model_id"], "uint8", "none (built from --weights)")
    summary.variants[tc.TORCH_MODEL] = write_variant(out, tc.TORCH_MODEL, metadata, options, None)
    return summary


def _dtype_of(input_kind: str) -> str:
    kinds = {"uint8": "uint8", "fp32": "float32", "float32": "float32"}
    if input_kind not in kinds:
        raise BadInputError(f"--input must be uint8 or fp32, got {input_kind!r}")
    return kinds[input_kind]
