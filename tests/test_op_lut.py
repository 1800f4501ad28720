"""Elementwise nonlinearities as tables (swsc/ops/lut.py, swsc/frontend/match_unary.py) against
independent oracles: onnxruntime on models quantized by onnxruntime's quantize_static (QDQ, and
QOperator with its QLinearSigmoid / QLinearLeakyRelu), a torch.onnx.export'ed net, the exact
quantized ANN for the SNN (at Ts = Tc - 1 on every tensor, and the table layer itself at any Ts),
and the gcc-built C for the integer mode."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from frontend_util import assert_c_equals_int, assert_matches_onnxruntime, exact_snn, ort_quantize
from onnx import TensorProto, helper, numpy_helper

from swsc.compiler import compile_graph, import_onnx
from swsc.errors import UnsupportedOpError
from swsc.options import CompileOptions
from swsc.passes import FoldZeroPoints
from swsc.passmanager import PassManager
from swsc.runtime import interpreter, reference
from swsc.tune import Target, Tuner, t_inf, tsa_layers

ort_quant = pytest.importorskip("onnxruntime.quantization")

#: the functions of the test model, in turn, a 1x1 conv before each (so every function sees a
#: fresh signed input); "chain" is Sigmoid -> Tanh (quantize_static quantizes between them:
#: test_chain_is_one_table removes that)
FUNCTIONS = ["Sigmoid", "LeakyRelu", "Tanh", "PRelu", "Elu", "HardSigmoid", "Softplus", "HardSwish", "Exp", "Neg",
             "Abs", "chain"]


def _fn_nodes(op, x, y, k, inits):
    if op == "LeakyRelu":
        return [helper.make_node("LeakyRelu", [x], [y], alpha=0.1)]
    if op == "PRelu":
        slope = np.linspace(-0.5, 0.5, 8).astype(np.float32).reshape(8, 1, 1)   # one per channel
        inits.append(numpy_helper.from_array(slope, f"slope{k}"))
        return [helper.make_node("PRelu", [x, f"slope{k}"], [y])]
    if op == "Elu":
        return [helper.make_node("Elu", [x], [y], alpha=0.7)]
    if op == "HardSigmoid":
        return [helper.make_node("HardSigmoid", [x], [y], alpha=0.3, beta=0.4)]
    if op == "chain":
        return [helper.make_node("Sigmoid", [x], [f"{y}_s"]), helper.make_node("Tanh", [f"{y}_s"], [y])]
    return [helper.make_node(op, [x], [y])]


def _float_model(path) -> None:
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "c0"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b0")]
    nodes = [helper.make_node("Conv", ["input", "c0", "b0"], ["a0"], pads=[1, 1, 1, 1])]
    x = "a0"
    for k, op in enumerate(FUNCTIONS):
        if k:
            inits += [numpy_helper.from_array(rng.normal(0, 0.4, (8, 8, 1, 1)).astype(np.float32), f"c{k}"),
                      numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), f"b{k}")]
            nodes.append(helper.make_node("Conv", [x, f"c{k}", f"b{k}"], [f"a{k}"]))
            x = f"a{k}"
        nodes += _fn_nodes(op, x, f"f{k}", k, inits)
        x = f"f{k}"
    # a conv after the last function: QOperator runs a pool of a float tensor in float
    inits += [numpy_helper.from_array(rng.normal(0, 0.4, (8, 8, 1, 1)).astype(np.float32), "cl"),
              numpy_helper.from_array(rng.normal(0, 0.3, (10, 8)).astype(np.float32), "fc"),
              numpy_helper.from_array(np.zeros(10, np.float32), "bf")]
    nodes += [helper.make_node("Conv", [x, "cl"], ["al"]), helper.make_node("GlobalAveragePool", ["al"], ["g"]), helper.make_node("Flatten", ["g"], ["fl"]),
              helper.make_node("Gemm", ["fl", "fc", "bf"], ["output"], transB=1)]
    g = helper.make_graph(nodes, "functions", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 10, 10])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])], inits)
    # opset 14: HardSwish
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)], ir_version=8), str(path))


def _inputs(n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1, 3, 10, 10)).astype(np.float32)



def _quantize(src, dst, fmt):
    ort_quantize(str(src), str(dst), _inputs(16, 0), fmt)


def _torch_model(d):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    # SiLU, Mish and GELU: the legacy exporter writes x * Sigmoid(x), x * Tanh(Softplus(x)) and
    # 0.5 * x * (1 + Erf(x / sqrt 2)) (or its tanh form), arithmetic on functions of one tensor
    # (one table each)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 8, 1), nn.Hardswish(),
                        nn.Conv2d(8, 8, 1), nn.Sigmoid(), nn.Conv2d(8, 8, 1), nn.SiLU(), nn.Conv2d(8, 8, 1),
                        nn.Mish(), nn.Conv2d(8, 8, 1), nn.GELU(), nn.Conv2d(8, 8, 1), nn.GELU(approximate="tanh"),
                        nn.Conv2d(8, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), torch.zeros(1, 3, 10, 10), str(d / "float.onnx"), input_names=["input"],
                          output_names=["output"], opset_version=17, dynamo=False)
    return d / "float.onnx"


def _dynamo_model(d):
    """The activations torch's dynamo exporter writes as one ONNX op (Gelu-20, Mish-18; the legacy
    exporter decomposes them, _torch_model), and SiLU."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    nn = torch.nn
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 8, 1), nn.Mish(), nn.Conv2d(8, 8, 1),
                        nn.GELU(approximate="tanh"), nn.Conv2d(8, 8, 1), nn.SiLU(), nn.Conv2d(8, 8, 1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    with warnings.catch_warnings():      # the exporters' own deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.zeros(1, 3, 10, 10),), str(d / "float.onnx"), input_names=["input"],
                          output_names=["output"], dynamo=True, verbose=False)
    return d / "float.onnx"


