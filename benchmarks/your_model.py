"""Your own model (issue 23): models no one tuned for edgekit, trained on real images, then exported, validated and
run through the CLI exactly as a user would.

    python benchmarks/your_model.py --data ../shared/data/mnist.npz [--work DIR] [--epochs N]

Two models besides the seed CNN, on real images (MNIST digits rendered another way; ``tests/colour_digits.py``):

- ``mobilenetv3small``: ``keras.applications.MobileNetV3Small`` (``weights=None``; its own ``Rescaling`` layer,
  so raw pixels; softmax), 64x64x3 colour digits 0-4 (five classes named zero..four), BatchNormalization momentum
  0.9 so its moving statistics settle in a short training;
- ``gray48``: a small CNN at 48x48x1, grayscale digits 0-6 in dark ink on light paper (seven classes), no Rescaling
  layer (``--scale`` given), logits.

Each is trained on 1,000 images per class of the MNIST training split, exported with ``edgekit export --format all
--data TRAIN_DIR`` (int8 calibrated on those images), validated with ``edgekit validate EXPORT --data VAL_DIR`` on
200 images per class of the MNIST test split (never trained on), and one image is read with ``edgekit predict
--top 3``. Then the int8 artifacts again with ``--max-drop P`` for each P in ``MAX_DROPS`` (``edgekit export
--quantize int8 --max-drop P``: the drop is measured on training images held out from calibration, and while it
exceeds P the most sensitive layers stay float), validated on the same VAL_DIR. Per artifact: size, accuracy, Δ to
Keras, top-1 agreement, p50 latency, and for the ``--max-drop`` rows the layers kept in float. Writes
benchmarks/results/your_model.json. Goals (issue 23): float artifacts agree >= 99.9 % with Keras; int8 within 0.5
point of Keras after ``--max-drop 0.5``.

``--work DIR`` keeps the datasets, models and exports; run again with the same DIR and a model already trained there
(DIR/NAME/model.keras) is loaded instead of trained again (``--retrain`` to train anyway).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import colour_digits as cd  # noqa: E402  (the tests' renderer of real digits in colour)

TRAIN_PER_CLASS, VAL_PER_CLASS = 1000, 200
MAX_DROPS = (0.5, 0.15)  # the goal; validate's default int8 threshold
DIGITS = ("zero", "one", "two", "three", "four", "five", "six")


def dataset(mnist, classes: int, size: int, colour: bool, train: bool, per_class: int, seed: int):
    """(uint8 images, class indices into sorted names, sorted names) of digits 0..classes-1 rendered at ``size``."""
    x, y = (mnist.x_train, mnist.y_train) if train else (mnist.x_test, mnist.y_test)
    names = tuple(sorted(DIGITS[:classes]))
    index = np.concatenate([np.flatnonzero(y == d)[:per_class] for d in range(classes)])
    labels = np.asarray([names.index(DIGITS[d]) for d in y[index]], np.int64)
    if colour:
        return cd.render(x[index], seed, size=size), labels, names
    import cv2

    gray = np.stack([255 - cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR) for img in x[index]])
    return gray, labels, names  # dark ink on light paper


def write_folder(root: Path, x: np.ndarray, y: np.ndarray, names) -> Path:
    import cv2

    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(x, y)):
        cv2.imwrite(str(root / names[label] / f"{i:05d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img)
    return root


def mobilenet(classes: int, size: int):
    import keras

    model = keras.applications.MobileNetV3Small(input_shape=(size, size, 3), weights=None, classes=classes,
                                                include_preprocessing=True)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9  # short training: let the moving statistics settle
    return model, "sparse_categorical_crossentropy", 1.0


def small_gray(classes: int, size: int):
    import keras
    from keras import layers

    model = keras.Sequential([
        keras.Input((size, size, 1), name="image"),
        layers.Conv2D(16, 3, activation="relu"), layers.BatchNormalization(momentum=0.9), layers.MaxPooling2D(),
        layers.Conv2D(32, 3, activation="relu"), layers.BatchNormalization(momentum=0.9), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(classes),
    ], name="gray48")
    return model, keras.losses.SparseCategoricalCrossentropy(from_logits=True), 1 / 255


MODELS = {
    # name: (build, classes, size, colour, export options beyond --data)
    "mobilenetv3small": (mobilenet, 5, 64, True, ["--color", "rgb"]),
    "gray48": (small_gray, 7, 48, False, ["--scale", str(1 / 255)]),
}


def edgekit(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "edgekit.toolkit.cli", *map(str, args)]
    print("  $ edgekit " + " ".join(map(str, args)), flush=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def validate(name: str, export_dir: Path, val_dir: Path, report: Path) -> dict:
    validated = edgekit("validate", export_dir, "--data", val_dir, "--json", report, "--latency-runs", "100")
    print(validated.stdout, flush=True)
    if validated.returncode not in (0, 1):
        raise SystemExit(f"validate of {name} failed: {validated.stderr.strip().splitlines()[-1]}")
    return json.loads(report.read_text())


def artifacts(data: dict) -> dict:
    return {a["name"]: {k: a[k] for k in ("bytes", "accuracy", "delta_accuracy", "agreement", "max_abs_diff",
                                          "latency_p50_ms", "status")} for a in data["artifacts"]}


def with_max_drop(name: str, model_path: Path, train_dir: Path, val_dir: Path, options, points: float) -> dict:
    """The int8 artifacts exported with ``--max-drop points``, validated on VAL_DIR; the layers kept in float from
    the manifest (an empty list: int8 was already within the budget on the held-out training images)."""
    tag = f"max-drop-{points:g}"
    export_dir = model_path.parent / f"export-{tag}"
    exported = edgekit("export", "--model", model_path, "--format", "all", "--quantize", "int8", "--max-drop", points,
                       "--data", train_dir, "--out", export_dir, *options)
    print(exported.stdout, flush=True)
    if exported.returncode:
        return {"max_drop": points, "error": exported.stderr.strip().splitlines()[-1]}
    manifest = json.loads((export_dir / "manifest.json").read_text())
    selective = {a["file"]: a.get("selective") for a in manifest["artifacts"]}
    rows = artifacts(validate(name, export_dir, val_dir, model_path.parent / f"validate-{tag}.json"))
    for file, row in rows.items():
        s = selective.get(file) or {}
        row["float_layers"] = s.get("float_layers", [])
        row["holdout_drop_int8"], row["holdout_drop"] = s.get("drop_int8"), s.get("drop")
        row["holdout_images"] = s.get("holdout_images")
    return {"max_drop": points, "artifacts": rows}


def run(name: str, mnist, work: Path, epochs: int, seed: int, retrain: bool) -> dict:
    import keras

    build, classes, size, colour, options = MODELS[name]
    x_train, y_train, names = dataset(mnist, classes, size, colour, True, TRAIN_PER_CLASS, seed)
    x_val, y_val, _ = dataset(mnist, classes, size, colour, False, VAL_PER_CLASS, seed + 1)
    train_dir = write_folder(work / name / "train", x_train, y_train, names)
    val_dir = write_folder(work / name / "val", x_val, y_val, names)
    model_path = work / name / "model.keras"
    train_seconds = None  # loaded, not trained, in this run
    if retrain or not model_path.exists():
        keras.utils.set_random_seed(seed)
        model, loss, scale = build(classes, size)
        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss, metrics=["accuracy"])
        inputs = (x_train if colour else x_train[..., None]).astype(np.float32) * scale
        start = time.perf_counter()
        model.fit(inputs, y_train, batch_size=64, epochs=epochs, verbose=0, shuffle=True)
        train_seconds = round(time.perf_counter() - start, 1)
        model.save(model_path)
    export_dir = work / name / "export"
    exported = edgekit("export", "--model", model_path, "--format", "all", "--data", train_dir, "--out", export_dir, *options)
    if exported.returncode:
        raise SystemExit(f"export of {name} failed: {exported.stderr.strip().splitlines()[-1]}")
    data = validate(name, export_dir, val_dir, work / name / "validate.json")
    image = sorted((val_dir / names[0]).iterdir())[0]
    predicted = edgekit("predict", export_dir / "model_int8.tflite", image, "--top", "3")
    contract = next(line for line in exported.stdout.splitlines() if line.strip().startswith("input:")).strip()
    return {
        "model": name, "input": [size, size, 3 if colour else 1], "classes": list(names),
        "train_images": int(len(y_train)), "val_images": int(len(y_val)), "epochs": epochs,
        "train_seconds": train_seconds, "contract": contract,
        "keras": {"accuracy": data["reference"]["accuracy"], "bytes": data["reference"]["bytes"]},
        "artifacts": artifacts(data),
        "predict": predicted.stdout.strip(),
        "max_drop": [with_max_drop(name, model_path, train_dir, val_dir, options, p) for p in MAX_DROPS],
    }


def table(r: dict) -> str:
    trained = f"{r['train_seconds']:.0f} s" if r["train_seconds"] is not None else "loaded"
    lines = [f"{r['model']}: {'x'.join(map(str, r['input']))}, {len(r['classes'])} classes, Keras {r['keras']['accuracy']:.2f} % "
             f"on {r['val_images']:,} held-out images ({r['epochs']} epochs, {trained})",
             f"  {'artifact':<34}{'MB':>7}{'accuracy':>10}{'Δ':>7}{'agree':>9}{'p50 ms':>8}  float layers"]

    def row(label: str, a: dict, float_layers: str = "") -> str:
        return (f"  {label:<34}{a['bytes'] / 1e6:>7.2f}{a['accuracy']:>9.2f}%{a['delta_accuracy']:>+7.2f}"
                f"{a['agreement']:>8.2f}%{a['latency_p50_ms']:>8.2f}  {float_layers}")

    lines += [row(name, a) for name, a in r["artifacts"].items()]
    for m in r["max_drop"]:
        if "error" in m:
            lines.append(f"  --max-drop {m['max_drop']:g}: {m['error']}")
            continue
        lines += [row(f"{name} --max-drop {m['max_drop']:g}", a, ", ".join(a["float_layers"]) or "none")
                  for name, a in m["artifacts"].items()]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="Keras-layout mnist.npz")
    ap.add_argument("--work", default=None, help="Folder for datasets, models and exports (default: a temporary one).")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--retrain", action="store_true", help="Train even if --work already holds NAME/model.keras.")
    ap.add_argument("--out", default=str(HERE / "results" / "your_model.json"))
    args = ap.parse_args()
    from edgekit.export.data import load_mnist

    mnist = load_mnist(args.data)
    with tempfile.TemporaryDirectory(prefix="your-model-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        results = []
        for name in args.models.split(","):
            print(f"{name}:", flush=True)
            results.append(run(name, mnist, work, args.epochs, args.seed, args.retrain))
            print(table(results[-1]) + "\n" + results[-1]["predict"], flush=True)
    doc = {"machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
           "command": "python benchmarks/your_model.py " + " ".join(sys.argv[1:]), "models": results}
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
