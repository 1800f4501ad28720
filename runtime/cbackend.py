"""The C backend: an integer SWS graph (after ``lower-to-integer``) as portable C99.

``emit_c(graph, out_dir, prefix=..., header_info=...)`` writes

* ``<prefix>.h``          the public API, size/shape macros, the stats struct;
* ``<prefix>.c``          the integer network core (no float, no malloc, no stdio);
* ``<prefix>_weights.c``  every constant (``const``, so it lands in flash);
* ``<prefix>_internal.h`` declarations shared by the two files above;
* ``<prefix>_float.c``    the float helpers: quantize the input, dequantize the output,
                          the float tail (Softmax);
* ``main.c``, ``Makefile`` a host harness reading raw samples and writing raw results;
* ``manifest.json``       what ``run_binary`` needs to parse the harness output.

The layers: ``cformat.py`` (C literals, names, integer types) <- ``cplan.py`` (the planner:
each op's ``c_plan`` hook returns its plan, the planner places the buffers) <- this module
(the files, the build, the harness I/O). Python computes every number (loop bounds,
strides, constants, limits, buffer placement); the templates (``templates/`` and each op's
fragment ``swsc/ops/<op>.c.j2``) only loop and substitute, and name their own loop
variables (docs/cbackend.md). The generated code executes docs/integer.md exactly as the
numpy runtime's integer mode does; the widths of all intermediate integers are chosen from
proven bounds, the membrane's from the bound lower-to-integer proved and stored on the
layer (``int_bound``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import swsc
from swsc import kernels
from swsc.errors import SwscError
from swsc.ir import Graph, scalar
from swsc.ops import inputs_of, op_of

from .cformat import c_comment, c_double, c_float, c_ident, c_int, input_ctype, int_ctype  # noqa: F401
from .cplan import ACC_BLOCK_BYTES, LayerMem, Planner  # noqa: F401
from .ctemplates import env as _env
from .ctemplates import write_firmware_files

DEFAULT_CFLAGS = "-std=c99 -O2 -Wall -Wextra -pedantic"
_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,23}$")


# ---------------------------------------------------------------- report
@dataclass
class CReport:
    files: list[Path]
    flash_bytes: int
    ram_bytes: int
    layers: list[LayerMem]
    prefix: str = "sws"
    arena_bytes: int = 0       # all spike buffers, after reuse
    work_bytes: int = 0        # largest per-layer scratch (accumulators, membranes), on the stack
    stats_bytes: int = 0
    buffers_unshared: int = 0  # the spike buffers' total without reuse
    executable: str = ""

    def format(self) -> str:
        """The static memory report as text (what the CLI and the harness print)."""
        w = max([len(lay.name) for lay in self.layers] + [5])
        lines = [f"memory report for '{self.prefix}' (bytes)",
                 f"  {'layer':<{w}}  {'op':<12} {'flash':>10} {'ram':>10}"]
        for lay in self.layers:
            lines.append(f"  {lay.name:<{w}}  {lay.op:<12} {lay.flash_bytes:>10} {lay.ram_bytes:>10}")
        lines.append(f"  {'total':<{w}}  {'':<12} {self.flash_bytes:>10} {self.ram_bytes:>10}")
        lines.append(f"  ram = spike arena {self.arena_bytes} (unshared {self.buffers_unshared})"
                     f" + scratch {self.work_bytes} + stats {self.stats_bytes}")
        tsa = [lay for lay in self.layers if lay.membrane_bits]
        if tsa:
            lines.append("  membrane bits needed (proven bound): " + ", ".join(
                f"{lay.name} {lay.membrane_bits}{' sat' if lay.saturating else ''}" for lay in tsa))
        return "\n".join(lines)


# ---------------------------------------------------------------- emit
def _options_text(graph: Graph, header_info: dict) -> str:
    opts = header_info.get("options", graph.meta.get("options", ""))
    if isinstance(opts, str):
        try:
            opts = json.loads(opts) if opts else {}
        except json.JSONDecodeError:
            return c_comment(opts, 300)
    if hasattr(opts, "to_json"):
        opts = json.loads(opts.to_json())
    if isinstance(opts, dict):
        return c_comment(" ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
                                  for k, v in sorted(opts.items())), 300)
    return c_comment(opts, 300)


def emit_c(graph: Graph, out_dir, *, prefix: str = "sws", header_info: dict | None = None) -> CReport:
    """Write the C sources of ``graph`` (compiled with lower-to-integer) into ``out_dir``."""
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise SwscError(f"C symbol prefix {prefix!r} must be a letter then letters, digits or '_' (max 24)")
    header_info = dict(header_info or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pl = Planner(graph, prefix)
    pl.plan()
    P = prefix.upper()
    n_layers = len(pl.layers)
    stats_bytes = 8 * n_layers
    flash = sum(m.flash_bytes for m in pl.mem)
    arena_bytes = pl.arena * pl.mask_bytes
    ram = arena_bytes + pl.work_bytes + stats_bytes
    model = header_info.pop("model", graph.name)
    info = [("swsc version", swsc.__version__), ("model", c_comment(model, 200)),
            ("options", _options_text(graph, header_info))]
    header_info.pop("options", None)
    if "source" in graph.meta and "source" not in header_info:
        header_info["source"] = graph.meta["source"]
    for k in sorted(header_info):
        info.append((c_comment(k, 40), c_comment(header_info[k], 200)))
    if graph.t_inf is not None:
        info.append(("t_inf", c_comment(graph.t_inf, 40)))
    if "l_tsa" in graph.meta:
        info.append(("l_tsa", c_comment(graph.meta["l_tsa"], 40)))
    exe = f"{prefix}_main"
    ctx = {
        "prefix": prefix, "P": P, "info": info, "steps": pl.steps, "layers": pl.layers, "n_layers": n_layers,
        "input": pl.input, "outputs": pl.outputs, "output_size": pl.output_size, "arena": pl.arena,
        "arrays": pl.arrays.items, "tc": pl.tc, "beta": pl.beta, "t_inf": graph.t_inf or 0,
        "flash": flash, "ram": ram, "mem": pl.mem, "work": pl.work_bytes, "stats_bytes": stats_bytes,
        "mask_t": pl.mask_t, "bit1": pl.bit1, "arena_bytes": arena_bytes,
        "arena_struct_bytes": stats_bytes + -(-arena_bytes // 4) * 4,   # sizeof(<prefix>_arena_t)
        "unshared": pl.unshared * pl.mask_bytes, "has_tail": any(o.softmax for o in pl.outputs), "exe": exe,
    }
    env = _env()
    files = {
        f"{prefix}.h": "model.h.j2",
        f"{prefix}_internal.h": "internal.h.j2",
        f"{prefix}.c": "core.c.j2",
        f"{prefix}_weights.c": "weights.c.j2",
        f"{prefix}_float.c": "float.c.j2",
        "main.c": "main.c.j2",
        "Makefile": "Makefile.j2",
    }
    written = []
    for fname, tpl in files.items():
        text = env.get_template(tpl).render(**ctx)
        path = out_dir / fname
        path.write_text(text, encoding="ascii")
        written.append(path)
    written += write_firmware_files(env, ctx, out_dir)   # start-up code + linker script: make TARGET=cortex-m4
    inp = pl.input
    manifest = {
        "prefix": prefix, "exe": exe, "input": {"dtype": inp.dtype, "size": inp.n, "dims": inp.dims,
                                                "lo": inp.lo, "hi": inp.hi},
        "outputs": [{"name": graph.outputs[o.index], "size": o.n, "dims": o.dims} for o in pl.outputs],
        "output_size": pl.output_size, "layers": [lay["name"] for lay in pl.layers],
    }
    mpath = out_dir / "manifest.json"
    mpath.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="ascii")
    written.append(mpath)
    return CReport(written, flash, ram, list(pl.mem), prefix=prefix, arena_bytes=arena_bytes,
                   work_bytes=pl.work_bytes, stats_bytes=stats_bytes, buffers_unshared=pl.unshared * pl.mask_bytes,
                   executable=exe)


# ---------------------------------------------------------------- build and run
def input_quant(graph: Graph) -> dict:
    """The encoder's quantizer: {scale, zero_point, lo, hi, dtype} of the C input type."""
    # the encoder: the one op that makes spike trains from other values
    enc = next((n for n in graph.nodes if op_of(n).spike_output and not op_of(n).spike_inputs), None)
    if enc is None:
        raise SwscError("the graph has no encoder")
    q = graph.tensors[enc.outputs[0]].quant
    ctype = input_ctype(q.lo, q.hi)[0]
    return {"scale": scalar(q.scale), "zero_point": scalar(q.zero_point), "lo": q.lo, "hi": q.hi,
            "dtype": ctype.replace("_t", "")}