def quantized_model(fmt: str, d):
    """The model of every function quantized by onnxruntime (``fmt`` qdq or qop) in ``d``."""
    _float_model(d / "float.onnx")
    _quantize(d / "float.onnx", d / "q.onnx", fmt)
    return d / "q.onnx"


@pytest.fixture(scope="module")
def qdq_model(tmp_path_factory):
    return quantized_model("qdq", tmp_path_factory.mktemp("lut-qdq"))


@pytest.fixture(scope="module")
def torch_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("lut-torch")
    _quantize(_torch_model(d), d / "q.onnx", "qdq")
    return d / "q.onnx"


@pytest.fixture(scope="module", params=["qdq", "qop", "torch", "torch-qop", "dynamo"])
def model(request, tmp_path_factory):
    if request.param in ("qdq", "torch"):
        return request.getfixturevalue(f"{request.param}_model")
    if request.param == "torch-qop":
        d = tmp_path_factory.mktemp("lut-torch-qop")
        _quantize(_torch_model(d), d / "q.onnx", "qop")
        return d / "q.onnx"
    if request.param == "dynamo":
        d = tmp_path_factory.mktemp("lut-dynamo")
        _quantize(_dynamo_model(d), d / "q.onnx", "qdq")
        return d / "q.onnx"
    return quantized_model("qop", tmp_path_factory.mktemp("lut-qop"))


FUNCS = ("Sigmoid", "Tanh", "Elu", "Softplus", "Exp", "LeakyRelu", "PRelu", "HardSigmoid", "HardSwish", "Neg", "Abs",
         "Erf", "Gelu", "Mish", "QLinearSigmoid", "QLinearLeakyRelu")


def _luts(g):
    return [n for n in g.nodes if n.op in ("Lut", "SpikeLut")]


def test_reference_matches_onnxruntime(model):
    g = import_onnx(model)
    ops = [n.op_type for n in onnx.load(str(model)).graph.node]
    # every function of the model became a table (quantize_static quantizes between the two
    # functions of "chain": test_chain_is_one_table removes that); in the torch exports a product
    # x * f(x) (SiLU, Mish) absorbs the table of f
    luts, funcs = len(_luts(g)), sum(op in FUNCS for op in ops)
    assert luts == funcs > 0 if "torch" not in str(model) and "dynamo" not in str(model) else 0 < luts <= funcs
    assert "Mul" not in {n.op for n in g.nodes}
    if "qop" in str(model):
        assert {"QLinearSigmoid", "QLinearLeakyRelu"} <= set(ops)
    report = assert_matches_onnxruntime(model.name, g, model, _inputs(32, 1)[:, 0], min_exact=0.999)
    print(model.parent.name, [(k, t, round(f, 5), m) for k, t, f, m in report if f < 1])


