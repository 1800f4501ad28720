"""IndexMap (swsc/ops/indexmap.py) and its ONNX ops (swsc/frontend/match_index.py: Pad, Resize
(nearest; linear as an index map and a fixed depthwise filter), Split, DepthToSpace,
ConvTranspose) against independent oracles: onnxruntime on models quantized by onnxruntime's
quantize_static (QDQ and QOperator) and a torch export, the exact quantized ANN for the SNN at
Ts = Tc - 1 (float and integer mode), and the gcc-built C for the integer mode."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from frontend_util import assert_c_equals_int, assert_matches_onnxruntime, exact_snn, ort_quantize
from onnx import TensorProto, helper, numpy_helper
from swsc.runtime import cbackend

from swsc.compiler import import_onnx
from swsc.errors import UnsupportedOpError

ort_quant = pytest.importorskip("onnxruntime.quantization")

STRICT = "-std=c99 -O1 -Wall -Wextra -Werror -pedantic"
C1 = 8          # channels before the op
H = 6           # input plane


def _op_nodes(which: str):
    """(nodes from 'r' to 's', extra initializers, channels of 's') of op ``which``."""
    def f(name, value, dtype):
        return numpy_helper.from_array(np.array(value, dtype), name)
    if which == "pad0":
        return [helper.make_node("Pad", ["r", "pads"], ["s"])], [f("pads", [0, 0, 1, 2, 0, 0, 2, 1], np.int64)], C1
    if which == "padc":
        return ([helper.make_node("Pad", ["r", "pads", "pv"], ["s"], mode="constant")],
                [f("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64), f("pv", 0.75, np.float32)], C1)
    if which == "padneg":       # below the Relu'd input's range: the output gets its own grid (requantized)
        return ([helper.make_node("Pad", ["r", "pads", "pv"], ["s"], mode="constant")],
                [f("pads", [0, 0, 0, 1, 0, 0, 2, 0], np.int64), f("pv", -1.5, np.float32)], C1)
    if which == "reflect":
        return ([helper.make_node("Pad", ["r", "pads"], ["s"], mode="reflect")],
                [f("pads", [0, 0, 2, 1, 0, 0, 1, 2], np.int64)], C1)
    if which == "resize-asym":
        return ([helper.make_node("Resize", ["r", "", "sc"], ["s"], mode="nearest",
                                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
                [f("sc", [1, 1, 2, 2], np.float32)], C1)
    if which == "resize-half":
        return ([helper.make_node("Resize", ["r", "", "", "sz"], ["s"], mode="nearest",
                                  coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil")],
                [f("sz", [1, C1, 9, 11], np.int64)], C1)
    if which == "resize-lin":       # linear by 2: a fixed depthwise filter after edge padding and zero insertion
        return ([helper.make_node("Resize", ["r", "", "sc"], ["s"], mode="linear",
                                  coordinate_transformation_mode="half_pixel")],
                [f("sc", [1, 1, 2, 2], np.float32)], C1)
    if which == "resize-lin-asym":  # by 2 and 4 (sizes), asymmetric coordinates
        return ([helper.make_node("Resize", ["r", "", "", "sz"], ["s"], mode="linear",
                                  coordinate_transformation_mode="asymmetric")],
                [f("sz", [1, C1, 2 * H, 4 * H], np.int64)], C1)
    if which == "resize-lin-3":     # by 3 (taps in sixths: not exact in float32), pytorch_half_pixel
        return ([helper.make_node("Resize", ["r", "", "sc"], ["s"], mode="linear",
                                  coordinate_transformation_mode="pytorch_half_pixel")],
                [f("sc", [1, 1, 3, 1], np.float32)], C1)
    if which == "split":
        return ([helper.make_node("Split", ["r", "sp"], ["s0", "s1"], axis=1),
                 helper.make_node("Concat", ["s1", "s0"], ["s"], axis=1)], [f("sp", [3, 5], np.int64)], C1)
    if which == "d2s":
        return [helper.make_node("DepthToSpace", ["r"], ["s"], blocksize=2, mode="CRD")], [], C1 // 4
    if which == "s2d":
        return [helper.make_node("SpaceToDepth", ["r"], ["s"], blocksize=2)], [], C1 * 4
    if which == "tile":
        return [helper.make_node("Tile", ["r", "rep"], ["s"])], [f("rep", [1, 1, 1, 2], np.int64)], C1
    if which == "expand":       # a pooled [1, C, 1, 1] broadcast over a plane
        return ([helper.make_node("GlobalAveragePool", ["r"], ["gp"]),
                 helper.make_node("Expand", ["gp", "shp"], ["s"])],
                [f("shp", [1, C1, 3, 4], np.int64)], C1)
    if which == "convt-g":       # groups, a dilation, asymmetric pads; per-channel weights (axis 1)
        rng = np.random.default_rng(8)
        return ([helper.make_node("ConvTranspose", ["r", "wt"], ["s"], strides=[2, 3], pads=[0, 1, 1, 0],
                                  dilations=[2, 1], group=2)],
                [numpy_helper.from_array(rng.normal(0, 0.3, (C1, 3, 3, 2)).astype(np.float32), "wt")], 6)
    if which == "convt":
        rng = np.random.default_rng(7)
        return ([helper.make_node("ConvTranspose", ["r", "wt", "bt"], ["t"], strides=[2, 2], pads=[1, 1, 1, 1],
                                  output_padding=[1, 1]),
                 helper.make_node("Relu", ["t"], ["s"])],
                [numpy_helper.from_array(rng.normal(0, 0.3, (C1, 6, 3, 3)).astype(np.float32), "wt"),
                 numpy_helper.from_array(rng.normal(0, 0.1, 6).astype(np.float32), "bt")], 6)
    raise KeyError(which)


OPS = ["pad0", "padc", "padneg", "reflect", "resize-asym", "resize-half", "resize-lin", "resize-lin-asym",
       "resize-lin-3", "split", "d2s", "s2d", "tile", "expand",
       "convt", "convt-g"]


C_OPS = {"padc", "d2s", "convt-g", "resize-lin"}


def _float_model(which: str, path) -> None:
    rng = np.random.default_rng(3)
    nodes, extra, c_mid = _op_nodes(which)
    c1 = rng.normal(0, 0.3, (C1, 3, 3, 3)).astype(np.float32)
    c2 = rng.normal(0, 0.3, (6, c_mid, 3, 3)).astype(np.float32)
    fc = rng.normal(0, 0.3, (10, 6)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(c1, "c1"), (rng.normal(0, 0.1, C1).astype(np.float32), "b1"), (c2, "c2"),
              (np.zeros(6, np.float32), "b2"), (fc, "fc"), (np.zeros(10, np.float32), "bf")]] + extra
    nodes = ([helper.make_node("Conv", ["input", "c1", "b1"], ["a"], pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["a"], ["r"])] + nodes +
             [helper.make_node("Conv", ["s", "c2", "b2"], ["b"], pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["b"], ["r2"]),
              helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
              helper.make_node("Flatten", ["g"], ["f"]),
              helper.make_node("Gemm", ["f", "fc", "bf"], ["output"], transB=1)])
    g = helper.make_graph(nodes, "indexmap", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, H, H])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))


def _inputs(n, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 1, 3, H, H)).astype(np.float32)



def _quantize(src, dst, fmt: str, per_channel: bool = False, act=ort_quant.QuantType.QUInt8):
    ort_quantize(str(src), str(dst), _inputs(16, 0), fmt, activation_type=act, per_channel=per_channel)
    return dst


def quantized_model(which: str, fmt: str, d):
    """The model with op ``which`` quantized by onnxruntime (``fmt`` qdq or qop) in ``d``."""
    _float_model(which, d / "float.onnx")
    return _quantize(d / "float.onnx", d / "q.onnx", fmt, per_channel=which == "convt-g")


def _check(path, ops_expected=("IndexMap",), snn=True):
    g = import_onnx(path)
    have = {n.op for n in g.nodes}
    assert set(ops_expected) <= have, have
    assert_matches_onnxruntime(path.name, g, path, _inputs(24, 1)[:, 0], min_exact=0.999)
    if not snn:
        return None
    xs = _inputs(12, 2)[:, 0]
    sg, snn, seen = exact_snn(g, xs)
    assert seen > 4
    return sg, snn, xs


def _check_c(sg, snn, xs, d):
    rep = cbackend.emit_c(sg, d)
    mems = iter(m for m in rep.layers if m.op == "IndexMap")      # in the C's (topological) order
    for n in sg.topo_order():    # the index table is counted in flash: one plane's where the map is per channel
        if n.op == "IndexMap":
            i, o = sg.tensors[n.inputs[0]].shape, sg.tensors[n.outputs[0]].shape
            per_plane = i[1] == o[1] and not n.name.startswith("DepthToSpace")
            entries = int(np.prod(o[2 if per_plane else 1:]))
            lo, hi = min(n.attrs["index"]), max(n.attrs["index"])
            width = 1 if -128 <= lo and hi < 256 else 2 if -32768 <= lo and hi < 65536 else 4
            assert 0 < next(mems).flash_bytes <= entries * width, n.name
    cbackend.emit_c(sg, d.with_name(d.name + "-again"))
    for f in sorted(d.glob("*.[ch]")):        # deterministic
        assert f.read_bytes() == (d.with_name(d.name + "-again") / f.name).read_bytes(), f.name
    assert_c_equals_int(sg, snn, xs, d, STRICT)


@pytest.mark.parametrize("which", OPS)
@pytest.mark.parametrize("fmt", ["qdq", "qop"])
def test_op_matches_onnxruntime_exact_ann_and_c(which, fmt, tmp_path):
    p = quantized_model(which, fmt, tmp_path)
    if which.startswith("convt") and fmt == "qop":
        # quantize_static's QOperator form keeps ConvTranspose in float with a float weight
        # (DQ -> ConvTranspose -> Q): not a quantized layer, refused by name
        with pytest.raises(UnsupportedOpError, match="ConvTranspose.*float constant, not quantized.*in QDQ form"):
            import_onnx(p)
        return
    if which == "resize-lin-3" and fmt == "qop":
        # onnxruntime resizes the codes in float32 and truncates: with taps in sixths that is
        # not the exact floor a neuron computes
        with pytest.raises(UnsupportedOpError, match=r"Resize.*power of two"):
            import_onnx(p)
        return
    # the SNN on every QDQ model and on the QOperator Pads (a fill on an integer tensor, another
    # front-end path); the C on one model per fragment variant (a per-plane table with a non-zero fill train, a
    # whole-sample table without, the ConvTranspose; the torch model: a per-plane one without),
    # to keep the file's time in budget
    res = _check(p, ("Slice",) if which == "split" else ("IndexMap",),
                 snn=fmt == "qdq" or which.startswith(("pad", "resize-lin")))
    if fmt == "qdq" and which in C_OPS:
        _check_c(*res, tmp_path / "c")


@pytest.mark.parametrize("which,fmt", [("padc", "qop"), ("padc", "qdq"), ("convt", "qdq"), ("resize-lin", "qdq"),
                                       ("resize-lin", "qop")])
def test_int8_activations(which, fmt, tmp_path):
    """int8 activations: codes are q + 128, so a fill's train encodes fill - lo, not fill (a Pad value
    inside the range: fill != lo). onnxruntime's linear Resize of int8 codes truncates toward zero,
    which no neuron computes: refused by name."""
    _float_model(which, tmp_path / "f.onnx")
    p = _quantize(tmp_path / "f.onnx", tmp_path / "q.onnx", fmt, act=ort_quant.QuantType.QInt8)
    if which == "resize-lin" and fmt == "qop":
        with pytest.raises(UnsupportedOpError, match=r"Resize.*int8 codes.*truncates toward zero"):
            import_onnx(p)
        return
    _check(p)


def _torch_model(path, dynamo: bool) -> None:
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.c1 = nn.Conv2d(3, C1, 3, padding=1)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.ct = nn.ConvTranspose2d(C1, 6, 3, stride=2, padding=1, output_padding=1)
            self.c2 = nn.Conv2d(6, 6, 3)
            self.fc = nn.Linear(6, 10)

        def forward(self, x):
            y = F.relu(self.c1(x))
            y = self.up(y)
            y = F.relu(self.ct(F.pad(y, (1, 0, 0, 1))))
            y = F.relu(self.c2(F.pad(y, (1, 1, 1, 1), mode="reflect")))
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))

    x = torch.from_numpy(_inputs(1, 0)[0])
    kw = {"dynamo": True, "optimize": True} if dynamo else {"dynamo": False, "opset_version": 13}
    torch.onnx.export(Net().eval(), (x,), str(path), input_names=["input"], output_names=["output"], **kw)


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_torch_export(tmp_path, dynamo):
    """nn.Upsample(nearest), F.pad (constant and reflect), nn.ConvTranspose2d and F.interpolate
    (bilinear), exported by torch (TorchScript and dynamo exporters) and quantized by
    quantize_static (QDQ): onnxruntime, the exact ANN, the C."""
    if dynamo:
        pytest.importorskip("onnxscript")
    with warnings.catch_warnings():      # the exporters' own deprecation notices
        warnings.simplefilter("ignore")
        _torch_model(tmp_path / "f.onnx", dynamo=dynamo)
    p = _quantize(tmp_path / "f.onnx", tmp_path / "q.onnx", "qdq")
    ops = {n.op_type for n in onnx.load(str(p)).graph.node}
    assert {"Resize", "Pad", "ConvTranspose"} <= ops, ops
    _check_c(*_check(p), tmp_path / "c")


def _modified(tmp_path, which, edit):
    _float_model(which, tmp_path / "f.onnx")
    m = onnx.load(str(tmp_path / "f.onnx"))
    edit(m)
    onnx.save(m, str(tmp_path / "bad.onnx"))
    return _quantize(tmp_path / "bad.onnx", tmp_path / "q.onnx", "qdq")


def _set_init(name, value):
    def edit(m):
        for init in m.graph.initializer:
            if init.name == name:
                init.CopyFrom(numpy_helper.from_array(np.array(value, numpy_helper.to_array(init).dtype), name))
    return edit


def _set_attr(name, value):
    def edit(m):
        for n in m.graph.node:
            for a in n.attribute:
                if a.name == name:
                    a.CopyFrom(helper.make_attribute(name, value))
    return edit


@pytest.mark.parametrize("which,edit,message", [
    ("pad0", _set_init("pads", [1, 0, 1, 2, 0, 0, 2, 1]), r"'Pad_\d+' \(Pad\).*touches the batch axis"),
    ("tile", _set_init("rep", [2, 1, 1, 2]), r"'Tile_\d+' \(Tile\).*touches the batch axis"),
    ("resize-half", _set_attr("mode", "linear"), r"'Resize_\d+' \(Resize\).*linear Resize from 6 to 9"),
    ("resize-lin", _set_attr("coordinate_transformation_mode", "align_corners"),
     r"'Resize_\d+' \(Resize\).*not one filter over the whole axis"),
    ("resize-asym", _set_attr("mode", "cubic"), r"'Resize_\d+' \(Resize\).*mode cubic"),
], ids=["pad-batch", "tile-batch", "resize-linear-by-1.5", "resize-align-corners", "resize-cubic"])
def test_unsupported_forms_are_refused_by_name(tmp_path, which, edit, message):
    p = _modified(tmp_path, which, edit)
    with pytest.raises(UnsupportedOpError, match=message):
        import_onnx(p)
