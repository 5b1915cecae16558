"""`edgekit train` command(s); registered on the app by edgekit.toolkit.cli."""

from __future__ import annotations

from edgekit.toolkit.cli import command  # noqa: F401
