"""The Pi check's comparison and its pytest plugin, without qemu: they must catch a mismatch, not just pass.

One file of ~400 lines because it tests one script (scripts/pi_check_helper.py), a job after another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HELPER = REPO / "scripts" / "pi_check_helper.py"


def _write(tmp: Path, name: str, rows: list[dict]) -> Path:
    p = tmp / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _compare(tmp: Path, model: str, native: list[dict], pi: list[dict]):
    images = tmp / "images.txt"
    images.write_text("a.png\t7\nb.png\t2\n")
    (tmp / "n.err").write_text("")
    (tmp / "p.err").write_text("")
    (tmp / "t").write_text("0.5\t9.0\n")
    args = [sys.executable, str(HELPER), "compare", model, str(_write(tmp, "n.jsonl", native)),
            str(_write(tmp, "p.jsonl", pi)), str(images), str(tmp / "n.err"), str(tmp / "p.err"), str(tmp / "t"),
            str(tmp / "out.json")]
    proc = subprocess.run(args, capture_output=True, text=True)
    return proc, json.loads((tmp / "out.json").read_text())


def _row(path, digit, conf, box=(1, 2, 20, 20)):
    return {"path": f"/x/{path}", "digit": digit, "confidence": conf, "box": list(box)}


def test_identical_predictions_pass(tmp_path):
    rows = [_row("a.png", 7, 0.99), _row("b.png", 2, 0.95)]
    proc, out = _compare(tmp_path, "model_float32.tflite", rows, [dict(r) for r in rows])
    assert proc.returncode == 0, proc.stdout
    assert out["ok"] and out["digits_equal"] == 2 and out["correct_vs_label_aarch64"] == 2


def test_a_different_digit_fails(tmp_path):
    native = [_row("a.png", 7, 0.99), _row("b.png", 2, 0.95)]
    pi = [_row("a.png", 7, 0.99), _row("b.png", 3, 0.95)]
    proc, out = _compare(tmp_path, "model_float32.onnx", native, pi)
    assert proc.returncode == 1 and not out["ok"]
    assert "b.png: digit 2 on x86-64, 3 on aarch64" in proc.stdout


@pytest.mark.parametrize(("model", "delta", "ok"), [
    ("model_float32.tflite", 0.03, True), ("model_float32.tflite", 0.06, False),
    ("model_int8.tflite", 0.049, True), ("model_int8.onnx", 0.1, False),
])
def test_confidence_tolerance(tmp_path, model, delta, ok):
    native = [_row("a.png", 7, 0.5), _row("b.png", 2, 0.9)]
    pi = [_row("a.png", 7, 0.5 + delta), _row("b.png", 2, 0.9)]
    proc, out = _compare(tmp_path, model, native, pi)
    assert out["ok"] is ok and (proc.returncode == 0) is ok


def test_missing_predictions_fail(tmp_path):
    native = [_row("a.png", 7, 0.99), _row("b.png", 2, 0.95)]
    proc, out = _compare(tmp_path, "model_int8.onnx", native, native[:1])
    assert proc.returncode == 1
    assert any("aarch64: 1 of 2 images predicted" in p for p in out["problems"])


def test_plugin_skips_workstation_imports_but_not_from_device_code(tmp_path):
    """A missing workstation module needed by a test or by the exporter is a skip; needed by edgekit.runtime, a failure."""
    tests = tmp_path / "tests"
    tests.mkdir()
    for part, module in (("runtime", "tensorflow_pi_check_missing"), ("export", "tensorflow_pi_check_missing")):
        folder = tmp_path / "lib" / "edgekit" / part
        folder.mkdir(parents=True)
        (folder / "fake.py").write_text(f"def load():\n    import {module}  # noqa\n")
    (tests / "test_x.py").write_text(
        "import importlib.util, pathlib\n"
        "def _load(part):\n"
        "    p = pathlib.Path(__file__).parent.parent / 'lib' / 'edgekit' / part / 'fake.py'\n"
        "    spec = importlib.util.spec_from_file_location('fake_' + part, p)\n"
        "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m\n"
        "def test_needs_keras():\n    import keras_pi_check_missing  # noqa\n"
        "def test_exporter_needs_tf():\n    _load('export').load()\n"
        "def test_runtime_bug():\n    _load('runtime').load()\n"
        "def test_plain():\n    assert 1 + 1 == 2\n"
    )
    plugin = (REPO / "scripts" / "pi_pytest_plugin.py").read_text()
    # the same plugin, with made-up module names so this host's real TensorFlow cannot satisfy the imports
    plugin = plugin.replace("WORKSTATION_ONLY = {", 'WORKSTATION_ONLY = {"keras_pi_check_missing", "tensorflow_pi_check_missing", ')
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "pi_plugin_under_test.py").write_text(plugin)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "pi_plugin_under_test", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "plugins"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert "1 failed, 1 passed, 2 skipped" in proc.stdout, proc.stdout
    assert "FAILED tests/test_x.py::test_runtime_bug" in proc.stdout
    assert "needs keras_pi_check_missing (workstation only" in proc.stdout


# --- the emulated test stage's verdict: tests must run, and all pass -----------------------------------------
SAMPLE_TESTS = (
    "import pytest\n"
    "def test_device_a():\n    assert 1 + 1 == 2\n"
    "def test_device_b():\n    assert 'pi'.upper() == 'PI'\n"
    "def test_needs_tf():\n    pytest.skip('needs tensorflow (workstation only, not on the device)')\n"
    "def test_broken():\n    assert 1 == 2\n"
)


def _pytest_then_verdict(tmp: Path, *select: str):
    """Run pytest on SAMPLE_TESTS with a selection, then the helper's verdict on its JUnit XML."""
    (tmp / "test_sample.py").write_text(SAMPLE_TESTS)
    junit = tmp / "pytest.xml"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_sample.py",
                          "--junitxml", str(junit), *select], cwd=tmp, capture_output=True, text=True)
    return _verdict(tmp, junit, run.returncode)


