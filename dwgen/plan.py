"""Planning: decide, at generation time, everything the C kernel will not decide at run time.

The plan splits each output axis into runs of positions that see the same set of kernel
taps inside the image. The run that sees every tap is the interior; the others are
borders, whose dead taps are simply not emitted. A region is one row run crossed with
one column run, so a 3x3 SAME layer has one interior and eight border regions.

It also packs the weights in the order the kernel reads them, folds `-in_zp * sum(w)`
into the bias (int32 arithmetic wraps identically in C and TFLite, so the fold is
exact), decides which shift directions the requantization needs, and proves whether
the int32 accumulator can overflow (if it can, the C accumulates in uint32_t, whose
wrap-around is defined, instead of relying on signed overflow).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

import numpy as np

from .layer import Geometry
from .qlayer import QuantizedLayer

INT32_MAX = 2**31 - 1
#: Kernel windows above this many taps keep their weights in an array rather than locals.
MAX_REGISTER_TAPS = 25


@dataclass(frozen=True)
class AxisRun:
    """Consecutive output positions along one axis that share the same live taps."""

    start: int
    stop: int
    taps: tuple[int, ...]  # kernel indices whose input lies inside the image
    interior: bool

    @property
    def length(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Region:
    rows: AxisRun
    cols: AxisRun
    live: tuple[int, ...]  # flat tap indices (ky * KW + kx) that are inside the image
    dead: tuple[int, ...]  # flat tap indices outside it (their zero-point term is corrected)

    @property
    def interior(self) -> bool:
        return self.rows.interior and self.cols.interior

    @property
    def pixels(self) -> int:
        return self.rows.length * self.cols.length


def axis_runs(out: int, size: int, kernel: int, stride: int, dilation: int, pad: int) -> list[AxisRun]:
    def live(o: int) -> tuple[int, ...]:
        return tuple(t for t in range(kernel) if 0 <= o * stride - pad + t * dilation < size)

    runs = []
    pos = 0
    for taps, members in groupby(range(out), key=live):
        n = len(list(members))
        runs.append(AxisRun(pos, pos + n, taps, len(taps) == kernel))
        pos += n
    return runs


@dataclass(frozen=True)
class Plan:
    ql: QuantizedLayer
    regions: tuple[Region, ...]
    packed_weights: np.ndarray  # int8 [OC][KH*KW], what the kernel reads per channel
    folded_bias: np.ndarray  # int32 [OC], bias - in_zp * sum(w)
    needs_left_shift: bool
    needs_right_shift: bool
    acc_may_overflow: bool
    weights_in_locals: bool

    @property
    def geometry(self) -> Geometry:
        return self.ql.geometry

    @property
    def taps(self) -> int:
        g = self.geometry
        return g.kernel_h * g.kernel_w

    @property
    def interior(self) -> Region | None:
        return next((r for r in self.regions if r.interior), None)

    @property
    def borders(self) -> tuple[Region, ...]:
        return tuple(r for r in self.regions if not r.interior)


def _wrap32(v: np.ndarray) -> np.ndarray:
    return ((v.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


def make_plan(ql: QuantizedLayer) -> Plan:
    g = ql.geometry
    rows = axis_runs(g.out_h, g.in_h, g.kernel_h, g.stride_h, g.dilation_h, g.pad_top)
    cols = axis_runs(g.out_w, g.in_w, g.kernel_w, g.stride_w, g.dilation_w, g.pad_left)
    regions = []
    for r in rows:
        for c in cols:
            live = tuple(ky * g.kernel_w + kx for ky in r.taps for kx in c.taps)
            dead = tuple(t for t in range(g.kernel_h * g.kernel_w) if t not in live)
            regions.append(Region(r, c, live, dead))
    # interior first: it is where the time goes, and reads best at the top of the kernel
    regions.sort(key=lambda reg: not reg.interior)

    w = ql.weights.reshape(-1, g.out_c).astype(np.int64)  # [taps, OC]
    packed = np.ascontiguousarray(ql.weights.reshape(-1, g.out_c).T).astype(np.int8)
    zp = ql.quant.input_zero_point
    wsum = w.sum(axis=0)
    folded = _wrap32(ql.bias.astype(np.int64) - zp * wsum)

    # Largest |accumulator| any code path can form: folded bias, border corrections and
    # the products; the true sum bias + sum w*(x - zp) is bounded the same way.
    wabs = np.abs(w).sum(axis=0)
    worst = np.abs(folded.astype(np.int64)) + wabs * 128 + wabs * abs(zp)
    worst_true = np.abs(ql.bias.astype(np.int64)) + wabs * 255
    overflow = bool(np.any(np.maximum(worst, worst_true) > INT32_MAX))

    shifts = np.asarray(ql.quant.shifts)
    return Plan(
        ql=ql,
        regions=tuple(regions),
        packed_weights=packed,
        folded_bias=folded,
        needs_left_shift=bool(np.any(shifts > 0)),
        needs_right_shift=bool(np.any(shifts < 0)),
        acc_may_overflow=overflow,
        weights_in_locals=g.kernel_h * g.kernel_w <= MAX_REGISTER_TAPS,
    )


__all__ = ["AxisRun", "Plan", "Region", "axis_runs", "make_plan"]
