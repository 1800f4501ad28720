"""Data files: what ``--data`` takes, read and checked in one place.

An ``.npz`` with ``x`` (float32 samples on axis 0, each shaped like the graph's one input
without its batch axis) and optional integer labels ``y``; or an ``.npy`` holding just the
samples (no labels). Anything else is refused with why. Inputs that the model's input
quantizer would mostly clamp (raw 0..255 pixels into a model quantized for 0..1) still run,
with a warning: they change accuracy silently otherwise.
"""
from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np

from .errors import InvalidModelError, SwscWarning, UsageError
from .ir import Graph, scalar

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")   # a zip with members, an empty zip
#: warn when more than this fraction of the input values is clamped by the input quantizer
CLAMP_WARN_FRACTION = 0.01


def _not_data(path: Path, why: str) -> InvalidModelError:
    return InvalidModelError(f"not an .npz/.npy data file: {why}", file=str(path),
                             hint="save inputs as np.savez(path, x=..., y=...) or np.save(path, x)")


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, y or None) from an .npz or .npy, or an error saying why the file is neither."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
    except OSError as e:
        raise _not_data(path, e.strerror or str(e)) from e
    if head.startswith(NPY_MAGIC):
        try:
            return np.load(path, allow_pickle=False), None
        except (OSError, ValueError) as e:
            raise _not_data(path, f"the .npy array cannot be read ({str(e).splitlines()[0]})") from e
    if not head.startswith(ZIP_MAGICS):
        looks = " (it looks like a model: --data takes input samples)" if path.suffix == ".onnx" else ""
        raise _not_data(path, f"it is neither a zip archive (.npz) nor a numpy array (.npy){looks}")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f:
                raise InvalidModelError(f"has no array 'x' (keys: {', '.join(f.files) or 'none'})",
                                        file=str(path), hint="save inputs as np.savez(path, x=..., y=...)")
            return f["x"], (f["y"] if "y" in f else None)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise _not_data(path, f"the .npz archive cannot be read ({str(e).splitlines()[0]})") from e


def _labels(y: np.ndarray, n: int, path: Path) -> np.ndarray:
    """``y`` as int64 class indices [n], or an error: never truncated (0.5 is not class 0)."""
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1:
        raise InvalidModelError(f"'y' is {list(y.shape)}: one row per sample, not one class index",
                                file=str(path), hint="labels are class indices; for one-hot rows save y.argmax(1)")
    def not_labels(why) -> InvalidModelError:
        return InvalidModelError(f"'y' is not integer labels ({why})", file=str(path),
                                 hint="y holds one class index per sample")

    flat = y.reshape(-1)
    if flat.dtype.kind == "f" and (bad := np.flatnonzero(~np.isfinite(flat) | (flat != np.round(flat)))).size:
        raise not_labels(f"it holds non-integer numbers, e.g. {flat[bad[0]]:g}")
    try:
        return flat.astype(np.int64)
    except (TypeError, ValueError) as e:
        raise not_labels(e) from e


def load_data(path: str | Path, graph: Graph) -> tuple[np.ndarray, np.ndarray | None]:
    """The data-file contract (module docstring): returns (x float32 [N, ...], y int64 [N] or None)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"data file '{path}' is a directory", hint="--data takes an .npz or .npy file")
    if not path.exists():
        raise UsageError(f"data file '{path}' does not exist")
    if len(graph.inputs) != 1:
        raise UsageError(f"the model has {len(graph.inputs)} inputs ({', '.join(graph.inputs)}); a data file "
                         "feeds one array 'x'", file=graph.meta.get("source"), hint="run multi-input models "
                         "from Python: swsc.runtime.interpreter.run(graph, {input name: array})")
    frame_shape = tuple(graph.tensors[graph.inputs[0]].shape[1:])
    x_raw, y_raw = _read_arrays(path)
    if x_raw.dtype.kind not in "biuf":
        raise InvalidModelError(f"'x' holds {x_raw.dtype} values, not numbers", file=str(path))
    x = np.asarray(x_raw, dtype=np.float32)
    if x.shape[1:] != tuple(frame_shape):
        if x.shape == tuple(frame_shape):
            x = x[None]
        else:
            raise InvalidModelError(f"'x' has samples of shape {list(x.shape[1:])}, the model takes "
                                    f"{list(frame_shape)}", file=str(path),
                                    hint="x is [samples, *input shape without batch]")
    if len(x) == 0:
        raise InvalidModelError("'x' has no samples", file=str(path))
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argmax(bad.reshape(len(x), -1).any(axis=1)))
        raise InvalidModelError(f"'x' has {int(bad.sum())} NaN or infinite values (the first in sample {first})",
                                file=str(path), hint="inputs must be finite numbers")
    y = None if y_raw is None else _labels(np.asarray(y_raw), len(x), path)
    if y is not None and len(y) != len(x):
        raise InvalidModelError(f"'y' has {len(y)} labels for {len(x)} samples", file=str(path))
    warn_if_clamped(graph, x, str(path))
    return x, y


def input_quantizer(graph: Graph):
    """The Quant of the graph input's quantizer (front-end Quantize or compiled SwsEncode), or None."""
    for node in graph.nodes:
        q = graph.tensors[node.outputs[0]].quant
        if node.inputs[:1] == graph.inputs[:1] and q is not None:   # only the quantizer reads the float input
            if np.size(q.scale) == 1 and np.size(q.zero_point) == 1:
                return q
    return None


def clamped_fraction(graph: Graph, x: np.ndarray) -> tuple[float, float, float] | None:
    """(fraction of x's values the input quantizer clamps, its float range lo, hi), or None."""
    q = input_quantizer(graph)
    if q is None or x.size == 0:
        return None
    s, z = np.float32(scalar(q.scale)), np.float32(scalar(q.zero_point))
    v = np.rint(x / s) + z           # onnxruntime's QuantizeLinear, in float32, before its clamp
    frac = float(((v < q.lo) | (v > q.hi)).mean())
    return frac, float((q.lo - z) * s), float((q.hi - z) * s)


def warn_if_clamped(graph: Graph, x: np.ndarray, file: str) -> None:
    c = clamped_fraction(graph, x)
    if c is not None and c[0] > CLAMP_WARN_FRACTION:
        frac, lo, hi = c
        warnings.warn(SwscWarning(
            f"{file}: {100 * frac:.1f}% of the input values lie outside the input quantizer's range "
            f"[{lo:.4g}, {hi:.4g}] and are clamped (x ranges over [{float(x.min()):.4g}, {float(x.max()):.4g}]; "
            "scale the inputs as the model was trained, e.g. pixels / 255)"), stacklevel=2)
