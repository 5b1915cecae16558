"""Which artifact, how many threads: every model file x every thread count, measured on this machine.

    report = benchmark([Path("model_int8.tflite"), Path("model_float32.onnx")], BenchmarkOptions(threads=(1, 2, 4)),
                       data="mnist.npz")
    print(format_table(report)); report.recommendation   # the fastest row within the tolerance of the best accuracy

Per row: the file's size, its accuracy on labelled 28x28 images (a Keras-layout ``.npz``'s test split or a
``DIR/<digit>/*.png`` folder, read with numpy and OpenCV: no Keras), the model's single-image invoke p50/p95,
camera frame -> digit p50/p95 on 640x480 frames (MNIST digits from the data drawn on paper, or font digits when no
data is given; ``camera_like_frames``), the frame rate that makes, and the process's peak resident memory so far.
The first calls of every row are warm-up and not counted. Runtime only: this runs on the Pi as it is installed.

An ``image`` model (any other classifier, docs/your-model.md) is timed on the same frames, each prepared whole by
its input contract (``image_input.prepare``): invoke and frame -> label times, no accuracy and no frames read
right (the frames hold digits, not its classes; ``edgekit validate EXPORT --data DIR`` measures its accuracy on
your images). ``--data`` with an image model is refused before any timing.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from edgekit.runtime import contract
from edgekit.runtime.bundled_model import MODEL_SUFFIXES
from edgekit.runtime.classifier import Classifier
from edgekit.runtime.errors import DataError, ModelLoadError, OptionsError
from edgekit.runtime.files import read_npz
from edgekit.runtime.image_input import prepare

FRAME_SIZE = (640, 480)  # width, height: what the webcam loop asks a camera for
WARMUP = 10  # calls per row before timing starts
DISTINCT_FRAMES = 24  # different frames, cycled through --frames times


@dataclass(frozen=True)
class BenchmarkOptions:
    """How much to measure."""

    threads: tuple[int, ...] = (1, 2, 4)  # classifier threads (LiteRT num_threads, ONNX Runtime intra-op threads)
    frames: int = 200  # timed calls per row, for the model invoke and for frame -> digit each
    tolerance: float = 0.2  # accuracy points below the best that still count as "as accurate" for the recommendation

    def __post_init__(self):
        if not self.threads:
            raise OptionsError("--threads needs at least one count, e.g. --threads 1,2,4")
        bad = [t for t in self.threads if t < 1]
        if bad:
            raise OptionsError(f"--threads must be at least 1, got {bad[0]}")
        if self.frames < 1:
            raise OptionsError(f"--frames must be at least 1, got {self.frames}")
        if not self.tolerance >= 0:
            raise OptionsError(f"--tolerance must be 0 or more accuracy points, got {self.tolerance}")


def parse_threads(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> (1, 2, 4); OptionsError for anything but positive whole numbers."""
    counts = []
    for part in text.split(","):
        part = part.strip()
        if not part.lstrip("-").isdigit():
            raise OptionsError(f"--threads takes whole numbers separated by commas (1,2,4), got {text!r}")
        if int(part) < 1:
            raise OptionsError(f"--threads must be at least 1, got {int(part)}")
        if int(part) not in counts:
            counts.append(int(part))
    return tuple(counts)


def model_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given; folders expanded to their .tflite and .onnx files (sorted, not recursive)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in MODEL_SUFFIXES and f.is_file())
            if not found:
                raise OptionsError(f"{p}: no .tflite or .onnx files in this folder; export some with `edgekit export`")
            out.extend(found)
        elif not p.exists():
            raise ModelLoadError(f"{p}: no such model file or folder")
        else:
            out.append(p)
    return out


# -- labelled images, without Keras --------------------------------------------------------------------


