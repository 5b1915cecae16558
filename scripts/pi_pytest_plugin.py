"""pytest plugin for running tests/runtime on the emulated Raspberry Pi (scripts/pi_check.sh loads it with -p).

The device install has no TensorFlow, by design, so the tests' own way of getting exported models (the runtime
conftest's ``models`` fixture calls edgekit's exporter) cannot run there. Two things make the tests run anyway:

* With ``EDGEKIT_PI_MODELS`` set to a folder of models that edgekit exported on x86-64 (``model_<q>.<fmt>``, and
  the ``model.keras`` they came from), the ``models`` fixture's value is ``{"<q>.<fmt>": path}`` from that folder
  and ``small_model_path`` is that ``model.keras`` — the exporter's output, made on the workstation, which is
  exactly what a Pi receives.
* A test or fixture that still needs a workstation-only module (TensorFlow, Keras, tf2onnx, ...) is reported as
  skipped with that reason — unless the import comes from edgekit's device code (``edgekit/runtime/`` or the
  ``predict``/``webcam`` CLI): that is the bug this check exists to catch, and the test fails as usual.
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


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef, request):
    folder = os.environ.get("EDGEKIT_PI_MODELS")
    if not folder or fixturedef.argname not in ("models", "small_model_path"):
        return None
    if fixturedef.argname == "small_model_path":
        # The .keras the models were exported from (pytest sets up a fixture's dependencies even when this hook
        # provides its value, and training one needs Keras). Loading it on the device still needs Keras: a skip.
        source = Path(folder) / "model.keras"
        if not source.is_file():
            return None
        fixturedef.cached_result = (source, fixturedef.cache_key(request), None)
        return source
    found = {p.name[len("model_"):]: p for p in sorted(Path(folder).glob("model_*.*")) if p.suffix in (".tflite", ".onnx")}
    if not found:
        return None
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