def test_snn_exact_and_c_bit_identical(model, tmp_path):
    g = import_onnx(model)
    xs = _inputs(24, 2)[:, 0]
    sg, snn, _ = exact_snn(g, xs)            # every tensor, the tables' outputs included
    luts = _luts(sg)
    # the table layers' latency is one window each: T_inf = Tc + Ts * L_TSA + Tc * (table layers)
    assert sg.t_inf == 8 + 7 * int(sg.meta["l_tsa"]) + 8 * len(luts)
    assert all(n.outputs[0] in snn.intermediates for n in luts)
    if "qop" in str(model):
        return      # the same IR ops as the QDQ model's (the format only reaches the front-end): one C build less
    # strict C99, warnings as errors; -O0 keeps the build of a 15-layer net within the test budget
    counts = assert_c_equals_int(sg, snn, xs, tmp_path, "-std=c99 -O0 -Wall -Wextra -Werror -pedantic")
    assert all(counts[n.name][0] > 0 for n in luts)


@pytest.mark.parametrize("tc,beta", [(8, 2), (6, 3)])
def test_table_layer_exact_at_small_ts(model, tc, beta):
    """At Ts = 2 the layers before a table are lossy, but the table layer itself is exact: its
    output is the table of whatever code its input train carried (beta = 3: balanced-ternary
    trains, -1 spikes included)."""
    g = import_onnx(model)
    xs = _inputs(8, 3)[:, 0]
    sg = compile_graph(g, CompileOptions(tc=tc, beta=beta, ts=2), integer=True)
    luts = _luts(sg)
    names = {t for n in luts for t in (n.inputs[0], n.outputs[0])}
    for mode in ("int", "float"):
        res = interpreter.run(sg, xs, intermediate=names, mode=mode)
        for n in luts:
            x, y = sg.tensors[n.inputs[0]], sg.tensors[n.outputs[0]]
            want = reference.run_node(g, next(m for m in g.nodes if m.name == n.name),
                                      {n.inputs[0]: np.rint(res.intermediates[n.inputs[0]]).astype(np.int64),
                                       n.inputs[1]: sg.const(n.inputs[1])})
            assert np.array_equal(np.rint(res.intermediates[n.outputs[0]]), want), (mode, n.name, x.name, y.name)


def _strip_between(model, tmp_path, first, second):
    """The quantized model with the Q -> DQ between ops ``first`` and ``second`` removed."""
    m = onnx.load(str(model))
    made = {o: n for n in m.graph.node for o in n.output}
    for b in (n for n in m.graph.node if n.op_type == second):
        dq = made.get(b.input[0])
        q = made.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is not None and q.op_type == "QuantizeLinear" and made[q.input[0]].op_type == first:
            b.input[0] = q.input[0]
            break
    else:
        raise AssertionError(f"no {first} -> Q -> DQ -> {second} in the model")
    onnx.save(m, str(tmp_path / "stripped.onnx"))
    return tmp_path / "stripped.onnx"


def test_chain_is_one_table(qdq_model, tmp_path):
    """DQ -> Sigmoid -> Tanh -> Q (two float functions in a row) is one table, equal to onnxruntime."""
    path = _strip_between(qdq_model, tmp_path, "Sigmoid", "Tanh")
    g = import_onnx(path)
    assert len(_luts(g)) == len(_luts(import_onnx(qdq_model))) - 1
    assert_matches_onnxruntime(path.name, g, path, _inputs(32, 1)[:, 0], min_exact=0.999)


def test_float_output_is_refused(qdq_model, tmp_path):
    """A function whose float output is not quantized again (here: also a graph output) is refused
    by name, not run in float."""
    m = onnx.load(str(qdq_model))
    tanh = next(n for n in m.graph.node if n.op_type == "Tanh")
    m.graph.output.append(helper.make_tensor_value_info(tanh.output[0], TensorProto.FLOAT, None))
    onnx.save(m, str(tmp_path / "out.onnx"))
    with pytest.raises(UnsupportedOpError, match="Tanh.*graph output.*needs a QuantizeLinear"):
        import_onnx(tmp_path / "out.onnx")


