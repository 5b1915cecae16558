"""The suite's own rules, run on a throw-away test file with this repository's conftest: in CI a skipped test
fails (except the opt-in Pi check), and a measured figure is logged for scripts/margins.py and asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SAMPLE = '''
import pytest
from measured import check

def test_plain():
    assert 1 + 1 == 2

@pytest.mark.skipif(True, reason="needs a thing this machine lacks")
def test_skipped():
    pass

@pytest.mark.pi
def test_pi_opt_in():
    pytest.skip("opt-in")

@pytest.mark.numeric
def test_measured():
    check("a figure", 0.93, ">=", 0.9)

@pytest.mark.numeric
def test_measured_too_low():
    check("a low figure", 0.5, ">=", 0.9)

def test_measured_but_not_marked():
    check("an unmarked figure", 1.0, "<=", 2.0)
'''


def run_sample(tmp_path: Path, **env: str) -> str:
    for name in ("conftest.py", "measured.py"):
        shutil.copy(TESTS / name, tmp_path / name)
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "EDGEKIT_MARGINS_LOG", "EDGEKIT_TEST_SEED")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "-W", "ignore",
                           "test_sample.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**base, **env})
    return done.stdout


def test_outside_ci_a_skip_is_a_skip(tmp_path):
    out = run_sample(tmp_path)
    assert "2 failed, 2 passed, 2 skipped" in out, out
    assert "a low figure: 0.5 is not >= 0.9" in out
    assert "test_measured_but_not_marked checks a measured figure (an unmarked figure) but is not marked numeric" in out


def test_in_ci_a_skip_fails_except_the_pi_check(tmp_path):
    out = run_sample(tmp_path, CI="true")
    assert "2 failed, 2 passed, 1 skipped, 1 error" in out, out  # the skipif one errs in its setup
    assert "skipped in CI, where every test must run (CI=true): needs a thing this machine lacks" in out


def test_measured_figures_are_logged(tmp_path):
    log = tmp_path / "margins.jsonl"
    out = run_sample(tmp_path, EDGEKIT_MARGINS_LOG=str(log), EDGEKIT_TEST_SEED="3")
    assert "1 failed, 3 passed, 2 skipped" in out, out  # only the unmarked one fails: measuring, nothing stops
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(l["name"], l["value"], l["op"], l["threshold"], l["seed"]) for l in lines] == [
        ("a figure", 0.93, ">=", 0.9, 3), ("a low figure", 0.5, ">=", 0.9, 3)]  # logged, not stopped: the table judges
    assert lines[0]["test"] == "test_sample.py::test_measured"