def quantize_input(graph: Graph, x) -> np.ndarray:
    """numpy twin of ``<prefix>_quantize_input``: the model's float head (``FloatArith``), then its
    QuantizeLinear, in float32."""
    qi = input_quant(graph)
    x = np.asarray(x, dtype=np.float32)
    for n in graph.topo_order():
        if n.op == "FloatArith":
            x = kernels.float_arith(x, graph.const(inputs_of(n).c), n.attrs["op"], n.attrs.get("reverse", False))
    v = np.rint(x / np.float32(qi["scale"])) + np.float32(qi["zero_point"])
    return np.clip(v, qi["lo"], qi["hi"]).astype(qi["dtype"])


def dequantize_output(graph: Graph, q: np.ndarray, index: int = 0) -> np.ndarray:
    """numpy twin of ``<prefix>_dequantize_output`` for graph output ``index``."""
    name = graph.outputs[index]
    node = graph.producer(name)
    # back through the float tail (Softmax) to the decoder, the node whose input is a spike train
    while node is not None and graph.tensors[node.inputs[0]].dtype != "spike":
        node = graph.producer(node.inputs[0])
    qt = graph.tensors[node.inputs[0]].quant
    return (scalar(qt.scale) * (np.asarray(q, dtype=np.float64) - scalar(qt.zero_point))).astype(np.float32)