def test_tune_counts_the_window(torch_model):
    """swsc tune on a model holding tables: its T_inf of a schedule is schedule-latencies' (which
    counts each table's window), and its best schedule meets its target when compiled."""
    g = import_onnx(torch_model)
    xs = _inputs(16, 4)[:, 0]
    sg = compile_graph(g, CompileOptions(tc=8, ts=0))
    names = tsa_layers(sg)
    schedule = {n: k % 3 for k, n in enumerate(names)}
    assert t_inf(sg, schedule) == compile_graph(g, CompileOptions(tc=8, ts=schedule)).t_inf
    result = Tuner(g, xs, None, CompileOptions(tc=8), Target(agreement=None, exact=1.0),
                        progress=False).run(max_evals=6)
    assert result.best is not None
    best = compile_graph(g, CompileOptions(tc=8, ts=result.best.schedule))
    assert best.t_inf == result.best.t_inf
    out = best.producer(best.outputs[0]).inputs[0]
    ann = interpreter.run(PassManager([FoldZeroPoints()]).run(g.clone()), xs, intermediate=True).intermediates[out]
    assert np.array_equal(np.rint(interpreter.run(best, xs, intermediate={out}).intermediates[out]), np.rint(ann))


#: every function on its own, over every input code: (ONNX op, attributes, extra constant input)
EXHAUSTIVE = [("Sigmoid", {}, None), ("Tanh", {}, None), ("Exp", {}, None), ("Softplus", {}, None),
              ("Elu", {"alpha": 0.7}, None), ("LeakyRelu", {"alpha": 0.1}, None), ("Neg", {}, None),
              ("Abs", {}, None), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, None), ("HardSwish", {}, None),
              ("PRelu", {}, np.float32(0.25)), ("com.microsoft.QLinearSigmoid", {}, None),
              ("com.microsoft.QLinearLeakyRelu", {"alpha": 0.1}, None),
              ("Erf", {}, None), ("Gelu", {}, None), ("Gelu", {"approximate": "tanh"}, None), ("Mish", {}, None),
              ("PRelu", {}, "d")]        # a slope that is not a constant: refused by name
#: the opset that defines each function, where later than 14
OPSET = {"Gelu": 20, "Mish": 18}


@pytest.mark.parametrize("op,attrs,extra,signed", [e + (False,) for e in EXHAUSTIVE] +
                         [e + (True,) for e in EXHAUSTIVE if e[0].endswith(("Sigmoid", "LeakyRelu", "Tanh"))],
                         ids=[e[0].split(".")[-1] + "".join(f"-{v}" for v in e[1].values() if isinstance(v, str)) + "-u8"
                              for e in EXHAUSTIVE] +
                         [e[0].split(".")[-1] + "-s8" for e in EXHAUSTIVE if e[0].endswith(("Sigmoid", "LeakyRelu",
                                                                                          "Tanh"))])
def test_every_code_matches_onnxruntime(op, attrs, extra, signed, tmp_path):
    """x -> Q -> DQ -> f -> Q -> DQ (or the QLinear op) fed every input code: the table equals the
    one onnxruntime computes on all 256 entries, MLAS's Sigmoid and Tanh included (a PRelu whose
    slope is not a constant is refused)."""
    x = _one_function_model(op, attrs, extra, "int8" if signed else "uint8", tmp_path / "one.onnx")
    _one_table_or_refused(op, tmp_path / "one.onnx", x, r"'fn' \(PRelu\): PRelu needs a constant slope"
                          if isinstance(extra, str) else None)


#: (function, attributes, opset): the 16-bit tables checked on all 65536 codes
WIDE = [("Sigmoid", {}, 14), ("Tanh", {}, 14), ("Exp", {}, 14), ("Erf", {}, 14), ("Softplus", {}, 14),
        ("Gelu", {}, 20), ("Gelu", {"approximate": "tanh"}, 20), ("Mish", {}, 18), ("HardSwish", {}, 14)]


