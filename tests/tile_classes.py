"""The DSP tile classes (dwgen/dsp_tile.py) and layers aimed at each, for every test that
must run them all: tests/test_dsp_tiles.py on the emulated cores and tests/test_firmware.py
in firmware images on QEMU's Cortex-M4 and M7 boards.

A class is one choice the tile generator makes (loop kind, where the weights live, one body
or a dispatch over right shifts, the requantization variants, ...) or a layer property the
tile has to handle (strides, dilations, depth multipliers, 1-D, batches, NCHW). REQUIRED is
every class there is; kernel_classes(k) is the set a generated kernel exercises, so a test
can require that its kernels cover REQUIRED, and fails when the planner stops producing one.
"""

from __future__ import annotations

import numpy as np

import dwgen
from dwgen.layer import DepthwiseLayer


def class_layer(out_scale, *, kernel=(3, 3), strides=(1, 1), dil=(1, 1), m=1, fmt="channels_last",
                act="none", hw=(8, 8), c=4, batch=1, zp=(-3, 5), ws=None, padding="same", rank=2, seed=0):
    """A 4-channel 8x8 3x3 layer by default: weight scales spread so the channels get several
    right shifts, random int8 weights and bias from `seed`."""
    rng = np.random.default_rng(seed)
    layer = DepthwiseLayer(kernel, strides, padding, m, fmt, dil, act, True, rank)
    h, w = hw
    if rank == 1:
        shape = (batch, c, w) if fmt == "channels_first" else (batch, w, c)
    else:
        shape = (batch, c, h, w) if fmt == "channels_first" else (batch, h, w, c)
    oc = c * m
    ws = list(np.linspace(0.004, 0.02, oc)) if ws is None else ws
    q = dwgen.Quantization.from_scales(0.02, zp[0], ws, out_scale, zp[1], oc)
    kh, kw = layer.kernel_size
    return dwgen.QuantizedLayer.create(layer, shape, q, rng.integers(-127, 128, (kh, kw, c, m)),
                                       rng.integers(-3000, 3000, oc))


def class_layers() -> list[tuple[str, dwgen.QuantizedLayer]]:
    """(label, layer) aimed at one tile class each. The planner decides which class a layer
    gets; the tests check the union (alone and within the sweep of tests/test_dsp_tiles.py)."""
    six = [0.004 * 2.0 ** -(i % 6) for i in range(8)]  # six distinct right shifts, all > 0
    return [
        ("row ring", class_layer(0.003, hw=(30, 30))),
        ("row ring dilated", class_layer(0.003, kernel=(2, 2), hw=(30, 40), dil=(2, 1))),
        ("row tails", class_layer(0.003, kernel=(3, 4), hw=(9, 31), strides=(1, 1))),
        ("rows", class_layer(0.003, hw=(6, 6))),
        ("block", class_layer(0.003, hw=(12, 12))),
        ("compact weights", class_layer(0.003, hw=(30, 30), c=28)),
        ("compact weights, left shift", class_layer(0.00003, hw=(30, 30), c=28, ws=[0.004])),
        ("int8 taps, left shift", class_layer(0.00003, hw=(14, 14), c=28, ws=[0.004])),
        ("plane", class_layer(0.003, hw=(3, 3), c=8, ws=[0.01])),
        ("plane stride 2, 3 shifts", class_layer(0.003, hw=(6, 6), strides=(2, 2), c=12,
                                                 ws=[0.01, 0.005, 0.0025] * 4)),
        ("plane NCHW, odd channels", class_layer(0.003, fmt="channels_first", hw=(4, 4), c=7)),
        ("block stride", class_layer(0.003, kernel=(4, 2), hw=(10, 24), strides=(1, 2))),
        ("held", class_layer(0.003, kernel=(2, 2), hw=(4, 2), c=6)),
        ("held 1-wide", class_layer(0.003, kernel=(3, 3), hw=(5, 1), padding="same")),
        ("stash", class_layer(0.003, kernel=(3, 5), hw=(6, 6))),
        ("memory", class_layer(0.003, kernel=(5, 5), hw=(8, 8))),
        ("memory 7x7", class_layer(0.003, kernel=(7, 7), hw=(9, 3), c=5)),
        ("register shift", class_layer(0.0008, c=8, ws=six)),
        ("register shift, dead fix", class_layer(0.0008, c=8, ws=six, act="relu", zp=(-3, -128))),
        ("single shift", class_layer(0.003, ws=[0.01])),
        ("shifts 0 and 1", class_layer(2.7e-4, ws=[0.01, 0.005, 0.01, 0.005])),
        ("shift 0 only", class_layer(2.7e-4, ws=[0.01] * 4)),
        ("dead sign fix", class_layer(0.003, act="relu", zp=(4, -128))),
        ("relu6 narrow", class_layer(0.03, act="relu6", zp=(4, -128))),
        ("relu_n1_to_1 narrow", class_layer(0.01, act="relu_n1_to_1", zp=(4, 3))),
        ("stride 2", class_layer(0.003, strides=(2, 2), hw=(11, 11))),
        ("dilation 2", class_layer(0.003, dil=(2, 2), hw=(11, 11))),
        ("depth multiplier 2", class_layer(0.003, m=2)),
        ("depth multiplier 4", class_layer(0.003, m=4, c=3)),
        ("1-D", class_layer(0.003, rank=1, kernel=(1, 5), hw=(1, 20))),
        ("W = 1", class_layer(0.003, kernel=(5, 1), hw=(20, 1))),
        ("batch 2", class_layer(0.003, batch=2, hw=(7, 9))),
        ("NCHW", class_layer(0.003, fmt="channels_first", hw=(7, 13))),
        ("NCHW row", class_layer(0.003, fmt="channels_first", hw=(20, 33), c=3)),
        # Classes the random sweep of tests/test_dsp_tiles.py reached but no layer above: the
        # firmware images run these layers without the sweep, so each class needs one here.
        ("row, held weights", class_layer(0.003, kernel=(4, 1), hw=(17, 9), strides=(2, 1))),
        ("row, weights in memory", class_layer(0.003, kernel=(5, 5), hw=(10, 24))),
        ("rows, held weights", class_layer(0.003, kernel=(2, 2), hw=(6, 6))),
        ("relu, high clamp at 127", class_layer(0.003, act="relu", zp=(4, 10))),
        # the taps flow (dwgen/dsp_taps.py): long kernels over at most 4 outputs per channel
        ("taps: 15x1, one output, one shift", class_layer(0.003, kernel=(15, 1), hw=(15, 1), c=12, padding="valid",
                                                             ws=[0.01])),
        ("taps: 2x2 outputs, padding, 2 tail channels", class_layer(0.003, hw=(2, 2), c=6)),
        ("taps: 1-D k9, relu6, batch 2", class_layer(0.03, rank=1, kernel=(1, 9), hw=(1, 10), c=9, act="relu6",
                                                       zp=(4, -128), padding="valid", batch=2)),
        ("taps: register shift, stride 2", class_layer(0.0008, hw=(4, 4), strides=(2, 2), padding="valid",
                                                         c=8, ws=six)),
    ]


