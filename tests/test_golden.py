"""Golden IR dumps after every pass for two bundled samples.

The dumps are reviewed by people; a change to the IR text, a pass, or the front-end
shows here as a readable diff. Regenerate after an intended change with

    SWSC_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py

and review the diff before committing it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from swsc.compiler import compile_graph, import_onnx
from swsc.options import CompileOptions
from swsc.passmanager import IRPrintOptions

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
MODELS = ["lenet5_mnist_qat", "resnet_digits_qat"]


@pytest.mark.parametrize("model", MODELS)
def test_dumps_match_golden(model, tmp_path):
    graph = import_onnx(ROOT / "samples" / f"{model}.onnx")
    compile_graph(graph, CompileOptions(), print_options=IRPrintOptions(dump_dir=str(tmp_path)), integer=True)
    got = {p.name: p.read_text() for p in sorted(tmp_path.glob("*.ir"))}
    want_dir = GOLDEN / model
    if os.environ.get("SWSC_REGEN_GOLDEN"):
        want_dir.mkdir(parents=True, exist_ok=True)
        for old in want_dir.glob("*.ir"):
            old.unlink()
        for name, text in got.items():
            (want_dir / name).write_text(text)
    want = {p.name: p.read_text() for p in sorted(want_dir.glob("*.ir"))}
    assert sorted(got) == sorted(want), "passes changed; regenerate with SWSC_REGEN_GOLDEN=1"
    for name in want:
        assert got[name] == want[name], f"{model}/{name} differs; review and regenerate"
