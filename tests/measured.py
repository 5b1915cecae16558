"""Numeric assertions that say what they measured, so their thresholds can be chosen from measurements.

``check(name, value, op, threshold)`` asserts ``value op threshold``. When ``$EDGEKIT_MARGINS_LOG`` names a file,
it first appends one JSON line (the test, the name, the value, the comparison, the threshold, the seed and the
thread count of the run) to it: ``scripts/margins.py`` runs the tests that call it with seeds 0-4 and 1 and 2
threads and tabulates, per assertion, the worst value seen and the margin left (docs/testing.md).

Every test that calls ``check`` carries ``@pytest.mark.numeric`` (tests/conftest.py fails one that does not), so
``pytest -m numeric`` is exactly the set whose numbers depend on the trained model or on the arithmetic.
"""

from __future__ import annotations

import json
import os
import threading

OPS = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    "==": lambda v, t: v == t,
}
LOG_ENV = "EDGEKIT_MARGINS_LOG"

current_test: str | None = None
"""The node id of the running test (set by tests/conftest.py), or None outside one."""
current_is_numeric = False
_lock = threading.Lock()


def arithmetic() -> dict:
    """The arithmetic axes of this run besides seed and threads (scripts/margins.py sets them)."""
    return {
        "isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "") or "default",
        "onednn": "off" if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "") == "0" else "on",
        "precision": os.environ.get("EDGEKIT_TEST_PRECISION", "") or "float32",
    }


def record(name: str, value: float, op: str, threshold: float) -> None:
    """Log ``value op threshold`` without asserting it (for figures a test asserts as a whole, e.g. a report)."""
    if op not in OPS:
        raise ValueError(f"unknown comparison {op!r}")
    if current_test is not None and not current_is_numeric:
        raise AssertionError(f"{current_test} checks a measured figure ({name}) but is not marked numeric")
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = {
        "test": current_test,
        "name": name,
        "value": float(value),
        "op": op,
        "threshold": float(threshold),
        "seed": int(os.environ.get("EDGEKIT_TEST_SEED", "0")),
        "threads": os.environ.get("EDGEKIT_TEST_THREADS", ""),
        **arithmetic(),
    }
    with _lock, open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def check(name: str, value: float, op: str, threshold: float, why: str = "") -> None:
    """Assert ``value op threshold``. While margins are being measured (``$EDGEKIT_MARGINS_LOG`` set) it only logs:
    the test goes on to its later figures, and the margins table shows which ones fail where."""
    value = float(value)
    record(name, value, op, threshold)
    if os.environ.get(LOG_ENV):
        return
    assert OPS[op](value, threshold), f"{name}: {value:.6g} is not {op} {threshold:g}" + (f" ({why})" if why else "")


def record_parity_report(prefix: str, report: dict) -> None:
    """Log every figure an ``edgekit validate`` JSON report judged, against the threshold it was judged by."""
    t = report["thresholds"]
    for a in report["artifacts"]:
        name, q = f"{prefix} {a['name']}", a["quantization"]
        if q == "none":
            exact = t["float_min_agreement"] >= 100  # every image: no margin to have, it holds or not
            record(f"{name} top-1 agreement %", a["agreement"], "==" if exact else ">=", t["float_min_agreement"])
            record(f"{name} max |Δp|", a["max_abs_diff"], "<=", t["float_max_abs_diff"])
        elif q == "float16":
            record(f"{name} top-1 agreement %", a["agreement"], ">=", t["float16_min_agreement"])
        else:
            record(f"{name} accuracy drop (points)", -a["delta_accuracy"], "<=", t["quantized_max_drop"])
