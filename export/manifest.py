"""``manifest.json``: what an export folder holds, written atomically, and read back (by export to merge, by
validate to find what to measure: the one module that knows the format).

Layout (the contract with validate and the runtime)::

    {"edgekit_version", "source": {"path", "sha256"},
     "artifacts": [{"file", "format", "quantization", "bytes", "sha256",
                    "inputs": [{"name", "shape", "dtype", "quantization": {"scale", "zero_point"} | null}],
                    "outputs": [...], "export_seconds", "rewrites": ["bn_fold"] | [],
                    "selective": {"float_layers", "drop_int8", "drop", ...} | null}]}

Merging: exporting into a folder that already has a manifest FROM THE SAME SOURCE (same sha256) keeps the
entries of artifacts this run did not produce (so ``--format tflite`` then ``--format onnx`` gives one
manifest of both) as long as their files still exist with the recorded hash. Entries from a different source
model are dropped from the manifest (their files are left alone, never deleted).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekit.export.formats import Quantization
from edgekit.runtime.errors import ModelLoadError
from edgekit.runtime.files import sha256_file, write_json

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    """One exported model file, as the manifest lists it."""

    file: str
    format: str
    quantization: str
    bytes: int
    sha256: str
    inputs: list[dict]
    outputs: list[dict]
    export_seconds: float
    rewrites: list[str] = field(default_factory=list)  # graph rewrites applied before conversion (export/fold.py)
    selective: dict | None = None  # --max-drop: the layers kept float, the drop, size and speed (export/selective.py)


@dataclass
class Manifest:
    edgekit_version: str
    source: dict
    artifacts: list[Artifact] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"edgekit_version": self.edgekit_version, "source": dict(self.source),
                "artifacts": [asdict(a) for a in self.artifacts]}

    def artifact(self, file: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.file == file), None)

    @classmethod
    def from_dict(cls, d: dict) -> "Manifest":
        return cls(d["edgekit_version"], dict(d["source"]), [Artifact(**a) for a in d.get("artifacts", [])])


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest in ``folder``, or None if there is none or it cannot be understood."""
    path = Path(folder) / MANIFEST_NAME
    try:
        return Manifest.from_dict(json.loads(path.read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def merge(new: Manifest, old: Manifest | None, folder: Path) -> Manifest:
    """``new`` plus the still-valid entries of ``old`` from the same source (see the module docstring)."""
    if old is None or old.source.get("sha256") != new.source.get("sha256"):
        return new
    produced = {a.file for a in new.artifacts}
    kept = []
    for a in old.artifacts:
        path = Path(folder) / a.file
        if a.file in produced or not path.is_file():
            continue
        if path.stat().st_size == a.bytes and sha256_file(path) == a.sha256:
            kept.append(a)
    order = {a.file: i for i, a in enumerate(new.artifacts + kept)}
    return Manifest(new.edgekit_version, new.source, sorted(new.artifacts + kept, key=lambda a: order[a.file]))


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    path = Path(folder) / MANIFEST_NAME
    write_json(path, manifest.to_dict())
    return path


# --- reading an export folder to validate it --------------------------------------------------------

@dataclass(frozen=True)
class ListedArtifact:
    """An artifact as the export folder lists it, found on disk: what validating it needs."""

    file: str
    format: str
    quantization: str
    bytes: int
    sha256: str | None


def read_export_folder(export_dir: str | os.PathLike) -> tuple[dict, list[ListedArtifact]]:
    """An export folder's manifest as a dict and its artifacts, each checked to be listed sensibly and present;
    ModelLoadError (exit 2) when the folder cannot be validated. Only file, format and quantization are required of
    an entry (a manifest edited by hand or from an older edgekit still validates); ``read_manifest`` is the
    lenient reader export merges with."""
    folder = Path(export_dir)
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: no such folder; pass the folder `edgekit export --out` wrote")
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ModelLoadError(f"{path}: not found; {folder} is not an edgekit export folder (run `edgekit export` first)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path}: not valid JSON ({e}); re-run `edgekit export`") from None
    artifacts = manifest.get("artifacts") if isinstance(manifest, dict) else None
    if not isinstance(artifacts, list) or not artifacts:
        raise ModelLoadError(f"{path}: lists no artifacts; re-run `edgekit export`")
    known = [q.value for q in Quantization]
    entries = []
    for i, item in enumerate(artifacts):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("file", "format", "quantization")):
            raise ModelLoadError(f"{path}: artifact #{i + 1} lacks file, format or quantization; re-run `edgekit export`")
        if Path(item["file"]).name != item["file"]:
            raise ModelLoadError(f"{path}: artifact file {item['file']!r} is not a plain file name inside the folder")
        if item["quantization"] not in known:
            raise ModelLoadError(f"{path}: {item['file']} has quantization {item['quantization']!r}; known: {', '.join(known)}")
        file = folder / item["file"]
        if not file.is_file():
            raise ModelLoadError(f"{file}: listed in {MANIFEST_NAME} but missing; re-run `edgekit export`")
        entries.append(ListedArtifact(item["file"], item["format"], item["quantization"], file.stat().st_size, item.get("sha256")))
    return manifest, entries


def source_model_path(export_dir: str | os.PathLike, manifest: dict) -> Path:
    """The .keras the manifest says the artifacts came from (absolute, or relative to the folder or cwd)."""
    source = manifest.get("source") if isinstance(manifest, dict) else None
    named = source.get("path") if isinstance(source, dict) else None
    if not isinstance(named, str) or not named:
        raise ModelLoadError(f"{Path(export_dir) / MANIFEST_NAME}: names no source model; pass --reference RUN/model.keras")
    path = Path(named).expanduser()
    if not path.is_absolute() and not path.exists() and (Path(export_dir) / path).exists():
        path = Path(export_dir) / path
    return path