#: class_layers() labels also generated with `--opt size` (size_class_layers).
SIZE_RERUNS = ("row ring", "row tails", "block", "compact weights", "int8 taps, left shift",
               "plane stride 2, 3 shifts", "plane NCHW, odd channels", "held", "stash", "memory 7x7",
               "register shift, dead fix", "single shift", "relu6 narrow", "relu_n1_to_1 narrow", "stride 2",
               "dilation 2", "depth multiplier 4", "W = 1", "batch 2", "NCHW row", "rows, held weights")


def size_class_layers() -> list[tuple[str, dwgen.QuantizedLayer]]:
    """(label, layer) to generate with `--opt size` (one tile body, a register shift when the
    channels' right shifts differ, the smallest plan that stays fast): layers shaped like the
    benchmark's, whose size plans read int8 weights (the tile's channel head, or the C rebuild),
    and some class_layers() again."""
    three = [0.01, 0.005, 0.0025]

    def ws(c):
        return (three * c)[:c]

    by_label = dict(class_layers())
    return [
        ("size: plane, int8 taps, kq in the record", class_layer(0.003, hw=(3, 3), c=64, ws=ws(64))),
        ("size: plane, C rebuild", class_layer(0.003, hw=(3, 3), c=128, ws=ws(128))),
        ("size: channel loop, int8 taps, stash", class_layer(0.003, hw=(25, 5), c=64, ws=ws(64))),
        ("size: block, C rebuild", class_layer(0.003, hw=(6, 6), c=128, ws=ws(128))),
        ("size: channel loop, int8 taps, dead sign fix", class_layer(0.003, hw=(12, 12), c=64, ws=ws(64),
                                                                     act="relu", zp=(4, -128))),
        ("size: rows, stash, stride 2", class_layer(0.003, hw=(12, 12), strides=(2, 2), c=64, ws=ws(64))),
    ] + [(f"size: {label}", by_label[label]) for label in SIZE_RERUNS]


def kernel_classes(k) -> set[str]:
    """Every tile class the generated kernel `k` exercises (none without a tile)."""
    out = _classes(k)
    if k.options.opt == "size" and out:
        t = k.dsp.tile
        out = out | {"size", f"size / loop {t.loop}", f"size / weights {t.plan.weights}",
                     "size / register shift" if t.requants[0].rshift is None else "size / immediate shift"}
        if t.plan.shape.channels:
            out.add("size / channel loop")
        store = k.dsp.store
        out.add("size / baked pairs" if store is None else "size / int8 taps" if store.head else "size / compact weights")
        assert len(t.bodies) == 1 and len(t.requants) == 1, k.name  # one shared body
    return out


