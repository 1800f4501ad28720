"""The `.sws.onnx` file: near the quantized model's size, and an exact round trip.

The oracle for exactness is the in-memory graph the compiler produced: every constant must
come back bit for bit (also -0.0, NaN, values no compact form covers), and the runtimes must
give identical outputs on the loaded graph.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from swsc import packing, serialize
from swsc.check import load_data
from swsc.compiler import compile_graph, import_onnx
from swsc.errors import InvalidModelError
from swsc.ir import Quant
from swsc.ops import inputs_of
from swsc.options import CompileOptions
from swsc.passes import pipeline
from swsc.passmanager import PassManager
from swsc.runtime.interpreter import run

from graphs import tiny_cnn

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted(p.stem for p in (ROOT / "samples").glob("*.onnx"))
#: the compiled file may exceed the quantized model by this factor (per-channel scales, names)
MAX_RATIO = 1.5


def assert_same_graph(a, b):
    assert sorted(a.tensors) == sorted(b.tensors)
    for name, t in a.tensors.items():
        u = b.tensors[name]
        assert (u.dtype, u.shape, u.t0) == (t.dtype, t.shape, t.t0), name
        if t.is_const:
            assert u.data.dtype == t.data.dtype and u.data.shape == t.data.shape, name
            assert u.data.tobytes() == t.data.tobytes(), f"constant {name} differs"
        assert (t.quant is None) == (u.quant is None) and (t.quant is None or t.quant.same_as(u.quant)), name
    for x, y in zip(a.nodes, b.nodes, strict=True):
        assert (x.op, x.name, x.inputs, x.outputs, x.attrs) == (y.op, y.name, y.inputs, y.outputs, y.attrs)
    assert a.meta == b.meta and a.inputs == b.inputs and a.outputs == b.outputs
    assert (a.coding, a.t_inf, a.integer) == (b.coding, b.t_inf, b.integer)


@pytest.mark.parametrize("model", SAMPLES)
def test_sample_file_size_and_exact_round_trip(model, tmp_path):
    src = ROOT / "samples" / f"{model}.onnx"
    g = compile_graph(import_onnx(src), CompileOptions(), integer=True)
    path = tmp_path / f"{model}{serialize.SUFFIX}"
    serialize.save(g, path)
    serialize.save(g, tmp_path / "again.sws.onnx")
    assert path.read_bytes() == (tmp_path / "again.sws.onnx").read_bytes(), "the file must be deterministic"
    ratio = path.stat().st_size / src.stat().st_size
    print(f"{model}: {path.stat().st_size} B, {ratio:.2f}x the input's {src.stat().st_size} B")
    assert ratio <= MAX_RATIO
    onnx.checker.check_model(onnx.load(str(path)))
    loaded = serialize.load(path)
    assert_same_graph(g, loaded)
    x, _ = load_data(ROOT / "samples" / f"{model}_test.npz", g)
    for mode in ("float", "int"):
        want, got = run(g, x[:8], mode=mode), run(loaded, x[:8], mode=mode)
        for k, v in want.outputs.items():
            assert v.dtype == got.outputs[k].dtype and np.array_equal(v, got.outputs[k]), (mode, k)
        assert want.totals() == got.totals()


def _adversarial(seed: int):
    """A compiled tiny CNN whose constants defeat the compact forms in every way we know."""
    rng = np.random.default_rng(seed)
    g = PassManager(pipeline(CompileOptions())).run(tiny_cnn(seed))
    conv = g.node("conv")
    ins = inputs_of(conv)
    W, wq = g.tensors[ins.w], g.tensors[ins.wq]
    k = wq.data.astype(np.float64) - 0.0
    w = k * rng.uniform(-1e-3, 1e-3, (k.shape[0], 1, 1, 1))      # one factor per channel ...
    flat = w.reshape(-1)
    flat[rng.choice(flat.size, 5, replace=False)] *= 1 + 2 ** -40   # ... but not for a few elements
    flat[np.flatnonzero(k.reshape(-1) == 0)[:1]] = -0.0
    flat[3] = np.nan
    W.data = w
    b = g.tensors[ins.b]
    b.data = np.broadcast_to(rng.choice([0.0, -0.0, 0.5, 1 / 3], (b.shape[0], 1, 6)), (b.shape[0], 6, 6)).copy()
    b.shape = b.data.shape
    extra = {"i16": np.arange(-200, 200, dtype=np.int64), "i64": np.array([2 ** 40, -1] * 9, dtype=np.int64),
             "u16": np.arange(0, 60000, 3000, dtype=np.int32), "empty": np.zeros((0, 3), dtype=np.int64),
             "flags": rng.random(20) > 0.5, "f32": rng.choice(np.float32([0.25, -0.0, 7.5]), (5, 5)),
             "scalar": np.array(0.1), "noise": rng.normal(size=40)}
    for name, a in extra.items():
        g.add_const(name, a)
    # per-channel parameters long enough to be stored as binary parts, zero points not all equal
    g.add_const("per_channel", rng.integers(-128, 128, (20, 3)).astype(np.int8),
                Quant(rng.uniform(1e-3, 1e-2, 20), rng.integers(-3, 4, 20), 0, -128, 127))
    return g


@pytest.mark.parametrize("seed", range(3))
def test_round_trip_is_bit_exact_for_hostile_constants(seed, tmp_path):
    g = _adversarial(seed)
    path = tmp_path / "t.sws.onnx"
    serialize.save(g, path)
    assert_same_graph(g, serialize.load(path))
    forms = {}
    for tp in onnx.load(str(path)).graph.initializer:
        props = {p.key: p.value for p in tp.metadata_props}
        if packing.KEY in props:
            forms[tp.name] = props[packing.KEY]
    conv = g.node("conv")
    w, b = conv.inputs[1:3]
    assert '"as": "scaled"' in forms[w] and '"patch"' in forms[w]
    assert '"as": "palette"' in forms[b]
    assert '"as": "int"' in forms["i16"] and "i64" not in forms and "noise" not in forms


def test_a_missing_part_is_a_corrupt_file(tmp_path):
    g = _adversarial(0)
    path = tmp_path / "t.sws.onnx"
    serialize.save(g, path)
    full = onnx.load(str(path))
    parts = [tp.name for tp in full.graph.initializer if any(p.key == packing.PART for p in tp.metadata_props)]
    assert {p.rsplit("#", 1)[1] for p in parts} >= {"patch_index", "patch_value", "index", "scale", "zero_point"}
    for name in parts:   # each kind of part, one at a time
        m = onnx.ModelProto()
        m.CopyFrom(full)
        i = next(i for i, tp in enumerate(m.graph.initializer) if tp.name == name)
        del m.graph.initializer[i]
        onnx.save(m, str(path))
        with pytest.raises(InvalidModelError, match="corrupt swsc IR file.*dangling"):
            serialize.load(path)


def test_files_written_before_packing_still_load(tmp_path):
    """The earlier format stored every constant as it is, without ``swsc.packed``, and all
    quantization parameters as JSON text: rebuild such a file from the in-memory graph and load it."""
    g = _adversarial(1)
    model = serialize.to_model(g)
    keep = []
    for tp in model.graph.initializer:
        props = {p.key: p.value for p in tp.metadata_props}
        if packing.PART in props:
            continue
        raw = onnx.numpy_helper.from_array(g.tensors[tp.name].data, tp.name)
        for k, v in sorted(serialize._tensor_props(g.tensors[tp.name]).items()):   # quant inline, as JSON
            raw.metadata_props.add(key=k, value=v)
        keep.append(raw)
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    path = tmp_path / "old.sws.onnx"
    onnx.save(model, str(path))
    assert_same_graph(g, serialize.load(path))


def test_files_written_before_the_coding_moved_to_the_graph_still_load(tmp_path):
    """The earlier format kept Tc and beta on the encoder and the TSA layers, a spike tensor's
    window as [t0, tc] and T_inf and the integer flag as plain meta strings."""
    g = compile_graph(import_onnx(ROOT / "samples" / "lenet5_mnist_qat.onnx"), CompileOptions(tc=6), integer=True)
    model = serialize.to_model(g)
    for n in model.graph.node:
        if n.op_type in ("SwsEncode", "TsaLayer"):
            n.attribute.extend([onnx.helper.make_attribute("tc", 6), serialize._attr("beta", 2.0)])
    for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        for p in v.metadata_props:
            if p.key == "swsc.t0":
                p.key, p.value = "swsc.window", f"[{p.value}, 6]"
    props = {p.key: p.value for p in model.metadata_props}
    del model.metadata_props[:]
    props.pop("swsc.coding")
    props["t_inf"], props["integer"] = props.pop("swsc.t_inf"), props.pop("swsc.integer")
    for k in sorted(props):
        model.metadata_props.add(key=k, value=props[k])
    path = tmp_path / "old.sws.onnx"
    onnx.save(model, str(path))
    assert_same_graph(g, serialize.load(path))