def load_labelled(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and int labels (N,) from a Keras-layout .npz (its ``x_test``/``y_test``) or a
    ``DIR/<digit>/*.png`` folder of 28x28 crops (as ``edgekit collect`` writes them)."""
    path = Path(path)
    if path.is_dir():
        return _digit_folder(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder; --data takes a Keras-layout mnist.npz or a DIR/<digit>/ folder")
    arrays = read_npz(path, ("x_test", "y_test"), holds="--data takes a Keras-layout mnist.npz",
                      hint="--data takes a Keras-layout mnist.npz or a DIR/<digit>/ folder")
    x, y = arrays["x_test"], arrays["y_test"]
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (len(x),) or not len(x):
        raise DataError(f"{path}: x_test must be uint8 (N, 28, 28) with one label each, got {x.dtype} {x.shape} and {y.shape}")
    if y.dtype.kind not in "iu" or y.min() < 0 or y.max() > 9:
        raise DataError(f"{path}: y_test must hold the digits 0-9")
    return x, y.astype(int)


def _digit_folder(root: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for c in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if c.name not in contract.LABELS:
            raise DataError(f"{c}: unknown class folder {c.name!r}; a digit folder's class folders are named 0 to 9")
        for f in sorted(f for f in c.iterdir() if f.is_file() and not f.name.startswith(".")):
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if img is None or img.shape != (28, 28):
                raise DataError(f"{f}: not a 28x28 image; a digit folder holds 28x28 crops")
            images.append(img)
            labels.append(int(c.name))
    if not images:
        raise DataError(f"{root}: no images; --data takes a Keras-layout mnist.npz or a DIR/<digit>/ folder of 28x28 crops")
    return np.stack(images), np.array(labels)


# -- camera-like frames ----------------------------------------------------------------------------------


def camera_like_frames(n: int, digits: np.ndarray | None = None, labels: np.ndarray | None = None,
                       seed: int = 0, size: tuple[int, int] = FRAME_SIZE) -> Iterator[tuple[np.ndarray, int]]:
    """``n`` BGR uint8 frames of ``size`` with one dark digit on lit paper, and the digit: MNIST ``digits`` when
    given (cycled), else digits drawn in OpenCV's fonts. Sensor noise and a JPEG round trip like a webcam's."""
    rng = np.random.default_rng(seed)
    w, h = size
    noise = np.random.default_rng(seed + 1).standard_normal((h + 16, w + 16), dtype=np.float32)
    for k in range(n):
        height = int(rng.uniform(0.3, 0.6) * h)
        if digits is not None:
            j = k % len(digits)
            label = int(labels[j])
            ink = cv2.resize(digits[j], (height * 28 // 20, height * 28 // 20), interpolation=cv2.INTER_LINEAR)
        else:
            label = int(rng.integers(10))
            ink = np.zeros((height * 3 // 2, height * 3 // 2), np.uint8)
            cv2.putText(ink, str(label), (height // 4, height * 5 // 4), cv2.FONT_HERSHEY_SIMPLEX, height / 22,
                        255, max(2, height // 12), cv2.LINE_AA)
        coverage = ink.astype(np.float32) / 255.0
        gh, gw = coverage.shape
        paper, dark = rng.uniform(170, 235), rng.uniform(20, 70)
        sheet = np.full((h, w), paper, np.float32)
        x, y = int(rng.integers(0, w - gw)), int(rng.integers(0, h - gh))
        region = sheet[y : y + gh, x : x + gw]
        region[:] = region * (1 - coverage) + dark * coverage
        light = np.linspace(rng.uniform(0.7, 0.9), 1.0, w, dtype=np.float32)[None, :]
        dy, dx = rng.integers(0, 16, 2)
        gray = sheet * light + noise[dy : dy + h, dx : dx + w] * np.float32(rng.uniform(2, 6))
        frame = cv2.cvtColor(cv2.convertScaleAbs(gray), cv2.COLOR_GRAY2BGR)
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
        yield cv2.imdecode(buf, cv2.IMREAD_COLOR), label


# -- measuring -------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux VmHWM; ru_maxrss elsewhere), in MB (2^20 bytes)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if os.uname().sysname == "Darwin" else rss / 1024.0


@dataclass(frozen=True)
class Row:
    """One artifact at one thread count."""

    file: str
    format: str
    quantization: str
    threads: int
    bytes: int
    accuracy: float | None  # percent of the labelled images read right; None without --data
    invoke_p50_ms: float
    invoke_p95_ms: float
    frame_p50_ms: float
    frame_p95_ms: float
    fps: float  # frames per second through frame -> digit (timed frames / their total time)
    frames_read_right: float | None  # fraction of the camera-like frames whose digit came out right; None: an image model
    peak_rss_mb: float  # the process's peak resident memory after this row (it only grows, row by row)


@dataclass
class Report:
    rows: list[Row]
    options: BenchmarkOptions
    data: str | None
    images: int  # labelled images accuracy was measured on (0 without data)
    frame_size: tuple[int, int] = FRAME_SIZE
    machine: dict = field(default_factory=dict)

    @property
    def recommendation(self) -> Row:
        """The fastest row (frame -> digit p50) among those within ``tolerance`` points of the best accuracy."""
        accurate = self.rows
        if all(r.accuracy is not None for r in self.rows):
            best = max(r.accuracy for r in self.rows)
            accurate = [r for r in self.rows if r.accuracy >= best - self.options.tolerance]
        return min(accurate, key=lambda r: (r.frame_p50_ms, r.invoke_p50_ms))

    def recommendation_line(self) -> str:
        r = self.recommendation
        if r.accuracy is None:
            why = "the fastest; accuracy not measured (pass --data to weigh it)"
        else:
            best = max(x.accuracy for x in self.rows)
            why = (f"the fastest within {self.options.tolerance:g} points of the best accuracy ({best:.2f} %): "
                   f"{r.accuracy:.2f} %")
        return (f"recommended: {r.file} with {r.threads} thread{'s' if r.threads > 1 else ''} "
                f"({r.frame_p50_ms:.2f} ms per frame, {r.fps:.0f} FPS; {why})")

    def to_dict(self) -> dict:
        rec = self.recommendation
        return {
            "options": {"threads": list(self.options.threads), "frames": self.options.frames,
                        "tolerance_points": self.options.tolerance, "warmup": WARMUP},
            "data": self.data, "images": self.images, "frame_size": list(self.frame_size), "machine": self.machine,
            "rows": [asdict(r) for r in self.rows],
            "recommendation": {"file": rec.file, "threads": rec.threads, "line": self.recommendation_line()},
        }


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def accuracy(clf: Classifier, images: np.ndarray, labels: np.ndarray, batch: int = 32) -> float:
    """Percent of ``images`` (uint8 28x28) the classifier reads as ``labels``."""
    right = 0
    for k in range(0, len(images), batch):
        p = clf.probabilities(contract.to_model_input(images[k : k + batch]))
        right += int((p.argmax(axis=1) == labels[k : k + batch]).sum())
    return 100.0 * right / len(images)


Progress = Callable[[str], None]


def benchmark(models: Sequence[Path], options: BenchmarkOptions = BenchmarkOptions(), data: str | os.PathLike | None = None,
              progress: Progress | None = None) -> Report:
    """Measure every model at every thread count. Every model is opened (and so checked) before any timing."""
    say = progress or (lambda _text: None)
    contracts = {path: Classifier(path, threads=1).contract for path in models}  # a bad file fails now, not after minutes
    images = [path for path, c in contracts.items() if c.crop == "image"]
    if images and data is not None:
        raise OptionsError(f"{images[0]}: an image model; --data here holds digits (mnist.npz or DIR/<digit>/ crops): "
                           "measure its accuracy with edgekit validate EXPORT --data DIR, or drop --data to time it")
    labelled = load_labelled(data) if data is not None else None
    x = labelled[0] if labelled else None
    frames = list(camera_like_frames(DISTINCT_FRAMES, *(labelled if labelled else (None, None)), seed=0))
    digit_singles = contract.to_model_input(x[:DISTINCT_FRAMES]) if x is not None else \
        contract.to_model_input(np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (28, 28)) for f, _ in frames]))
    n = options.frames
    rows: list[Row] = []
    total = len(models) * len(options.threads)
    for path in models:
        acc = None
        image_model = contracts[path].crop == "image"
        singles = prepare([f for f, _ in frames], contracts[path]) if image_model else digit_singles
        for threads in options.threads:
            where = f"[{len(rows) + 1}/{total}] {path.name}, {threads} thread{'s' if threads > 1 else ''}"
            clf = Classifier(path, threads=threads)
            if labelled is not None and acc is None:
                say(f"{where}: accuracy on {len(x):,} images")
                acc = accuracy(clf, *labelled)
            say(f"{where}: model invoke x {n}")
            for k in range(WARMUP):
                clf.probabilities(singles[k % len(singles)][None])
            invoke = []
            for k in range(n):
                one = singles[k % len(singles)][None]
                t = time.perf_counter()
                clf.probabilities(one)
                invoke.append(time.perf_counter() - t)
            say(f"{where}: frame -> digit x {n}")
            for k in range(WARMUP):
                clf.classify(frames[k % len(frames)][0])
            per_frame, right = [], 0
            for k in range(n):
                frame, label = frames[k % len(frames)]
                t = time.perf_counter()
                p = clf.classify(frame)
                per_frame.append(time.perf_counter() - t)
                right += p.digit == label
            i50, i95 = _percentiles(invoke)
            f50, f95 = _percentiles(per_frame)
            rows.append(Row(path.name, clf.format, clf.quantization, threads, path.stat().st_size, acc, i50, i95,
                            f50, f95, n / sum(per_frame), None if image_model else right / n, peak_rss_mb()))
            del clf
    import platform

    machine = {"python": platform.python_version(), "machine": platform.machine(), "cores": os.cpu_count(),
               "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    return Report(rows, options, str(data) if data is not None else None, len(x) if x is not None else 0, machine=machine)


def format_table(report: Report) -> str:
    """The report as one table and the recommendation line."""
    head = (f"{'artifact':<24}{'threads':>8}{'size MB':>9}{'accuracy':>10}{'invoke p50':>12}{'p95':>7}"
            f"{'frame p50':>11}{'p95':>7}{'FPS':>7}{'peak MB':>9}")
    lines = [head]
    for r in report.rows:
        acc = f"{r.accuracy:.2f}%" if r.accuracy is not None else "-"
        lines.append(f"{r.file:<24}{r.threads:>8}{r.bytes / 1e6:>9.2f}{acc:>10}{r.invoke_p50_ms:>12.3f}{r.invoke_p95_ms:>7.3f}"
                     f"{r.frame_p50_ms:>11.2f}{r.frame_p95_ms:>7.2f}{r.fps:>7.0f}{r.peak_rss_mb:>9.0f}")
    w, h = report.frame_size
    data = f"accuracy on {report.images:,} labelled images from {report.data}" if report.data else "no --data: accuracy not measured"
    lines += [
        "",
        f"times in ms over {report.options.frames} calls each after {WARMUP} warm-up calls; frames {w}x{h}; {data}; "
        "peak MB is the process's so far",
        report.recommendation_line(),
    ]
    return "\n".join(lines)


__all__ = ["BenchmarkOptions", "Report", "Row", "benchmark", "camera_like_frames", "format_table", "load_labelled",
           "model_files", "parse_threads", "peak_rss_mb"]
