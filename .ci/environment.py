"""One line that says what machine and which packages a CI run had, so a failure elsewhere can be read.

The CPU flags are the ones that change the arithmetic: oneDNN picks TensorFlow's kernels by AVX-512, AVX-512 BF16
and AMX (unless oneDNN's own settings cap or turn it off: printed when set), and ONNX Runtime its int8
kernels by AVX-512 VNNI / AVX-VNNI. Versions come from the installed distributions' metadata: nothing heavy is imported.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

ONEDNN_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")  # set: oneDNN capped or off
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
PACKAGES = (("tensorflow-cpu", "tensorflow"), ("keras",), ("ai-edge-litert",), ("onnxruntime",),
            ("opencv-python", "opencv-python-headless"), ("numpy",))


def cpu() -> tuple[str, set[str]]:
    """The CPU's name with its family/model/stepping (two machines of one name may differ there), and flags."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first processor is enough
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine()
    ids = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    if ids:
        model += f" ({', '.join(ids)})"
    return model, set((fields.get("flags") or fields.get("Features") or "").split())


def version(names: tuple[str, ...]) -> str:
    for name in names:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return f"{names[0]} missing"


def main() -> None:
    model, flags = cpu()
    have = " ".join(f"{f}{'+' if f in flags else '-'}" for f in FLAGS)
    packages = ", ".join(version(names) for names in PACKAGES)
    onednn = "".join(f" | {name}={os.environ[name]}" for name in ONEDNN_ENV if os.environ.get(name))
    print(f"ci: {model} | {have}{onednn} | {os.cpu_count()} cores | {platform.system()} {platform.machine()} | "
          f"Python {platform.python_version()} | {packages}")


if __name__ == "__main__":
    main()
