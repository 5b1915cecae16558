"""Unknown format/quantization/recipe names, an unwritable output folder and a full disk, for the commands that
write (export, train, validate's reports): one line, the documented exit code, nothing half-written.

We run as root here, so ``chmod`` would not stop a write. An unwritable folder is therefore (a) a path under a
regular FILE (``afile/sub``: ENOTDIR, works for any user) and (b) a read-only tmpfs (EROFS). A full disk is a
tiny tmpfs (``mount -t tmpfs -o size=...``: ENOSPC). Both tmpfs cases need root and are skipped without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from edgekit.runtime.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, OptionsError

from .conftest import cli, error_line, leftovers, listing


@contextlib.contextmanager
def tmpfs(path: Path, size: str, fill_from: Path | None = None, read_only: bool = False):
    """A tmpfs of ``size`` at ``path`` (optionally holding a copy of ``fill_from``, optionally read-only)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs ({mounted.stderr.strip()}); needs root")
    try:
        (path / "keep.txt").write_text("the user's own file\n")
        if fill_from is not None:
            shutil.copytree(fill_from, path / fill_from.name)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- unknown names ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["--format", "tflte"], "unknown format 'tflte'; did you mean 'tflite'?"),
    (["--format", "onxx"], "unknown format 'onxx'; did you mean 'onnx'?"),
    (["--format", "coreml"], "unknown format 'coreml'; valid: tflite, onnx, all"),
    (["--quantize", "int9"], "unknown quantization 'int9'; did you mean 'int8'?"),
    (["--quantize", "flaot16"], "did you mean 'float16'?"),
    (["--quantize", "dynamc"], "did you mean 'dynamic'?"),
    (["--format", "onnx", "--quantize", "float16"], "unsupported combination onnx/float16"),
    (["--format", "tflite,onnx", "--quantize", "dynamic"], "unsupported combination onnx/dynamic"),
])
def test_export_unknown_names(small_model_path, tmp_path, args, expected):
    out = tmp_path / "out"
    line = error_line(cli("export", "--model", small_model_path, "--out", out, *args), EXIT_BAD_INPUT)
    assert expected in line
    assert not out.exists()


