"""Instructions per camera frame on the Raspberry Pi's software, counted under emulation (issue 25).

    python benchmarks/pi_instructions.py --data ../shared/data/mnist.npz [--cache /var/tmp/edgekit-pi] [--frames 10]

Emulated wall time says nothing about a Pi, but the number of arm64 instructions a frame executes is the same on
qemu as on a Cortex-A72 running the same binaries. Debian's qemu-aarch64-static 7.2 has no TCG plugins (no
``-plugin``, no ``libinsn.so``), so the count comes from its log: ``-singlestep`` makes every translated block one
instruction and ``-d nochain,exec`` logs one line per executed block, piped into ``wc -l``. Logging everything would
take hours (Python's own start is tens of millions of lines), so ``-dfilter`` limits it to the executable segments
of the libraries that do a frame's work: OpenCV (``cv2.abi3.so``: decoding is not timed, the preprocessing is),
LiteRT and its XNNPACK kernels (``libpywrap_litert_common.so``, ``libLiteRt.so``) and numpy
(``_multiarray_umath``). Their guest addresses are read from ``/proc/self/maps`` in a first, unlogged run and must
be the same in the counted runs (qemu-user lays the guest out deterministically; checked).

The device install and root are ``scripts/pi_check.sh``'s (``--cache``; run it first). The guest script warms the
bundled model up on 3 frames, then classifies one camera-like 640x480 frame (an MNIST test digit on paper,
``edgekit.runtime.benchmark.camera_like_frames``) N more times, one thread for LiteRT and OpenCV; ``--preprocess
FILE`` counts with another preprocess.py's ``find_digits`` (e.g. ``git show 4327865:runtime/preprocess.py``, before
issue 25) in ``Classifier.classify``, to compare two preprocessings on the same model. Two runs, N = 0
and N = --frames; the difference over N is instructions per frame in those libraries. Not counted: the Python
interpreter (the ``python3.11`` binary: Classifier.classify's own Python) and libc (memcpy, malloc), so the count
is a lower bound of a frame's instructions. The time on a Pi 4 that follows from it needs the A72's instructions
per cycle, which this cannot measure: the script prints the range for 1 to 2 instructions per cycle at 1.5 GHz and
labels it derived. Writes benchmarks/results/pi_instructions.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgekit.runtime.files import write_json

HERE = Path(__file__).resolve().parent
LIBS = ("cv2.abi3.so", "libpywrap_litert_common.so", "libLiteRt.so", "_multiarray_umath")
GUEST = """
import importlib.util
import sys
import cv2
from edgekit.runtime import Classifier, classifier

if sys.argv[4:]:  # another preprocess.py's find_digits in Classifier.classify (--preprocess)
    spec = importlib.util.spec_from_file_location("edgekit_other_preprocess", sys.argv[4])
    other = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other)
    classifier.find_digits = other.find_digits
cv2.setNumThreads(1)
clf = Classifier(threads=1)
frame = cv2.imread(sys.argv[1])
for _ in range(3):
    p = clf.classify(frame)
for _ in range(int(sys.argv[2])):
    clf.classify(frame)
with open(sys.argv[3], "w") as out:
    out.write(str(p.digit) + "\\n")
    out.writelines(line for line in open("/proc/self/maps") if " r-xp " in line and any(k in line for k in LIBS))