def _verdict(tmp: Path, junit: Path, rc: int):
    out = tmp / "tests.json"
    proc = subprocess.run([sys.executable, str(HELPER), "test-verdict", str(junit), str(rc), str(out)],
                          capture_output=True, text=True)
    return proc, json.loads(out.read_text())


def test_verdict_passes_when_tests_ran_and_all_passed(tmp_path):
    proc, out = _pytest_then_verdict(tmp_path, "-k", "device")
    assert proc.returncode == 0, proc.stdout
    assert out["ok"] and out["counts"]["passed"] == 2 and out["counts"]["skipped"] == 0
    assert proc.stdout.startswith("2 passed, none skipped: test_device_a, test_device_b")


def test_verdict_fails_when_no_test_ran(tmp_path):
    """Everything deselected: pytest exits 5 and says nothing failed; the stage proved nothing, so it fails."""
    proc, out = _pytest_then_verdict(tmp_path, "-k", "no_such_test")
    assert proc.returncode == 1 and not out["ok"]
    assert out["pytest_exit"] == 5 and "no test ran" in proc.stdout


def test_verdict_fails_when_a_test_skipped(tmp_path):
    """pytest exits 0 with a skip; the stage does not: a skipped device-side test did not run on the device."""
    proc, out = _pytest_then_verdict(tmp_path, "-k", "device or needs_tf")
    assert out["pytest_exit"] == 0
    assert proc.returncode == 1 and not out["ok"]
    assert out["counts"] == {"passed": 2, "failed": 0, "error": 0, "skipped": 1}
    assert "test_needs_tf skipped: needs tensorflow" in proc.stdout


def test_verdict_fails_on_a_failure_and_on_no_results(tmp_path):
    proc, out = _pytest_then_verdict(tmp_path, "-k", "device or broken")
    assert proc.returncode == 1 and out["counts"]["failed"] == 1 and "test_broken failed" in proc.stdout
    # a crash or a timeout (exit 124) leaves no JUnit XML: that is a failure too, never "0 failed"
    proc, out = _verdict(tmp_path, tmp_path / "never-written.xml", 124)
    assert proc.returncode == 1 and not out["ok"] and "pytest exit 124 and no results" in proc.stdout


# --- the device gets its models from x86-64, and needs no Keras for them --------------------------------------
BLOCK_WORKSTATION = (
    "import sys\n"
    "for name in ('tensorflow', 'keras', 'tf2onnx'):\n"
    "    sys.modules[name] = None  # as on the device: importing them raises ModuleNotFoundError\n"
)


