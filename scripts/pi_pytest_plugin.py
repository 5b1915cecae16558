"""pytest plugin for running tests/runtime on the emulated Raspberry Pi (scripts/pi_check.sh loads it with -p).

The device install has no TensorFlow and no Keras, by design, so the tests' own way of getting exported models
(the runtime conftest's ``models`` fixture trains a small Keras model and calls edgekit's exporter) cannot run
there. The host prepares them instead, as a Pi receives them:

* ``EDGEKIT_PI_MODELS`` names a folder of models that edgekit exported on x86-64 (``model_<q>.<fmt>``); the
  ``models`` fixture's value is ``{"<q>.<fmt>": path}`` from that folder, and nothing Keras-made is needed
  (the fixture asks for the small Keras model only when it exports, which it then does not). A folder without
  the models the fixture promises is an error, not a skip.
* A test or fixture that still needs a workstation-only module (TensorFlow, Keras, tf2onnx, ...) is reported as
  skipped with that reason — unless the import comes from edgekit's device code (``edgekit/runtime/`` or the
  ``predict``/``webcam`` CLI): that is the bug this check exists to catch, and the test fails as usual. A skip
  is only a clearer message: pi_check.sh fails its test stage when any test skipped or none ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

WORKSTATION_ONLY = {"tensorflow", "keras", "tf2onnx", "tf_keras", "onnx", "matplotlib"}
DEVICE_CODE = (f"{os.sep}edgekit{os.sep}runtime{os.sep}", f"{os.sep}edgekit{os.sep}toolkit{os.sep}cli_runtime.py")


def _needs_workstation(excinfo) -> str | None:
    """The missing module's name if excinfo is a ModuleNotFoundError for a workstation-only module that was not
    imported by edgekit's device code, else None."""
    if excinfo is None or not isinstance(excinfo.value, ModuleNotFoundError):
        return None
    name = (excinfo.value.name or "").split(".")[0]
    if name not in WORKSTATION_ONLY:
        return None
    importer = None
    for entry in excinfo.traceback:
        path = str(entry.path)
        if "importlib" in path or path.startswith("<frozen"):
            continue
        importer = path
    return name if importer and not any(part in importer for part in DEVICE_CODE) else None


# What the runtime conftest's ``models`` fixture promises; the x86-64 folder may hold more (int8.onnx).
PROMISED = ("float32.tflite", "int8.tflite", "float32.onnx")


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef, request):
    folder = os.environ.get("EDGEKIT_PI_MODELS")
    if not folder or fixturedef.argname != "models":
        return None
    found = {p.name[len("model_"):]: p for p in sorted(Path(folder).glob("model_*.*")) if p.suffix in (".tflite", ".onnx")}
    missing = [name for name in PROMISED if name not in found]
    if missing:
        pytest.fail(f"EDGEKIT_PI_MODELS={folder} has no {', '.join('model_' + m for m in missing)}", pytrace=False)
    fixturedef.cached_result = (found, fixturedef.cache_key(request), None)
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    name = _needs_workstation(call.excinfo) if report.failed else None
    if name:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: needs {name} (workstation only, not on the device)")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    call = getattr(report, "call", None)  # pytest keeps the CallInfo on the report for collect_one_node
    name = _needs_workstation(call.excinfo) if report.failed and call is not None else None
    if name:
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), 0, f"Skipped: needs {name} (workstation only, not on the device)")
