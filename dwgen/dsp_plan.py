"""Planning for the DSP (Cortex-M4/M7/M33/M55) kernel: data flow chosen per layer at generation time.

Data flow (see docs/dsp-tiles.md):

* The input is consumed by *channel group* (4 channels when the layer is NHWC with at least 4
  channels and the band fits, else fewer). For each group a *band* of padded input rows lives
  on the kernel's stack: per channel, a few row slots of `band_words` 32-bit words, every word
  a pair of int16 values `(x[col] - in_zp, x[col+1] - in_zp)` for an even padded column `col`.
  Padding columns and padding rows are real zeros (x - zp = 0 in padding), so the compute loop
  has no border code at all. NHWC groups of 4 channels are gathered with SXTAB16 (+ROR 8) and
  PKHBT/PKHTB: two 32-bit loads give 4 channels x 2 pixels.
* Two band organisations:
  - ``ring``: `kernel_h` row slots used as a ring; every input row is gathered once. Output row
    `oy` needs kernel row `ky` in slot `(top + ky) % ring`; instead of moving pointers, the
    *weights* are rotated (slot `s` gets kernel row `(s - top) % ring`), so the compute loop
    reads every slot at a constant offset from a single pointer. Vertical dilation is handled
    by processing the output rows in `dilation_h` phases (each phase a dense sub-problem).
    Per channel and output row the weights are loaded once.
  - ``block``: `rows` output rows at a time; their input rows are gathered contiguously (rows
    shared with the next block are gathered again), so each channel's weights are loaded once
    per block and reused over all its rows. For small images the block is the whole plane.
* Compute: the window's weights as packed int16 pairs (a few words per kernel row, held in
  locals when they fit the register file), output pixels `step` at a time: for every kernel
  row, each band word is loaded once and feeds all accumulators of the step that use it
  through SMLAD (both halves are taps of that output) or SMLAxy (one half is). The row is a
  loop of identical steps plus generation-time tail steps. Depth multiplier M reuses the
  gathered channel for its M outputs.
* Requantization: when provable for every channel (double rounding), the accumulator is kept
  doubled and left-shifted (weights stored as w * 2^(1 + max(shift, 0)), bias likewise) so
  that `SMMLAR(acc2, M, K)` is exactly TFLite's SaturatingRoundingDoublingHighMul plus K, K
  folding the rounding constant of the rounding divide, the output zero point and the low
  activation bound; then the sign fix, an arithmetic shift and SSAT #8 (which also applies the
  low bound); a high bound below 127 costs one ADD + SSAT + ADD. Otherwise the exact 64-bit
  sequence is used.

Nothing here needs a scratch buffer from the caller; the band is a local array of at most
`BAND_BUDGET` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .plan import MAX_UNROLLED_STATEMENTS
from .qlayer import QuantizedLayer

DSP_TARGETS = ("cortex-m4", "cortex-m4-nofpu", "cortex-m7", "cortex-m33", "cortex-m55")
#: Bytes of stack the band may use (the whole kernel must stay within 1.5 KB).
BAND_BUDGET = 1232
#: Pixel pairs the SIMD gather loop handles per iteration (their loads issued back to back).
GATHER_UNROLL = 4
INT32_MAX = 2**31 - 1
#: General registers the compute loop may use (r0-r12 and lr).
REGISTERS = 14
#: Weight words kept in locals at most (more: reloaded per kernel row inside the step).
MAX_HELD_WEIGHTS = 8
MAX_STEP = 4


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
    out0: int = 0  # first output (relative to the row pointer `dst` at that point)


@dataclass(frozen=True)
class RowProgram:
    """One output row: `count` identical steps of `main` (advancing `advance` words and
    `main.width` outputs each), then the `tails` (offsets relative to the end of the loop)."""

    main: Step | None
    count: int
    advance: int
    tails: tuple[Step, ...]

    @property
    def max_word(self) -> int:
        m = 0
        if self.main is not None and self.count:
            m = (self.count - 1) * self.advance + max(self.main.words)
        for t in self.tails:
            m = max(m, self.count * self.advance + max(t.words))
        return m


@dataclass(frozen=True)
class DspPlan:
    ql: QuantizedLayer
    mode: str  # "ring" or "block"
    group: int  # channels per group
    quad_gather: bool  # SIMD gather of 4 NHWC channels
    slots: int  # row slots per channel
    rows: int  # output rows per block (block mode)
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
    high_clamp: int | None  # fast path: the ADD constant before the second SSAT (None: not needed)
    program: RowProgram
    held: bool  # weights held in locals for the whole row
    reason: str
    tile: object | None = None  # dsp_tile.TileSet: the register-allocated step loop, if any
    store: object | None = None  # dsp_weights.CompactStore: int8 weights rebuilt per group; None: baked pairs
    taps: object | None = None  # dsp_taps.TapsFlow: no band, the channels followed (few outputs, long kernels)
    gather_unroll: int = GATHER_UNROLL  # pixel pairs per iteration of the SIMD gather loop (--opt size: fewer)

    @property
    def band_bytes(self) -> int:
        return self.group * self.slots * self.band_words * 4

    @property
    def n_groups(self) -> int:
        return -(-self.ql.geometry.in_c // self.group)

    @property
    def words_per_channel(self) -> int:
        return self.ql.geometry.kernel_h * len(self.row_words)

    @property
    def step(self) -> int:
        return self.program.main.width if self.program.main is not None else 0

    @property
    def flow(self) -> str:
        if self.taps is not None:
            return f"taps/g4/{len(self.taps.positions)} outputs"
        base = f"{self.mode}{'' if self.mode == 'ring' else self.rows}/s{self.step}/g{self.group}"
        if self.gather_unroll != GATHER_UNROLL:
            base += f"/gather x{self.gather_unroll}"
        if self.tile is None:
            return base
        # the C rebuild of the compact store (the tile's int8 channel head says "/int8" itself)
        return f"{base}/tile:{self.tile.describe}" + ("/compact" if self.store is not None and not self.store.head else "")


def _halves(outs, stride: int, dil: int, kw: int):
    """(acc, word, {half: kx}) for outputs `outs` (absolute columns), words absolute."""
    out = []
    for a, t in enumerate(outs):
        groups: dict[int, dict[int, int]] = {}
        for kx in range(kw):
            pos = stride * t + dil * kx
            groups.setdefault(pos // 2, {})[pos % 2] = kx
        for word, hv in sorted(groups.items()):
            out.append((a, word, hv))
    return out


def _normalized_step(out_w: int, stride: int, step: int) -> int:
    if step >= out_w:
        return out_w  # one step covers the row: no loop, any width
    if step % 2 and stride % 2:
        return max(step - 1, 0)
    return step


def emitted_statements(out_w: int, kh: int, kw: int, stride: int, step: int) -> int:
    """Upper bound on the compute statements of the row program: per output the step code
    holds, and per kernel row, at most one MAC and one band load per tap."""
    step = _normalized_step(out_w, stride, step)
    count = out_w // step if step else 0
    outputs = (step if count else 0) + out_w - count * step  # the loop body once, the tails
    return 2 * kh * kw * outputs


def _row_program(out_w: int, kw: int, stride: int, dil: int, step: int):
    """The row program and the weight words (pairs first) it needs."""
    step = _normalized_step(out_w, stride, step)
    count = out_w // step if step else 0
    advance = step * stride // 2 if count > 1 else 0
    chunks = []  # (first output, width, word base)
    if count:
        chunks.append(("main", 0, step, 0))
    t = count * step
    base = count * advance if count > 1 else 0
    rest = out_w - t
    while rest > 0:
        w = 2 if rest >= 2 else 1
        chunks.append(("tail", t, w, base))
        t += w
        rest -= w
    raw = []
    for kind, t0, w, wbase in chunks:
        raw.append((kind, t0, w, wbase, _halves(range(t0, t0 + w), stride, dil, kw)))
    words: list[tuple[int | None, int | None]] = []
    for _, _, _, _, hs in raw:
        for _, _, hv in hs:
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

    steps = []
    for kind, t0, w, wbase, hs in raw:
        ops = []
        for a, word, hv in hs:
            if len(hv) == 2:
                ops.append(Op(a, word - wbase, "smlad", words.index((hv[0], hv[1]))))
            else:
                (half, kx), = hv.items()
                i, wh = find_single(kx)
                ops.append(Op(a, word - wbase, "smla" + ("b" if half == 0 else "t") + wh, i))
        ops.sort(key=lambda o: (o.word, o.acc))
        out0 = 0 if kind == "main" or count == 1 else t0 - count * step
        steps.append((kind, Step(w, tuple(ops), tuple(sorted({o.word for o in ops})), t0 if count == 1 else out0)))
    main = steps[0][1] if count else None
    tails = tuple(st for kind, st in steps if kind == "tail")
    return RowProgram(main, count, advance, tails), tuple(words)


def _pack(lo: int, hi: int) -> int:
    return (lo & 0xFFFF) | ((hi & 0xFFFF) << 16)


def _choose_step(kh: int, kw: int, stride: int, dil: int) -> int:
    """Widest step whose accumulators, held weights and pointers fit the register file."""
    _, words = _row_program(8, kw, stride, dil, 2)
    weights = kh * len(words)
    held = weights <= MAX_HELD_WEIGHTS
    for step in range(MAX_STEP, 0, -1):
        live = step + (weights if held else len(words)) + 3  # + band pointer, loaded word, dst
        if live <= REGISTERS - 1:
            return step
    return 1


def make_dsp_plan(ql: QuantizedLayer, *, step: int | None = None, mode: str | None = None,
                  rows: int | None = None) -> DspPlan | None:
    """The DSP data flow for this layer, or None when the portable kernel must be used.

    `step`, `mode` and `rows` override the planner's choices (for experiments and tests).
    """
    g = ql.geometry
    q = ql.quant
    eff_h = (g.kernel_h - 1) * g.dilation_h + 1
    # The row program is straight-line code: keep it within the portable kernel's code-size
    # budget (checked before any planning work, which grows with the kernel width).
    if 2 * g.kernel_h * g.kernel_w > MAX_UNROLLED_STATEMENTS:
        return None
    if step is None:
        step = _choose_step(g.kernel_h, g.kernel_w, g.stride_w, g.dilation_w)
    if emitted_statements(g.out_w, g.kernel_h, g.kernel_w, g.stride_w, step) > MAX_UNROLLED_STATEMENTS:
        return None
    program, row_words = _row_program(g.out_w, g.kernel_w, g.stride_w, g.dilation_w, step)
    # words a row slot must hold: the image plus every word any step reads
    image_words = -(-(g.pad_left + g.in_w) // 2)
    band_words = max(image_words, program.max_word + 1)
    row_bytes = band_words * 4
    ring_ok = g.dilation_h == 1 or g.stride_h == 1
    ring_slots = g.kernel_h

    def block_slots(r):
        return (r - 1) * g.stride_h + eff_h

    def fits(group, slots):
        return group * slots * row_bytes <= BAND_BUDGET

    groups = [c for c in (4, 2, 1) if c <= max(g.in_c, 1)]
    held = g.kernel_h * len(row_words) <= MAX_HELD_WEIGHTS
    if mode is None:
        # Blocks reuse each channel's weights and constants over `rows` output rows but gather
        # the rows shared by neighbouring blocks again; a ring gathers every row once but sets
        # up every channel per output row. Measured on the M4 model (gcc -O2): blocks win from
        # about 3 rows on, unless the regathered share is large (dilation).
        r = g.out_h
        while r > 1 and not fits(groups[0], block_slots(r)):
            r -= 1
        regather = block_slots(r) / (r * g.stride_h)
        if not ring_ok or r >= 5 or (r >= 3 and g.dilation_h == 1 and (not held or regather <= 1.7)):
            mode, rows = "block", r
        else:
            mode = "ring"
    if mode == "ring" and not ring_ok:
        return None
    if mode == "block":
        if rows is None:
            rows = 1
            for group in groups:
                r = g.out_h
                while r > 1 and not fits(group, block_slots(r)):
                    r -= 1
                if fits(group, block_slots(r)):
                    rows = r
                    break
        rows = max(1, min(rows, g.out_h))
        slots = block_slots(rows)
    else:
        rows = 1
        slots = ring_slots
    group = None
    for cand in groups:
        if fits(cand, slots):
            group = cand
            break
    if group is None:
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
    lo, hi = ql.act_min, ql.act_max
    reason = "fast SMMLAR requantization (proven exact per channel)"
    if fast:
        wmax = np.abs(w).reshape(-1, oc).max(axis=0)
        ok_w = wmax * (2 ** scale_exp) <= 32767
        ok_acc = acc_bound * (2 ** scale_exp) <= INT32_MAX
        # K: output zero point minus the low-bound offset (lo + 128), times 2^n, plus rounding
        kq = (q.output_zero_point - (lo + 128)) * (2**n) + np.where(n > 0, 2 ** np.maximum(n - 1, 0), 0)
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
            for i, (wlo, whi) in enumerate(row_words):
                vlo = int(scaled_w[ky, wlo, c]) if wlo is not None else 0
                vhi = int(scaled_w[ky, whi, c]) if whi is not None else 0
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
    # after SSAT: s = clamp(v, lo, lo + 255) - (lo + 128); high bound: SSAT(s + c) + hi - 127
    high_clamp = None
    if fast and (lo != -128 or hi != 127):
        high_clamp = lo - hi + 255
    return DspPlan(
        ql=ql, mode=mode, group=group, quad_gather=quad, slots=slots, rows=rows, band_words=band_words,
        eff_h=eff_h, row_words=row_words, wtable=table, bias=sbias, fast_rq=fast,
        kq=np.asarray(kq, dtype=np.int64).astype(np.int32), rshift=n.astype(np.int32),
        uniform_rshift=uniq[0] if len(uniq) == 1 else None, sign_fix=sign_fix, high_clamp=high_clamp,
        program=program, held=held, reason=reason,
    )


__all__ = ["BAND_BUDGET", "DSP_TARGETS", "DspPlan", "Op", "RowProgram", "Step", "make_dsp_plan"]


def _hex_rows(values, per_row: int) -> list[str]:
    vals = [f"0x{int(v):08X}u," for v in values]
    return [" ".join(vals[i : i + per_row]) for i in range(0, len(vals), per_row)]


def _int_rows(values, per_row: int, width: int) -> list[str]:
    vals = [f"{int(v):>{width}}," for v in values]
    return [" ".join(vals[i : i + per_row]) for i in range(0, len(vals), per_row)]


def gather_pairs(d: DspPlan) -> int:
    """Pixel pairs the SIMD gather loop reads per input row (after a lone leading pixel)."""
    g = d.ql.geometry
    ix0 = 1 if g.pad_left % 2 == 1 and g.in_w >= 1 else 0
    return (g.in_w - ix0) // 2


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
    p = d.program
    used = set()
    for st in ([p.main] if p.main is not None else []) + list(p.tails):
        used.update(o.wreg for o in st.ops)
    # with an asm tile, the C main step is compiled only for the host: words it alone reads
    tail_used = {o.wreg for st in p.tails for o in st.ops}
    nwords = len(d.row_words)
    desc = ", ".join(
        f"(w[{lo if lo is not None else '-'}], w[{hi if hi is not None else '-'}])" for lo, hi in d.row_words
    )
    if d.fast_rq:
        rq_args = "mult, kq" + (", rsh" if d.uniform_rshift is None else "")
    else:
        rq_args = "mult, shift"
    # ring mode: slot j holds kernel row (j - rot) % ring; block mode: row j is kernel row j
    row_step = d.band_words if d.mode == "ring" else d.band_words * g.dilation_h
    # steps emitted straight (not in the loop): (step, word base, first output)
    loop_main = p.count > 1
    straight = []
    if p.count == 1:
        straight.append((p.main, 0, 0))
    straight += [(t, 0, t.out0) for t in p.tails]
    return dict(
        d=d,
        ql=d.ql,
        target=target,
        gather=gather,
        used_words=sorted(used),
        tail_words=sorted(tail_used),
        main_only_words=sorted(used - tail_used),
        nwords=nwords,
        word_desc=desc,
        rq_args=rq_args,
        row_step=row_step,
        prog=p,
        loop_main=loop_main,
        straight=straight,
        wtable_rows=_hex_rows(d.wtable.reshape(-1), 8),
        bias_rows=_int_rows(d.bias, 8, 11),
        kq_rows=_int_rows(d.kq, 8, 11),
        tile=d.tile,
        gather_unroll=d.gather_unroll,
        tile_tails=d.tile is not None and d.tile.loop == "row" and bool(straight),
        row_tile=d.tile is not None and d.tile.loop == "row",
        plane=d.tile is not None and d.tile.channels,  # one tile call per group of channels
        rq_rows=_int_rows(np.stack([d.bias, np.asarray(d.ql.quant.multipliers, dtype=np.int64).astype(np.int32),
                                    d.kq, d.rshift], axis=1).reshape(-1), 4, 11),
        rshift_rows=_int_rows(d.rshift, 16, 3),
        rq_words=d.tile.plan.shape.w8.record_words if d.tile is not None and d.tile.plan.shape.w8 else 4,
        rq2_rows=_int_rows(np.stack([d.bias, np.asarray(d.ql.quant.multipliers, dtype=np.int64).astype(np.int32)]
                                    + ([d.kq] if d.tile is not None and d.tile.plan.shape.w8 is not None
                                       and d.tile.plan.shape.w8.kq_in_record else []),
                                    axis=1).reshape(-1), 4, 11),
        store=d.store,
        **_compact_rows(d),
    )


def _compact_rows(d: DspPlan) -> dict:
    if d.store is None:
        return {}
    from .dsp_weights import tables

    t = tables(d)
    return dict(w8_rows=_int_rows(t["w8"], 16, 4), cbias_rows=_int_rows(t["bias"], 8, 11),
                cmult_rows=_int_rows(t["mult"], 8, 11), crshift_rows=_int_rows(t["rshift"], 16, 3))


__all__ += ["dsp_context"]