@pytest.mark.parametrize("op,attrs,opset", WIDE, ids=[w[0] + "".join(f"-{v}" for v in w[1].values()) for w in WIDE])
def test_16bit_tables_match_onnxruntime(op, attrs, opset, tmp_path):
    """A16W8: the table of a uint16 input onto a uint16 grid against onnxruntime on all 65536
    codes. MLAS's Sigmoid and Tanh are mirrored to the bit (FMA3 kernels); its Exp and Erf, and
    the libm log/exp of Softplus, are within an ulp of numpy's: 1 LSB on a few codes in 10,000."""
    x = _one_function_model(op, attrs, None, "uint16", tmp_path / "one.onnx", opset=max(opset, 21))
    graph = import_onnx(tmp_path / "one.onnx")
    assert [n.op for n in graph.nodes] == ["Quantize", "Lut", "Dequantize"]
    exact = 1.0 if op in ("Sigmoid", "Tanh", "HardSwish") else 0.999
    assert_matches_onnxruntime(op, graph, tmp_path / "one.onnx", x[None], min_exact=exact)


def _one_function_model(op, attrs, extra, dtype, path, opset=None) -> np.ndarray:
    """x -> Q -> DQ -> f -> Q -> DQ (or the QLinear op ``com.microsoft.*``) on codes of ``dtype``,
    saved at ``path``; ``extra`` a constant second operand (or the name of a non-constant one).
    Returns the input that holds every code once."""
    npt = np.dtype(dtype).type
    lo, hi = np.iinfo(npt).min, np.iinfo(npt).max
    z_in = 0 if lo < 0 else (hi + 1) // 2
    s_in = np.float32(6.0 / ((hi - lo + 1) // 2))
    x = (s_in * (np.arange(lo, hi + 1) - z_in).astype(np.float32)).astype(np.float32)
    fname = op.split(".")[-1].removeprefix("QLinear")
    y_real = {"Sigmoid": 1 / (1 + np.exp(-x)), "Tanh": np.tanh(x), "Exp": np.exp(x), "Softplus": np.log1p(np.exp(x)),
              "Elu": np.where(x >= 0, x, 0.7 * np.expm1(x)), "LeakyRelu": np.where(x >= 0, x, 0.1 * x), "Neg": -x,
              "Abs": np.abs(x), "HardSigmoid": np.clip(0.3 * x + 0.4, 0, 1), "HardSwish": x * np.clip(x / 6 + 0.5, 0, 1),
              "PRelu": np.where(x >= 0, x, 0.25 * x), "Erf": np.tanh(1.2 * x),    # (a range for the grid)
              "Gelu": x * (x > 0), "Mish": x * np.tanh(np.log1p(np.exp(x)))}[fname]
    s_out = np.float32((y_real.max() - y_real.min()) / (hi - lo))
    z_out = int(np.clip(np.rint(lo - y_real.min() / s_out), lo, hi))
    inits = [numpy_helper.from_array(np.array(s_in, np.float32), "s_in"),
             numpy_helper.from_array(np.array(z_in, npt), "z_in"),
             numpy_helper.from_array(np.array(s_out, np.float32), "s_out"),
             numpy_helper.from_array(np.array(z_out, npt), "z_out")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["q"])]
    if op.startswith("com.microsoft"):
        nodes.append(helper.make_node(op.split(".")[-1], ["q", "s_in", "z_in", "s_out", "z_out"], ["q2"],
                                      domain="com.microsoft", **attrs))
    else:
        ins = ["d"]
        if isinstance(extra, str):      # a non-constant operand
            ins.append(extra)
        elif extra is not None:
            inits.append(numpy_helper.from_array(np.array(extra, np.float32), "slope"))
            ins.append("slope")
        nodes += [helper.make_node("DequantizeLinear", ["q", "s_in", "z_in"], ["d"]),
                  helper.make_node(op, ins, ["f"], name="fn", **attrs),
                  helper.make_node("QuantizeLinear", ["f", "s_out", "z_out"], ["q2"])]
    nodes.append(helper.make_node("DequantizeLinear", ["q2", "s_out", "z_out"], ["y"]))
    g = helper.make_graph(nodes, "one", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, x.size])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, x.size])], inits)
    opsets = [helper.make_opsetid("", opset or OPSET.get(op, 14)), helper.make_opsetid("com.microsoft", 1)]
    onnx.save(helper.make_model(g, opset_imports=opsets, ir_version=10 if opset and opset > 20 else 9), str(path))
    return x