def test_python_api_unknown_names(small_model_path, tmp_path):
    from edgekit.export import export_model
    from edgekit.toolkit.train import TrainOptions

    with pytest.raises(OptionsError, match="did you mean 'tflite'"):
        export_model(small_model_path, tmp_path / "out", formats="tflitee")
    with pytest.raises(OptionsError, match="did you mean 'int8'"):
        export_model(small_model_path, tmp_path / "out", quantizations=["int4"])
    with pytest.raises(OptionsError, match="did you mean 'default'"):
        TrainOptions.preset("defualt")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, expected", [
    (["train", "--recipe", "defualt"], "'defualt' is not one of 'seed', 'default', 'full'"),
    (["train", "--optimizer", "adma"], "'adma' is not one of 'rmsprop', 'adam', 'adamw'"),
    (["train", "--epochs", "two"], "Invalid value for '--epochs'"),
    (["export", "--formt", "onnx"], "No such option: --formt"),
    (["exprot"], "No such command 'exprot'"),
    (["validate", "a", "b"], "unexpected extra argument"),
    (["webcam", "--model", "m.tflite", "--serve", "localhost:http"], "--serve 'localhost:http'"),
    (["webcam", "--model", "m.tflite", "--roi", "1,2"], "--roi must be four integers"),
    (["webcam", "--model", "m.tflite", "--headless", "--max-frames", "0"], "--max-frames must be at least 1"),
])
def test_usage_errors_are_one_line(tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    line = error_line(cli(*args), EXIT_BAD_INPUT)
    assert expected in line
    assert listing(tmp_path) == []


# --- an unwritable output folder: a path under a regular file ---------------------------------------

@pytest.fixture
def afile(tmp_path) -> Path:
    f = tmp_path / "afile"
    f.write_text("a regular file, not a folder\n")
    return f


def test_export_out_under_a_file(small_model_path, afile):
    line = error_line(cli("export", "--model", small_model_path, "--quantize", "none", "--out", afile / "sub"), EXIT_ENVIRONMENT)
    assert str(afile / "sub") in line and "Not a directory" in line
    assert afile.read_text() == "a regular file, not a folder\n" and listing(afile.parent) == ["afile"]


def test_export_out_is_a_file(small_model_path, afile):
    line = error_line(cli("export", "--model", small_model_path, "--quantize", "none", "--out", afile), EXIT_ENVIRONMENT)
    assert "exists and is not a folder" in line
    assert afile.read_text() == "a regular file, not a folder\n" and listing(afile.parent) == ["afile"]


def test_train_out_under_a_file(small_npz, afile):
    line = error_line(cli("train", "--data", small_npz, "--out", afile / "run", "--limit", 64, "--val-split", 100),
                      EXIT_ENVIRONMENT)
    assert str(afile / "run") in line and "Not a directory" in line
    assert listing(afile.parent) == ["afile"]


@pytest.mark.parametrize("option", ["--json", "--html"])
def test_validate_report_under_a_file(option, exported, small_model_path, small_npz, afile):
    before = listing(exported)
    line = error_line(cli("validate", exported, "--reference", small_model_path, "--data", small_npz, option,
                          afile / "sub" / "report"), EXIT_BAD_INPUT)
    assert "does not exist" in line
    assert listing(afile.parent) == ["afile"] and listing(exported) == before


# --- an unwritable output folder: a read-only tmpfs -------------------------------------------------

def test_read_only_disk(small_model_path, small_npz, exported, tmp_path):
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        before = listing(ro)
        line = error_line(cli("export", "--model", small_model_path, "--quantize", "none", "--out", ro / "out"), EXIT_ENVIRONMENT)
        assert "Read-only file system" in line and str(ro / "out") in line
        line = error_line(cli("train", "--data", small_npz, "--out", ro / "run", "--limit", 64, "--val-split", 100),
                          EXIT_ENVIRONMENT)
        assert "Read-only file system" in line and str(ro / "run") in line
        line = error_line(cli("validate", exported, "--reference", small_model_path, "--data", small_npz, "--limit", 20,
                              "--latency-runs", 1, "--json", ro / "report.json"), EXIT_ENVIRONMENT)
        assert "Read-only file system" in line and "report.json" in line
        assert listing(ro) == before


# --- a full disk: a tiny tmpfs ----------------------------------------------------------------------

def test_export_to_a_full_disk_leaves_the_folder_as_it_was(small_model_path, exported, tmp_path):
    """An earlier export fills the disk but for 512 KB; exporting again into its folder fails mid-way and must
    leave every earlier file byte for byte as it was, with no staging folder or temporary file."""
    size = sum(p.stat().st_size for p in exported.iterdir()) + 512 * 1024
    with tmpfs(tmp_path / "disk", str(size), fill_from=exported) as disk:
        before = digests(disk)
        line = error_line(cli("export", "--model", small_model_path, "--format", "tflite", "--quantize", "none",
                              "--out", disk / exported.name), EXIT_ENVIRONMENT)
        assert f"no space left on the disk of {disk / exported.name}; free some disk space" in line
        assert digests(disk) == before and not leftovers(disk)


def test_export_to_an_empty_full_disk_leaves_nothing(small_model_path, tmp_path):
    with tmpfs(tmp_path / "disk", "64k") as disk:
        before = listing(disk)
        line = error_line(cli("export", "--model", small_model_path, "--quantize", "none", "--out", disk / "out"),
                          EXIT_ENVIRONMENT)
        assert f"no space left on the disk of {disk / 'out'}; free some disk space" in line
        assert listing(disk) == before


def test_train_to_a_full_disk_leaves_no_half_written_file(small_npz, tmp_path):
    with tmpfs(tmp_path / "disk", "64k") as disk:
        run = disk / "run"
        line = error_line(cli("train", "--data", small_npz, "--out", run, "--limit", 256, "--val-split", 100,
                              "--batch-size", 64, "--epochs", 1), EXIT_ENVIRONMENT)
        assert line == f"edgekit: error: {run / 'checkpoint.keras'}: No space left on device; free some disk space or write to another disk"
        assert listing(disk) in (["keep.txt"], ["keep.txt", "run"])  # at most the empty run folder
        assert not leftovers(disk)