def _device_like_run(tmp: Path, models: Path | None):
    """The real tests/conftest.py and tests/runtime/conftest.py, with Keras and TensorFlow unimportable, the real
    plugin, and a test that uses the ``models`` fixture: what pi_check.sh runs on the emulated Pi."""
    (tmp / "tests" / "runtime").mkdir(parents=True)
    (tmp / "toolkit").mkdir()
    (tmp / "toolkit" / "model.py").write_text((REPO / "toolkit" / "model.py").read_text())  # the small model's cache key
    (tmp / "tests" / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (tmp / "tests" / "measured.py").write_text((REPO / "tests" / "measured.py").read_text())  # the conftest imports it
    (tmp / "tests" / "runtime" / "conftest.py").write_text((REPO / "tests" / "runtime" / "conftest.py").read_text())
    (tmp / "tests" / "runtime" / "test_device.py").write_text(
        "def test_models_from_the_host(models):\n"
        "    assert {'float32.tflite', 'int8.tflite', 'float32.onnx'} <= set(models)\n"
        "    assert all(p.is_file() for p in models.values())\n"
    )
    (tmp / "plugins").mkdir()
    (tmp / "plugins" / "block_workstation.py").write_text(BLOCK_WORKSTATION)
    env = {**os.environ, "PYTHONPATH": f"{tmp / 'plugins'}{os.pathsep}{REPO / 'scripts'}"}
    env.pop("EDGEKIT_PI_MODELS", None)
    env.pop("CI", None)  # the device's own pytest run: CI's skip-is-a-failure rule is not what is tested here
    if models is not None:
        env["EDGEKIT_PI_MODELS"] = str(models)
    junit = tmp / "pytest.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "block_workstation", "-p", "pi_pytest_plugin",
         "-o", f"cache_dir={tmp / '.pytest-cache'}", "tests/runtime", "--junitxml", str(junit)],
        cwd=tmp, capture_output=True, text=True, env=env,
    )
    return run, *_verdict(tmp, junit, run.returncode)


def test_device_tests_run_on_models_from_the_host_without_keras(tmp_path):
    folder = tmp_path / "from-x86-64"
    folder.mkdir()
    for name in ("model_float32.tflite", "model_int8.tflite", "model_float32.onnx", "model_int8.onnx"):
        (folder / name).write_bytes(b"exported on x86-64")
    run, proc, out = _device_like_run(tmp_path / "with", folder)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "PASSED tests/runtime/test_device.py::test_models_from_the_host" in run.stdout
    assert proc.returncode == 0 and out["counts"]["passed"] == 1, proc.stdout


def test_without_models_from_the_host_the_device_tests_skip_and_the_stage_fails(tmp_path):
    """The fixed bug: the fixture trains a Keras model, the device has none, the test skips; the stage must fail."""
    run, proc, out = _device_like_run(tmp_path / "without", None)
    assert "needs keras (workstation only" in run.stdout, run.stdout[-2000:]
    assert run.returncode == 0  # pytest itself calls a skip a success
    assert proc.returncode == 1 and out["counts"]["skipped"] == 1 and not out["ok"]


def test_an_incomplete_models_folder_is_an_error_not_a_skip(tmp_path):
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "model_float32.tflite").write_bytes(b"exported on x86-64")
    run, proc, out = _device_like_run(tmp_path / "half-run", folder)
    assert "has no model_int8.tflite, model_float32.onnx" in run.stdout, run.stdout[-2000:]
    assert proc.returncode == 1 and out["counts"]["error"] == 1


# --- the probability tolerance: margin above the measured differences, never on an int8 step -----------------
def _compare_probabilities(tmp: Path, model: str, native: list[list[float]], pi: list[list[float]]):
    for side, p in (("native", native), ("pi", pi)):
        (tmp / f"{side}.json").write_text(json.dumps({"images": [f"{i}.png" for i in range(len(p))], "preprocessed": {},
                                                      "models": {model: {"p": p, "per_image_ms": 1.0}}}))
    proc = subprocess.run([sys.executable, str(HELPER), "compare-probabilities", str(tmp / "native.json"),
                           str(tmp / "pi.json"), str(tmp / "out.json")], capture_output=True, text=True)
    return proc, json.loads((tmp / "out.json").read_text())


def _probs(top: float, step: float = 0.0) -> list[float]:
    """A confident 7: the rest of the mass spread on the other nine digits, then moved by ``step``."""
    row = [(1.0 - top) / 9] * 10
    row[7] = top
    row[7] -= step
    row[3] += step
    return row


