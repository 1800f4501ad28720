"""Helpers for the front-end tests: run onnxruntime with intermediates exposed and
compare its integer tensors with the reference evaluator's."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODELS = Path(__file__).resolve().parent / "models"
INT_TYPES = (np.uint8, np.int8, np.uint16, np.int16)       # quantized activations (16-bit: A16W8)


def ort_quantize(src, dst, xs, fmt: str = "qdq", **options) -> Path:
    """onnxruntime's ``quantize_static`` of the float model ``src`` into ``dst``, calibrated on the
    frames ``xs`` [N, 1, ...] of its input "input": QDQ or QOperator (``fmt`` qdq/qop), uint8
    activations and 7-bit int8 weights unless ``options`` say otherwise (onnxruntime's x86 u8 x s8
    kernels saturate with 8-bit ones, tests/corpus.py)."""
    from onnxruntime import quantization as oq

    class Reader(oq.CalibrationDataReader):
        def __init__(self):
            self.it = iter({"input": x} for x in xs)

        def get_next(self):
            return next(self.it, None)

    args = dict(quant_format=oq.QuantFormat.QDQ if fmt == "qdq" else oq.QuantFormat.QOperator, reduce_range=True,
                activation_type=oq.QuantType.QUInt8, weight_type=oq.QuantType.QInt8)
    oq.quantize_static(str(src), str(dst), Reader(), **{**args, **options})
    return Path(dst)


def ort_session(model: onnx.ModelProto):
    """onnxruntime in the mode the reference evaluator is bit-exact with (swsc.oracle.session:
    exact U8S8 kernels on non-VNNI x86)."""
    from swsc.oracle import session

    return session(model, threads=0)


def run_ort(path, xs: np.ndarray, extra=()) -> dict[str, np.ndarray]:
    """Run the ONNX model on xs (any N), exposing the tensors named in extra as outputs."""
    model = onnx.load(str(path))
    have = {o for n in model.graph.node for o in n.output}
    outs = {o.name for o in model.graph.output}
    for e in extra:
        if e in have and e not in outs:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(e))
    sess = ort_session(model)
    inp = sess.get_inputs()[0]
    b = inp.shape[0]
    step = b if isinstance(b, int) and b > 0 else len(xs)
    names = [o.name for o in sess.get_outputs()]
    res = {n: [] for n in names}
    for i in range(0, len(xs), step):
        chunk = xs[i:i + step]
        pad = step - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
        for n, v in zip(names, sess.run(names, {inp.name: chunk})):
            res[n].append(v[:len(chunk) - pad] if pad else v)
    return {n: np.concatenate(v) for n, v in res.items()}


def compare(graph, path, xs, *, intermediates=True):
    """Per integer tensor shared by the IR and the ORT model: (n_equal, n_total, max_abs_diff).

    Returns (final, inter): final compares the integer tensor feeding each output's
    Dequantize (the last quantized tensor), inter every other shared quantized tensor."""
    from runtime.reference import evaluate

    ref = evaluate(graph, xs, keep=True)
    # Exposing intermediates as outputs stops onnxruntime from running int8 QDQ tensors as
    # uint8 (its s8->u8 rewrite needs single-consumer Q nodes), so the intermediates are
    # compared with the reference evaluated without that conversion.
    plain = graph
    if "ort_int8_qdq" in graph.meta:
        plain = graph.clone()
        del plain.meta["ort_int8_qdq"]
    ref_plain = evaluate(plain, xs, keep=True) if plain is not graph else ref
    ints = [k for k, t in graph.tensors.items() if t.quant is not None and not t.is_const]
    finals = []
    for o in graph.outputs:
        p = next((n for n in graph.nodes if o in n.outputs), None)
        while p is not None and p.op in ("Softmax", "Dequantize"):
            src = p.inputs[0]
            if graph.tensors[src].quant is not None:
                finals.append(src)
                break
            p = next((n for n in graph.nodes if src in n.outputs), None)
    # the final integer tensors of the pristine model (no extra outputs: fusion as is)
    ort_final = run_ort(path, xs, finals)
    ort_all = run_ort(path, xs, ints) if intermediates else {}
    # Intermediates are compared layer by layer: each node runs on onnxruntime's own
    # values of its inputs, so a 1-LSB difference upstream does not cascade.
    from runtime.reference import run_node
    env = dict(ref_plain)
    for k, v in ort_all.items():
        if k in env and v.dtype in INT_TYPES:
            env[k] = v.reshape(env[k].shape)
    env.update({k: t.data for k, t in plain.tensors.items() if t.is_const})
    local = {}
    for n in plain.nodes:
        if n.outputs[0] in ort_all and n.outputs[0] not in finals:
            local[n.outputs[0]] = run_node(plain, n, env)
        elif n.outputs[0] not in ort_all and not plain.tensors[n.outputs[0]].is_const:
            # a tensor only the IR has (a Concat input's requantization, an upsampling index
            # map): recomputed from onnxruntime's values too, so nothing upstream leaks through it
            env[n.outputs[0]] = run_node(plain, n, env)
    stats_f, stats_i = {}, {}
    for name in ints:
        src = ort_final if name in finals else ort_all
        if name not in src or src[name].dtype not in INT_TYPES:
            continue
        if name in finals:
            a = ref[name].astype(np.int64)
        elif name in local:
            a = local[name].astype(np.int64)
        else:
            continue
        b = src[name].astype(np.int64).reshape(a.shape)
        d = np.abs(a - b)
        (stats_f if name in finals else stats_i)[name] = (int((d == 0).sum()), int(d.size), int(d.max()))
    return ref, stats_f, stats_i, ort_final


def assert_matches_onnxruntime(name, graph, path, xs, *, min_exact):
    """The reference evaluator against onnxruntime on ``xs``: every compared integer tensor within
    1 LSB and equal on at least ``min_exact`` of its elements, top-1 equal; returns per tensor
    (kind, name, equal fraction, max LSB)."""
    ref, finals, inter, ort_final = compare(graph, path, xs)
    assert finals, f"{name}: no final quantized tensor compared"
    report = []
    for stats, kind in ((finals, "final"), (inter, "intermediate")):
        for t, (eq, tot, mx) in stats.items():
            report.append((kind, t, eq / tot, mx))
            assert mx <= 1, f"{name}: {kind} tensor '{t}' differs from onnxruntime by {mx} LSB"
            assert eq / tot >= min_exact, f"{name}: {kind} tensor '{t}' equal on only {eq}/{tot}"
    for t in finals:
        a = ref[t].reshape(len(xs), -1).argmax(axis=1)
        b = ort_final[t].reshape(len(xs), -1).argmax(axis=1)
        assert np.array_equal(a, b), f"{name}: top-1 differs on {(a != b).sum()} samples"
    return report


def exact_snn(graph, xs, *, tc: int = 8):
    """Compile ``graph`` at ``Ts = Tc - 1`` (integer-lowered) and assert that its SNN equals the
    exact quantized ANN on every tensor both have, in float and integer mode. The exact ANN is
    the fold-zero-points graph in exact arithmetic (as tests/test_conversion.py takes it), not
    the reference evaluator, which mirrors onnxruntime's float32 requantization.
    Returns (compiled graph, integer-mode run, number of tensors compared)."""
    from swsc.compiler import compile_graph
    from swsc.options import CompileOptions
    from swsc.passes import FoldZeroPoints
    from swsc.passmanager import PassManager
    from swsc.runtime import interpreter

    ann = interpreter.run(PassManager([FoldZeroPoints()]).run(graph.clone()), xs, intermediate=True).intermediates
    sg = compile_graph(graph, CompileOptions(tc=tc, ts=tc - 1), integer=True)
    snn = interpreter.run(sg, xs, intermediate=True, mode="int")
    fl = interpreter.run(sg, xs, intermediate=True, mode="float")
    seen = 0
    for name in ann:
        for mode, run in (("int", snn), ("float", fl)):
            if name in run.intermediates:
                seen += 1
                assert np.array_equal(np.rint(run.intermediates[name]), np.rint(ann[name])), \
                    f"tensor '{name}' ({mode} mode) differs from the exact ANN"
    return sg, snn, seen


def assert_c_equals_int(sg, snn, xs, c_dir, cflags: str | None = None):
    """The gcc-built C of ``sg`` equals its numpy integer-mode run ``snn`` on ``xs``: the decoded
    output and every layer's spike counts."""
    from swsc.runtime import cbackend

    cbackend.emit_c(sg, c_dir)
    exe = cbackend.build(c_dir, cflags=cflags) if cflags else cbackend.build(c_dir)
    out, counts = cbackend.run_binary(exe, cbackend.quantize_input(sg, xs))
    dec = sg.producer(sg.outputs[0]).inputs[0]
    assert np.array_equal(np.asarray(out).reshape(-1), np.rint(snn.intermediates[dec]).reshape(-1))
    assert counts == {s.name: (s.spikes_pos, s.spikes_neg) for s in snn.layers}
    return counts
