"""The `edgekit` Typer app and the ``command`` decorator every command module registers its verbs with.

``command`` turns edgekit's errors into one line on stderr and the documented exit code. This module imports
no command module (``edgekit.toolkit.cli`` does, and is the entry point), and nothing here imports TensorFlow:
commands import what they need when they run.
"""

from __future__ import annotations

import errno
import functools
import os
from typing import Callable

import typer
from typer.core import TyperGroup

from edgekit.runtime.errors import EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EdgekitError, first_line

EXIT_INTERNAL = 4  # a bug in edgekit: one line, EDGEKIT_DEBUG=1 shows the traceback

# click's UsageError as Typer uses it (Typer >= 0.20 vendors click, so not `import click`).
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _UsageLine(_UsageError):
    """A usage error (unknown option, bad choice, missing argument) shown as one line, like every other error."""

    def show(self, file=None) -> None:
        path = self.ctx.command_path if self.ctx is not None else "edgekit"
        typer.echo(f"edgekit: error: {self.format_message()} (see `{path} --help`)", err=True)


def _one_line(e: Exception) -> Exception:
    # `edgekit` alone shows the help (no_args_is_help): keep that one as it is.
    return e if type(e).__name__ == "NoArgsIsHelpError" else _UsageLine(e.format_message(), e.ctx)


class _Group(TyperGroup):
    """The app's group: click's multi-line usage errors become ``edgekit: error: <one line>``, exit 2."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except _UsageError as e:
            raise _one_line(e) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _UsageError as e:
            raise _one_line(e) from None


app = typer.Typer(
    cls=_Group,
    name="edgekit",
    help="Train the MNIST CNN, export it to TFLite and ONNX, prove parity, and run it on a camera.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"edgekit {version('edgekit')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print edgekit's version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """Train the MNIST CNN, export it to TFLite and ONNX, prove parity, and run it on a camera."""


# What to do about the OS errors a user can fix.
_OS_HINTS = {
    errno.ENOSPC: "; free some disk space or write to another disk",
    errno.EFBIG: "; the file is too large for this disk or your file-size limit (ulimit -f): write elsewhere",
    errno.EROFS: "; the disk is read-only: write somewhere else",
    errno.EACCES: "; you may not write there: pick another folder",
    errno.ENOTDIR: "; part of that path is a file, not a folder",
}


def fail(message: str, code: int) -> typer.Exit:
    """Print ``edgekit: error: message`` on stderr and return the Exit to raise."""
    typer.echo(f"edgekit: error: {message}", err=True)
    return typer.Exit(code)


def command(*args, **kwargs) -> Callable:
    """``@app.command`` that maps edgekit's errors (and Ctrl-C, OS errors) to one line and an exit code."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            try:
                return fn(*a, **kw)
            except (typer.Exit, typer.Abort):
                raise
            except EdgekitError as e:
                raise fail(str(e), e.exit_code) from None
            except KeyboardInterrupt:
                raise fail("interrupted", EXIT_INTERRUPTED) from None
            except MemoryError:
                raise fail("out of memory; try a smaller --batch-size or --limit", EXIT_ENVIRONMENT) from None
            except OSError as e:
                where = f"{e.filename}: " if getattr(e, "filename", None) else ""
                raise fail(f"{where}{e.strerror or e}{_OS_HINTS.get(e.errno, '')}", EXIT_ENVIRONMENT) from None
            except Exception as e:
                if os.environ.get("EDGEKIT_DEBUG"):
                    raise
                raise fail(
                    f"internal error: {type(e).__name__}: {first_line(e)} (rerun with EDGEKIT_DEBUG=1 for the traceback)",
                    EXIT_INTERNAL,
                ) from None

        return app.command(*args, **kwargs)(wrapper)

    return decorate
