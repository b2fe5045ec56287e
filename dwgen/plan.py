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

Generated code must stay bounded: the regions are only built when the unrolled kernel fits
MAX_UNROLLED_STATEMENTS (estimated from the axis runs alone, so a huge kernel costs nothing to
refuse); otherwise the plan is `looped` and the C has one loop body for the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layer import Geometry
from .qlayer import QuantizedLayer

INT32_MAX = 2**31 - 1
#: Kernel windows above this many taps keep their weights in an array rather than locals.
MAX_REGISTER_TAPS = 25
#: Code-size budget of the unrolled kernel, in C statements. Each region is emitted with its
#: own loops and one statement per tap, so a large kernel on an image not much bigger than it
#: (every output column its own border region) grows as regions x taps: a 64x64 SAME kernel on
#: a 64x64 image would be ~16.8M statements. Past the budget the kernel is generated in the
#: looped form of `--opt size` instead (one loop body, taps checked at run time), whose size
#: depends only on the weight and quantization tables.
MAX_UNROLLED_STATEMENTS = 8192
#: Statements a region costs besides its taps: loop heads, index set-up, requantize and store.
REGION_STATEMENTS = 12


@dataclass(frozen=True)
class AxisRun:
    """Consecutive output positions along one axis that share the same live taps."""

    start: int
    stop: int
    taps: range  # kernel indices whose input lies inside the image (always contiguous)
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
    """The runs of one output axis, in O(out) time whatever the kernel size.

    Tap t of output o reads input o * stride - pad + t * dilation, increasing in t, so the live
    taps form one interval: from the first t reaching index 0 to the last below `size`.
    """
    runs: list[AxisRun] = []
    prev = None
    for o in range(out):
        origin = o * stride - pad
        lo = max(0, -(origin // dilation)) if origin < 0 else 0  # ceil(-origin / dilation)
        hi = min(kernel - 1, (size - 1 - origin) // dilation) if origin < size else -1
        key = (lo, hi + 1) if lo <= hi else (0, 0)
        if key == prev:
            last = runs[-1]
            runs[-1] = AxisRun(last.start, o + 1, last.taps, last.interior)
        else:
            runs.append(AxisRun(o, o + 1, range(*key), key == (0, kernel)))
            prev = key
    return runs


def unrolled_statements(rows: list[AxisRun], cols: list[AxisRun], taps: int) -> int:
    """Upper bound on the statements of the unrolled kernel: per region its live taps, the dead
    taps' zero-point correction and the fixed part."""
    return len(rows) * len(cols) * (taps + REGION_STATEMENTS)


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
    #: the unrolled kernel's estimated statements (see MAX_UNROLLED_STATEMENTS)
    unrolled_statements: int = 0
    #: over the budget: no regions are planned and the looped form is generated
    looped: bool = False

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
    taps = g.kernel_h * g.kernel_w
    estimate = unrolled_statements(rows, cols, taps)
    looped = estimate > MAX_UNROLLED_STATEMENTS
    regions = []
    if not looped:  # within the budget, so regions x taps is small
        for r in rows:
            for c in cols:
                live = tuple(ky * g.kernel_w + kx for ky in r.taps for kx in c.taps)
                live_set = set(live)
                dead = tuple(t for t in range(taps) if t not in live_set)
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
        unrolled_statements=estimate,
        looped=looped,
    )


__all__ = ["MAX_UNROLLED_STATEMENTS", "AxisRun", "Plan", "Region", "axis_runs", "make_plan", "unrolled_statements"]
