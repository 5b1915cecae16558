"""``manifest.json``: what an export folder holds, written atomically.

Layout (the contract with validate and the runtime)::

    {"edgekit_version", "source": {"path", "sha256"},
     "artifacts": [{"file", "format", "quantization", "bytes", "sha256",
                    "inputs": [{"name", "shape", "dtype", "quantization": {"scale", "zero_point"} | null}],
                    "outputs": [...], "export_seconds", "rewrites": ["bn_fold"] | []}]}

Merging: exporting into a folder that already has a manifest FROM THE SAME SOURCE (same sha256) keeps the
entries of artifacts this run did not produce (so ``--format tflite`` then ``--format onnx`` gives one
manifest of both) as long as their files still exist with the recorded hash. Entries from a different source
model are dropped from the manifest (their files are left alone, never deleted).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
