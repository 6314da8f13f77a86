"""Paths and defaults. Precedence everywhere: command-line flag, then PHOTODEDUP_* env, then these."""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_MODEL_NAME = "ViT-B-32"
DEFAULT_WEIGHTS = "laion2b_s34b_b79k"
EMBEDDING_DIM = 512

#: Sizes are 1000-based everywhere (options, limits, messages), as file managers show them.
MB = 1000**2
GB = 1000**3

SERVICE_PORT = 8002
TRITON_HTTP_PORT = 8003
TRITON_GRPC_PORT = 8004
TRITON_METRICS_PORT = 8005
REVIEW_PORT = 8000

#: `photodedup apply` marks its trash folder with this file; `scan` never walks into such a folder.
TRASH_MARKER = ".photodedup-trash"
#: The trash folder's journal of moves (`photodedup.apply`); a folder holding one is a trash too.
TRASH_JOURNAL = "journal.jsonl"


def is_trash_folder(folder: str, names: set[str] | None = None) -> bool:
    """Whether ``folder`` is a photodedup trash: it holds the marker, or a journal of moves (an older
    version did not mark a folder the user made). ``names``: its entries, when already listed."""
    def has(name: str) -> bool:
        return name in names if names is not None else os.path.lexists(os.path.join(folder, name))

    if has(TRASH_MARKER):
        return True
    if not has(TRASH_JOURNAL):
        return False
    try:  # a journal's lines are JSON objects naming the op and the apply
        with open(os.path.join(folder, TRASH_JOURNAL), "rb") as handle:
            first = json.loads(handle.readline(1 << 16) or b"null")
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and "op" in first and "apply" in first


def home() -> Path:
    """The photodedup home: ``$PHOTODEDUP_HOME``, else ``$XDG_DATA_HOME/photodedup``, else
    ``~/.local/share/photodedup``."""
    if env := os.environ.get("PHOTODEDUP_HOME"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "photodedup"


def default_catalog() -> Path:
    """``$PHOTODEDUP_CATALOG``, else ``<home>/catalog.sqlite``."""
    if env := os.environ.get("PHOTODEDUP_CATALOG"):
        return Path(env).expanduser()
    return home() / "catalog.sqlite"


def models_dir() -> Path:
    """Where exports live by default: ``<home>/models``."""
    return home() / "models"