def _one_table_or_refused(name, path, x, refusal):
    """The one-function model at ``path`` is refused with ``refusal`` or, where that is None, is
    one table equal to onnxruntime's on every code of ``x``."""
    if refusal:
        with pytest.raises(UnsupportedOpError, match=refusal):
            import_onnx(path)
        return
    graph = import_onnx(path)
    assert [n.op for n in graph.nodes] == ["Quantize", "Lut", "Dequantize"]
    assert_matches_onnxruntime(name, graph, path, x[None], min_exact=1.0)


@pytest.mark.parametrize("form", ["silu", "square", "two-tensors"])
def test_product_of_functions_of_one_tensor(form, tmp_path):
    """x -> Q -> DQ, then DQ(x) * DQ(Q(Sigmoid(DQ(x)))) -> Q (SiLU as quantize_static writes it), or
    DQ(x) * DQ(x), fed every input code: one table equal to onnxruntime's on all 256 entries. A
    product of two different tensors is no function of one, and is refused by name."""
    x = (np.float32(6.0 / 128) * (np.arange(256) - 128).astype(np.float32)).astype(np.float32)
    s_in, s_sig, s_out = np.float32(6.0 / 128), np.float32(1 / 255), np.float32(40.0 / 255)
    inits = [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in
             (("s_in", s_in), ("s_sig", s_sig), ("s_out", s_out))]
    inits += [numpy_helper.from_array(np.array(z, np.uint8), k) for k, z in (("z_in", 128), ("z0", 0), ("z_out", 2))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s_in", "z_in"], ["d"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])]
    if form == "silu":
        nodes += [helper.make_node("Sigmoid", ["d"], ["sg"]), helper.make_node("QuantizeLinear", ["sg", "s_sig", "z0"], ["qs"]),
                  helper.make_node("DequantizeLinear", ["qs", "s_sig", "z0"], ["ds"])]
        other = "ds"
    elif form == "square":
        other = "d"
    else:
        inputs.append(helper.make_tensor_value_info("x2", TensorProto.FLOAT, [1, 256]))
        nodes += [helper.make_node("QuantizeLinear", ["x2", "s_in", "z_in"], ["q2"]),
                  helper.make_node("DequantizeLinear", ["q2", "s_in", "z_in"], ["d2"])]
        other = "d2"
    nodes += [helper.make_node("Mul", ["d", other], ["m"], name="prod"),
              helper.make_node("QuantizeLinear", ["m", "s_out", "z_out"], ["qm"]),
              helper.make_node("DequantizeLinear", ["qm", "s_out", "z_out"], ["y"])]
    g = helper.make_graph(nodes, "prod", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])],
                          inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)], ir_version=8), str(tmp_path / "p.onnx"))
    _one_table_or_refused(form, tmp_path / "p.onnx", x, r"'prod' \(Mul\): Mul of two activations"
                          if form == "two-tensors" else None)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("act", ["QUInt8", "QInt8"])
def test_legacy_gelu_is_one_table(approximate, act, tmp_path):
    """nn.GELU as torch's legacy exporter writes it (Div -> Erf -> Add -> Mul -> Mul, or the tanh
    form's x * x * x ... Tanh ... chain), each step quantized by onnxruntime's quantize_static
    (QDQ), fed every code of its input quantizer: one table equal to onnxruntime's on every entry.
    (In QOperator form a GELU on the graph input runs on the float input itself; the legacy net of
    the ``model`` fixture has GELUs after convolutions in both forms.)"""
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch.nn.GELU(approximate=approximate).eval(), torch.zeros(1, 256), str(tmp_path / "f.onnx"),
                          input_names=["input"], output_names=["output"], opset_version=17, dynamo=False)
    calib = np.linspace(-5, 5, 8 * 256, dtype=np.float32).reshape(8, 1, 256)
    ort_quantize(tmp_path / "f.onnx", tmp_path / "q.onnx", calib, "qdq",
                 activation_type=getattr(ort_quant.QuantType, act), reduce_range=False)
    model = onnx.load(str(tmp_path / "q.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    first = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    s_in, z_in = np.float32(inits[first.input[1]]), inits[first.input[2]]
    lo, hi = np.iinfo(z_in.dtype).min, np.iinfo(z_in.dtype).max
    x = (s_in * (np.arange(lo, hi + 1) - int(z_in)).astype(np.float32)).astype(np.float32)
    _one_table_or_refused(f"gelu-{approximate}", tmp_path / "q.onnx", x, None)
