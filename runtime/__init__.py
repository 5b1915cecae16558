"""edgekit.runtime: what goes on the device. Imports numpy, cv2 and one inference backend, never TensorFlow."""