""".replace("LIBS", repr(LIBS))


def qemu(root: Path, *extra: str) -> list[str]:
    return ["qemu-aarch64-static", "-cpu", "cortex-a72", "-L", str(root), *extra, str(root / "usr/bin/python3.11")]


def run_guest(root: Path, site: Path, work: Path, frames: int, ranges: str | None) -> tuple[int | None, str]:
    """(instructions logged or None, the guest's maps file text) for one run with ``frames`` extra frames."""
    maps = work / f"maps-{frames}-{'counted' if ranges else 'plain'}.txt"
    args = [str(work / "guest.py"), str(work / "frame.jpg"), str(frames), str(maps)]
    if (work / "preprocess.py").is_file():
        args.append(str(work / "preprocess.py"))
    env = {**os.environ, "PYTHONPATH": str(site)}
    if ranges is None:
        subprocess.run([*qemu(root), *args], env=env, check=True, capture_output=True, timeout=600)
        return None, maps.read_text()
    cmd = qemu(root, "-singlestep", "-d", "nochain,exec", "-dfilter", ranges, "-D", "/dev/fd/3")
    shell = " ".join(f"'{c}'" for c in [*cmd, *args]) + " 3>&1 1>/dev/null 2>/dev/null | wc -l"
    out = subprocess.run(["bash", "-c", shell], env=env, check=True, capture_output=True, text=True, timeout=7200)
    return int(out.stdout.strip()), maps.read_text()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a Keras-layout mnist.npz (one test digit is photographed)")
    ap.add_argument("--cache", default=os.environ.get("EDGEKIT_PI_CACHE", "/var/tmp/edgekit-pi"),
                    help="scripts/pi_check.sh's cache (its root/ and site/)")
    ap.add_argument("--frames", type=int, default=10, help="extra frames in the second counted run")
    ap.add_argument("--ghz", type=float, default=1.5, help="clock for the derived time (Pi 4: 1.5, later boards 1.8)")
    ap.add_argument("--preprocess", help="count with another preprocess.py's find_digits (e.g. an earlier commit's, "
                                         "from git show) in place of the installed one")
    ap.add_argument("--out", default=str(HERE / "results" / "pi_instructions.json"))
    args = ap.parse_args()

    import cv2

    from edgekit.runtime.benchmark import camera_like_frames

    cache = Path(args.cache)
    root, site = cache / "root", cache / "site"
    if not (root / "usr/bin/python3.11").is_file() or not (site / "edgekit").is_dir():
        raise SystemExit(f"no emulated Pi install in {cache}; run scripts/pi_check.sh (--cache {cache}) first")
    work = Path(tempfile.mkdtemp(prefix="edgekit-pi-instructions-"))
    (work / "guest.py").write_text(GUEST)
    if args.preprocess:
        (work / "preprocess.py").write_text(Path(args.preprocess).read_text())
    with np.load(args.data) as npz:
        frame, label = next(camera_like_frames(1, npz["x_test"][:1], npz["y_test"][:1], seed=3))
    cv2.imwrite(str(work / "frame.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])

    print("finding the libraries' addresses (one plain emulated run) ...", file=sys.stderr)
    _, maps = run_guest(root, site, work, 0, None)
    digit, *segments = maps.splitlines()
    ranges = ",".join("0x" + s.split()[0].replace("-", "..0x") for s in segments)
    found = sorted({Path(s.split()[-1]).name for s in segments})
    if len(found) < len(LIBS):
        raise SystemExit(f"found only {found} in the guest's maps")
    print(f"counting instructions in {len(segments)} segments, N = 0 and {args.frames} (two logged runs, minutes each) ...",
          file=sys.stderr)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda n: run_guest(root, site, work, n, ranges), (0, args.frames)))
    for _, m in runs:
        if m.splitlines()[1:] != segments:
            raise SystemExit("the guest's libraries moved between runs; the count would be of other code")
    (c0, _), (cn, _) = runs
    per_frame = (cn - c0) / args.frames
    times = {ipc: per_frame / (ipc * args.ghz * 1e9) * 1e3 for ipc in (1.0, 2.0)}
    result = {
        "what": "arm64 instructions per 640x480 camera frame -> digit (bundled int8 model, 1 thread) in OpenCV, LiteRT "
                "and numpy, counted under qemu-user (-singlestep -d nochain,exec -dfilter); Python interpreter and libc "
                "not counted",
        "qemu": subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
        "libraries": found, "digit_read": int(digit), "label": label,
        "preprocess": args.preprocess or "the installed edgekit's",
        "counted": {"frames_0": c0, f"frames_{args.frames}": cn}, "frames": args.frames,
        "instructions_per_frame": per_frame,
        "derived_ms_at_ghz": {"ghz": args.ghz, "ipc_1": times[1.0], "ipc_2": times[2.0]},
    }
    lines = [
        f"instructions logged: {c0:,} with 3 warm-up frames, {cn:,} with {args.frames} more",
        f"per frame (OpenCV + LiteRT + numpy; not the interpreter or libc): {per_frame / 1e6:.2f} M instructions",
        f"derived, NOT measured: at {args.ghz:g} GHz and 1-2 instructions per cycle, {times[2.0]:.1f}-{times[1.0]:.1f} ms "
        f"per frame ({1000 / times[1.0]:.0f}-{1000 / times[2.0]:.0f} FPS from these libraries' work alone)",
    ]
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