def build(out_dir, cc: str = "gcc", cflags: str | None = None, *, exe: str | None = None,
          ldflags: str = "") -> Path:
    """Compile the harness with ``make`` (or ``cc`` directly where make is missing); returns the
    executable. ``exe`` names it (to keep several builds of one directory apart)."""
    out_dir = Path(out_dir)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    prefix = manifest["prefix"]
    exe = exe or manifest["exe"]
    cflags = DEFAULT_CFLAGS if cflags is None else cflags
    if shutil.which("make"):
        cmd = ["make", "-B", "-s", "-C", str(out_dir), f"CC={cc}", f"CFLAGS={cflags}", f"EXE={exe}",
               f"LDFLAGS={ldflags}"]
    else:
        srcs = ["main.c", f"{prefix}.c", f"{prefix}_weights.c", f"{prefix}_float.c"]
        cmd = [cc, *cflags.split(), "-o", str(out_dir / exe), *[str(out_dir / s) for s in srcs],
               *ldflags.split(), "-lm"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise SwscError(f"cannot run the C compiler '{cc}': not found", hint="install gcc or set CC") from e
    if r.returncode != 0:
        raise SwscError(f"C build failed ({' '.join(cmd)}):\n{r.stdout}{r.stderr}",
                        hint="the compiler is CC (default gcc)")
    return out_dir / exe


def _manifest(exe: Path) -> dict:
    return json.loads((Path(exe).parent / "manifest.json").read_text())


def run_binary(exe, x_q: np.ndarray, *, per_sample: bool = False, timeout: float = 600):
    """Run the harness on quantized inputs ``x_q`` [N, ...] (the model's input integer type).

    Returns (outputs_q int32 [N, *output frame] (outputs concatenated flat when there are
    several), {layer name: (spikes_pos, spikes_neg)}) with counts summed over the samples,
    or int arrays [N] each with ``per_sample``.
    """
    exe = Path(exe)
    man = _manifest(exe)
    data, n = input_bytes(man, x_q)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    r = subprocess.run([str(exe)], input=data, capture_output=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise SwscError(f"{exe.name} exited with {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return parse_results(man, r.stdout, n, per_sample=per_sample, who=exe.name)


def input_bytes(man: dict, x_q) -> tuple[bytes, int]:
    """The harness's raw input for quantized samples ``x_q`` [N, ...]: (bytes, N)."""
    dtype = np.dtype(man["input"]["dtype"])
    x = np.asarray(x_q)
    n = x.shape[0] if x.ndim else 0
    if x.size != n * man["input"]["size"]:
        raise SwscError(f"inputs of shape {x.shape} do not hold {n} samples of {man['input']['size']} values")
    if np.any(x != x.astype(dtype)):
        raise SwscError(f"inputs do not fit the model's input type {dtype}")
    return np.ascontiguousarray(x.astype(dtype)).tobytes(), n


def parse_results(man: dict, raw: bytes, n: int, *, per_sample: bool = False, who: str = "the harness"):
    """The harness's binary results for ``n`` samples, as ``run_binary`` returns them (shared
    with the firmware runner, whose output file has the same layout)."""
    L = len(man["layers"])
    rec = man["output_size"] + 2 * L
    raw = np.frombuffer(raw, dtype=np.int32)
    if raw.size != n * rec:
        raise SwscError(f"{who} wrote {raw.size} values, expected {n * rec}")
    raw = raw.reshape(n, rec)
    outs = raw[:, :man["output_size"]].copy()
    if len(man["outputs"]) == 1:
        outs = outs.reshape((n, *man["outputs"][0]["dims"]))
    pos, neg = raw[:, man["output_size"]:man["output_size"] + L], raw[:, man["output_size"] + L:]
    counts = {}
    for i, name in enumerate(man["layers"]):
        counts[name] = ((pos[:, i].copy(), neg[:, i].copy()) if per_sample
                        else (int(pos[:, i].astype(np.int64).sum()), int(neg[:, i].astype(np.int64).sum())))
    return outs, counts


def memory_report(exe) -> str:
    """The harness's own static memory report (``-m``)."""
    r = subprocess.run([str(exe), "-m"], capture_output=True, text=True)
    return r.stdout
