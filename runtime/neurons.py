"""The TSA neuron scan of a fused layer (``TsaLayer``), shared by every synapse kind:
its synaptic current comes from the layer's ``Synapse`` (``swsc/ops/<kind>.py``), the
neurons are the same whatever the kind.

``tsa_float`` is semantics section 3 in float64, ``tsa_int`` docs/integer.md step for
step; both take the layer's input frames flattened to ``[Tc * N, ...]`` and return the
output frames, E and the final membrane in units of the reset R. The Interpreter picks
one by its mode (``rt.tsa``).
"""
from __future__ import annotations

import numpy as np

from swsc.kernels import FLOAT32_EXACT
from swsc.loops import fold_frames, tsa_scan_int, tsa_scan_units
from swsc.ops import inputs_of, synapse_of


def tsa_float(rt, node, flat, tc, nb):
    """Semantics section 3 in float64; returns frames, E, and the membrane in units of R."""
    a = node.attrs
    ins = inputs_of(node)
    syn = synapse_of(node)
    w, b = rt.g.const(ins.w), rt.g.const(ins.b)
    beta = float(rt.g.coding.beta)
    wq, mult = rt.weights(node)
    R = beta ** a["ts"]    # the scan counts the membrane in units of the reset
    # Silent steps only integrate: by linearity one map of their beta-weighted frames
    # gives the same membrane as one map per step (exact for integer beta). The fold
    # goes through the same GEMM call as the other steps, as its first block.
    j = min(a["ts"], tc) if beta == int(beta) else 0
    j = j if j > 1 else 0
    steps = tc - j + (1 if j else 0)
    fold_weights = [beta ** (j - 1 - t) for t in range(j)]
    # Integer frames times integer weights (or summed over a pooling window) are exact in a
    # float32 GEMM, in any summation order, while every partial sum stays below 2^24: a
    # frame's entries are at most the fold's weight sum (1 without a fold). Wider layers
    # take the (slower) float64 path.
    largest = sum(fold_weights) if j else 1.0
    if wq is not None:
        exact32 = rt.row_l1(node) * largest < FLOAT32_EXACT
    else:
        exact32 = syn.float32_exact(node, beta, largest)
    out_frame = rt.g.tensors[node.outputs[0]].shape[1:]
    z = rt.scratch("z", (steps * nb,) + tuple(out_frame), np.float32) if wq is not None and exact32 else None
    # a synapse may take the int8 frames and the fold as they are (``linear_frames``: the depthwise
    # conv folds plane by plane), which spares building the folded operand; None where it cannot
    direct = getattr(syn, "linear_frames", None) if z is not None and len(flat) == 1 \
        and flat[0].dtype == np.int8 else None
    if direct is not None and direct(node, flat[0].reshape((tc, nb) + flat[0].shape[1:]), fold_weights, wq,
                                     z) is not None:
        mul = mult / R
    else:
        xs = []
        for i, f in enumerate(flat):
            x = rt.scratch(f"x{i}", (steps * nb,) + f.shape[1:], np.float32 if exact32 else np.float64)
            if f.dtype == np.int8:     # spike frames: the fold and the conversion in one pass
                fold_frames(f.reshape((tc, nb) + f.shape[1:]), fold_weights, x.reshape((steps, nb) + f.shape[1:]))
            else:
                if j:
                    np.multiply(f[:nb], fold_weights[0], out=x[:nb])
                    for t, wt in enumerate(fold_weights[1:], 1):
                        x[:nb] += wt * f[t * nb:(t + 1) * nb]
                x[nb if j else 0:] = f[j * nb:]
            xs.append(x)
        if wq is not None:   # exact integer sums in a float32 GEMM, the real multiplier in the scan
            z, mul = syn.linear(node, xs, wq, z), mult / R
        else:
            z, mul = syn.real_current(node, xs, w, R)
    size = (nb,) + tuple(out_frame)
    return tsa_scan_units(z.reshape((steps,) + size), b / R, ts=a["ts"], tc=tc, beta=beta,
                          vth=a["vth"], hi_norm=a["hi_norm"], zmul=mul, start=j, fold_bias=b / R * sum(fold_weights),
                          E=rt.scratch("E", size, np.float64), v=rt.scratch("v", size, np.float64))


def tsa_int(rt, node, flat, tc, nb):
    """docs/integer.md, step for step; returns frames, E, and the membrane in units of R."""
    a = node.attrs
    ins = inputs_of(node)
    bq, rq = rt.g.const(ins.bq), rt.g.const(ins.rq)
    wq = rt.g.const(ins.wq) if ins.wq else np.ones(1)
    acc = synapse_of(node).linear(node, [f.astype(np.float64) for f in flat], wq.astype(np.float64))
    acc = np.rint(acc).astype(np.int64)
    acc = acc.reshape((tc, nb) + acc.shape[1:])
    bd = rt.g.const(ins.bd) if ins.bd else np.zeros(1)
    frames, E, U = tsa_scan_int(acc, bq, rq, bd=bd, acc_mul=a["int_acc_mul"], ts=a["ts"], tc=tc,
                                beta=int(rt.g.coding.beta),
                                vth=tuple(a["int_vth"]), hi=a["int_hi"], sat=a.get("int_sat", 0),
                                bound=a.get("int_bound", 2**31 - 1 if a["int_membrane"] == "int32" else 2**63 - 1))
    return frames, E, U / rq
