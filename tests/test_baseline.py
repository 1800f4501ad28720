"""Behaviour is unchanged by refactors: compiled outputs, every decoded tensor and per-layer
spike counts hash to the values recorded before the op-module refactor (tests/baseline.py
explains the fixture). The suite compares the bundled samples, the shared MLPerf models and
one corpus model per architecture and format; `python tests/baseline.py check [--c]` compares
every model (about 15 minutes)."""
from __future__ import annotations

import json

import pytest

import baseline

FIXTURE = json.loads(baseline.FIXTURE.read_text())
SUITE = [n for n in FIXTURE if n.startswith(("sample/", "mlperf/"))
         or n in {f"corpus/{a}-{f}-pc-u8" for a in ("mlp", "lenet", "vgg", "resnet", "inception")
                  for f in ("qdq", "qop")}]


@pytest.mark.parametrize("name", SUITE)
def test_unchanged(name, corpus_dir):
    entries = baseline.models(corpus_dir)
    if name not in entries:
        pytest.skip(f"{name} is not available here (../shared is optional)")
    path_fn, xs_fn = entries[name]
    path = path_fn()
    old = FIXTURE[name]
    if baseline.file_hash(path) != old["model"]:
        pytest.skip(f"{name}: this machine generated a different model file; only identical models compare")
    new = baseline.fingerprint(path, xs_fn())
    bad = baseline.diff({k: v for k, v in old.items() if not k.endswith("/c")}, new)
    assert not bad, f"{name} changed: " + "; ".join(bad[:8])
