"""Front-end: quantized ONNX -> canonical quantized IR (being written)."""
