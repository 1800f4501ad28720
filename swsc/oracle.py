"""onnxruntime running the original quantized model: the oracle swsc is held to."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from .errors import InvalidModelError

_ELEM = {"uint8": onnx.TensorProto.UINT8, "int8": onnx.TensorProto.INT8,
         "float32": onnx.TensorProto.FLOAT, "int32": onnx.TensorProto.INT32}


class Oracle:
    """An onnxruntime session over a model, optionally exposing extra tensors as outputs.

    Handles the batch dimension: a model with a fixed batch B is fed in chunks of B
    (the last one padded), a symbolic batch in chunks of up to ``chunk`` samples.
    """

    def __init__(self, path: str | Path, extra: dict[str, str] | None = None, *, threads: int = 1):
        model = onnx.load(str(path))
        have = {o.name for o in model.graph.output}
        for name, dtype in (extra or {}).items():
            if name not in have:
                model.graph.output.append(onnx.helper.make_tensor_value_info(name, _ELEM[dtype], None))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        try:
            self.sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise InvalidModelError(f"onnxruntime cannot run the model: {e}".splitlines()[0], file=str(path)) from e
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        dim0 = inp.shape[0] if inp.shape else None
        self.fixed_batch = dim0 if isinstance(dim0, int) and dim0 > 0 else None
        self.output_names = [o.name for o in self.sess.get_outputs()]

    def run(self, x: np.ndarray, chunk: int = 256, progress=None) -> dict[str, np.ndarray]:
        x = np.asarray(x, dtype=np.float32)
        step = self.fixed_batch or chunk
        parts: dict[str, list] = {n: [] for n in self.output_names}
        for start in range(0, len(x), step):
            xb = x[start:start + step]
            n = len(xb)
            if self.fixed_batch and n < self.fixed_batch:
                xb = np.concatenate([xb, np.repeat(xb[-1:], self.fixed_batch - n, axis=0)])
            outs = self.sess.run(None, {self.input_name: xb})
            for name, v in zip(self.output_names, outs):
                parts[name].append(v[:n])
            if progress:
                progress(min(start + step, len(x)))
        return {k: np.concatenate(v) for k, v in parts.items()}
