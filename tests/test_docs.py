"""Figures the docs state that the code can keep in step: corpus counts, where the C speed
table lives, and that pytest tells why a test skipped."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import corpus

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_corpus_counts_match_the_corpus():
    total, pitfalls = len(corpus.model_names()), len(corpus.PITFALLS)
    found = 0
    for doc in DOCS:
        text = " ".join(doc.read_text().split())    # counts may wrap across lines
        for m in re.finditer(r"\b(\d+) (?:test-)?corpus models", text):
            assert int(m.group(1)) == total, f"{doc.name}: '{m.group(0)}', the corpus has {total}"
            found += 1
        for m in re.finditer(r"\((\d+) quantized \+ (\d+) pitfalls\)", text):
            assert (int(m.group(1)), int(m.group(2))) == (total - pitfalls, pitfalls), f"{doc.name}: {m.group(0)}"
            found += 1
    assert found >= 3   # README twice, docs/frontend.md once: the check must see them


def test_c_speed_figures_live_in_one_table():
    readme = (ROOT / "README.md").read_text()
    assert "\n## Speed and size\n" in readme and "| swsc us/frame | emx us/frame |" in readme
    cdoc = (ROOT / "docs" / "cbackend.md").read_text()
    assert '"Speed and size" table' in cdoc
    assert not re.search(r"^\|[^\n]*fps", cdoc, re.M), "docs/cbackend.md must not keep its own speed table"


def test_pytest_prints_skip_reasons(tmp_path):
    t = tmp_path / "test_skip.py"
    t.write_text("import pytest\n\ndef test_x():\n    pytest.skip('the reason is shown')\n")
    p = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir",
                        str(tmp_path), "-p", "no:cacheprovider", str(t)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SKIPPED" in p.stdout and "the reason is shown" in p.stdout
