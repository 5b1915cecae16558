"""edgekit.runtime: what goes on the device. Imports numpy, cv2 and one inference backend, never TensorFlow.

    from edgekit.runtime import Classifier
    clf = Classifier("model_int8.tflite")
    clf.classify(frame)  # Prediction(digit=7, confidence=0.98, box=(x, y, w, h))
"""

from edgekit.runtime.classifier import NO_DIGIT, Classifier, Prediction

__all__ = ["Classifier", "NO_DIGIT", "Prediction"]
