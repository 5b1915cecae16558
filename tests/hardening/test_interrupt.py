"""Ctrl-C (a real SIGINT) during an epoch of a real ``edgekit train`` process, then ``--resume``: exit 130 with one
line, the completed epoch kept, nothing half-written, and the resumed run complete with every file and all its
epochs. And a damaged checkpoint is refused on ``--resume`` with one line, exit 2."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from edgekit.runtime.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED

from .conftest import cli, error_line, leftovers, subprocess_env

RUN_FILES = {"model.keras", "metrics.json", "history.json", "curves.png", "confusion.png"}


@pytest.fixture(scope="module")
def interrupted(small_npz, tmp_path_factory, terminal_sigint):
    """A real `edgekit train` process, sent SIGINT as soon as epoch 1's checkpoint exists: (run folder, process)."""
    run = tmp_path_factory.mktemp("interrupt") / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from edgekit.toolkit.cli import main; main()", "train", "--data", str(small_npz),
         "--out", str(run), "--limit", "1280", "--epochs", "3", "--val-split", "500", "--batch-size", "64"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
        preexec_fn=terminal_sigint,
    )
    deadline = time.monotonic() + 240
    while not (run / "checkpoint.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "epoch 1 never finished"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # during epoch 2
    out, err = proc.communicate(timeout=120)
    return run, proc.returncode, out, err


def test_sigint_during_an_epoch_exits_130_with_one_line(interrupted):
    run, code, out, err = interrupted
    result = subprocess.CompletedProcess([], code, out, err)
    line = error_line(result, EXIT_INTERRUPTED)
    assert line == (f"edgekit: error: interrupted during epoch 2 of 3; epoch 1 is saved in {run}; "
                    f"continue with: edgekit train --resume --out {run}")
    state = json.loads((run / "checkpoint.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]["loss"]) == 1
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.json", "checkpoint.keras"]  # nothing else, no *.tmp


def test_a_damaged_checkpoint_is_refused_on_resume(interrupted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(interrupted[0], run)
    ckpt = run / "checkpoint.keras"
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    line = error_line(cli("train", "--resume", "--out", run), EXIT_BAD_INPUT)
    assert str(ckpt) in line
    (run / "checkpoint.json").write_text("{not json")
    line = error_line(cli("train", "--resume", "--out", run), EXIT_BAD_INPUT)
    assert "checkpoint.json: unreadable checkpoint state" in line


def test_resume_completes_the_run(interrupted):
    run = interrupted[0]
    result = cli("train", "--resume", "--out", run)  # in this process: TensorFlow is loaded already
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "resuming" in result.stderr and "from epoch 1 of 3" in result.stderr
    names = {p.name for p in run.iterdir()}
    assert RUN_FILES <= names and not leftovers(run)
    history = json.loads((run / "history.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(history["loss"]) == 3 and len(history["val_accuracy"]) == 3
    assert metrics["epochs"] == 3 and metrics["train_images"] == 1280
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    # Resuming again is refused: the run is complete.
    line = error_line(cli("train", "--resume", "--out", run), EXIT_BAD_INPUT)
    assert "nothing to resume" in line
