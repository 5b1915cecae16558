"""edgekit's errors: one small hierarchy, each class carrying the CLI exit code it maps to.

Library code raises these; only the CLI turns them into a one-line message and an exit code.
The module lives in the runtime (TensorFlow-free) so every part of edgekit can import it.
"""

from __future__ import annotations

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a check ran and failed (validate's parity thresholds)
EXIT_BAD_INPUT = 2  # bad input or usage: missing/corrupt files, wrong options
EXIT_ENVIRONMENT = 3  # the machine cannot do it: no camera, missing package, disk full
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_TERMINATED = 143  # SIGTERM (128 + 15), where a command ends cleanly on it (collect)


class EdgekitError(Exception):
    """Base class. The message is one line that says what is wrong and what to do."""

    exit_code = EXIT_BAD_INPUT


class DataError(EdgekitError):
    """A data file is missing, malformed or not what MNIST should be."""


class ModelLoadError(EdgekitError):
    """A model file is missing, corrupt, unsafe or of an unknown format."""


class OptionsError(EdgekitError):
    """An option or combination of options is not valid."""


class ExportError(EdgekitError):
    """A converter failed or an artifact could not be written."""

    exit_code = EXIT_ENVIRONMENT


class ParityError(EdgekitError):
    """An exported model does not match the reference within the thresholds."""

    exit_code = EXIT_CHECK_FAILED


class CameraError(EdgekitError):
    """A camera could not be opened or stopped delivering frames."""

    exit_code = EXIT_ENVIRONMENT


class BackendMissingError(EdgekitError):
    """The inference backend for a model format is not installed."""

    exit_code = EXIT_ENVIRONMENT



def first_line(e: BaseException | str, limit: int | None = None) -> str:
    """The first line of an error's message, for a one-line report (the type's name when the message is empty).

    At most ``limit`` characters when given: a converter's message can be a page long on its first line too.
    """
    text = str(e).strip()
    if not text:
        text = type(e).__name__ if isinstance(e, BaseException) else ""
    return text.splitlines()[0].strip()[:limit] if text else ""
