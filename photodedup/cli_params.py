"""Typer's coercion of option values, without pydantic where the answer is plain (issue 24).

Typer 0.29 coerces every parameter's value through a pydantic ``TypeAdapter`` (importing pydantic and
building the adapters: ~0.1 s of CPU a command). For the values this CLI's options take the answer is plain
(a ``str``, a decimal ``int`` or ``float``, a ``Path``, lists of those), so ``fast_coercion`` gives each
parameter a coercion that returns the same value without pydantic, and hands anything else, every value it is
not sure of and every error, to Typer's own coercion: help texts, values, error messages and exit codes stay
Typer's. ``tests/test_cli_params.py`` compares the two on every parameter of every command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # Typer's own pieces; a Typer without them keeps its own coercion (fast_coercion does nothing)
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_path
except ImportError:  # pragma: no cover - another Typer
    RuntimeParam = None

#: Values Python converts exactly as pydantic's lax mode does (others go to Typer's coercion).
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?")


def _plain(annotation: Any, value: Any, param, ctx) -> Any:
    """The coerced value, or ``_TYPER`` where Typer's coercion must decide."""
    kind = type(value)
    if annotation is str:
        return value if kind is str else _TYPER
    if annotation is bool:
        return value if kind is bool else _TYPER
    if annotation is int:
        if kind is int:
            return value
        return int(value) if kind is str and _INT.fullmatch(value) else _TYPER
    if annotation is float:
        if kind is float:
            return value
        return float(value) if kind is str and _FLOAT.fullmatch(value) else _TYPER
    if annotation is Path:
        if kind is str and value and "\0" not in value:
            value = Path(value)
        if not isinstance(value, Path):
            return _TYPER
        try:  # the same checks (exists, readable, ...) as Typer's; an error is Typer's to word
            return coerce_cli_path(value, param.type_descriptor.parameter_info, path_type=Path, param=param,
                                   ctx=ctx)
        except Exception:  # noqa: BLE001 - Typer's coercion runs again and raises its own error
            return _TYPER
    return _TYPER


_TYPER = object()

if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainParam(RuntimeParam):
        """``_plain`` first; Typer's coercion (pydantic) for the rest, built on first need."""

        item: Any  # the annotation of one value (a list's item type for a list)
        listed: bool

        def _coerce_value(self, value: Any, param, ctx) -> Any:
            if not self.listed:
                coerced = _plain(self.item, value, param, ctx)
            elif isinstance(value, (list, tuple)):
                coerced = [_plain(self.item, item, param, ctx) for item in value]
                if any(item is _TYPER for item in coerced):
                    coerced = _TYPER
            else:
                coerced = _TYPER
            if coerced is _TYPER:
                return build_runtime_param(param.type_descriptor)._coerce_value(value, param=param, ctx=ctx)
            return coerced


def fast_coercion(param) -> None:
    """Give a Typer parameter of a plain type (no parser, range or file) the coercion above."""
    if RuntimeParam is None or getattr(param, "_runtime_param", False) is not None:
        return
    descriptor = getattr(param, "type_descriptor", None)
    info = getattr(descriptor, "parameter_info", None)
    if info is None or descriptor.file_annotation is not None or info.parser is not None or info.clamp \
            or info.min is not None or info.max is not None:
        return
    annotation = descriptor.annotation
    listed = getattr(annotation, "__origin__", None) is list
    item = annotation.__args__[0] if listed else annotation
    if item in (str, bool, int, float, Path):
        param._runtime_param = PlainParam(parameter_info=info, annotation=annotation, item=item, listed=listed)
