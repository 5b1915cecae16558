"""Facts about files that every layer needs, and the one way edgekit writes a file (the runtime's, so export/ and
toolkit/ reach it without a cycle)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from edgekit.runtime.errors import DataError, first_line


def sha256_file(path: str | os.PathLike, digest: "hashlib._Hash | None" = None) -> str:
    """The file's sha256 as hex, read in 1 MiB blocks; with ``digest``, the file is fed into it (several files
    hashed as one) and its hex digest so far is returned."""
    import hashlib  # here, not at the top: hashlib loads OpenSSL, ~4 MB in every command that imports this module

    h = digest or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; it replaces ``path`` in one rename when the block ends.

    If the block fails (disk full, Ctrl-C) the temporary file is removed and ``path`` is as it was: never
    half-written. The name is hidden (``.``), unique to this process and call, and keeps ``path``'s suffix, so
    a writer that goes by the suffix (Keras' ``.keras``, matplotlib) still does. An OSError naming no file or
    the temporary one names ``path`` instead, so the one-line error says the file the user asked for.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{os.urandom(3).hex()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):  # on a read-only disk even removing a missing file fails (EROFS)
            tmp.unlink()
        if isinstance(e, OSError) and (not e.filename or str(e.filename) == str(tmp)):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None  # the user's name, not ours
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (str as UTF-8) to ``path`` through ``atomic_path``, flushed to disk before the rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
    return path


def write_json(path: str | os.PathLike, obj: Any, allow_nan: bool = True) -> Path:
    """``obj`` as indented JSON and a newline, written atomically."""
    return write_atomic(path, json.dumps(obj, indent=2, allow_nan=allow_nan) + "\n")


def read_npz(path: str | os.PathLike, keys: Sequence[str], holds: str, hint: str) -> dict:
    """The arrays ``keys`` of an ``.npz``, read without pickles; anything else is one DataError line naming the
    file and what is wrong (``holds``: what such a file has, said when keys are missing; ``hint``: what to pass
    instead, said when it is not an .npz at all)."""
    import zipfile

    import numpy as np

    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({first_line(e)})") from None
    if not magic.startswith(b"PK"):  # np.load would take anything else for a .npy array or pickled data
        what = "an empty file" if not magic else "a single .npy array" if magic == b"\x93NUMPY" else "not a zip archive"
        raise DataError(f"{path}: not a readable .npz ({what}); {hint}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing key(s) {', '.join(missing)}; {holds}")
            return {k: npz[k] for k in keys}
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: not a readable .npz ({first_line(e)}); {hint}") from None
