"""Planning for the DSP (Cortex-M4/M7/M33/M55) kernel: data flow chosen per layer at generation time.

Data flow (see SPEC section 5):

* The input is consumed by *channel group* (4 channels when the layer is NHWC with at least 4
  channels and the band fits, else fewer). For each group a rolling *band* of padded input
  rows lives on the kernel's stack: per channel, `ring` row slots of `band_words` 32-bit words,
  every word a pair of int16 values `(x[col] - in_zp, x[col+1] - in_zp)` for an even padded
  column `col`. Padding columns and padding rows are real zeros (x - zp = 0 in padding), so the
  compute loop has no border code at all. NHWC groups of 4 channels are gathered with
  SXTAB16 (+ROR 8) and PKHBT/PKHTB: two 32-bit loads give 4 channels x 2 pixels.
* Compute, per channel and output row: the window's weights as packed int16 pairs (a few words
  per kernel row, loaded once per row into locals), output pixels two at a time: for every
  kernel row, each band word is loaded once and feeds both accumulators through SMLAD (both
  halves are taps of that output) or SMLAxy (one half is). A single-output step handles an odd
  output width. Stride, dilation and kernel width only change which (word, half) pairs the
  generator emits; depth multiplier M reuses the gathered channel for its M outputs.
* Requantization: when provable for every channel (double rounding), the accumulator is kept
  doubled and left-shifted (weights stored as w * 2^(1 + max(shift, 0)), bias likewise) so
  that `SMMLAR(acc2, M, K)` is exactly TFLite's SaturatingRoundingDoublingHighMul plus K, K
  folding the rounding constant of the rounding divide and the output zero point; then the
  sign fix `+ (acc < 0)`-style correction, an arithmetic shift and SSAT #8. Otherwise the
  exact 64-bit sequence is used.

Nothing here needs a scratch buffer from the caller; the band is a local array of at most
`BAND_BUDGET` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .qlayer import QuantizedLayer

DSP_TARGETS = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
#: Bytes of stack the band may use (the whole kernel must stay within 1.5 KB).
BAND_BUDGET = 1232
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Op:
    acc: int  # which output of the step
    word: int  # band word offset from the step's first word
    kind: str  # smlad, smlabb, smlabt, smlatb, smlatt
    wreg: int  # index into the row's weight words


@dataclass(frozen=True)
class Step:
    width: int  # outputs computed by the step
    ops: tuple[Op, ...]  # for one kernel row, in load order
    words: tuple[int, ...]  # band words read (relative), sorted


@dataclass(frozen=True)
class DspPlan:
    ql: QuantizedLayer
    group: int  # channels per group
    quad_gather: bool  # SIMD gather of 4 NHWC channels
    ring: int  # row slots per channel
    band_words: int  # words per row slot
    eff_h: int
    row_words: tuple[tuple[int | None, int | None], ...]  # (lo kx, hi kx) of each weight word
    wtable: np.ndarray  # uint32 [OC][KH * len(row_words)]
    bias: np.ndarray  # int32 [OC], scaled like the weights
    fast_rq: bool
    kq: np.ndarray  # int32 [OC] SMMLAR addend (fast path)
    rshift: np.ndarray  # int32 [OC] right shift after SMMLAR (fast path)
    uniform_rshift: int | None
    sign_fix: str  # "all", "none" or "mixed"
    pair: Step
    single: Step
    reason: str

    @property
    def band_bytes(self) -> int:
        return self.group * self.ring * self.band_words * 4

    @property
    def n_groups(self) -> int:
        return -(-self.ql.geometry.in_c // self.group)

    @property
    def words_per_channel(self) -> int:
        return self.ql.geometry.kernel_h * len(self.row_words)


def _steps(kw: int, stride: int, dil: int):
    """Ops of the 2-output and 1-output steps for one kernel row, and the weight words they use."""

    def halves(width):
        out = []  # (acc, word, {half: kx})
        for t in range(width):
            groups: dict[int, dict[int, int]] = {}
            for kx in range(kw):
                pos = stride * t + dil * kx
                groups.setdefault(pos // 2, {})[pos % 2] = kx
            for word, hv in sorted(groups.items()):
                out.append((t, word, hv))
        return out

    raw = {2: halves(2), 1: halves(1)}
    words: list[tuple[int | None, int | None]] = []
    for width in (2, 1):  # full pairs first: they define the registers
        for _, _, hv in raw[width]:
            if len(hv) == 2 and (hv[0], hv[1]) not in words:
                words.append((hv[0], hv[1]))

    def find_single(kx):
        for i, (lo, hi) in enumerate(words):
            if lo == kx:
                return i, "b"
            if hi == kx:
                return i, "t"
        words.append((kx, None))
        return len(words) - 1, "b"

    steps = {}
    for width in (2, 1):
        ops = []
        for t, word, hv in raw[width]:
            if len(hv) == 2:
                ops.append(Op(t, word, "smlad", words.index((hv[0], hv[1]))))
            else:
                (half, kx), = hv.items()
                i, wh = find_single(kx)
                ops.append(Op(t, word, "smla" + ("b" if half == 0 else "t") + wh, i))
        ops.sort(key=lambda o: (o.word, o.acc))
        steps[width] = Step(width, tuple(ops), tuple(sorted({o.word for o in ops})))
    return steps[2], steps[1], tuple(words)


def _pack(lo: int, hi: int) -> int:
    return (lo & 0xFFFF) | ((hi & 0xFFFF) << 16)


def make_dsp_plan(ql: QuantizedLayer) -> DspPlan | None:
    """The DSP data flow for this layer, or None when the portable kernel must be used."""
    g = ql.geometry
    q = ql.quant
    eff_h = (g.kernel_h - 1) * g.dilation_h + 1
    eff_w = (g.kernel_w - 1) * g.dilation_w + 1
    pair, single, row_words = _steps(g.kernel_w, g.stride_w, g.dilation_w)
    # words a row slot must hold: the image plus every word any step reads
    image_words = -(-(g.pad_left + g.in_w) // 2)
    last_pair = ((g.out_w // 2) - 1) * g.stride_w if g.out_w >= 2 else None
    read = [0]
    if last_pair is not None:
        read.append(last_pair + max(pair.words))
    if g.out_w % 2:
        read.append(g.stride_w * (g.out_w - 1) // 2 + max(single.words))
    band_words = max(image_words, max(read) + 1)
    ring = eff_h
    row_bytes = ring * band_words * 4
    group = 1
    for cand in (4, 2, 1):
        if cand <= max(g.in_c, 1) and cand * row_bytes <= BAND_BUDGET:
            group = cand
            break
    else:
        return None
    if row_bytes > BAND_BUDGET:
        return None
    quad = group == 4 and not g.channels_first

    # weights (TFLite layout [kh, kw, OC]) and the requantization
    w = ql.weights.astype(np.int64)
    oc = g.out_c
    mult = np.asarray(q.multipliers, dtype=np.int64)
    shifts = np.asarray(q.shifts, dtype=np.int64)
    bias = ql.bias.astype(np.int64)
    zp = q.input_zero_point
    xmax = max(abs(-128 - zp), abs(127 - zp))
    acc_bound = np.abs(bias) + np.abs(w).reshape(-1, oc).sum(axis=0) * xmax
    ls = np.maximum(shifts, 0)
    n = np.maximum(-shifts, 0)
    scale_exp = 1 + ls
    fast = q.rounding == "double"
    reason = "fast SMMLAR requantization (proven exact per channel)"
    if fast:
        wmax = np.abs(w).reshape(-1, oc).max(axis=0)
        ok_w = wmax * (2 ** scale_exp) <= 32767
        ok_acc = acc_bound * (2 ** scale_exp) <= INT32_MAX
        kq = q.output_zero_point * (2**n) + np.where(n > 0, 2 ** np.maximum(n - 1, 0), 0)
        ok_k = (np.abs(kq) + acc_bound + 2) <= INT32_MAX
        ok = ok_w & ok_acc & ok_k & (mult >= 0)
        if not bool(np.all(ok)):
            fast = False
            reason = "exact 64-bit requantization (fast form not provable for every channel)"
    else:
        reason = "exact 64-bit requantization (single rounding)"
    if not fast:
        scale_exp = np.zeros(oc, dtype=np.int64)
        kq = np.zeros(oc, dtype=np.int64)
    scaled_w = w * (2 ** scale_exp)[None, None, :]
    table = np.zeros((oc, g.kernel_h * len(row_words)), dtype=np.uint32)
    for c in range(oc):
        for ky in range(g.kernel_h):
            for i, (lo, hi) in enumerate(row_words):
                vlo = int(scaled_w[ky, lo, c]) if lo is not None else 0
                vhi = int(scaled_w[ky, hi, c]) if hi is not None else 0
                table[c, ky * len(row_words) + i] = _pack(vlo, vhi)
    sbias = bias * (2**scale_exp)
    if not fast:
        sbias = bias
    sbias = ((sbias + 2**31) % 2**32 - 2**31).astype(np.int32)
    uniq = sorted(set(int(v) for v in n))
    if all(v > 0 for v in uniq):
        sign_fix = "all"
    elif all(v == 0 for v in uniq):
        sign_fix = "none"
    else:
        sign_fix = "mixed"
    return DspPlan(
        ql=ql, group=group, quad_gather=quad, ring=ring, band_words=band_words, eff_h=eff_h,
        row_words=row_words, wtable=table, bias=sbias, fast_rq=fast,
        kq=np.asarray(kq, dtype=np.int64).astype(np.int32), rshift=n.astype(np.int32),
        uniform_rshift=uniq[0] if len(uniq) == 1 else None, sign_fix=sign_fix,
        pair=pair, single=single, reason=reason,
    )


__all__ = ["BAND_BUDGET", "DSP_TARGETS", "DspPlan", "Op", "Step", "make_dsp_plan"]


def _hex_rows(values, per_row: int) -> list[str]:
    vals = [f"0x{int(v):08X}u," for v in values]
    return [" ".join(vals[i : i + per_row]) for i in range(0, len(vals), per_row)]


def _int_rows(values, per_row: int, width: int) -> list[str]:
    vals = [f"{int(v):>{width}}," for v in values]
    return [" ".join(vals[i : i + per_row]) for i in range(0, len(vals), per_row)]


def dsp_context(d: DspPlan, target: str) -> dict:
    """Template variables of `kernel_dsp.c.j2` (on top of the portable template's)."""
    g = d.ql.geometry
    zp = d.ql.quant.input_zero_point
    pl = g.pad_left
    lead = pl % 2 == 1 and g.in_w >= 1
    ix0 = 1 if lead else 0
    gather = dict(
        quad=d.quad_gather,
        scalar_tail=d.quad_gather and g.in_c % 4 != 0,
        offset=f"0x{((-zp) & 0xFFFF) * 0x10001:08X}u",
        first_word=pl // 2,
        end_word=(pl + g.in_w + 1) // 2,
        lead=lead,
        ix0=ix0,
        pair_word=(pl + ix0) // 2,
        pairs=(g.in_w - ix0) // 2,
        tail=(g.in_w - ix0) % 2 == 1,
    )
    used = set()
    if g.out_w >= 2:
        used.update(o.wreg for o in d.pair.ops)
    if g.out_w % 2:
        used.update(o.wreg for o in d.single.ops)
    nwords = len(d.row_words)
    desc = ", ".join(
        f"(w[{lo if lo is not None else '-'}], w[{hi if hi is not None else '-'}])" for lo, hi in d.row_words
    )
    rq_args = "mult, kq" + (", rsh" if d.uniform_rshift is None else "") if d.fast_rq else "mult, shift"
    return dict(
        d=d,
        ql=d.ql,
        target=target,
        gather=gather,
        used_words=sorted(used),
        nwords=nwords,
        word_desc=desc,
        rq_args=rq_args,
        wtable_rows=_hex_rows(d.wtable.reshape(-1), 8),
        bias_rows=_int_rows(d.bias, 8, 11),
        kq_rows=_int_rows(d.kq, 8, 11),
        rshift_rows=_int_rows(d.rshift, 16, 3),
    )


__all__ += ["dsp_context"]