def _helper_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("pi_check_helper_under_test", HELPER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_int8_tolerance_sits_between_output_steps():
    """On neither int8 grid (TFLite 1/256, ONNX 1/255) is the tolerance within a quarter step of a step."""
    helper = _helper_module()
    for step in helper.INT8_STEPS:
        steps = helper.INT8_TOLERANCE / step
        assert 0.25 < steps % 1 < 0.75, (step, steps)
        assert steps > 2, "at least two steps of margin above the one-step differences measured"


@pytest.mark.parametrize(("model", "step", "steps", "ok"), [
    # the failure: one step of the ONNX grid (1/255) against a tolerance of one step of 1/256
    ("model_int8.onnx", 1 / 255, 1, True),
    ("model_int8.tflite", 1 / 256, 1, True),
    ("model_int8.onnx", 1 / 255, 3, True),
    ("model_int8.onnx", 1 / 255, 4, False),
    ("model_int8.tflite", 1 / 256, 4, False),
    ("model_float32.tflite", 1e-6, 1, True),
    ("model_float32.onnx", 2e-5, 1, False),
])
def test_probability_tolerance(tmp_path, model, step, steps, ok):
    native = [_probs(0.9), _probs(0.8)]
    pi = [_probs(0.9), _probs(0.8, steps * step)]
    proc, out = _compare_probabilities(tmp_path, model, native, pi)
    assert out["ok"] is ok and (proc.returncode == 0) is ok, proc.stdout
    assert out["models"][model]["max_abs_diff"] == pytest.approx(steps * step, rel=1e-6)
    if "int8" in model:
        assert out["models"][model]["max_abs_diff_steps"] == pytest.approx(steps, abs=1e-3)


def test_a_different_top1_fails_within_tolerance(tmp_path):
    """A near-tie read the other way on the device: |Δp| 2e-6 is within 1e-5, the digit is not."""
    native = [[0.0] * 10]
    native[0][7], native[0][3], native[0][1] = 0.450001, 0.449999, 0.1
    pi = [list(native[0])]
    pi[0][7], pi[0][3] = 0.449999, 0.450001
    proc, out = _compare_probabilities(tmp_path, "model_float32.onnx", native, pi)
    assert out["models"]["model_float32.onnx"]["max_abs_diff"] < 1e-5
    assert proc.returncode == 1 and "top-1 equal 0/1" in proc.stdout


# --- the bundled model on camera-like frames, no model argument: same note, digits, probabilities --------------
@pytest.fixture(scope="module")
def bundled_host_run(tmp_path_factory, mnist_path):
    """The stage's host half for real: frames the bundled model reads, `edgekit predict FRAMES` with no model
    and `Classifier()` on them, on this x86-64 host (the device half is replaced by copies, then changed)."""
    work = tmp_path_factory.mktemp("bundled")
    frames = subprocess.run([sys.executable, str(HELPER), "frames", str(mnist_path), "3", str(work / "frames"),
                             str(work / "inputs.npy")], capture_output=True, text=True)
    assert frames.returncode == 0, frames.stderr[-2000:]
    (work / "frames.txt").write_text(frames.stdout)
    predict = subprocess.run([sys.executable, "-c", "from edgekit.toolkit.cli import main; main()", "predict", "--json",
                              str(work / "frames")], capture_output=True, text=True)
    assert predict.returncode == 0, predict.stderr[-2000:]
    (work / "n.jsonl").write_text(predict.stdout)
    (work / "n.err").write_text(predict.stderr)
    probs = subprocess.run([sys.executable, str(HELPER), "bundled", str(work / "frames"), str(work / "inputs.npy")],
                           capture_output=True, text=True)
    assert probs.returncode == 0, probs.stderr[-2000:]
    (work / "n.json").write_text(probs.stdout)
    (work / "t").write_text("0.5\t30.0\n")
    return work


def _compare_bundled(work: Path, tmp: Path, *, frames=None, pi_rows=None, pi_err=None, pi_probs=None, site=None):
    """compare-bundled with the host's own outputs standing in for the device's, changed as given."""
    native_rows = [json.loads(line) for line in (work / "n.jsonl").read_text().splitlines()]
    (tmp / "frames.txt").write_text((work / "frames.txt").read_text() if frames is None else frames)
    (tmp / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (native_rows if pi_rows is None else pi_rows(native_rows))))
    (tmp / "p.err").write_text((work / "n.err").read_text() if pi_err is None else pi_err)
    probs = json.loads((work / "n.json").read_text())
    (tmp / "p.json").write_text(json.dumps(probs if pi_probs is None else pi_probs(probs)))
    args = [sys.executable, str(HELPER), "compare-bundled", "--frames", str(tmp / "frames.txt"),
            "--native", str(work / "n.jsonl"), "--pi", str(tmp / "p.jsonl"), "--native-err", str(work / "n.err"),
            "--pi-err", str(tmp / "p.err"), "--native-probs", str(work / "n.json"), "--pi-probs", str(tmp / "p.json"),
            "--times", str(work / "t"), "--out", str(tmp / "out.json")]
    if site is not None:
        args += ["--device-site", str(site)]
    proc = subprocess.run(args, capture_output=True, text=True)
    return proc, json.loads((tmp / "out.json").read_text())


