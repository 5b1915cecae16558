"""pytest plugin for running tests/runtime on the emulated Raspberry Pi (scripts/pi_check.sh loads it with -p).

The device install has no TensorFlow, by design. A test (or fixture) that imports TensorFlow/Keras/tf2onnx itself —
to train or export the model it then runs — cannot run there, so it is reported as skipped with that reason.
Only when the import is made by the test's own code (under tests/): if edgekit's code imports a workstation-only
module, that is the bug this check exists to catch, and the test fails as usual.
"""

from __future__ import annotations

import os

import pytest

WORKSTATION_ONLY = {"tensorflow", "keras", "tf2onnx", "tf_keras", "onnx", "matplotlib"}
_TESTS_DIR = os.path.join(os.getcwd(), "tests") + os.sep


def _needs_workstation(excinfo) -> str | None:
    """The missing module's name if excinfo is a ModuleNotFoundError for a workstation-only module raised by an
    import statement in the tests' own code, else None."""
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
    return name if importer and importer.startswith(_TESTS_DIR) else None


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
