"""edgekit.export: one module per target format, quantization, parity validation (TensorFlow imported lazily)."""