def test_bundled_frames_are_read_right_here_and_the_same_run_passes(bundled_host_run, tmp_path):
    work = bundled_host_run
    labels = [line.split("\t")[1] for line in (work / "frames.txt").read_text().splitlines()]
    assert len(labels) == 3 and len(set(labels)) == 3, labels  # one frame per digit
    rows = [json.loads(line) for line in (work / "n.jsonl").read_text().splitlines()]
    assert [str(r["digit"]) for r in rows] == labels  # `edgekit predict FRAMES`, no model: the written digits
    assert "using the bundled one" in (work / "n.err").read_text()
    proc, out = _compare_bundled(work, tmp_path, site=REPO)  # host: the checkout's bundled model
    assert proc.returncode == 0 and out["ok"], proc.stdout
    assert out["frames"] == 3 and out["max_abs_p_diff"] == 0 and out["tolerance_probabilities"] == pytest.approx(3.5 / 256)
    assert out["model"]["aarch64"]["sha256"] == out["model"]["aarch64"]["recorded_sha256"]
    assert proc.stdout.startswith("3/3 frames read alike")


def _other_digit(rows):
    rows = [dict(r) for r in rows]
    rows[1]["digit"] = (rows[1]["digit"] + 1) % 10
    return rows


def _shift(steps: float):
    def change(probs):
        row = next(iter(probs["frames"].values()))
        p = row["p_host_input"]
        top = max(range(10), key=p.__getitem__)
        p[top] -= steps / 256
        p[(top + 1) % 10] += steps / 256
        return probs
    return change


def _pixels(levels: float):
    def change(probs):
        row = next(iter(probs["frames"].values()))
        row["x"][400] += levels / 255 if row["x"][400] < 0.5 else -levels / 255
        return probs
    return change


def _other_file(probs):
    probs["model"]["sha256"] = "0" * 64
    return probs


@pytest.mark.parametrize(("change", "expected"), [
    ({"pi_rows": _other_digit}, "on x86-64, "),
    ({"pi_err": "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"}, "no one-line 'using the bundled one' note"),
    ({"pi_err": ""}, "no one-line 'using the bundled one' note"),
    ({"pi_rows": lambda rows: []}, "aarch64: `edgekit predict` read 0 of 3 frames"),
    ({"frames": "", "pi_rows": lambda rows: []}, "no camera frame to predict: the stage ran nothing"),
    ({"pi_probs": _shift(4)}, "4 steps of 1/256"),
    ({"pi_probs": _other_file}, "not the same bundled model"),
    ({"pi_probs": _pixels(9)}, "preprocessing |Δpixel| 9.0/255 > 8.5/255"),
    ({"site": "/nowhere/site"}, "not the bundled model of the device install"),
])
def test_bundled_stage_fails(bundled_host_run, tmp_path, change, expected):
    proc, out = _compare_bundled(bundled_host_run, tmp_path, **change)
    assert proc.returncode == 1 and not out["ok"], proc.stdout
    assert expected in proc.stdout, proc.stdout


def test_bundled_probabilities_within_three_int8_steps_pass(bundled_host_run, tmp_path):
    proc, out = _compare_bundled(bundled_host_run, tmp_path, pi_probs=_shift(3))
    assert proc.returncode == 0 and out["max_abs_p_diff_steps"] == pytest.approx(3, abs=1e-3), proc.stdout


def test_bundled_preprocessing_within_the_measured_camera_rounding_passes(bundled_host_run, tmp_path):
    """5 grey levels: the worst measured between x86-64 and the emulated Pi on camera frames (above the PNGs' 4)."""
    proc, out = _compare_bundled(bundled_host_run, tmp_path, pi_probs=_pixels(5))
    assert proc.returncode == 0 and out["max_abs_pixel_diff_grey_levels"] == pytest.approx(5, abs=0.01), proc.stdout
