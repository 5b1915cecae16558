"""The `edgekit` command line: one Typer app (``cli_app``), one module per area's commands, and this entry point.

Importing a command module registers its verbs on the app; the order below is the order `edgekit --help` lists
them in. Each command module imports only typer and edgekit's light modules at the top, so `edgekit --help` and the
runtime commands never import TensorFlow.
"""

from __future__ import annotations

import sys

from edgekit.toolkit import cli_train, cli_export, cli_validate, cli_runtime, cli_collect, cli_benchmark  # noqa: F401
from edgekit.toolkit.cli_app import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app(prog_name="edgekit")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