def _classes(k) -> set[str]:
    d = k.dsp
    if d is not None and d.taps is not None:
        out = {"taps", f"taps / {'uniform shift' if d.uniform_rshift is not None else 'shift per channel'}"}
        out |= {"taps / tail channels"} if d.taps.tail else set()
        out |= {"taps / batch 2"} if k.plan.ql.geometry.batch == 2 else set()
        out |= {"taps / high clamp"} if d.high_clamp is not None else set()
        return out
    t = None if d is None else d.tile
    if t is None:
        return set()
    g = k.plan.ql.geometry
    p = t.plan
    out = {f"loop {t.loop}", f"weights {p.weights}", "dispatch" if t.dispatch else "single body",
           f"band {d.mode}", f"loop {t.loop} / weights {p.weights}"}
    if t.channels and len(t.requants) > 1:
        out.add(f"{t.loop} dispatch" if t.loop == "plane" else "channel loop dispatch")
    if p.shape.channels:
        out |= {f"channel loop", f"channel loop / {t.loop}", f"channel loop / weights {p.weights}"}
    for rq in t.requants:
        out.add("register shift" if rq.rshift is None else ("shift 0" if rq.rshift == 0 else "shift > 0"))
        out.add("sign fix" if rq.sign_fix else "no sign fix")
        if rq.high_clamp is not None:
            out.add("high clamp" + (" below 127" if rq.act_max != 127 else ""))
    q = k.plan.ql
    if q.act_min == q.quant.output_zero_point and q.layer.activation != "none":
        out.add("act_min == output zero point")
    if d.store is not None and d.store.head:
        w8 = p.shape.w8
        out |= {"int8 taps", f"int8 taps / {'plane' if t.loop == 'plane' else 'channel loop'}",
                f"int8 taps / weights {p.weights}",
                "int8 taps / kq in the record" if w8.kq_in_record else "int8 taps / kq per body"}
        if w8.scale_steps > 1:
            out.add("int8 taps, left shift")
    elif d.store is not None:
        out.add("compact weights")
        if d.store.scale_steps > 1:
            out.add("compact weights, left shift")
    else:
        out.add("baked pairs")
    out.add("bias register" if p.breg else "no bias register")
    out.add("end register" if p.ereg else "end in the stash")
    out.add("kq register" if p.kreg else "kq per output")
    if t.loop == "row" and d.program.tails:
        out.add("C tails")
    if g.stride_w == 2 or g.stride_h == 2:
        out.add("stride 2")
    if g.dilation_w == 2 or g.dilation_h == 2:
        out.add("dilation 2")
    if g.depth_multiplier in (2, 4):
        out.add(f"depth multiplier {g.depth_multiplier}")
    if g.rank == 1:
        out.add("1-D")
    if g.batch == 2:
        out.add("batch 2")
    if g.channels_first:
        out.add("NCHW")
    if d.ql is not q:
        out.add("W = 1 as 1 x H")
    return out


REQUIRED = {
    "loop row", "loop rows", "loop block", "weights held", "weights stash", "weights memory",
    "dispatch", "single body", "band ring", "band block",
    *(f"loop {lp} / weights {w}" for lp in ("row", "rows", "block") for w in ("held", "stash", "memory")),
    "loop plane", "loop plane / weights held", "plane dispatch",
    "taps", "taps / uniform shift", "taps / shift per channel", "taps / tail channels", "taps / batch 2",
    "taps / high clamp",
    "channel loop", "channel loop / rows", "channel loop / block", "channel loop / weights held",
    "channel loop / weights stash", "channel loop dispatch", "compact weights", "compact weights, left shift",
    "baked pairs", "int8 taps", "int8 taps / plane", "int8 taps / channel loop", "int8 taps / weights held",
    "int8 taps / weights stash", "int8 taps / kq in the record", "int8 taps / kq per body", "int8 taps, left shift",
    "register shift", "shift 0", "shift > 0", "sign fix", "no sign fix", "high clamp", "high clamp below 127",
    "act_min == output zero point", "bias register", "no bias register", "end register", "end in the stash",
    "kq register", "kq per output", "C tails",
    "stride 2", "dilation 2", "depth multiplier 2", "depth multiplier 4", "1-D", "batch 2", "NCHW",
    "W = 1 as 1 x H",
    # --opt size (size_class_layers)
    "size", "size / loop row", "size / loop rows", "size / loop block", "size / loop plane", "size / channel loop",
    "size / weights held", "size / weights stash", "size / weights memory", "size / register shift",
    "size / immediate shift", "size / baked pairs", "size / int8 taps", "size / compact weights",
}
