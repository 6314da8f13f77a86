"""Typed errors. ``str(error)`` is the sentence the user reads.

Each class carries what the two front ends need: ``exit_code`` (``cli.py``'s one handler exits with
it; 2 stays Click's, for usage errors) and ``http_status`` with a short ``code`` (the service and the
review page answer with them). The library raises these and never prints or exits.
"""

from __future__ import annotations


class PhotodedupError(Exception):
    """Base class: a failure the user can understand and act on."""

    exit_code = 1
    http_status = 500
    code = "failed"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class BadInputError(PhotodedupError):
    """The user's input (paths, files, options, a request) cannot be used."""

    exit_code = 3
    http_status = 400
    code = "bad_input"


class NotFoundError(BadInputError):
    """What a request names does not exist (a group, a file id)."""

    http_status = 404
    code = "not_found"


class CatalogError(PhotodedupError):
    """The catalog is missing, locked, corrupt or from a newer photodedup."""

    exit_code = 4
    http_status = 500
    code = "catalog_error"


class BackendUnavailableError(PhotodedupError):
    """A backend cannot run here: a server is down, a provider or package is missing."""

    exit_code = 5
    http_status = 503
    code = "unavailable"


class ModelMismatchError(PhotodedupError):
    """A served or exported model is not the one the client expects (name, dtype, shape, batch)."""

    exit_code = 6
    http_status = 500
    code = "model_mismatch"


class ModelNotFoundError(PhotodedupError):
    """Weights or an export cannot be found (offline with nothing cached, no export yet)."""

    exit_code = 7
    http_status = 500
    code = "model_not_found"


class ExportError(PhotodedupError):
    """An ONNX export failed or did not verify against PyTorch."""

    exit_code = 8
    http_status = 500
    code = "export_failed"


class InferenceError(PhotodedupError):
    """A backend accepted the batch but inference failed."""

    exit_code = 9
    http_status = 500
    code = "inference_failed"


class SafetyError(PhotodedupError):
    """An action was refused because it could lose a file (apply, undo)."""

    exit_code = 10
    http_status = 409
    code = "refused"


class Interrupted(PhotodedupError):
    """Ctrl-C stopped a stage; the message says what was saved and that a rerun continues."""

    exit_code = 130


def ignore_interrupts() -> None:
    """Initializer for worker processes: Ctrl-C is the parent's to handle (it saves, then raises Interrupted)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
