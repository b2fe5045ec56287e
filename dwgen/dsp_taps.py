"""The "taps" data flow of the DSP kernel: long kernels over very few outputs per channel.

The band data flow (`dsp_plan`, `dsp_tile`) pairs neighbouring pixels of one channel so one
SMLAD does two MACs; it pays when a channel has many outputs to share the gathered band. A
layer such as the streaming wake-word model's last one (a 15x1 kernel, one output per channel)
gathers a band for a single output and then spends more cycles setting up each channel than
multiplying. This flow follows the channels instead: one 32-bit load brings one input pixel of
4 channels, two SXTAB16 subtract the zero point into (channel 0, 2) and (channel 1, 3) int16
pairs, and SMLABB/SMLATT multiply them with pre-extended weight pairs into 4 accumulators. No
band, no gather, every tap of every output unrolled with its input offset known at generation
time (padding taps are left out). The requantization is the proven SMMLAR form of `dsp_plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .dsp_plan import DspPlan, make_dsp_plan
from .qlayer import QuantizedLayer

#: At most this many outputs per channel (the flow has no loop over output positions).
MAX_OUTPUTS = 4
#: At least this many kernel taps (shorter kernels are the band flow's).
MIN_TAPS = 8
#: Unrolled tap statements per channel group (outputs x valid taps).
MAX_STATEMENTS = 256


@dataclass(frozen=True)
class Position:
    out_offset: int  # bytes from the batch's output to this position's channel 0
    taps: tuple[tuple[int, int], ...]  # (kernel tap index ky * kw + kx, input byte offset)


@dataclass(frozen=True)
class TapsFlow:
    positions: tuple[Position, ...]
    groups: int  # full groups of 4 channels
    tail: int  # channels after them (0..3), computed one at a time
    words: np.ndarray  # uint32 [groups + (tail > 0)][taps][2]: (w c0, w c2), (w c1, w c3) scaled
    offset: int  # SXTAB16 addend: (-zp, -zp)


def _applies(ql: QuantizedLayer) -> bool:
    g = ql.geometry
    return (not g.channels_first and g.depth_multiplier == 1 and g.in_c >= 4
            and g.out_h * g.out_w <= MAX_OUTPUTS and g.kernel_h * g.kernel_w >= MIN_TAPS)


def _rq_plan(ql: QuantizedLayer) -> DspPlan | None:
    """A band plan of the layer, for its proven requantization constants (they depend on the
    weights and quantization, not on the data flow)."""
    from .dsp_tile import columns_as_rows

    d = make_dsp_plan(ql)
    if d is None:
        swapped = columns_as_rows(ql)
        d = make_dsp_plan(swapped) if swapped is not None else None
        if d is not None:
            d = replace(d, ql=ql)
    return d


def taps_plan(ql: QuantizedLayer) -> DspPlan | None:
    """The DSP plan with the taps flow, or None when the layer is not one it is for."""
    if not _applies(ql):
        return None
    d = _rq_plan(ql)
    if d is None or not d.fast_rq:
        return None
    g = ql.geometry
    positions = []
    for oy in range(g.out_h):
        for ox in range(g.out_w):
            taps = []
            for ky in range(g.kernel_h):
                iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h
                if not 0 <= iy < g.in_h:
                    continue
                for kx in range(g.kernel_w):
                    ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w
                    if 0 <= ix < g.in_w:
                        taps.append((ky * g.kernel_w + kx, (iy * g.in_w + ix) * g.in_c))
            positions.append(Position((oy * g.out_w + ox) * g.out_c, tuple(taps)))
    if sum(len(p.taps) for p in positions) > MAX_STATEMENTS:
        return None
    shifts = np.asarray(ql.quant.shifts, dtype=np.int64)
    scale = 2 ** (1 + np.maximum(shifts, 0))
    w = ql.weights.astype(np.int64).reshape(g.kernel_h * g.kernel_w, g.out_c) * scale[None, :]
    ngroups = -(-g.out_c // 4)
    wp = np.zeros((g.kernel_h * g.kernel_w, 4 * ngroups), dtype=np.int64)
    wp[:, : g.out_c] = w
    wp = wp.reshape(-1, ngroups, 4).transpose(1, 0, 2)  # [group][tap][lane]
    lo = np.stack([wp[..., 0], wp[..., 1]], axis=-1)
    hi = np.stack([wp[..., 2], wp[..., 3]], axis=-1)
    words = ((lo & 0xFFFF) | ((hi & 0xFFFF) << 16)).astype(np.uint32)
    zp = ql.quant.input_zero_point
    off = ((-zp) & 0xFFFF) * 0x10001
    flow = TapsFlow(tuple(positions), g.out_c // 4, g.out_c % 4, words, off)
    return replace(d, taps=flow, tile=None, store=None, reason="taps: channels followed, no band")


def taps_context(d: DspPlan, target: str) -> dict:
    """Template variables of `kernel_dsp_taps.c.j2` (on top of the portable template's)."""
    from .dsp_plan import _hex_rows, _int_rows

    t = d.taps
    return dict(
        d=d, target=target, flow=t, wq_rows=_hex_rows(t.words.reshape(-1), 8),
        dbias_rows=_int_rows(d.bias, 8, 11), kq_rows=_int_rows(d.kq, 8, 11),
        rshift_rows=_int_rows(d.rshift, 16, 3), taps_count=t.words.shape[1],
    )


__all__ = ["TapsFlow", "taps_context", "taps_plan"]
