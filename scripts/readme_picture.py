"""Make the README's picture with the product itself: camera-like frames of real MNIST test digits go through
``edgekit webcam``'s own loop (``run_loop``) and overlay (``annotate``), and one annotated frame is saved as a
small PNG.

    python scripts/readme_picture.py MODEL.tflite --data mnist.npz [--out docs/overlay.png] [--index 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edgekit.runtime import Classifier
from edgekit.runtime.camera import IterSource, annotate, run_loop
from edgekit.toolkit.synthetic import mnist_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", required=True, help="a Keras-layout mnist.npz")
    parser.add_argument("--out", default="docs/overlay.png")
    parser.add_argument("--index", type=int, default=3, help="which of the frames to keep (the FPS needs a few)")
    parser.add_argument("--width", type=int, default=400, help="width of the saved picture, pixels")
    args = parser.parse_args()

    with np.load(args.data) as mnist:
        images, labels = mnist["x_test"][: args.index + 1], mnist["y_test"][: args.index + 1]
    frames = [frame for frame, _, _ in mnist_frames(images, labels, seed=0)]
    results = []
    run_loop(IterSource(frames), Classifier(args.model), results.append)
    kept = results[args.index]
    picture = annotate(kept)
    h, w = picture.shape[:2]
    picture = cv2.resize(picture, (args.width, round(h * args.width / w)), interpolation=cv2.INTER_AREA)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(args.out, picture, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"cannot write {args.out}")
    p = kept.prediction
    print(f"{args.out}: frame {kept.index}, label {int(labels[args.index])}, read {p.digit} ({p.confidence:.1%}), "
          f"{Path(args.out).stat().st_size} bytes")


if __name__ == "__main__":
    main()
