"""edgekit.runtime: what goes on the device. Imports numpy, cv2 and one inference backend, never TensorFlow.

    from edgekit.runtime import Classifier
    clf = Classifier("model_int8.tflite")
    clf.classify(frame)  # Prediction(digit=7, confidence=0.98, box=(x, y, w, h))

``Classifier`` and friends are imported on first use (PEP 562), so ``import edgekit.runtime.errors`` -- what the
command line needs to start -- loads neither numpy nor OpenCV.
"""

from __future__ import annotations

__all__ = ["Classifier", "NO_DIGIT", "Prediction"]


def __getattr__(name: str):
    if name in __all__:
        from edgekit.runtime import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'edgekit.runtime' has no attribute {name!r}")
