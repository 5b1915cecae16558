"""Facts about files that every layer needs (the runtime's, so export/ and toolkit/ reach it without a cycle)."""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike, digest: "hashlib._Hash | None" = None) -> str:
    """The file's sha256 as hex, read in 1 MiB blocks; with ``digest``, the file is fed into it (several files
    hashed as one) and its hex digest so far is returned."""
    h = digest or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
