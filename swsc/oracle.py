"""onnxruntime running the original quantized model: the oracle swsc is held to."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from .errors import InvalidModelError

_ELEM = {"uint8": onnx.TensorProto.UINT8, "int8": onnx.TensorProto.INT8,
         "uint16": onnx.TensorProto.UINT16, "int16": onnx.TensorProto.INT16,
         "float32": onnx.TensorProto.FLOAT, "int32": onnx.TensorProto.INT32}


def session(model: onnx.ModelProto, *, threads: int = 1, file: str | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session computing what the quantized model means.

    On x86 CPUs without VNNI, onnxruntime's default uint8 x int8 kernels add pairs of
    products in saturating int16, so models with full 8-bit weights come out wrong by
    many LSBs (measured: 93% of a LeNet's logits). The session option
    ``session.x64quantprecision`` selects exact kernels, i.e. what VNNI machines compute.
    onnxruntime has no QGemm kernel for the int8 activations that mode produces; there the
    default session is used, whose int8 x int8 kernels do not saturate.
    """
    data = model.SerializeToString()
    last = None
    for precise in (True, False):
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
        so.log_severity_level = 4 if precise else 3   # a refused precise mode is not the user's error
        if precise:
            so.add_session_config_entry("session.x64quantprecision", "1")
        try:
            return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            last = e
    raise InvalidModelError(f"onnxruntime cannot run the model: {last}".splitlines()[0], file=file) from last


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
        self.sess = session(model, threads=threads, file=str(path))
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        dim0 = inp.shape[0] if inp.shape else None
        self.fixed_batch = dim0 if isinstance(dim0, int) and dim0 > 0 else None
        self.output_names = [o.name for o in self.sess.get_outputs()]
        # a batch-1 model may drop the batch axis of an output (x.flatten(0): [10], not [1, 10])
        self.batchless = {o.name for o in self.sess.get_outputs() if self.fixed_batch == 1 and
                          (not o.shape or o.shape[0] != 1)}

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
                parts[name].append(v[None] if name in self.batchless else v[:n])
            if progress:
                progress(min(start + step, len(x)))
        return {k: np.concatenate(v) for k, v in parts.items()}
