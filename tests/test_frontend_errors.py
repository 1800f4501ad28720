"""Every user-caused front-end failure is a SwscError naming the file (and node/op)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import corpus  # noqa: E402

from swsc.errors import (InvalidModelError, NotQuantizedError, SwscError,  # noqa: E402
                         UnsupportedOpError, UsageError)
from swsc.frontend import import_model, parse_input_shape  # noqa: E402

f32 = np.float32


def _save(tmp, nodes, inits, name, inp=(1, 2, 4, 4), inputs=None, opset=13):
    ins = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(inp))]
    g = helper.make_graph(nodes, name, ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    p = Path(tmp) / f"{name}.onnx"
    onnx.save(m, str(p))
    return p


QIN = {"s": f32(0.02), "z": np.uint8(128)}


def _qin():
    return [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_in"),
            helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_in")]


def test_float_model_is_not_quantized(corpus_dir):
    p = corpus.get_float_model("lenet", corpus_dir)
    with pytest.raises(NotQuantizedError) as e:
        import_model(p)
    msg = str(e.value)
    assert p.name in msg and "not quantized" in msg and "quantize" in msg.split("not quantized")[1]
    assert isinstance(e.value, SwscError) and e.value.file == p.name


def test_unsupported_ops_listed_together(tmp_path):
    nodes = _qin() + [
        helper.make_node("Sigmoid", ["xd"], ["a"], name="my_sigmoid"),
        helper.make_node("Tanh", ["xd"], ["b"], name="my_tanh"),
        helper.make_node("Add", ["a", "b"], ["c"], name="add"),
        helper.make_node("Cos", ["c"], ["y"], name="my_cos_after_them"),
    ]
    p = _save(tmp_path, nodes, QIN, "unsup")
    with pytest.raises(UnsupportedOpError) as e:
        import_model(p)
    msg = str(e.value)
    assert "'my_sigmoid' (Sigmoid)" in msg and "'my_tanh' (Tanh)" in msg and "unsup.onnx" in msg
    assert "'my_cos_after_them' (Cos)" in msg
    names = [n for n, _, _ in e.value.nodes]
    assert "my_sigmoid" in names and "my_tanh" in names


def test_refusals_past_a_quantizer_are_all_listed_once(tmp_path):
    """Two squeeze-and-excitation style products of independent activations, the second after
    the first's QuantizeLinear: both are named (matching goes on past a refused node's
    quantizer), in one entry for their one reason."""
    nodes = _qin()
    src = "xd"
    for k in range(2):
        nodes += [helper.make_node("GlobalAveragePool", [src], [f"p{k}"], name=f"pool{k}"),
                  helper.make_node("QuantizeLinear", [f"p{k}", "s", "z"], [f"pq{k}"], name=f"pool{k}_q"),
                  helper.make_node("DequantizeLinear", [f"pq{k}", "s", "z"], [f"pd{k}"], name=f"pool{k}_dq"),
                  helper.make_node("Mul", [src, f"pd{k}"], [f"m{k}"], name=f"se{k}"),
                  helper.make_node("QuantizeLinear", [f"m{k}", "s", "z"], [f"mq{k}"], name=f"se{k}_q"),
                  helper.make_node("DequantizeLinear", [f"mq{k}", "s", "z"], [f"md{k}" if k == 0 else "y"],
                                   name=f"se{k}_dq")]
        src = f"md{k}"
    p = _save(tmp_path, nodes, QIN, "se")
    with pytest.raises(UnsupportedOpError) as e:
        import_model(p)
    assert [n for n, _, _ in e.value.nodes] == ["se0", "se1"]
    assert str(e.value).count("Mul of two activations") == 1 and "'se0', 'se1' (Mul): " in str(e.value)


def test_unsupported_custom_domain(tmp_path):
    nodes = _qin() + [helper.make_node("QLinearReduceMean", ["xq", "s", "z", "s", "z"], ["o"], name="qmean",
                                       domain="com.microsoft"),
                      helper.make_node("DequantizeLinear", ["o", "s", "z"], ["y"], name="dq")]
    p = _save(tmp_path, nodes, QIN, "custom")
    with pytest.raises(UnsupportedOpError) as e:
        import_model(p)
    assert "'qmean' (com.microsoft.QLinearReduceMean)" in str(e.value)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "missing"])
def test_malformed_file(tmp_path, how, corpus_dir):
    good = corpus.get_model("lenet-qdq-pt-u8", corpus_dir).read_bytes()
    p = tmp_path / f"bad_{how}.onnx"
    if how == "truncated":
        p.write_bytes(good[: len(good) // 3])
    elif how == "garbage":
        p.write_bytes(b"this is not an onnx model\x00\xff" * 10)
    elif how == "empty":
        p.write_bytes(b"")
    with pytest.raises(InvalidModelError) as e:
        import_model(p)
    assert p.name in str(e.value) and e.value.file == p.name


def test_external_data_outside_directory(tmp_path):
    sub = tmp_path / "model"
    sub.mkdir()
    (tmp_path / "secret.bin").write_bytes(np.zeros(16, np.float32).tobytes())
    w = numpy_helper.from_array(np.zeros((2, 2, 1, 1), np.int8), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../secret.bin"), ("offset", "0"), ("length", "4")):
        e = w.external_data.add()
        e.key, e.value = k, v
    nodes = _qin() + [helper.make_node("DequantizeLinear", ["w", "s", "z"], ["wd"], name="dqw"),
                      helper.make_node("Conv", ["xd", "wd"], ["y"], name="conv")]
    g = helper.make_graph(nodes, "ext", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[w, numpy_helper.from_array(QIN["s"], "s"), numpy_helper.from_array(QIN["z"], "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    p = sub / "ext.onnx"
    p.write_bytes(m.SerializeToString())
    with pytest.raises(InvalidModelError) as e:
        import_model(p)
    msg = str(e.value)
    assert "ext.onnx" in msg and "outside" in msg and "'w'" in msg


def test_non_constant_weight(tmp_path):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4]),
              helper.make_tensor_value_info("wf", TensorProto.FLOAT, [3, 2, 1, 1])]
    nodes = _qin() + [
        helper.make_node("QuantizeLinear", ["wf", "s", "wz"], ["wq"], name="qw"),
        helper.make_node("DequantizeLinear", ["wq", "s", "wz"], ["wd"], name="dqw"),
        helper.make_node("Conv", ["xd", "wd"], ["c"], name="the_conv"),
        helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"], name="qc"),
        helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["y"], name="dqc"),
    ]
    p = _save(tmp_path, nodes, {**QIN, "wz": np.int8(0)}, "nonconst", inputs=inputs)
    with pytest.raises(UnsupportedOpError) as e:
        import_model(p)
    msg = str(e.value)
    assert "'the_conv' (Conv)" in msg and "not a constant" in msg and "nonconst.onnx" in msg


def test_float_weight_in_quantized_model(tmp_path):
    nodes = _qin() + [
        helper.make_node("Conv", ["xd", "wf"], ["c"], name="float_conv"),
        helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"], name="qc"),
        helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["y"], name="dqc"),
    ]
    p = _save(tmp_path, nodes, {**QIN, "wf": np.ones((3, 2, 1, 1), np.float32)}, "floatw")
    with pytest.raises(UnsupportedOpError) as e:
        import_model(p)
    assert "'float_conv' (Conv)" in str(e.value) and "not quantized" in str(e.value)


def _dyn_model(tmp_path):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])]
    nodes = _qin() + [helper.make_node("MaxPool", ["xd"], ["m"], name="mp", kernel_shape=[2, 2], strides=[2, 2]),
                      helper.make_node("QuantizeLinear", ["m", "s", "z"], ["mq"], name="qm"),
                      helper.make_node("DequantizeLinear", ["mq", "s", "z"], ["y"], name="dqm")]
    return _save(tmp_path, nodes, QIN, "dyn", inputs=inputs)


def test_dynamic_shape_needs_input_shape(tmp_path):
    p = _dyn_model(tmp_path)
    with pytest.raises(InvalidModelError) as e:
        import_model(p)
    msg = str(e.value)
    assert "dyn.onnx" in msg and "'H'" in msg and "input_shape" in msg
    g = import_model(p, input_shape="1,2,8,6")
    assert g.tensors["x"].shape == (1, 2, 8, 6)
    assert g.tensors[g.outputs[0]].shape == (1, 2, 4, 3)


def test_input_shape_disagreeing_with_model(tmp_path):
    p = _dyn_model(tmp_path)
    with pytest.raises(InvalidModelError):
        import_model(p, input_shape="1,3,8,8")


@pytest.mark.parametrize("text,want", [("1,3,32,32", (1, 3, 32, 32)), (" 1, 3,32 ,32 ", (1, 3, 32, 32)),
                                       ("N,1,49,10", (1, 1, 49, 10)), ("[16,3,32,32]", (16, 3, 32, 32)),
                                       ("1x3x8x8", (1, 3, 8, 8))])
def test_parse_input_shape(text, want):
    assert parse_input_shape(text) == want


@pytest.mark.parametrize("text, words", [("", "empty"), ("1,a,3", "'a'"), ("1,0,3", "0"), ("1,-2", "-2"),
                                         ("1,,3", "empty dimension"), ("1,x,3", "empty dimension"),
                                         ("3.5,2", "'3.5'")])
def test_parse_input_shape_rejects(text, words):
    with pytest.raises(UsageError, match=words):
        parse_input_shape(text)


def test_never_a_bare_exception_on_odd_graphs(tmp_path):
    # a quantized model whose graph output is produced by nothing
    nodes = _qin()
    p = _save(tmp_path, nodes, QIN, "dangling")
    with pytest.raises(SwscError) as e:
        import_model(p)
    assert "dangling.onnx" in str(e.value)


def test_fixed_batch_baked_into_reshape(tmp_path):
    """A model exported with a fixed batch 4 and Reshape([4, -1]) imports with batch 1."""
    from runtime.reference import evaluate
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_in"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_in"),
        helper.make_node("Reshape", ["xd", "shp"], ["r"], name="reshape"),
        helper.make_node("QuantizeLinear", ["r", "s", "z"], ["rq"], name="q_r"),
        helper.make_node("DequantizeLinear", ["rq", "s", "z"], ["y"], name="dq_out"),
    ]
    p = _save(tmp_path, nodes, {**QIN, "shp": np.array([4, -1], np.int64)}, "baked", inp=(4, 2, 3, 3))
    g = import_model(p)
    assert g.tensors["x"].shape == (1, 2, 3, 3) and g.tensors["y"].shape == (1, 18)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 2, 3, 3)).astype(np.float32)
    from frontend_util import run_ort
    assert np.array_equal(evaluate(g, x)["y"], run_ort(p, x)["y"])


def test_mutated_models_never_crash(tmp_path, corpus_dir):
    """Randomly broken corpus models end in a SwscError (or import), never another exception."""
    import random

    rng = random.Random(1)
    names = ["lenet-qdq-pc-u8", "resnet-qdq-pc-s8", "mlp-qop-pc-u8", "inception-qop-pt-u8", "pitfall-bn",
             "pitfall-fanout", "vgg-qop-pt-s8"]
    for it in range(60):
        m = onnx.load(str(corpus.get_model(rng.choice(names), corpus_dir)))
        g = m.graph
        kind = rng.randrange(5)
        if kind == 0 and len(g.node) > 1:
            del g.node[rng.randrange(len(g.node))]
        elif kind == 1:
            rng.choice(g.node).op_type = rng.choice(["Relu", "Sigmoid", "Add", "Conv", "Gemm", "MaxPool",
                                                     "QuantizeLinear", "DequantizeLinear", "Concat"])
        elif kind == 2:
            n = rng.choice(g.node)
            if n.input:
                n.input[rng.randrange(len(n.input))] = rng.choice(
                    [i.name for i in g.initializer] + [o for x in g.node for o in x.output])
        elif kind == 3:
            init = rng.choice(g.initializer)
            a = numpy_helper.to_array(init).reshape(-1)
            init.CopyFrom(numpy_helper.from_array(a[: max(1, a.size // 2)].copy(), init.name))
        else:
            init = rng.choice(g.initializer)
            a = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(a.astype(rng.choice([np.float32, np.int8, np.int32])), init.name))
        p = tmp_path / f"mut{it}.onnx"
        p.write_bytes(m.SerializeToString())
        try:
            import_model(p)
        except SwscError as e:
            assert p.name in str(e)


def test_int4_weights_are_refused_by_type(tmp_path):
    """Opset 21's 4-bit types are named as unsupported, not as a malformed zero point."""
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.02]), helper.make_tensor("z", TensorProto.UINT8, [], [128]),
             helper.make_tensor("w4", TensorProto.INT4, [2, 2, 1, 1], [1, -1, 2, 3]),
             helper.make_tensor("ws", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("wz", TensorProto.INT4, [], [0])]
    nodes = _qin() + [helper.make_node("DequantizeLinear", ["w4", "ws", "wz"], ["wd"], name="dq_w4"),
                      helper.make_node("Conv", ["xd", "wd"], ["c"], name="conv"),
                      helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"], name="q_c"),
                      helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["y"], name="dq_c")]
    g = helper.make_graph(nodes, "int4", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    p = tmp_path / "int4.onnx"
    onnx.save(m, str(p))
    with pytest.raises(UnsupportedOpError) as e:
        import_model(p)
    assert "dq_w4" in str(e.value) and "int4 is not supported" in str(e.value) and "int4.onnx" in str(e.value)


@pytest.mark.parametrize("what", ["negative variance", "nan mul"])
def test_non_finite_folded_constants_are_refused(tmp_path, what):
    """A BatchNormalization with a negative variance or a NaN scale constant would fold into
    NaN weights and compile into garbage; the node is named instead."""
    inits = {**QIN, "w": np.ones((2, 2, 1, 1), np.int8), "ws": f32(0.1), "wz": np.int8(0),
             "g": np.ones(2, f32), "b": np.zeros(2, f32), "m": np.zeros(2, f32),
             "v": np.array([1.0, -5.0 if what == "negative variance" else 1.0], f32),
             "k": np.array([1.0, np.nan if what == "nan mul" else 1.0], f32).reshape(1, 2, 1, 1)}
    nodes = _qin() + [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="dq_w"),
                      helper.make_node("Conv", ["xd", "wd"], ["c"], name="conv"),
                      helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"], name="bn"),
                      helper.make_node("Mul", ["bn", "k"], ["mk"], name="scale"),
                      helper.make_node("QuantizeLinear", ["mk", "s", "z"], ["q"], name="q_out"),
                      helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq_out")]
    p = _save(tmp_path, nodes, inits, "nonfinite")
    with pytest.raises(SwscError) as e:
        import_model(p)
    msg = str(e.value)
    assert "nonfinite.onnx" in msg and ("bn" in msg if what == "negative variance" else "scale" in msg), msg
    assert ("variance" in msg) if what == "negative variance" else ("NaN" in msg)
