"""Tests that train in bfloat16 need a process whose oneDNN trains it natively.

When the whole run has oneDNN capped below ``AVX512_CORE_BF16`` (``ONEDNN_MAX_CPU_ISA``) or off
(``TF_ENABLE_ONEDNN_OPTS=0``), as CI's arithmetic runs and scripts/margins.py set them, bfloat16 in this process
would stop TensorFlow at the first convolution (capped below AVX512_CORE: "could not create a primitive
descriptor") or take ~12x a float32 step (Eigen's emulation). TensorFlow read those settings when it started, so
such a test runs again in a child pytest without them, and passes or fails as the child does.

    def test_something_in_bfloat16(request):
        if ran_in_a_child(request):
            return
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from edgekit.toolkit.precision import FLAG_ISA, ONEDNN_ISAS, onednn_cap, onednn_off

ONEDNN_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")


def ran_in_a_child(request) -> bool:
    """Where this process's oneDNN does not train bfloat16 natively, run this test in a child pytest with oneDNN's
    defaults, assert that it passed, and return True (the caller returns); else False."""
    cap = onednn_cap(os.environ)
    if not onednn_off(os.environ) and (cap is None or
                                       ONEDNN_ISAS.index(cap) >= ONEDNN_ISAS.index(FLAG_ISA["avx512_bf16"])):
        return False
    env = {k: v for k, v in os.environ.items() if k not in ONEDNN_ENV}
    child = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "--no-header", request.node.nodeid],
                           cwd=request.config.rootpath, env=env, capture_output=True, text=True, timeout=900)
    assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-2000:]
    assert re.search(r"^1 passed", child.stdout, re.M), child.stdout[-2000:]  # it ran, not skipped
    return True
