"""The runtime is TensorFlow-free: run in a fresh interpreter, it loads and runs a model of each format
without tensorflow, keras or tf2onnx ever being imported, and imports only the backend it needs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import edgekit.runtime
    from edgekit.runtime import Classifier
    from edgekit.runtime.contract import to_model_input
    heavy = ("tensorflow", "keras", "tf2onnx", "tensorboard", "jax", "torch")
    seen = {}
    x = to_model_input(np.zeros((2, 28, 28), np.uint8))
    tfl = Classifier(sys.argv[1])
    seen["tflite_shape"] = list(tfl.probabilities(x).shape)
    seen["onnxruntime_after_tflite"] = "onnxruntime" in sys.modules
    onx = Classifier(sys.argv[2])
    seen["onnx_shape"] = list(onx.probabilities(x).shape)
    seen["heavy"] = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
    print(json.dumps(seen))
    """
)


def test_runtime_never_imports_tensorflow(models):
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(models["int8.tflite"]), str(models["float32.onnx"])],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["tflite_shape"] == [2, 10] and seen["onnx_shape"] == [2, 10]
    assert seen["heavy"] == [], f"the runtime imported {seen['heavy']}"
    assert seen["onnxruntime_after_tflite"] is False, "loading a .tflite imported onnxruntime"


def test_missing_backend_names_the_package(models):
    """With LiteRT and tflite_runtime absent (import blocked), a .tflite gives BackendMissingError, not TensorFlow."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["ai_edge_litert"] = None; sys.modules["ai_edge_litert.interpreter"] = None
        sys.modules["tflite_runtime"] = None; sys.modules["tflite_runtime.interpreter"] = None
        from edgekit.runtime import Classifier
        from edgekit.runtime.errors import BackendMissingError
        try:
            Classifier(sys.argv[1])
        except BackendMissingError as e:
            print("missing:", e, "| exit", e.exit_code, "| tf", "tensorflow" in sys.modules)
        """
    )
    run = subprocess.run([sys.executable, "-c", script, str(models["int8.tflite"])], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "missing:" in run.stdout and "pip install ai-edge-litert" in run.stdout
    assert "| exit 3 |" in run.stdout and run.stdout.strip().endswith("tf False")


def test_predict_loads_neither_pydantic_nor_openssl(camera_frames, tmp_path):
    """`edgekit predict photo.jpg` (the bundled model) in a fresh process: pydantic (typer >= 0.29 coerces options
    through it) and OpenSSL (`secrets`/`hmac` -> `_hashlib`) are each megabytes resident that the device's 80 MB
    budget has no room for (docs/raspberry-pi.md, "Memory")."""
    import cv2

    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), camera_frames[0][0])
    script = textwrap.dedent(
        """
        import json, sys
        from edgekit.toolkit.cli import app
        try:
            app(["predict", sys.argv[1]], prog_name="edgekit")
        except SystemExit as e:
            code = e.code
        watched = ("pydantic", "pydantic_core", "_hashlib", "hmac", "secrets")
        print(json.dumps({"code": code, "loaded": sorted(m for m in watched if m in sys.modules)}))
        """
    )
    run = subprocess.run([sys.executable, "-c", script, str(photo)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["code"] == 0, run.stdout + run.stderr
    assert seen["loaded"] == [], (f"predict imported {seen['loaded']} (typer {_typer_version()}: pyproject.toml "
                                  "allows typer < 0.29; `pip install -e .` brings this venv in line)")


def _typer_version() -> str:
    from importlib.metadata import version

    return version("typer")
