"""IR invariants, deterministic text, exact ONNX round trip, pass manager instrumentation."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from graphs import residual, tiny_cnn
from swsc.passes import FoldZeroPoints, pipeline

from swsc import serialize
from swsc.errors import InvalidModelError, IRVerifyError, PassError
from swsc.ir import Coding, Tensor, fresh_name
from swsc.ops import verify
from swsc.options import CompileOptions
from swsc.passmanager import IRPrintOptions, Pass, PassManager
from swsc.text import to_text


def test_verify_accepts_valid_graph():
    verify(tiny_cnn())


def test_verify_catches_dangling_input():
    g = tiny_cnn()
    g.node("fc").inputs[0] = "nowhere"
    g.tensors["nowhere"] = Tensor("nowhere", "uint8", (1, 36))
    with pytest.raises(IRVerifyError, match="dangling"):
        verify(g)


def test_verify_catches_duplicate_node_name():
    g = tiny_cnn()
    g.node("pool").name = "conv"
    with pytest.raises(IRVerifyError, match="duplicate node name"):
        verify(g)


def test_verify_catches_tensor_produced_twice():
    g = tiny_cnn()
    g.node("pool").outputs[0] = "c"
    with pytest.raises(IRVerifyError, match="produced twice"):
        verify(g)


def test_verify_catches_cycle():
    g = tiny_cnn()
    g.node("conv").inputs[0] = "m"          # conv reads pool's output, pool reads conv's
    g.tensors["m"].shape = (1, 2, 6, 6)
    with pytest.raises(IRVerifyError, match="cycle"):
        verify(g)


def test_verify_catches_shape_mismatch():
    g = tiny_cnn()
    g.tensors["c"].shape = (1, 4, 5, 5)
    with pytest.raises(IRVerifyError, match="declared"):
        verify(g)


def test_verify_catches_a_spike_tensor_without_start_step():
    sg = PassManager(pipeline(CompileOptions())).run(tiny_cnn())
    sg.tensors["c"].t0 = None
    with pytest.raises(IRVerifyError, match="start step t0"):
        verify(sg)


def test_verify_catches_a_start_step_off_its_inputs():
    sg = PassManager(pipeline(CompileOptions())).run(tiny_cnn())
    sg.tensors["c"].t0 += 1
    with pytest.raises(IRVerifyError, match="shifted by"):
        verify(sg)


def test_verify_catches_bad_neuron_attributes():
    sg = PassManager(pipeline(CompileOptions())).run(tiny_cnn())
    sg.node("conv").attrs["ts"] = -1
    with pytest.raises(IRVerifyError, match="negative"):
        verify(sg)


@pytest.mark.parametrize("coding, words", [(Coding(0, 2.0), "tc >= 1"), (Coding(8, 1.0), "beta > 1"),
                                           (None, "has no coding")])
def test_verify_catches_a_bad_coding(coding, words):
    sg = PassManager(pipeline(CompileOptions())).run(tiny_cnn())
    sg.coding = coding
    with pytest.raises(IRVerifyError, match=words):
        verify(sg)


def test_coding_parameters_live_only_on_the_graph():
    """Tc, beta and the code sum are stored once (graph.coding); spike tensors keep their start."""
    sg = PassManager(pipeline(CompileOptions(tc=6, beta=2.0)), ).run(tiny_cnn())
    assert sg.coding == Coding(6, 2.0) and sg.coding.code_sum == 63 == sg.coding.int_code_sum
    assert not any(k in n.attrs for n in sg.nodes for k in ("tc", "beta", "code_sum"))
    assert isinstance(sg.t_inf, int) and "t_inf" not in sg.meta
    text = to_text(sg)
    assert "coding: tc=6 beta=2.0" in text and f"t_inf: {sg.t_inf}" in text and ",tc=" not in text


def test_load_refuses_a_damaged_ir_file(tmp_path):
    sg = PassManager(pipeline(CompileOptions())).run(tiny_cnn())
    path = tmp_path / "tiny.sws.onnx"
    serialize.save(sg, path)
    m = onnx.load(str(path))
    del m.graph.initializer[0]
    onnx.save(m, str(path))
    with pytest.raises(InvalidModelError, match="corrupt swsc IR file.*dangling"):
        serialize.load(path)


def test_verify_catches_unaligned_windows():
    sg = PassManager(pipeline(CompileOptions(ts=2))).run(residual())
    add = sg.node("add")
    delay = [i for i in add.inputs if "delay" in i]
    assert delay, "scheduling must delay the shortcut"
    add.inputs[add.inputs.index(delay[0])] = "c0"
    with pytest.raises(IRVerifyError, match="different steps"):
        verify(sg)


@pytest.mark.parametrize("stage", ["canonical", "compiled"])
def test_text_is_deterministic_and_survives_save_load(tmp_path, stage):
    g = tiny_cnn() if stage == "canonical" else PassManager(pipeline(CompileOptions())).run(tiny_cnn())
    again = tiny_cnn() if stage == "canonical" else PassManager(pipeline(CompileOptions())).run(tiny_cnn())
    assert to_text(g) == to_text(again)
    path = tmp_path / ("m" + serialize.SUFFIX)
    serialize.save(g, path)
    loaded = serialize.load(path)
    assert to_text(loaded) == to_text(g)
    # exact: every constant bit-equal, every attribute equal, quant parameters equal
    for name, t in g.tensors.items():
        u = loaded.tensors[name]
        assert (u.dtype, u.shape, u.t0) == (t.dtype, t.shape, t.t0)
        if t.is_const:
            assert u.data.dtype == t.data.dtype and np.array_equal(u.data, t.data)
        assert (t.quant is None) == (u.quant is None)
        if t.quant is not None:
            assert t.quant.same_as(u.quant)
    for a, b in zip(g.nodes, loaded.nodes):
        assert (a.op, a.name, a.inputs, a.outputs) == (b.op, b.name, b.inputs, b.outputs)
        assert a.attrs == b.attrs and all(type(a.attrs[k]) is type(b.attrs[k]) for k in a.attrs)


def test_saved_file_passes_onnx_checker(tmp_path):
    g = PassManager(pipeline(CompileOptions())).run(tiny_cnn())
    path = tmp_path / "m.sws.onnx"
    serialize.save(g, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert {o.domain for o in model.opset_import} >= {"ai.swsc"}


def test_text_escapes_hostile_names():
    g = tiny_cnn()
    g.node("conv").name = 'evil"\n*/name'
    text = to_text(g)
    line = [ln for ln in text.splitlines() if "QConv" in ln][0]
    assert "\\n" in line and '\\"' in line


def test_pass_manager_dumps(tmp_path, capsys):
    opts = CompileOptions()
    pm = PassManager(pipeline(opts), print_options=IRPrintOptions(
        after={"rescale"}, before={"lower-to-sws"}, dump_dir=str(tmp_path)))
    pm.run(tiny_cnn())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["00_import.ir", "01_fold-zero-points.ir", "02_rescale.ir", "03_insert-encoder.ir",
                     "04_lower-to-sws.ir", "05_schedule-latencies.ir"]
    for p in tmp_path.iterdir():
        pass_name = p.stem[3:]
        assert f'"{pass_name}"' in p.read_text().splitlines()[0]
    err = capsys.readouterr().err
    assert 'after pass "rescale"' in err and 'before "lower-to-sws"' in err


def test_pass_manager_env_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SWSC_DUMP_IR", str(tmp_path))
    PassManager(pipeline(CompileOptions())).run(tiny_cnn())
    assert (tmp_path / "05_schedule-latencies.ir").exists()


def test_failing_pass_is_named():
    class Broken(Pass):
        name = "break-things"

        def run(self, graph):
            graph.nodes[1].inputs[0] = "gone"
            graph.tensors["gone"] = Tensor("gone", "uint8", (1, 2, 6, 6))
            return True

    with pytest.raises(PassError, match="break-things.*after fold-zero-points"):
        PassManager([FoldZeroPoints(), Broken()]).run(tiny_cnn())


def test_pass_manager_rejects_unknown_print_pass():
    from swsc.errors import UsageError
    with pytest.raises(UsageError, match="no-such-pass"):
        PassManager(pipeline(CompileOptions()), print_options=IRPrintOptions(after={"no-such-pass"}))


@pytest.mark.parametrize("make", [tiny_cnn, residual])
def test_passes_report_changed_truthfully(make):
    """Every pass changes a fresh graph; run again on its own output, the passes that are
    idempotent find nothing to do and say so."""
    g = make()
    for p in pipeline(CompileOptions(), integer=True):
        assert p.run(g) is True, p.name
        verify(g)
        if p.name in ("fold-zero-points", "insert-encoder", "lower-to-sws", "schedule-latencies"):
            before = to_text(g)
            assert p.run(g) is False, p.name
            assert to_text(g) == before, p.name


def test_fresh_name_is_the_one_uniquing_rule():
    assert fresh_name("a", {"b"}) == "a"
    assert fresh_name("a", {"a", "a_1"}) == "a_2"
    # the C backend's form: case-insensitive, and the suffix fits in maxlen
    assert fresh_name("Conv1", {"conv1"}, maxlen=5, key=str.lower) == "Con_1"
    g = tiny_cnn()
    assert g.unique_name("conv") == "conv_1" and g.unique_name("fresh") == "fresh"
