"""Register-allocated inner tiles for the DSP kernel: the step loop of one output channel as
a Thumb-2 routine whose registers dwgen assigns itself.

Why: gcc cannot keep a 4-output SMLAD step in registers (about 17 live values for 14
registers) and spills the weights to the stack inside the loop; measured, those spills were
the largest single loss of the C data flow (docs/dsp-tiles.md). A tile is one loop over
`n` identical iterations, each computing `width` outputs of one channel from the band
(the `Step` of `dsp_plan`), requantizing and storing them.

Contract (AAPCS; the C twin is the `#else` branch of the kernel, compiled on the host):

    void tile(const uint32_t *q, int8_t *dst, const uint32_t *w, const int32_t *rq, int n);

* ``q``: the channel's band, kernel row ``ky`` at word ``ky * row_step``; ``dst``: the first
  output; ``w``: the channel's weight words ``[ky][nwords]``; ``rq``: ``{bias, multiplier,
  kq, right shift}``; ``n >= 1`` iterations, each advancing ``q`` by ``adv_q`` and ``dst``
  by ``adv_dst`` bytes.
* Registers: r0 = q, r1 = dst, the accumulators, the weights (*held* for the whole call,
  or *streamed* per kernel row from the stash or, for large kernels, from ``w``) and two
  load temporaries. Long-lived constants (bias, multiplier, kq, the end pointer, streamed
  weights) sit in the *stash*: S0-S15 when the core has an FPU (``VMOV r, s`` is 1 cycle;
  S0-S15 are caller-saved, so nothing is saved), else a stack frame (``LDR [sp]``, 2 cycles).
  Both variants are emitted; the preprocessor picks one by ``__ARM_FP``.

Requantization is the plan's proven SMMLAR form (`dsp_plan`); the shift is an immediate
(one tile body per distinct shift of the layer, up to `MAX_SHIFT_BODIES`), or a register
shift beyond that. When the low clamp equals the output zero point the sign fix is dead
(every negative rounding result is clamped to the zero point either way) and is left out.

`plan_tile` also predicts the instructions and M4 cycles of one iteration, so tests can
check the emulated core executes exactly what the planner priced.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import functools
import re

import numpy as np

from . import dsp_weights
from .dsp_plan import DspPlan, Step, gather_pairs, make_dsp_plan
from .qlayer import QuantizedLayer

#: Registers the tile may use: r0-r12 and lr (sp and pc excluded).
GPRS = ("r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "lr")
#: AAPCS callee-saved core registers.
CALLEE_SAVED = ("r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11")
#: Stash slots: S0-S15 (or 16 stack words without an FPU).
STASH_SLOTS = 16
#: Stash slots of the per-call constants (END: where q stops; INNER: where the current output
#: row's steps stop, for two-level "block" loops); the weights of a streamed tile follow.
BIAS, MULT, KQ, RSH, END, INNER = range(6)
WEIGHTS0 = INNER + 1
#: "plane" loops (held weights only): the next channel's weight and rq record pointers.
WPTR, RQPTR = INNER, WEIGHTS0
#: Largest output plane a "plane" tile unrolls (outputs per channel).
MAX_PLANE_OUTPUTS = 16
#: Channel loops around a row loop: the per-call values (after the weights in the stack frame;
#: S16-S21 with an FPU, saved and restored since they are callee-saved).
CH_W, CH_RQ, CH_SPAN, CH_END, CH_DQ, CH_DDST = range(6)
CH_SLOTS = 6
FPU_CH_BASE = 16
#: Distinct right shifts that get their own tile body (immediate shifts); beyond: register shift.
MAX_SHIFT_BODIES = 4
#: Largest immediate offset of LDR/STRB (imm12) and of ADDW.
MAX_IMM12 = 4095
#: Widest step the planner tries.
MAX_WIDTH = 8


@dataclass(frozen=True)
class Requant:
    """How one tile body turns an accumulator into an int8 output (see `dsp_plan`)."""

    rshift: int | None  # immediate right shift, None: register shift (RSH slot)
    sign_fix: bool
    high_clamp: int | None  # ADD constant before the second SSAT
    act_max: int

    def instructions(self) -> int:
        n = 2  # SMMLAR, SSAT
        n += 1 if self.sign_fix else 0
        n += 1 if self.rshift is None else 0
        if self.high_clamp is not None:
            n += 1 + (self.high_clamp != 0) + (self.act_max != 127)
        return n


@dataclass(frozen=True)
class W8Taps:
    """Where a channel head finds its weights when it reads the int8 weights in TFLite's layout
    ``[kh][kw][OC]`` (`w` then points at the channel's first tap, one byte per channel on) and
    how it turns them into the weight words: `row_words` are the (lo kx, hi kx) taps of each
    word of a kernel row, every value scaled by 2^`scale_steps` (one SADD16 per step)."""

    tap_stride: int  # bytes from one tap to the next (the output channels)
    kh: int
    kw: int
    row_words: tuple[tuple[int | None, int | None], ...]
    scale_steps: int
    kq_base: int  # kq = kq_base * 2^n + (2^(n - 1) if n > 0): a constant of each shift's body
    kq_in_record: bool = False  # a register shift: kq is in the channel's record, not the body

    @property
    def record_words(self) -> int:
        """{bias, multiplier}, and kq for a register shift."""
        return 3 if self.kq_in_record else 2

    def offset(self, ky: int, kx: int) -> int:
        return self.tap_stride * (ky * self.kw + kx)

    @property
    def rshift_offset(self) -> int:
        """The channel's right shift: a byte after the taps, in the same array."""
        return self.tap_stride * self.kh * self.kw

    def kq(self, n: int) -> int:
        return self.kq_base * 2**n + (2 ** (n - 1) if n > 0 else 0)


@dataclass(frozen=True)
class TileShape:
    """What a tile computes; `plan_tile` turns it into registers and instructions."""

    step: Step
    kh: int
    row_step: int  # band words between kernel rows
    nwords: int  # weight words per kernel row in `w`
    adv_q: int  # bytes per iteration
    adv_dst: int
    out_col: int  # bytes between the step's outputs
    loop: str  # "row": iterations along the output row; "rows": one output row per iteration;
    #            "block": `steps` iterations along each output row, then the next row;
    #            "plane": one iteration per channel, its whole output plane unrolled
    steps: int = 1  # "block", "plane": steps per output row
    row_q: int = 0  # "block", "plane": bytes from one output row's band to the next
    row_dst: int = 0  # "block", "plane": bytes from one output row to the next
    rows: int = 1  # "plane": output rows
    step_q: int = 0  # "plane": bytes from one step's band words to the next step's
    step_dst: int = 0  # "plane": bytes from one step's outputs to the next step's
    w_adv: int = 0  # "plane", channel loops: bytes of weight words per channel
    channels: bool = False  # "rows"/"block": a loop over the channels of a group around the row loop
    ch_q: int = 0  # channel loops: band bytes per channel
    ch_dst: int = 0  # channel loops: output bytes per channel
    w8: W8Taps | None = None  # "plane", channel loops: the head rebuilds the weights from int8 taps
    #: "plane": the band words that hold only padding, (output row, step, kernel row, word): zero,
    #: so their loads and MACs are left out
    padding: frozenset[tuple[int, int, int, int]] = frozenset()

    @property
    def out_unit(self) -> int:
        """Bytes dst advances per unit of n."""
        return self.row_dst if self.loop == "block" else self.adv_dst

    @property
    def advance_per_call_unit(self) -> int:
        """Bytes q advances per unit of n (an iteration, or a row of a block loop)."""
        return self.row_q if self.loop == "block" else self.adv_q

    @property
    def row_fix(self) -> tuple[int, int]:
        """"block": what q and dst add after a row's last step to reach the next row."""
        return self.row_q - self.steps * self.adv_q, self.row_dst - self.steps * self.adv_dst


@dataclass(frozen=True)
class TilePlan:
    shape: TileShape
    weights: str  # "held", "stash" or "memory"
    accs: tuple[str, ...]
    held: dict  # (ky, wreg) -> register
    row_regs: tuple[str, ...]  # streamed: registers of one kernel row's weights
    temps: tuple[str, ...]
    mreg: str | None  # multiplier held during the requantization
    kreg: str | None  # kq held (else fetched per output)
    wptr: str | None
    callee_saved: tuple[str, ...]
    body_insns: int  # instructions per iteration (loop branch included)
    body_cycles: float  # M4 estimate per iteration
    frame_words: int  # no-FPU stash words
    breg: str | None = None  # the bias during the first MACs, then kq
    ereg: str | None = None  # the end pointer of q (of the row's steps, for a "block" loop)
    row_cycles: float = 0.0  # "block": M4 estimate of the step from one output row to the next
    #: the pipeline the bodies are scheduled and priced for: "m4" (emitted order, M4 timing table)
    #: or "m7" (`m7_order`, the dual-issue M7 model); body_cycles and row_cycles are in its cycles
    core: str = "m4"
    mhold: str | None = None  # M7: the multiplier, held for the call (or the channel)
    zregs: tuple[str, ...] = ()  # M7: more registers for the requantization results

    @property
    def width(self) -> int:
        return self.shape.step.width

    @property
    def macs_per_iteration(self) -> int:
        return self.width * self.shape.kh * _taps(self.shape.step)

    def cycles_per_output(self) -> float:
        return self.body_cycles / self.width


def _taps(step: Step) -> int:
    """Taps of one output in one kernel row (SMLAD counts two)."""
    per = sum(2 if o.kind == "smlad" else 1 for o in step.ops)
    return per // step.width


def _row_wregs(step: Step) -> list[int]:
    return sorted({o.wreg for o in step.ops})


def plan_tile(shape: TileShape, rq: Requant, core: str = "m4") -> TilePlan | None:
    """Register assignment for `shape`, or None when it does not fit the core; `core`: the
    pipeline its bodies are scheduled and priced for ("m4" or "m7")."""
    st = shape.step
    width = st.width
    wregs = _row_wregs(st)
    held_n = shape.kh * len(wregs)
    max_off = 4 * ((shape.kh - 1) * shape.row_step + max(st.words))
    if max_off > MAX_IMM12 or (width - 1) * shape.out_col > MAX_IMM12:
        return None
    if shape.adv_q > MAX_IMM12 or shape.adv_dst > MAX_IMM12 or shape.adv_q <= 0:
        return None
    if shape.loop == "block" and (max(abs(v) for v in shape.row_fix) > MAX_IMM12 or shape.row_q > MAX_IMM12
                                  or shape.steps * shape.adv_q > MAX_IMM12):
        return None
    if shape.advance_per_call_unit > 65535:
        return None
    if shape.channels and max(shape.ch_q, shape.ch_dst, shape.out_unit, shape.advance_per_call_unit) > 65535:
        return None
    if shape.loop == "plane":
        last_q = (shape.rows - 1) * shape.row_q + (shape.steps - 1) * shape.step_q
        last_dst = (shape.rows - 1) * shape.row_dst + (shape.steps - 1) * shape.step_dst
        if max_off + last_q > MAX_IMM12 or last_dst + (width - 1) * shape.out_col > MAX_IMM12:
            return None
        if shape.w_adv > MAX_IMM12:
            return None
    stash_weights = shape.kh * shape.nwords
    base = 2 + width + 2  # q, dst, accumulators, two load temporaries
    candidates = []
    if base + held_n <= len(GPRS):
        candidates.append("held")
    if shape.loop != "plane":  # a plane tile loads each channel's weights once: held only
        if base + len(wregs) <= len(GPRS) and WEIGHTS0 + stash_weights <= STASH_SLOTS:
            candidates.append("stash")
        if base + 1 + len(wregs) <= len(GPRS) and not shape.channels:
            candidates.append("memory")
    best = None
    for mode in candidates:
        p = _assign(shape, rq, mode, core)
        if p is None:
            continue
        if shape.channels and p.weights == "stash" and not _copy_regs(p, exclude_held=True):
            continue
        if best is None or p.body_cycles < best.body_cycles:
            best = p
    return best


def _assign(shape: TileShape, rq: Requant, mode: str, core: str = "m4") -> TilePlan | None:
    st = shape.step
    wregs = _row_wregs(st)
    pool = [r for r in GPRS if r not in ("r0", "r1")]
    wptr = None
    if mode == "memory":
        wptr = "r2"
        pool.remove("r2")
    accs = tuple(pool[: st.width])
    pool = pool[st.width:]
    held: dict = {}
    row_regs: tuple[str, ...] = ()
    if mode == "held":
        for ky in range(shape.kh):
            for i in wregs:
                held[(ky, i)] = pool.pop(0)
    else:
        row_regs = tuple(pool[: len(wregs)])
        pool = pool[len(wregs):]
    temps = (pool[0], pool[1])
    free = pool[2:]
    # Spare registers, in order of what they save per iteration: the bias as the accumulate
    # operand of each accumulator's first MAC (width - 1 fetches; afterwards the register
    # holds kq for the requantization), the end pointer (one fetch), then weights of a
    # streamed tile (one fetch each).
    breg = free.pop(0) if free and st.width > 1 else None
    mhold = None
    zregs: tuple[str, ...] = ()
    if core == "m7":
        # M7: a fetch from the stash pairs with a MAC and costs no cycle of its own, registers
        # are what lets the requantizations overlap the MACs: the multiplier held for the call
        # (so the requantization needs no load temporary) and one more result register come
        # before held weights and the end pointer
        mhold = free.pop(0) if free else None
        zregs = (free.pop(0),) if free else ()
        ereg = None
    else:
        ereg = free.pop(0) if free else None
    if mode != "held":
        for ky in range(shape.kh):
            for i in wregs:
                if free:
                    held[(ky, i)] = free.pop(0)
    if core == "m7" and free:
        ereg = free.pop(0)
    mreg = temps[0]
    kreg = breg or (row_regs[0] if row_regs else None)
    used = set(accs) | set(held.values()) | set(row_regs) | set(temps) | {"r0", "r1"}
    used |= {r for r in (wptr, breg, ereg, mhold, *zregs) if r}
    callee = tuple(r for r in CALLEE_SAVED if r in used)
    plan = TilePlan(shape=shape, weights=mode, accs=accs, held=held, row_regs=row_regs, temps=temps,
                    mreg=mreg, kreg=kreg, wptr=wptr, callee_saved=callee, body_insns=0, body_cycles=0.0,
                    frame_words=0, breg=breg, ereg=ereg, core=core, mhold=mhold, zregs=zregs)
    if shape.w8 and not _w8_fits(plan):
        return None  # no registers for the int8 head
    if shape.loop == "plane":
        insns, cycles = _price(plan, _plane_unit(plan, [rq], 0, fpu=True))
    else:
        insns, cycles = _price(plan, _body(plan, rq, fpu=True))
    if shape.loop == "block":
        # the row's last step falls through its branch: not the taken branch's cost
        _, row_cycles = _price(plan, _row_advance(plan, fpu=True), last_taken=False)
    else:
        row_cycles = 0.0
    frame = WEIGHTS0 + (shape.kh * shape.nwords if mode == "stash" else 0)
    if shape.loop == "plane":
        frame = RQPTR + 1
    elif shape.channels:
        frame += CH_SLOTS
    return TilePlan(**{**plan.__dict__, "body_insns": insns, "body_cycles": cycles, "frame_words": frame,
                       "row_cycles": row_cycles})


# --- instruction emission ----------------------------------------------------------------------

def _fetch(slot: int, reg: str, fpu: bool) -> str:
    return f"vmov {reg}, s{slot}" if fpu else f"ldr {reg}, [sp, #{4 * slot}]"


def _step(p: TilePlan, rq: Requant, fpu: bool, qoff: int = 0, doff: int = 0,
          at: tuple[int, int] | None = None) -> list[tuple[str, str]]:
    """One step: `width` outputs from the band at q + `qoff` bytes, stored from dst + `doff`;
    `at`: its (output row, step) in a "plane" tile, whose padding words it skips."""
    return _step_split(p, rq, fpu, qoff, doff, at)[0]


def _preloads(p: TilePlan) -> bool:
    """M7 "rows" loops: each iteration ends by fetching what the next one starts with (the bias,
    kernel row 0's weights, its first two band words), so its first MAC need not wait for them;
    the loop's entry fetches them for the first. Only where those band words lie inside what the
    iteration itself reads (so the last iteration's fetch stays in the band)."""
    sh = p.shape
    if p.core != "m7" or sh.loop != "rows" or not p.breg:
        return False
    words = sh.step.words
    return sh.adv_q + 4 * max(words[:2]) <= 4 * ((sh.kh - 1) * sh.row_step + max(words))


def _preload(p: TilePlan, rq: Requant, fpu: bool, qoff: int = 0) -> list[tuple[str, str]]:
    """What a preloading loop's iteration at q + `qoff` starts with (see `_preloads`)."""
    out, npre = _step_split(p, rq, fpu, qoff)
    return out[:npre]


def _step_split(p: TilePlan, rq: Requant, fpu: bool, qoff: int = 0, doff: int = 0,
                at: tuple[int, int] | None = None) -> tuple[list[tuple[str, str]], int]:
    """`_step`, and how many of its first instructions are the fetches `_preload` takes: the bias,
    kernel row 0's weights and its first pair of band words."""
    sh = p.shape
    npre = 0
    st = sh.step
    out: list[tuple[str, str]] = []
    wregs = _row_wregs(st)
    started: set[int] = set()
    if p.breg:
        out.append((_fetch(BIAS, p.breg, fpu), "bias: the first MAC of each output adds it"))
    else:
        for a, acc in enumerate(p.accs):
            out.append((_fetch(BIAS, acc, fpu), "acc = bias" if a == 0 else ""))
        started = set(range(len(p.accs)))
    wslot = WEIGHTS0
    for ky in range(sh.kh):
        # weights of this kernel row: held in a register, or fetched into the row registers
        regs = {}
        spare_rows = list(p.row_regs)
        first = True
        for i in wregs:
            if (ky, i) in p.held:
                regs[i] = p.held[(ky, i)]
                continue
            regs[i] = spare_rows.pop(0)
            if p.weights == "stash":
                ins = _fetch(wslot + ky * sh.nwords + i, regs[i], fpu)
            else:
                ins = f"ldr {regs[i]}, [{p.wptr}, #{4 * (ky * sh.nwords + i)}]"
            out.append((ins, f"kernel row {ky}: weights" if first else ""))
            first = False
        words = [w for w in st.words if at is None or (*at, ky, w) not in sh.padding]
        for k in range(0, len(words), 2):
            pair = words[k:k + 2]
            for j, word in enumerate(pair):
                off = qoff + 4 * (ky * sh.row_step + word)
                out.append((f"ldr {p.temps[j]}, [r0, #{off}]",
                            f"kernel row {ky}: band words" if k == 0 and j == 0 else ""))
            if ky == 0 and k == 0:
                npre = len(out)
            for j, word in enumerate(pair):
                for o in st.ops:
                    if o.word == word:
                        acc = p.accs[o.acc]
                        add = acc if o.acc in started else p.breg
                        started.add(o.acc)
                        out.append((f"{o.kind} {acc}, {p.temps[j]}, {regs[o.wreg]}, {add}", ""))
    # requantization and stores
    m = p.mhold or p.mreg
    if not p.mhold:
        out.append((_fetch(MULT, m, fpu), "requantize: multiplier"))
    if p.kreg:
        out.append((_fetch(KQ, p.kreg, fpu), "kq"))
    # M7: the outputs' requantizations overlap: the first output's result goes in the spare
    # register (else the second load temporary), each later one's in the accumulator of the
    # output before it (dead after that one's sign fix), so the load temporaries and weight
    # registers are free for the next iteration's fetches; the M4 keeps one result register
    m7 = p.core == "m7"
    zs = [p.temps[1]]
    if m7:
        zs = list(p.zregs or (p.temps[1],)) + list(p.accs)
        if rq.rshift is None:  # the register shift lives in accs[0] from output 0 on
            zs = zs[:1] * 2 + list(p.accs[1:])
    for a, acc in enumerate(p.accs):
        z = zs[a] if m7 else zs[0]
        y = z
        if p.kreg:
            out.append((f"smmlar {z}, {acc}, {m}, {p.kreg}", f"output {a}"))
        else:
            out.append((_fetch(KQ, z, fpu), f"output {a}"))
            out.append((f"smmlar {z}, {acc}, {m}, {z}", ""))
        if rq.sign_fix:
            out.append((f"add {z}, {z}, {acc}, asr #31", ""))
        if rq.rshift is None:
            # the shift goes in the first output's accumulator once it is dead, for every output
            if a == 0:
                out.append((_fetch(RSH, acc, fpu), "the right shift, for every output"))
            out.append((f"asr {z}, {z}, {p.accs[0]}", ""))
            out.append((f"ssat {z}, #8, {z}", ""))
        elif rq.rshift > 0:
            out.append((f"ssat {y}, #8, {z}, asr #{rq.rshift}", ""))
        else:
            out.append((f"ssat {y}, #8, {z}", ""))
        if rq.high_clamp is not None:
            if rq.high_clamp:
                out.append((f"add {y}, {y}, #{rq.high_clamp}", ""))
            out.append((f"ssat {y}, #8, {y}", ""))
            if rq.act_max != 127:
                out.append((f"sub {y}, {y}, #{127 - rq.act_max}", ""))
        out.append((f"strb {y}, [r1, #{doff + a * sh.out_col}]", ""))
    return out, npre


def _loop_end(p: TilePlan, fpu: bool, stop: int, label: str = ".Lloop") -> list[tuple[str, str]]:
    """Advance q and dst by one iteration; branch back to `label` until q reaches the `stop`
    slot's pointer (held in the end register when there is one)."""
    sh = p.shape
    out = [(f"add r0, r0, #{sh.adv_q}", "next " + ("channel" if sh.loop == "plane" else "iteration")),
           (f"add r1, r1, #{sh.adv_dst}", "")]
    t = p.accs[-1] if _preloads(p) else p.temps[0]  # a preloading loop's temporaries are taken
    if p.ereg:
        out.append((f"cmp r0, {p.ereg}", ""))
    else:
        out.append((_fetch(stop, t, fpu), ""))
        out.append((f"cmp r0, {t}", ""))
    out.append((f"bne {label}", ""))
    return out


def _body(p: TilePlan, rq: Requant, fpu: bool, label: str = ".Lloop") -> list[tuple[str, str]]:
    """The loop body: (instruction, comment) pairs, the loop branch last. For a "plane" loop:
    one channel's whole output plane (its steps unrolled), without the channel head."""
    sh = p.shape
    if _preloads(p):
        out, npre = _step_split(p, rq, fpu)
        nxt = [(i, "the next iteration's first fetches" if k == 0 else c)
               for k, (i, c) in enumerate(_preload(p, rq, fpu, sh.adv_q))]
        return out[npre:] + nxt + _loop_end(p, fpu, END, label)
    if sh.loop != "plane":
        return _step(p, rq, fpu) + _loop_end(p, fpu, INNER if sh.loop == "block" else END, label)
    out = []
    for r in range(sh.rows):
        for s in range(sh.steps):
            part = _step(p, rq, fpu, r * sh.row_q + s * sh.step_q, r * sh.row_dst + s * sh.step_dst, (r, s))
            part[0] = (part[0][0], f"output row {r}, step {s}" + (f" ({part[0][1]})" if part[0][1] else ""))
            out += part
    return out + _loop_end(p, fpu, END, "%chan")


def _add_imm(reg: str, value: int) -> list[tuple[str, str]]:
    if value > 0:
        return [(f"add {reg}, {reg}, #{value}", "")]
    if value < 0:
        return [(f"sub {reg}, {reg}, #{-value}", "")]
    return []


def _row_advance(p: TilePlan, fpu: bool, label: str = ".Lloop") -> list[tuple[str, str]]:
    """"block" loops: from the end of an output row's steps to the next row, or out."""
    sh = p.shape
    fq, fd = sh.row_fix
    out = _add_imm("r0", fq) + _add_imm("r1", fd)
    if out:
        out[0] = (out[0][0], "next output row")
    t = p.temps[0]
    if p.ereg:
        out += _add_imm(p.ereg, sh.row_q)
    else:
        out.append((_fetch(INNER, t, fpu), ""))
        out += _add_imm(t, sh.row_q)
        out.append((f"vmov s{INNER}, {t}" if fpu else f"str {t}, [sp, #{4 * INNER}]", ""))
    out.append((_fetch(END, t, fpu), ""))
    out.append((f"cmp r0, {t}", ""))
    out.append((f"bne {label}", ""))
    return out


#: M4 cycles of a taken branch (the pipeline refills); not taken: 1.
BRANCH_TAKEN = 3


_MULTI = ("ldm", "stm", "vldm", "vstm", "push", "pop")


def _dests(ins: str) -> set[str]:
    """Core registers an instruction writes (for the address dependency rule)."""
    op, _, rest = ins.partition(" ")
    ops = [o.strip() for o in rest.split(",")]
    if op in ("cmp", "str", "strb", "stm", "push", "vldm", "vstm") or op.startswith("b"):
        return set()
    if op == "ldm":
        return {r.strip("{} ") for r in rest.split("{")[1].split(",")}
    if op == "vmov" and ops[0].startswith("s"):
        return set()
    return {ops[0]}


def _estimate(body: list[tuple[str, str]], taken: frozenset[int] = frozenset(),
              last_taken: bool = True) -> tuple[int, float]:
    """Instructions and M4 cycles of an executed sequence: the same rules as `dwgen.cycles` for
    the instructions a tile uses. The last instruction is the loop branch (taken); other
    branches are taken when their index is in `taken`."""
    cycles = 0.0
    prev_load = False
    prev_dests: set[str] = set()
    for idx, (ins, _) in enumerate(body):
        op = ins.split()[0]
        base = ins.split("[")[1].split(",")[0].rstrip("]") if "[" in ins else ins.split()[1].rstrip("!,")
        dep = base in prev_dests
        if op in ("ldr", "ldrsb"):
            cycles += 1 if prev_load and not dep else 2
            if dep and not prev_load:
                cycles += 1
            prev_load = True
        elif op in _MULTI:
            nregs = len(ins.split("{")[1].split(","))
            if "-" in ins.split("{")[1]:
                lo, hi = ins.split("{")[1].rstrip("}").split("-")
                nregs = int(hi.strip()[1:]) - int(lo.strip()[1:]) + 1
            cycles += 1 + nregs + (1 if dep else 0)
            prev_load = False
        elif op in ("str", "strb"):
            cycles += 1 + (1 if dep else 0)
            prev_load = False
        elif op.startswith("b"):
            cycles += BRANCH_TAKEN if ((last_taken and idx == len(body) - 1) or idx in taken) else 1
            prev_load = False
        else:
            cycles += 1
            prev_load = False
        prev_dests = _dests(ins)
    return len(body), cycles


def _price(p: TilePlan, body: list[tuple[str, str]], taken: frozenset[int] = frozenset(),
           last_taken: bool = True) -> tuple[int, float]:
    """`_estimate` (M4) or `_m7_estimate` (the M7 schedule and model), by the plan's core."""
    if p.core == "m7":
        return _m7_estimate(body, taken, last_taken)
    return _estimate(body, taken, last_taken)


def _held_loads(p: TilePlan, base: str, writeback: bool) -> list[tuple[str, str]]:
    """Load the held weights from `base` (one LDM when registers and words both ascend);
    with `writeback`, leave `base` at the next channel's weights."""
    sh = p.shape
    items = sorted(p.held.items())  # by (ky, i): word ky * nwords + i
    offs = [4 * (ky * sh.nwords + i) for (ky, i), _ in items]
    regs = [r for _, r in items]
    nums = [GPRS.index(r) for r in regs]
    if (writeback and offs == list(range(0, 4 * len(offs), 4)) and nums == sorted(nums)
            and base not in regs):
        out = [(f"ldm {base}!, {{{', '.join(regs)}}}", "the channel's weights")]
        rest = sh.w_adv - 4 * len(offs)
    else:
        out = [(f"ldr {r}, [{base}, #{o}]", "the channel's weights" if k == 0 else "")
               for k, (r, o) in enumerate(zip(regs, offs))]
        rest = sh.w_adv if writeback else 0
    return out + _add_imm(base, rest)


def _w8_temps(p: TilePlan, busy: set[str]) -> list[str]:
    """Registers free at a channel head for the int8 rebuild: ones the body already uses (so
    already saved), minus what is live at that point and the held weights it writes."""
    pool = list(p.accs) + list(p.temps) + list(p.row_regs) + [r for r in (p.breg, p.ereg) if r]
    taken = busy | set(p.held.values()) | {"r0", "r1"}
    out = []
    for r in pool:
        if r not in taken and r not in out:
            out.append(r)
    return out


def _w8_busy(p: TilePlan) -> set[str]:
    """Registers live while a channel head rebuilds the weights: the weight pointer, and a
    "plane" loop's end register."""
    return {p.accs[0]} | ({p.ereg} if p.shape.loop == "plane" and p.ereg else set())


def _w8_fits(p: TilePlan) -> bool:
    """Whether the int8 head has a temporary per tap of a kernel row, plus one for a stashed word."""
    w8 = p.shape.w8
    stashed = any((ky, i) not in p.held for ky in range(p.shape.kh) for i in _row_wregs(p.shape.step))
    return len(_w8_temps(p, _w8_busy(p))) >= w8.kw + (1 if stashed else 0)


def _w8_loads(p: TilePlan, wp: str, busy: set[str], fpu: bool, slot0: int = WEIGHTS0) -> list[tuple[str, str]]:
    """A channel's weight words rebuilt from its int8 taps at `wp` (TFLite layout): per kernel row,
    one LDRSB per tap the row's words use, then per word a PKHBT (both halves) and one SADD16 per
    scaling step (the single taps' high halves are never read: SMLAxB reads the bottom half only);
    each word goes to its held register or its stash slot. `wp` ends at the next channel."""
    sh = p.shape
    w8 = sh.w8
    temps = _w8_temps(p, busy)
    out: list[tuple[str, str]] = []
    wregs = _row_wregs(sh.step)
    nwords = 0
    for ky in range(sh.kh):
        taps = sorted({kx for i in wregs for kx in w8.row_words[i] if kx is not None})
        treg = dict(zip(taps, temps))
        spare = temps[len(taps)]  if len(temps) > len(taps) else None
        spares = [spare]
        if p.core == "m7":
            # M7: alternate the kernel rows' tap registers and rotate the words' registers over
            # what is left, so the rebuilds of successive words and rows overlap
            two = len(temps) >= 2 * len(taps) + 1
            base = len(taps) * (ky % 2) if two else 0
            treg = dict(zip(taps, temps[base:base + len(taps)]))
            spares = temps[2 * len(taps):] if two else temps[len(taps):]
            spares = spares or [spare]
        for n, kx in enumerate(taps):
            out.append((f"ldrsb {treg[kx]}, [{wp}, #{w8.offset(ky, kx)}]",
                        f"kernel row {ky}: its int8 taps" if n == 0 else ""))
        for i in wregs:
            lo, hi = w8.row_words[i]
            spare = spares[nwords % len(spares)]
            nwords += (ky, i) not in p.held
            dst = p.held.get((ky, i), spare)
            if hi is not None:
                out.append((f"pkhbt {dst}, {treg[lo]}, {treg[hi]}, lsl #16", f"word {i}: (w{lo}, w{hi})"))
                src = dst
            else:
                src = treg[lo]
            for _ in range(w8.scale_steps):
                out.append((f"sadd16 {dst}, {src}, {src}", ""))
                src = dst
            if (ky, i) not in p.held:
                out.append((_put(slot0 + ky * sh.nwords + i, dst, fpu), ""))
    if w8.kq_in_record:  # the register shift: from its byte after the taps into the stash
        out.append((f"ldrb {temps[0]}, [{wp}, #{w8.rshift_offset}]", "its right shift"))
        out.append((_put(RSH, temps[0], fpu), ""))
    out.append((f"add {wp}, {wp}, #1", "the next channel's taps"))
    return out


def _plane_regs(p: TilePlan) -> tuple[str, str, list[str]]:
    """"plane" loops: at a channel's head nothing but q, dst and the end register is live: the
    weight and rq pointers go in the first accumulator and load temporary; without an FPU the
    rq record is copied to the frame through four more."""
    wp, rp = p.accs[0], p.temps[0]
    spare = [r for r in GPRS[2:13] if r not in (wp, rp, p.ereg)]
    return wp, rp, spare[:4]


def _plane_head(p: TilePlan, rqs: list[Requant], fpu: bool) -> list[tuple[str, str]]:
    """A channel's head: its rq record into the stash, its weights into their registers."""
    wp, rp, copy = _plane_regs(p)
    nrec = _record_words(p)
    copy = copy[:nrec]
    if fpu:
        out = [(f"vmov {rp}, s{RQPTR}", "channel: its rq record into the stash"),
               (f"vmov {wp}, s{WPTR}", ""),
               (f"vldm {rp}!, {{s0-s{nrec - 1}}}", ""),
               (f"vmov s{RQPTR}, {rp}", "")]
    else:
        out = [(f"ldr {rp}, [sp, #{4 * RQPTR}]", "channel: its rq record into the frame"),
               (f"ldr {wp}, [sp, #{4 * WPTR}]", ""),
               (f"ldm {rp}!, {{{', '.join(copy)}}}", ""),
               (f"stm sp, {{{', '.join(copy)}}}", ""),
               (f"str {rp}, [sp, #{4 * RQPTR}]", "")]
    if p.shape.w8:
        out += _w8_loads(p, wp, _w8_busy(p), fpu)
    else:
        out += _held_loads(p, wp, writeback=True)
    out.append((f"vmov s{WPTR}, {wp}" if fpu else f"str {wp}, [sp, #{4 * WPTR}]", ""))
    if p.mhold:
        out.append((_fetch(MULT, p.mhold, fpu), "its multiplier, held"))
    return out


def _record_words(p: TilePlan) -> int:
    """Words of a channel's rq record: {bias, multiplier, kq, shift}, or {bias, multiplier}
    when the weights are int8 taps (the shift is a byte after them, kq a constant per body)."""
    return p.shape.w8.record_words if p.shape.w8 else 4


def _kq_prefix(p: TilePlan, rq: Requant, fpu: bool) -> list[tuple[str, str]]:
    """int8-tap tiles: a body's kq (a function of its right shift) into the KQ slot."""
    if not p.shape.w8 or p.shape.w8.kq_in_record:
        return []
    t = p.temps[0]
    kq = p.shape.w8.kq(rq.rshift) & 0xFFFFFFFF
    out = [(f"movw {t}, #{kq & 0xFFFF}", f"kq of right shift {rq.rshift}")]
    if kq >> 16:
        out.append((f"movt {t}, #{kq >> 16}", ""))
    return out + [(_put(KQ, t, fpu), "")]


def _dispatch(p: TilePlan, rqs: list[Requant], fpu: bool, label: str = "%b") -> list[tuple[str, str]]:
    """Branch to the body of the channel's right shift (the last body follows: no branch)."""
    if len(rqs) == 1:
        return []
    t = p.temps[1]
    if p.shape.w8:  # the weight pointer is at the next channel's taps
        fetch = f"ldrb {t}, [{p.accs[0]}, #{p.shape.w8.rshift_offset - 1}]"
    else:
        fetch = _fetch(RSH, t, fpu)
    out = [(fetch, "the body of the channel's right shift")]
    for k, rq in enumerate(rqs[:-1]):
        out += [(f"cmp {t}, #{rq.rshift}", ""), (f"beq {label}{k}", "")]
    return out


def _plane_unit(p: TilePlan, rqs: list[Requant], k: int, fpu: bool) -> list[tuple[str, str]]:
    """What one channel executes with body `k`: head, dispatch up to its branch, body."""
    disp = _dispatch(p, rqs, fpu)
    if k < len(rqs) - 1:
        disp = disp[: 3 + 2 * k]
    return _plane_head(p, rqs, fpu) + disp + _kq_prefix(p, rqs[k], fpu) + _body(p, rqs[k], fpu)


def plane_unit_cost(p: TilePlan, rqs: list[Requant], k: int, fpu: bool = True) -> tuple[int, float]:
    """Instructions and M4 cycles one channel takes through body `k` of a "plane" tile."""
    unit = _plane_unit(p, rqs, k, fpu)
    disp = len(_plane_head(p, rqs, fpu)) + (2 + 2 * k if k < len(rqs) - 1 else 0)
    return _price(p, unit, frozenset({disp}) if k < len(rqs) - 1 else frozenset())


# --- channel loops around a row loop -----------------------------------------------------------

def _ch_slot(p: TilePlan, fpu: bool, k: int) -> int:
    """Stash slot of channel-loop value `k`: S16.. with an FPU, after the weights without."""
    if fpu:
        return FPU_CH_BASE + k
    stash_w = p.shape.kh * p.shape.nwords if p.weights == "stash" else 0
    return WEIGHTS0 + stash_w + k


def _srange(first: int, n: int) -> str:
    """The register list of `n` S registers from S<first> (a single one without a range: the
    assembler refuses {s6-s6})."""
    return f"{{s{first}}}" if n == 1 else f"{{s{first}-s{first + n - 1}}}"


def _put(slot: int, reg: str, fpu: bool) -> str:
    return f"vmov s{slot}, {reg}" if fpu else f"str {reg}, [sp, #{4 * slot}]"


def _chan_regs(p: TilePlan) -> tuple[str, str, str]:
    """At a channel's head only q and dst are live: the weight pointer, the rq pointer and a
    temporary go in registers the row loop uses later."""
    return p.accs[0], p.temps[0], p.temps[1]


def _copy_regs(p: TilePlan, exclude_held: bool) -> list[str]:
    """Registers (ascending, at most 4) that copy words into the stack frame at a channel's head."""
    wp, rp, t = _chan_regs(p)
    busy = {wp, rp, t} | (set(p.held.values()) if exclude_held else set())
    return [r for r in GPRS[2:13] if r not in busy][:4]


def _chan_prologue(p: TilePlan, fpu: bool) -> list[tuple[str, str]]:
    """Channel loops: the per-call values (weight and rq pointers, q's span over the n row
    units, the end of the channels, the q and dst steps from one channel's end to the next)."""
    sh = p.shape
    saved = _saved(p, fpu)
    out = [(f"push {{{', '.join(saved + ['lr'])}}}", "save the callee-saved registers the tile uses")]
    pushed = 4 * (len(saved) + 1)
    if fpu:
        out.append((f"vpush {{s{FPU_CH_BASE}-s{FPU_CH_BASE + CH_SLOTS - 1}}}", "callee-saved: the channel loop's values"))
        pushed += 4 * CH_SLOTS
    else:
        out.append((f"sub sp, sp, #{4 * p.frame_words}", "the stash frame"))
        pushed += 4 * p.frame_words
    slot = lambda k: _ch_slot(p, fpu, k)  # noqa: E731
    out += [
        (_put(slot(CH_W), "r2", fpu), "weight and rq pointers of the first channel"),
        (_put(slot(CH_RQ), "r3", fpu), ""),
        (f"ldr r12, [sp, #{pushed}]", "n (fifth argument)"),
        (f"movw r3, #{sh.advance_per_call_unit}", ""),
        ("mul r12, r12, r3", "span of q over the n units"),
        (_put(slot(CH_SPAN), "r12", fpu), ""),
        (f"movw r2, #{sh.ch_q}", ""),
        ("sub r3, r2, r12", "q: from a channel's end to the next channel"),
        (_put(slot(CH_DQ), "r3", fpu), ""),
        (f"ldr r3, [sp, #{pushed + 4}]", "channels (sixth argument)"),
        ("mla r3, r3, r2, r0", "end of the channels"),
        (_put(slot(CH_END), "r3", fpu), ""),
        (f"ldr r12, [sp, #{pushed}]", ""),
        (f"movw r3, #{sh.out_unit}", ""),
        ("mul r12, r12, r3", ""),
        (f"movw r2, #{sh.ch_dst}", ""),
        ("sub r3, r2, r12", "dst: from a channel's end to the next channel"),
        (_put(slot(CH_DDST), "r3", fpu), ""),
    ]
    return out


def _chan_head(p: TilePlan, fpu: bool) -> list[tuple[str, str]]:
    """A channel's head: its rq record and weights into the stash and their registers, the
    ends of its row loop."""
    sh = p.shape
    wp, rp, t = _chan_regs(p)
    slot = lambda k: _ch_slot(p, fpu, k)  # noqa: E731
    out = [(_fetch(slot(CH_RQ), rp, fpu), "channel: its rq record into the stash"),
           (_fetch(slot(CH_W), wp, fpu), "")]
    nrec = _record_words(p)
    if fpu:
        out.append((f"vldm {rp}!, {{s0-s{nrec - 1}}}", ""))
    else:
        copy = _copy_regs(p, exclude_held=False)[:nrec]
        out += [(f"ldm {rp}!, {{{', '.join(copy)}}}", ""), (f"stm sp, {{{', '.join(copy)}}}", "")]
    out.append((_put(slot(CH_RQ), rp, fpu), ""))
    stash_w = sh.kh * sh.nwords if p.weights == "stash" else 0
    if sh.w8:
        out += _w8_loads(p, wp, _w8_busy(p), fpu)
    elif p.weights == "held":
        out += _held_loads(p, wp, writeback=True)
    else:
        out += _held_loads(p, wp, writeback=False)
        if fpu:
            out.append((f"vldm {wp}!, {_srange(WEIGHTS0, stash_w)}", "its weights into the stash"))
        else:
            copy = _copy_regs(p, exclude_held=True)
            out.append((f"add {t}, sp, #{4 * WEIGHTS0}", "its weights into the frame"))
            done = 0
            while done < stash_w:
                regs = copy[: min(len(copy), stash_w - done)]
                out += [(f"ldm {wp}!, {{{', '.join(regs)}}}", ""), (f"stm {t}!, {{{', '.join(regs)}}}", "")]
                done += len(regs)
        out += _add_imm(wp, sh.w_adv - 4 * stash_w)
    out.append((_put(slot(CH_W), wp, fpu), ""))
    out.append((_fetch(slot(CH_SPAN), t, fpu), "ends of its row loop"))
    stop = INNER if sh.loop == "block" else END
    if sh.loop == "block":
        out.append((f"add {t}, r0, {t}", ""))
        out.append((_put(END, t, fpu), ""))
        if p.ereg:
            out.append((f"add {p.ereg}, r0, #{sh.steps * sh.adv_q}", ""))
        else:
            out.append((f"add {t}, r0, #{sh.steps * sh.adv_q}", ""))
            out.append((_put(INNER, t, fpu), ""))
    elif p.ereg:
        out.append((f"add {p.ereg}, r0, {t}", ""))
    else:
        out.append((f"add {t}, r0, {t}", ""))
        out.append((_put(stop, t, fpu), ""))
    if p.mhold:
        out.append((_fetch(MULT, p.mhold, fpu), "its multiplier, held"))
    return out


def _chan_tail(p: TilePlan, fpu: bool) -> list[tuple[str, str]]:
    t = p.temps[0]
    slot = lambda k: _ch_slot(p, fpu, k)  # noqa: E731
    return [(_fetch(slot(CH_DQ), t, fpu), "next channel"),
            ("add r0, r0, " + t, ""),
            (_fetch(slot(CH_DDST), t, fpu), ""),
            ("add r1, r1, " + t, ""),
            (_fetch(slot(CH_END), t, fpu), ""),
            (f"cmp r0, {t}", ""),
            ("bne %chan", "")]


def _chan_unit(p: TilePlan, rqs: list[Requant], k: int, fpu: bool):
    """What one channel executes through body `k` with n = 1 (one row unit): the sequence and
    the indices of its taken branches (the channel branch last)."""
    sh = p.shape
    seq = _chan_head(p, fpu)
    disp = _dispatch(p, rqs, fpu, "%loop")
    taken = set()
    if k < len(rqs) - 1:
        disp = disp[: 3 + 2 * k]
        taken.add(len(seq) + len(disp) - 1)
    seq = seq + disp + _kq_prefix(p, rqs[k], fpu) + (_preload(p, rqs[k], fpu) if _preloads(p) else [])
    body = _body(p, rqs[k], fpu, f"%loop{k}")
    steps = sh.steps if sh.loop == "block" else 1
    for i in range(steps):
        seq = seq + body
        if i < steps - 1:
            taken.add(len(seq) - 1)
    if sh.loop == "block":
        seq = seq + _row_advance(p, fpu, f"%loop{k}")
    return seq + _chan_tail(p, fpu), taken


def channel_unit_cost(p: TilePlan, rqs: list[Requant], k: int, fpu: bool = True) -> tuple[int, float]:
    """Instructions and M4 cycles of one channel through body `k` of a channel loop, n = 1."""
    seq, taken = _chan_unit(p, rqs, k, fpu)
    return _price(p, seq, frozenset(taken))


def _channel_asm(p: TilePlan, rqs: list[Requant], symbol: str, fpu: bool, lines: list[str], emit) -> list[str]:
    """A row loop inside a channel loop: prologue, channel head and dispatch, one row loop and
    channel tail per right shift (the last shift's first: the dispatch falls into it)."""
    emit(_chan_prologue(p, fpu))
    lines.append(".balign 4")
    lines.append(f".L{symbol}_chan:")
    entry = p.shape.w8 or _preloads(p)  # code run on entering a body, before its loop
    emit(_chan_head(p, fpu) + _dispatch(p, rqs, fpu, "%entry" if entry else "%loop"))

    def body(k):
        out = _body(p, rqs[k], fpu, f"%loop{k}")
        if p.shape.loop == "block":
            out += _row_advance(p, fpu, f"%loop{k}")
        return out + _chan_tail(p, fpu)

    prefix = (lambda k: _kq_prefix(p, rqs[k], fpu) + _preload(p, rqs[k], fpu) * _preloads(p)) if entry else None
    return _dispatched_bodies(p, rqs, symbol, fpu, lines, emit, "loop", body, always_label=True, prefix=prefix)


def _dispatched_bodies(p: TilePlan, rqs: list[Requant], symbol: str, fpu: bool, lines: list[str], emit,
                       label: str, body, always_label: bool = False, prefix=None) -> list[str]:
    """One body per right shift after a channel head's dispatch, the last shift's first (the
    dispatch falls into it), each but the last placed one ending in a branch out; then the
    epilogue. `prefix(k)`: code run once on entering body `k` (the dispatch branches to its
    `entry<k>` label), before the body's own label."""
    order = [len(rqs) - 1] + list(range(len(rqs) - 1))
    for n, k in enumerate(order):
        if prefix is not None:
            lines.append(f".L{symbol}_entry{k}:")
            emit(prefix(k))
        if always_label or len(rqs) > 1:
            lines.append(f".L{symbol}_{label}{k}:" + (f"  @ right shift {rqs[k].rshift}" if rqs[k].rshift is not None else ""))
        emit(body(k))
        if n != len(order) - 1:
            emit([("b %done", "")])
    lines.append(f".L{symbol}_done:")
    emit(_epilogue(p, fpu))
    lines.append(f".size {symbol}, .-{symbol}")
    lines.append(".popsection")
    return lines


def _saved(p: TilePlan, fpu: bool) -> list[str]:
    """The callee-saved registers a body writes: the plan's, and without an FPU also the
    ones the prologue builds the stack frame in (r4-r9, and r4-r11 for stashed weights)."""
    regs = set(p.callee_saved)
    if not fpu and p.shape.channels:
        regs |= {r for r in _copy_regs(p, False) + _copy_regs(p, True) if r in CALLEE_SAVED}
    elif not fpu:
        stash_w = p.shape.kh * p.shape.nwords if p.weights == "stash" else 0
        regs |= {f"r{i}" for i in range(4, 10)} | {f"r{4 + i}" for i in range(min(8, stash_w))}
    return sorted(regs, key=lambda r: int(r[1:]))


def _plane_prologue(p: TilePlan, fpu: bool) -> list[tuple[str, str]]:
    """"plane" loops: the stash holds the end of q (n channels on) and the next channel's
    weight and rq pointers; each channel's head loads the rest."""
    sh = p.shape
    saved = _saved(p, fpu)
    out = [(f"push {{{', '.join(saved + ['lr'])}}}", "save the callee-saved registers the tile uses")]
    pushed = 4 * (len(saved) + 1)
    out.append((f"ldr r12, [sp, #{pushed}]", "n channels (fifth argument)"))
    if fpu:
        out += [(f"vmov s{WPTR}, r2", "stash: weight and rq pointers"), (f"vmov s{RQPTR}, r3", "")]
    else:
        # frame: [sp] = bias, multiplier, kq, shift (per channel), end, weight and rq pointers
        out.append(("push {r2, r3}", "frame: weight and rq pointers"))
    out.append((f"movw r3, #{sh.adv_q}", ""))
    out.append(("mla r12, r12, r3, r0", "end = q + n * channel band"))
    if fpu:
        out.append((f"vmov s{END}, r12", ""))
    else:
        out += [("push {r12}", "frame: end"), (f"sub sp, sp, #{4 * END}", "frame: the channel's rq record")]
    if p.ereg:
        out.append((f"mov {p.ereg}, r12", "end pointer, held"))
    return out


def _prologue(p: TilePlan, fpu: bool, uniform: bool) -> list[tuple[str, str]]:
    sh = p.shape
    if sh.loop == "plane":
        return _plane_prologue(p, fpu)
    saved = _saved(p, fpu)
    out = [(f"push {{{', '.join(saved + ['lr'])}}}", "save the callee-saved registers the tile uses")]
    pushed = 4 * (len(saved) + 1)
    nconst = 4 if not uniform else 3
    stash_w = sh.kh * sh.nwords if p.weights == "stash" else 0
    if fpu:
        out.append((f"vldm r3, {{s0-s{nconst - 1}}}", "stash: bias, multiplier, kq" + (", shift" if nconst == 4 else "")))
        n_reg = "r12"
        out.append((f"ldr {n_reg}, [sp, #{pushed}]", "n (fifth argument)"))
        out.append((f"movw r3, #{sh.advance_per_call_unit}", ""))
        out.append((f"mla {n_reg}, {n_reg}, r3, r0", "end = q + n * advance"))
        out.append((f"vmov s{END}, {n_reg}", ""))
        if sh.loop == "block":
            out.append((f"add {n_reg}, r0, #{sh.steps * sh.adv_q}", "end of the first row's steps"))
            out.append((f"vmov s{INNER}, {n_reg}", ""))
        if stash_w:
            out.append((f"vldm r2, {_srange(WEIGHTS0, stash_w)}", "stash: the weights"))
    else:
        # frame: [sp] = bias, multiplier, kq, shift, end, inner end, then the weights; built
        # with pushes (a later push goes below an earlier one)
        frame = WEIGHTS0 + stash_w
        if stash_w:
            done = 0
            chunks = []
            while done < stash_w:
                n = min(8, stash_w - done)
                chunks.append((done, n))
                done += n
            for start, n in reversed(chunks):
                regs = [f"r{4 + i}" for i in range(n)]
                out.append((f"add r12, r2, #{4 * start}", ""))
                out.append((f"ldm r12, {{{regs[0]}-{regs[-1]}}}" if n > 1 else f"ldr {regs[0]}, [r12]", "frame: weights"))
                out.append((f"push {{{regs[0]}-{regs[-1]}}}" if n > 1 else f"push {{{regs[0]}}}", ""))
                pushed += 4 * n
        out.append(("ldm r3, {r4-r7}", "frame: bias, multiplier, kq, shift"))
        out.append((f"ldr r8, [sp, #{pushed}]", "n (fifth argument)"))
        out.append((f"movw r3, #{sh.advance_per_call_unit}", ""))
        out.append(("mla r8, r8, r3, r0", "end = q + n * advance"))
        out.append((f"add r9, r0, #{sh.steps * sh.adv_q if sh.loop == 'block' else 0}", "end of the first row's steps"))
        out.append(("push {r4-r9}", ""))
        assert frame == WEIGHTS0 + stash_w
    if p.ereg:
        stop = INNER if sh.loop == "block" else END
        if fpu:
            out.append((f"vmov {p.ereg}, s{stop}", "end pointer, held"))
        else:
            out.append((f"ldr {p.ereg}, [sp, #{4 * stop}]", "end pointer, held"))
    wbase = p.wptr or "r2"
    # the weight pointer itself may be reused as a weight register: load that one last
    for (ky, i), reg in sorted(p.held.items(), key=lambda kv: (kv[1] == wbase, kv[0])):
        out.append((f"ldr {reg}, [{wbase}, #{4 * (ky * sh.nwords + i)}]", "held weights" if (ky, i) == min(p.held) else ""))
    if p.mhold:
        out.append((_fetch(MULT, p.mhold, fpu), "multiplier, held"))
    return out


def _epilogue(p: TilePlan, fpu: bool) -> list[tuple[str, str]]:
    out = []
    if not fpu:
        out.append((f"add sp, sp, #{4 * p.frame_words}", "drop the frame"))
    elif p.shape.channels:
        out.append((f"vpop {{s{FPU_CH_BASE}-s{FPU_CH_BASE + CH_SLOTS - 1}}}", ""))
    saved = ", ".join(_saved(p, fpu) + ["pc"])
    out.append((f"pop {{{saved}}}", ""))
    return out


def asm_lines(p: TilePlan, rq: Requant, symbol: str, fpu: bool, rqs: list[Requant] | None = None) -> list[str]:
    """The routine as lines of assembly (for a top-level `__asm__` block); a "plane" tile holds
    one body per requantization in `rqs` and dispatches per channel."""
    label = f".L{symbol}_loop"
    rqs = rqs or [rq]
    lines = [
        f".pushsection .text.{symbol},\"ax\",%progbits",
        ".balign 4",
        ".syntax unified",
        ".thumb",
        f".global {symbol}",
        f".hidden {symbol}",
        ".thumb_func",
        f".type {symbol}, %function",
        f"{symbol}:",
    ]

    def emit(pairs):
        if p.core == "m7":
            # the stack-frame variant runs only on an M7 built without its FPU: the plain schedule
            pairs = m7_order(pairs) if fpu else _plain(m7_order, pairs)
        for ins, comment in pairs:
            ins = ins.replace(".Lloop", label)
            ins = ins.replace("%", f".L{symbol}_")  # the plane tile's labels: %chan, %b<k>, %done
            lines.append(f"    {ins:<36}@ {comment}" if comment else f"    {ins}")

    if p.shape.loop == "plane":
        return _plane_asm(p, rqs, symbol, fpu, lines, emit)
    if p.shape.channels:
        return _channel_asm(p, rqs, symbol, fpu, lines, emit)
    emit(_prologue(p, fpu, rq.rshift is not None))
    if _preloads(p):
        emit(_preload(p, rq, fpu))
    lines.append(".balign 4")
    lines.append(f"{label}:")
    emit(_body(p, rq, fpu))
    if p.shape.loop == "block":
        emit(_row_advance(p, fpu))
    emit(_epilogue(p, fpu))
    lines.append(f".size {symbol}, .-{symbol}")
    lines.append(".popsection")
    return lines


def _plane_asm(p: TilePlan, rqs: list[Requant], symbol: str, fpu: bool, lines: list[str], emit) -> list[str]:
    """A "plane" tile: prologue, channel head and dispatch, then one body per right shift, the
    body of the last shift first (the dispatch falls into it)."""
    emit(_prologue(p, fpu, True))
    lines.append(".balign 4")
    lines.append(f".L{symbol}_chan:")
    emit(_plane_head(p, rqs, fpu) + _dispatch(p, rqs, fpu))
    return _dispatched_bodies(p, rqs, symbol, fpu, lines, emit, "b",
                              lambda k: _kq_prefix(p, rqs[k], fpu) + _body(p, rqs[k], fpu))


def register_roles(p: TilePlan) -> list[str]:
    """One comment line per register role (named once at the top of the routine)."""
    roles = ["r0 = band pointer q, r1 = output pointer dst"]
    roles.append("accumulators: " + ", ".join(p.accs))
    if p.weights == "held":
        roles.append("weights held for the call: " + ", ".join(
            f"{r} = row {ky} word {i}" for (ky, i), r in sorted(p.held.items())))
    else:
        src = "the stash" if p.weights == "stash" else f"memory ({p.wptr})"
        roles.append(f"weights of one kernel row, reloaded from {src}: " + ", ".join(p.row_regs))
    roles.append(f"load temporaries {p.temps[0]}, {p.temps[1]} (then multiplier, result)")
    if p.kreg:
        roles.append(f"kq during the requantization: {p.kreg}")
    if p.mhold:
        roles.append(f"multiplier held: {p.mhold}; requantization results also in: "
                     + ", ".join(p.zregs + (p.temps[1],)))
    if p.shape.loop == "plane":
        wp, rp, _ = _plane_regs(p)
        roles.append(f"at a channel's head: {wp} = its weights, {rp} = its rq record")
    roles.append("stash (S<n>, or word n of the stack frame): 0 bias, 1 multiplier, 2 kq, 3 shift, 4 end of q"
                 + (", 5 end of the row's steps" if p.shape.loop == "block" else "")
                 + (f", {WPTR} next weights, {RQPTR} next rq record" if p.shape.loop == "plane" else "")
                 + (f", {WEIGHTS0}.. the weights" if p.weights == "stash" else ""))
    return roles



# --- the Cortex-M7 schedule ------------------------------------------------------------------------
#
# For target cortex-m7 every straight run of a tile's instructions (up to and including a branch) is
# reordered by a list scheduler driven by the M7 issue model of `dwgen.cycles` (in order, two
# instructions per cycle under its pairing rules): of the instructions whose predecessors in the
# dependence graph are placed, the one that can issue soonest goes next, ties to the longest
# latency-weighted path to the end of the run, then to the emitted order. The graph has an edge for
# every register read after a write, write after a read and write after a write (core and S
# registers, sp, the NZCV flags, the GE flags of SADD16/SEL), keeps every store in order with every
# other memory access, and keeps the branch last. The M4 emission is untouched.

_CANON = {"r9": "sb", "r10": "sl", "r11": "fp", "r12": "ip", "r13": "sp", "r14": "lr", "r15": "pc"}
_MEM_RE = re.compile(r"\[([a-z0-9]+)(?:,\s*#(-?\d+))?\](!?)")
_MACS = frozenset("""smlad smladx smlabb smlabt smlatb smlatt smlawb smlawt smmlar smmla mla mls""".split())
_GE_SET = frozenset({"sadd16", "ssub16", "sadd8", "ssub8", "uadd16", "uadd8", "usub16", "usub8", "sasx", "ssax"})


def _reg(name: str) -> str:
    name = name.strip()
    return _CANON.get(name, name)


def _reglist(text: str) -> list[str]:
    """Registers of a {...} list, ranges expanded."""
    inner = text[text.index("{") + 1: text.index("}")]
    out = []
    for part in inner.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = (x.strip() for x in part.split("-"))
            kind = lo[0]
            out += [_reg(f"{kind}{i}") for i in range(int(lo[1:]), int(hi[1:]) + 1)]
        elif part:
            out.append(_reg(part))
    return out


@dataclass(frozen=True)
class _Op:
    """One tile instruction as the scheduler sees it."""

    text: str
    comment: str
    insn: object  # dwgen.cycles.Insn: what the M7 model costs
    defs: frozenset
    uses: frozenset
    mem: str | None  # "load", "store" or None
    branch: bool
    base: str | None = None  # a memory access's base register


@functools.lru_cache(maxsize=16384)
def _parse(ins: str, comment: str = "") -> _Op:
    """Parse one instruction of the tile emitter into the fields the M7 model reads (the same as
    `dwgen.cycles.Decoder` gives for its encoding) and its definitions and uses for scheduling."""
    from . import cycles as cy

    op, _, rest = ins.partition(" ")
    name = op.split(".")[0]
    args = [a.strip() for a in re.split(r",(?![^{]*})(?![^\[]*\])", rest)] if rest else []
    dests: set[str] = set()
    reads: set[str] = set()
    addr: set[str] = set()
    early: set[str] = set()
    acc: frozenset = frozenset()
    nregs = 0
    wb = False
    mem = None
    flags_w: set[str] = set()
    flags_r: set[str] = set()
    cond = False
    writes_pc = False
    cap = name  # capstone's name
    m = _MEM_RE.search(rest)
    if name in ("ldr", "ldrb", "ldrsb", "ldrh", "ldrsh"):
        dests.add(_reg(args[0]))
        addr.add(_reg(m.group(1)))
        wb = bool(m.group(3))
        mem = "load"
    elif name in ("str", "strb", "strh"):
        reads.add(_reg(args[0]))
        addr.add(_reg(m.group(1)))
        wb = bool(m.group(3))
        mem = "store"
    elif name in ("ldm", "stm", "vldm", "vstm", "push", "pop", "vpush", "vpop"):
        # register lists: push/pop address the stack (their sp update is implied, as in the decoder)
        stack = name in ("push", "pop", "vpush", "vpop")
        addr.add("sp" if stack else _reg(args[0].rstrip("!")))
        wb = not stack and args[0].endswith("!")
        regs = _reglist(rest)
        nregs = len(regs)
        if name in ("ldm", "vldm", "pop", "vpop"):
            dests.update(regs)
            mem = "load"
            writes_pc = "pc" in regs
        else:
            reads.update(regs)
            mem = "store"
        cap = {"vldm": "vldmia", "vstm": "vstmia"}.get(name, name)
    elif name in ("b", "bne", "beq", "bgt", "blt", "bge", "ble", "bhi", "blo", "bhs", "bls"):
        cap = "b"
        cond = name != "b"
        writes_pc = True
        if cond:
            flags_r.add("nzcv")
    elif name == "cmp":
        reads.update(_reg(a) for a in args if not a.startswith("#"))
        flags_w.add("nzcv")
    elif name == "vmov":
        dests.add(_reg(args[0]))
        reads.add(_reg(args[1]))
    elif name in ("ssat", "usat"):
        dests.add(_reg(args[0]))
        reads.add(_reg(args[2]))
        if len(args) > 3:
            early.add(_reg(args[2]))
    elif name in ("movw", "movt", "mov", "add", "sub", "asr", "lsl", "lsr", "mul", "pkhbt", "pkhtb", "sel",
                  "adds", "subs") or name in _MACS or name in _GE_SET:
        regs = [_reg(a) for a in args if not a.startswith("#") and not a.startswith(("asr", "lsl", "lsr", "ror"))]
        dests.add(regs[0])
        srcs = regs[1:] if name not in ("movt",) else regs
        if name in ("add", "sub", "asr", "lsl", "lsr", "adds", "subs") and len(args) == 2:
            srcs = regs  # two-operand form: the destination is read too
        reads.update(srcs)
        shifted = [a for a in args if a.startswith(("asr", "lsl", "lsr", "ror"))]
        if shifted:
            early.add(regs[-1])
        if name in ("pkhbt", "pkhtb"):
            early.add(regs[-1])
            if name == "pkhtb":
                early.add(regs[1])
        if name in _MACS and len(regs) == 4:
            acc = frozenset({regs[3]})
        if name in _GE_SET:
            flags_w.add("ge")
        if name == "sel":
            flags_r.add("ge")
        if name in ("adds", "subs"):
            flags_w.add("nzcv")
    else:
        raise ValueError(f"the M7 scheduler does not know {ins!r}")
    if name in ("vpush", "vpop"):
        addr.discard("sp")  # as the decoder has them (the model never sees them: prologue, epilogue)
        reads |= set(dests) if name == "vpop" else set()
    reads |= addr
    if name in ("vpush", "vpop"):
        addr.add("sp")
    if name == "movw":
        cap = "mov"  # capstone's name for MOVW
    # base write-back stays out of `dests`, as the decoder has it; the scheduler's `defs` have it
    cls = cy._classify(cap, False)
    insn = cy.Insn(0, 4, cap, ins, cls, cond, writes_pc, frozenset(dests), frozenset(reads), frozenset(addr),
                   nregs, acc, wb, frozenset(early))
    defs = set(dests) | flags_w | ({next(iter(addr))} if wb else set())
    if name in ("push", "pop", "vpush", "vpop"):
        defs.add("sp")
    uses = set(reads) | flags_r
    return _Op(ins, comment, insn, frozenset(defs), frozenset(uses), mem, writes_pc, next(iter(addr), None))


def _latency(op: _Op) -> int:
    """Rough result latency for the critical-path priority (the model's late latency)."""
    c = op.insn.cls
    if c in ("mul", "dsp_mac"):
        return 2
    if c in ("load", "load_multi", "fp_multi"):
        return 2
    if op.insn.name == "vmov" and op.insn.dests and next(iter(op.insn.dests)).startswith("s"):
        return 3
    return 1


#: Base registers whose memory never overlaps, by the tile contract: r0 walks the band (the
#: kernel's own buffer), r1 the output. Every other pair of accesses with a store keeps its order.
_DISJOINT = frozenset({"r0", "r1"})


def _may_alias(a: _Op, b: _Op) -> bool:
    return not (a.base in _DISJOINT and b.base in _DISJOINT and a.base != b.base)


def _depends(a: _Op, b: _Op) -> bool:
    """Whether `b` (later) must stay after `a`."""
    if a.defs & b.uses or a.uses & b.defs or a.defs & b.defs:
        return True
    if a.mem and b.mem and "store" in (a.mem, b.mem) and _may_alias(a, b):
        return True
    return a.branch or b.branch


def _dependences(ops: list[_Op]) -> list[set[int]]:
    """For each instruction, the earlier ones it must follow (the edges `_depends` describes, found
    through the last writer and the readers since of each register, and the earlier memory
    accesses)."""
    preds: list[set[int]] = []
    last_def: dict[str, int] = {}
    readers: dict[str, list[int]] = {}
    mem: list[int] = []
    for j, o in enumerate(ops):
        pj: set[int] = set()
        for r in o.uses:
            if r in last_def:
                pj.add(last_def[r])  # read after write
        for r in o.defs:
            if r in last_def:
                pj.add(last_def[r])  # write after write
            pj.update(readers.get(r, ()))  # write after read
        if o.mem:
            pj.update(i for i in mem if (o.mem == "store" or ops[i].mem == "store") and _may_alias(ops[i], o))
        if o.branch:
            pj.update(range(j))
        pj.discard(j)
        preds.append(pj)
        for r in o.uses:
            readers.setdefault(r, []).append(j)
        for r in o.defs:
            last_def[r] = j
            readers[r] = []
        if o.mem:
            mem.append(j)
    return preds


#: The scheduler's tries when it emits a tile: the plain critical-path priority, then this many
#: with the priorities perturbed by a fixed pseudo-random sequence (so the output is deterministic);
#: the schedule the M7 model prices cheapest is kept (list scheduling alone tends to leave the
#: requantization tail serialized). While `choose_plan` compares plans it uses the plain one.
M7_TRIES = 24
_tries = [M7_TRIES]
_SCHED_CACHE: dict = {}


def _schedule_indices(ops: list[_Op]) -> tuple[int, ...]:
    key = (tuple(o.text for o in ops), _tries[0])
    got = _SCHED_CACHE.get(key)
    if got is None:
        if len(_SCHED_CACHE) > 8192:
            _SCHED_CACHE.clear()
        got = _SCHED_CACHE[key] = _list_schedule(ops, _tries[0])
    return got


def _list_schedule(ops: list[_Op], tries: int) -> tuple[int, ...]:
    from .cycles import M7Issue, m7_issue

    n = len(ops)
    if n <= 2:
        return tuple(range(n))
    preds = _dependences(ops)
    succs: list[list[int]] = [[] for _ in range(n)]
    for j, pj in enumerate(preds):
        for i in pj:
            succs[i].append(j)
    height = [0] * n
    for i in reversed(range(n)):
        height[i] = _latency(ops[i]) + max((height[j] for j in succs[i]), default=0)
    insns = [o.insn for o in ops]

    def one(bonus) -> list[int]:
        state = M7Issue()
        placed: list[int] = []
        waiting = [len(p) for p in preds]
        ready = [i for i in range(n) if waiting[i] == 0]
        while ready:
            best = min(ready, key=lambda i: (state.probe(insns[i]), -height[i] - bonus[i], i))
            ready.remove(best)
            state.push(insns[best])
            placed.append(best)
            for j in succs[best]:
                waiting[j] -= 1
                if waiting[j] == 0:
                    ready.append(j)
        assert len(placed) == n
        return placed

    best_order = one([0.0] * n)
    best_cost = m7_issue([insns[i] for i in best_order])
    rng = np.random.default_rng(0)
    for _ in range(tries):
        order = one(list(rng.random(n) * 6))
        cost = m7_issue([insns[i] for i in order])
        if cost < best_cost:
            best_order, best_cost = order, cost
    return tuple(best_order)


def _plain(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` with the scheduler's plain list schedule only (no search)."""
    saved = _tries[0]
    _tries[0] = 0
    try:
        return fn(*args, **kwargs)
    finally:
        _tries[0] = saved


def _runs(pairs: list[tuple[str, str]]) -> list[list[tuple[_Op, str]]]:
    """`pairs` cut after each branch: the straight runs the scheduler reorders on their own."""
    out: list[list[tuple[_Op, str]]] = [[]]
    for ins, comment in pairs:
        op = _parse(ins)
        out[-1].append((op, comment))
        if op.branch:
            out.append([])
    return [r for r in out if r]


def m7_order(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`pairs` ((instruction, comment), as the emitters build them, no labels inside) in the
    Cortex-M7 schedule: each run up to a branch reordered on its own, each instruction keeping
    its comment."""
    out: list[tuple[str, str]] = []
    for run in _runs(pairs):
        order = _schedule_indices([o for o, _ in run])
        out += [(run[i][0].text, run[i][1]) for i in order]
    return out


def _m7_estimate(body: list[tuple[str, str]], taken: frozenset[int] = frozenset(),
                 last_taken: bool = True) -> tuple[int, float]:
    """Instructions and M7-model cycles of an executed sequence in its M7 schedule (each run up
    to a branch one block, as the emulator's model costs it; taken branches as in `_estimate`)."""
    from .cycles import M4Params, m7_issue

    p = M4Params()
    cycles = 0
    idx = -1
    for run in _runs(body):
        ops = [o for o, _ in run]
        order = _schedule_indices(ops)
        cycles += m7_issue([ops[i].insn for i in order], p)
        idx += len(run)
        if ops[-1].branch and ((last_taken and idx == len(body) - 1) or idx in taken):
            cycles += p.m7_taken
    return len(body), float(cycles)


# --- choosing the tile ---------------------------------------------------------------------------

#: Estimated M4 cycles of one tile call outside its loop (push/pop, stash set-up, the C call).
CALL_CYCLES = 40
#: A tail output computed by the C twin instead of a tile costs about this many tile outputs.
TAIL_FACTOR = 2.5


@dataclass(frozen=True)
class TileBody:
    symbol: str
    rshift: int | None  # the channels' right shift this body serves (None: all, register shift)
    requant: Requant
    asm_fpu: tuple[str, ...]
    asm_nofpu: tuple[str, ...]


@dataclass(frozen=True)
class TileSet:
    """The tile of a DSP plan: its registers, loop and one body per requantization variant."""

    plan: TilePlan
    bodies: tuple[TileBody, ...]
    roles: tuple[str, ...]
    cost: float  # estimated M4 cycles per output channel (tile + C tails + calls)
    requants: tuple[Requant, ...] = ()  # every requantization variant (a "plane" tile: all in one body)

    @property
    def loop(self) -> str:
        return self.plan.shape.loop

    @property
    def channels(self) -> bool:
        """One call computes every channel of a group (a "plane" tile, or a channel loop)."""
        return self.loop == "plane" or self.plan.shape.channels

    @property
    def dispatch(self) -> bool:
        """The C caller picks a body by the channel's right shift (a "plane" tile picks inside)."""
        return len(self.bodies) > 1

    @property
    def describe(self) -> str:
        return (f"{self.loop}{'+channels' if self.plan.shape.channels else ''}/w{self.plan.width}/{self.plan.weights}"
                + ("/int8" if self.plan.shape.w8 else "")
                + (f"/{len(self.requants)} shifts" if len(self.requants) > 1 else ""))


def _requants(d: DspPlan, bodies: int = MAX_SHIFT_BODIES) -> list[Requant] | None:
    """The requantization variant of each tile body: one per distinct right shift up to `bodies`
    (an immediate of SSAT), else one register shift for every channel (None: a register shift
    cannot serve the layer)."""
    ql = d.ql
    dead = ql.act_min == ql.quant.output_zero_point  # every negative result clamps to the zero point
    shifts = sorted(set(int(v) for v in d.rshift))
    if len(shifts) <= bodies:
        return [Requant(n, n > 0 and not dead, d.high_clamp, ql.act_max) for n in shifts]
    if not dead and shifts[0] == 0:
        return None  # a register shift with the sign fix of only some channels
    return [Requant(None, not dead, d.high_clamp, ql.act_max)]


def _shape(d: DspPlan) -> TileShape | None:
    g = d.ql.geometry
    p = d.program
    if p.main is None:
        return None
    out_col = 1 if g.channels_first else g.out_c
    out_row = g.out_w * out_col
    row_step = d.band_words if d.mode == "ring" else d.band_words * g.dilation_h
    nwords = len(d.row_words)
    if d.mode == "block" and p.count == 1 and not p.tails and p.main.out0 == 0:
        return TileShape(p.main, g.kernel_h, row_step, nwords, 4 * g.stride_h * d.band_words, out_row,
                         out_col, "rows")
    if d.mode == "block" and p.count > 1 and not p.tails:
        return TileShape(p.main, g.kernel_h, row_step, nwords, 4 * p.advance, p.main.width * out_col,
                         out_col, "block", steps=p.count, row_q=4 * g.stride_h * d.band_words, row_dst=out_row)
    if p.count > 1:
        return TileShape(p.main, g.kernel_h, row_step, nwords, 4 * p.advance, p.main.width * out_col,
                         out_col, "row")
    return None


def _plane_shape(d: DspPlan) -> TileShape | None:
    """A "plane" tile: the whole output plane of a channel per iteration, the channels of a
    group in one call (tiny planes, where a call per channel would cost as much as its MACs)."""
    g = d.ql.geometry
    p = d.program
    if (d.mode != "block" or p.main is None or p.tails or p.main.out0 != 0 or d.rows < g.out_h
            or g.depth_multiplier != 1 or g.out_h * g.out_w > MAX_PLANE_OUTPUTS):
        return None
    out_col = 1 if g.channels_first else g.out_c
    out_ch = g.out_h * g.out_w if g.channels_first else 1
    row_step = d.band_words * g.dilation_h

    def pad_row(i):  # band row i (the block starts at output row 0)
        return not 0 <= i - g.pad_top < g.in_h

    def pad_word(w):  # padded columns 2w, 2w + 1
        return all(not g.pad_left <= col < g.pad_left + g.in_w for col in (2 * w, 2 * w + 1))

    padding = frozenset((r, s, ky, w) for r in range(g.out_h) for s in range(p.count) for ky in range(g.kernel_h)
                        for w in p.main.words
                        if pad_row(r * g.stride_h + ky * g.dilation_h) or pad_word(s * p.advance + w))
    return TileShape(p.main, g.kernel_h, row_step, len(d.row_words), 4 * d.slots * d.band_words, out_ch,
                     out_col, "plane", steps=p.count, row_q=4 * g.stride_h * d.band_words,
                     row_dst=g.out_w * out_col, rows=g.out_h, step_q=4 * p.advance,
                     step_dst=p.main.width * out_col, w_adv=4 * d.words_per_channel, padding=padding)


def _cost(d: DspPlan, tp: TilePlan, rq0: Requant) -> float:
    """Estimated M4 cycles per output channel (`rq0`: the requantization of the first body)."""
    g = d.ql.geometry
    p = d.program
    if tp.shape.loop == "plane":
        return tp.body_cycles + CALL_CYCLES / d.group
    if tp.shape.channels:
        blocks = -(-g.out_h // d.rows)
        steps = tp.shape.steps if tp.shape.loop == "block" else 1
        inner = steps * tp.body_cycles + tp.row_cycles
        head_tail = channel_unit_cost(tp, [rq0], 0)[1] - inner
        return blocks * (CALL_CYCLES / d.group + head_tail) + g.out_h * inner
    if tp.shape.loop == "rows":
        calls = -(-g.out_h // d.rows)
        return calls * CALL_CYCLES + g.out_h * tp.body_cycles
    if tp.shape.loop == "block":
        calls = -(-g.out_h // d.rows)
        return calls * CALL_CYCLES + g.out_h * (tp.shape.steps * tp.body_cycles + tp.row_cycles)
    tail_outputs = g.out_w - p.count * p.main.width
    per_output = tp.body_cycles / tp.width
    ring_copy = 3 * g.kernel_h * len(d.row_words) if d.mode == "ring" else 0
    return g.out_h * (CALL_CYCLES + ring_copy + p.count * tp.body_cycles
                      + tail_outputs * TAIL_FACTOR * per_output)


def _channel_shape(d: DspPlan) -> TileShape | None:
    """The block's row loop inside a loop over the channels of a group (one call per group and
    block instead of one per channel)."""
    g = d.ql.geometry
    shape = _shape(d)
    if shape is None or shape.loop not in ("rows", "block") or g.depth_multiplier != 1:
        return None
    return replace(shape, channels=True, ch_q=4 * d.slots * d.band_words,
                   ch_dst=g.out_h * g.out_w if g.channels_first else 1, w_adv=4 * d.words_per_channel)


def w8_taps(d: DspPlan) -> W8Taps | None:
    """How a channel head reads plan `d`'s weights as int8 taps (TFLite layout), or None when it
    cannot: left shifts that differ between channels (the scale is a count of SADD16s), a depth
    multiplier, a tap beyond an LDRSB immediate."""
    g = d.ql.geometry
    shifts = np.asarray(d.ql.quant.shifts, dtype=np.int64)
    ls = np.maximum(shifts, 0)
    if not d.fast_rq or g.depth_multiplier != 1 or int(ls.min()) != int(ls.max()):
        return None
    if any(lo is None for lo, _ in d.row_words):
        return None
    q = d.ql.quant
    w8 = W8Taps(g.out_c, g.kernel_h, g.kernel_w, d.row_words, 1 + int(ls[0]),
                q.output_zero_point - (d.ql.act_min + 128))
    if w8.rshift_offset > MAX_IMM12:
        return None
    if [w8.kq(int(n)) for n in d.rshift] != [int(v) for v in d.kq]:
        raise AssertionError("int8-tap kq differs from the plan's")  # a dwgen bug
    return w8


def core_of(target: str) -> str:
    """The pipeline a target's tiles are scheduled for: the dual-issue M7, else the M4 order."""
    return "m7" if target == "cortex-m7" else "m4"


def make_tiles(d: DspPlan, name: str, plane: bool = False, channels: bool = False,
               w8: bool = False, bodies: int = MAX_SHIFT_BODIES, target: str = "cortex-m4") -> TileSet | None:
    """The tile for plan `d` (None: the plan's row program stays C only); `plane`: the
    "plane" loop over the channels of a group, `channels`: the row loop inside a channel
    loop, when the layer has one; `w8` (with either): each channel's head reads its weights
    as int8 taps (`W8Taps`) instead of the baked words; `bodies`: at most this many bodies (one per
    right shift), else one register-shift body (`--opt size`: 1); `target`: cortex-m7 gets its
    bodies in the M7 schedule (`m7_order`), priced with the M7 model."""
    core = core_of(target)
    if not d.fast_rq:
        return None
    shape = _plane_shape(d) if plane else _channel_shape(d) if channels else _shape(d)
    rqs = _requants(d, bodies)
    if shape is None or rqs is None:
        return None
    if w8:
        taps = w8_taps(d)
        if taps is None or not (plane or channels):
            return None
        shape = replace(shape, w8=replace(taps, kq_in_record=rqs[0].rshift is None), w_adv=1)
    # one register assignment for every body (the requantization does not change it)
    tp = plan_tile(shape, rqs[0], core)
    if tp is None:
        return None
    if channels:
        sym = f"{name}_tile"
        body = TileBody(sym, None, rqs[0], tuple(asm_lines(tp, rqs[0], sym, True, rqs)),
                        tuple(asm_lines(tp, rqs[0], sym, False, rqs)))
        return TileSet(tp, (body,), tuple(register_roles(tp)), _cost(d, tp, rqs[0]), tuple(rqs))
    if plane:
        # per channel, through the first body: head, dispatch and plane
        insns, cycles = plane_unit_cost(tp, rqs, 0)
        tp = replace(tp, body_insns=insns, body_cycles=cycles)
        sym = f"{name}_tile"
        body = TileBody(sym, None, rqs[0], tuple(asm_lines(tp, rqs[0], sym, True, rqs)),
                        tuple(asm_lines(tp, rqs[0], sym, False, rqs)))
        return TileSet(tp, (body,), tuple(register_roles(tp)), _cost(d, tp, rqs[0]), tuple(rqs))
    bodies = []
    for rq in rqs:
        sym = f"{name}_tile" if len(rqs) == 1 else f"{name}_tile_rsh{rq.rshift}"
        body_plan = _assign(shape, rq, tp.weights, core)
        bodies.append(TileBody(sym, rq.rshift, rq, tuple(asm_lines(body_plan, rq, sym, True)),
                               tuple(asm_lines(body_plan, rq, sym, False))))
        if rq is rqs[0]:
            tp = body_plan
    return TileSet(tp, tuple(bodies), tuple(register_roles(tp)), _cost(d, tp, rqs[0]), tuple(rqs))


#: Estimated M4 cycles to gather one input element per channel (SIMD gather of 4 channels; other
#: groups are scalar).
GATHER_CYCLES = {4: 2.0, 2: 5.0, 1: 5.0}
#: Estimated M4 cycles per input element the SIMD gather adds when its loop reads fewer pixel pairs
#: per iteration than GATHER_UNROLL (the loop overhead, and loads no longer back to back; measured
#: on VWW's stride-2 12x12 layer), and bytes of code per pixel pair the loop body holds.
GATHER_UNROLL_CYCLES = {4: 0.0, 2: 0.28, 1: 0.45}
GATHER_PAIR_BYTES = 36


def _gather_cost(d: DspPlan) -> float:
    """Estimated M4 cycles per output channel spent filling the band."""
    g = d.ql.geometry
    if d.mode == "ring":
        rows = g.out_h * g.stride_h + d.eff_h
    else:
        rows = -(-g.out_h // d.rows) * d.slots
    per = GATHER_CYCLES[d.group if d.quad_gather or d.group != 4 else 2]
    if d.quad_gather:
        per += GATHER_UNROLL_CYCLES[d.gather_unroll]
    return rows * g.in_w * per / g.depth_multiplier


def gather_code_bytes(d: DspPlan) -> int:
    """Estimated bytes of the SIMD gather's pair code: the loop body and the pairs after the loop."""
    if not d.quad_gather:
        return 0
    pairs, u = gather_pairs(d), d.gather_unroll
    return GATHER_PAIR_BYTES * ((u + pairs % u) if pairs >= u else pairs)


def columns_as_rows(ql: QuantizedLayer) -> QuantizedLayer | None:
    """The same layer with H and W swapped, when W is 1 (a 1-D layer along H, such as the
    streaming wake-word model's 30x1 ... 15x1 layers): (n, h, 0, c) and (n, 0, h, c) are the
    same address in NHWC and in NCHW, and so are the kernel's [kh][1] and [1][kh] taps, so a
    kernel generated for the swapped layer computes the original one. The band then holds
    real pixel pairs instead of one pixel and a padding zero per word. None: not such a layer."""
    from .layer import DepthwiseLayer

    g = ql.geometry
    lay = ql.layer
    if lay.rank != 2 or g.in_w != 1 or g.kernel_w != 1 or g.in_h == 1:
        return None
    if not isinstance(lay.padding, str):
        return None
    (kh, kw), (sh, sw), (dh, dw) = lay.kernel_size, lay.strides, lay.dilation_rate
    swapped = DepthwiseLayer(kernel_size=(kw, kh), strides=(sw, sh), padding=lay.padding,
                             depth_multiplier=lay.depth_multiplier, data_format=lay.data_format,
                             dilation_rate=(dw, dh), activation=lay.activation, use_bias=lay.use_bias)
    shape = list(g.input_shape)
    if g.channels_first:
        shape[2], shape[3] = shape[3], shape[2]
    else:
        shape[1], shape[2] = shape[2], shape[1]
    m = g.depth_multiplier
    w = ql.weights.reshape(1, kh, g.in_c, m)  # Keras layout [kh, kw, C, M] of the swapped kernel
    out = QuantizedLayer.create(swapped, shape, ql.quant, w, ql.bias if lay.use_bias else None)
    assert out.geometry.macs == g.macs and out.geometry.output_size == g.output_size
    return out


#: A channel head reads the int8 weights (`W8Taps`) where that costs at most this share of the
#: channel's estimated cycles: the baked int16 pairs are 2.7x the int8 bytes of a 3x3 channel,
#: and this is where they stop paying for themselves (docs/dsp-tiles.md, "Where the weights come from").
W8_MAX_SHARE = 0.15


def _candidates(ql: QuantizedLayer, name: str, bodies: int, target: str = "cortex-m4"):
    """(cost, plan with its tile) for every step width, band organisation and tile loop that
    gives a tile; cost: estimated cycles per output channel on `target`'s pipeline, the gather
    included."""
    g = ql.geometry
    seen = set()
    widths = sorted({w for w in range(2, MAX_WIDTH + 1)} | ({g.out_w} if g.out_w <= MAX_WIDTH else set()))
    for width in widths:
        for mode in (None, "block"):
            try:
                d = make_dsp_plan(ql, step=width, mode=mode)
            except (ValueError, IndexError):
                continue
            if d is None or not d.fast_rq:
                continue
            key = (d.mode, d.rows, d.group, d.step)
            if key in seen:
                continue
            seen.add(key)
            for plane, channels in ((False, False), (True, False), (False, True)):
                ts = make_tiles(d, name, plane, channels, bodies=bodies, target=target)
                if ts is not None:
                    yield ts.cost + _gather_cost(d), replace(d, tile=ts)


def choose_plan(ql: QuantizedLayer, name: str, *, step: int | None = None, mode: str | None = None,
                rows: int | None = None, tile: bool = True, size: bool = False,
                target: str = "cortex-m4") -> DspPlan | None:
    """The DSP plan with the cheapest tile over the step widths and band organisations worth
    trying; the C-only plan when no tile fits. `step`, `mode` and `rows` force a data flow
    (tests, experiments), `tile=False` keeps its step loop in C. `size` (`--opt size`): the
    smallest plan of one tile body that stays fast (`choose_size_plan`). `target`: the tiles are
    scheduled and priced for its pipeline (`core_of`); for the M7 the plans are compared with the
    plain list schedule and the winner's tile is then built with the scheduler's full search."""
    kw = dict(step=step, mode=mode, rows=rows, tile=tile, size=size, target=target)
    if core_of(target) != "m7":
        return _choose_plan(ql, name, **kw)
    d = _plain(_choose_plan, ql, name, **kw)
    if d is None or d.tile is None:
        return d
    t = d.tile
    ts = make_tiles(d, name, t.loop == "plane", t.plan.shape.channels, w8=t.plan.shape.w8 is not None,
                    bodies=1 if size else MAX_SHIFT_BODIES, target=target)
    return d if ts is None else replace(d, tile=ts)


def _choose_plan(ql: QuantizedLayer, name: str, *, step: int | None, mode: str | None, rows: int | None,
                 tile: bool, size: bool, target: str) -> DspPlan | None:
    if step is not None or mode is not None or rows is not None or not tile:
        d = make_dsp_plan(ql, step=step, mode=mode, rows=rows)
        ts = (make_tiles(d, name, bodies=1 if size else MAX_SHIFT_BODIES, target=target)
              if d is not None and tile else None)
        return d if ts is None else replace(d, tile=ts)
    base = make_dsp_plan(ql)
    if base is None or not base.fast_rq:
        return base
    if size:
        return choose_size_plan(ql, name, base, target)
    best: tuple[float, DspPlan] | None = None
    for cost, d in _candidates(ql, name, MAX_SHIFT_BODIES, target):
        if best is None or cost < best[0]:
            best = (cost, d)
    if best is None:
        return base
    cost, d = best
    # int8 weights where they cost little: rebuilt in C per channel group, or read by the tile's
    # channel head; the cheaper of the two, else the baked pairs
    compact = dsp_weights.choose(d, cost)
    options = []
    if compact is not None:
        options.append((dsp_weights.rebuild_cycles(d, compact), replace(d, store=compact)))
    if d.tile.channels:
        ts = make_tiles(d, name, d.tile.loop == "plane", d.tile.plan.shape.channels, w8=True, target=target)
        store = dsp_weights.head_store(d) if ts is not None else None
        if (store is not None and dsp_weights.head_flash_saved(d, ts.plan.shape.w8.record_words) > 0
                and ts.cost - d.tile.cost <= W8_MAX_SHARE * cost):
            options.append((ts.cost - d.tile.cost, replace(d, tile=ts, store=store)))
    if options:
        return min(options, key=lambda o: o[0])[1]
    return d


#: `--opt size` keeps the smallest plan whose estimated cycles are at most this much over the
#: fastest one-body plan's (docs/dsp-tiles.md, "--opt size").
SIZE_MAX_SLOWDOWN = 0.06
#: ... or at most this much over the fastest one-body plan (where the register shift alone costs
#: more than SIZE_MAX_SLOWDOWN: short kernels, few outputs per step) ...
SIZE_MAX_OVER_ONE_BODY = 0.03
#: ... or whose estimate is at most this many M4 cycles per MAC: fast enough whatever the layer
#: (CMSIS-NN's s8 depthwise kernels measured 7.9 to 10.2 on the suite's 3x3 layers, more elsewhere;
#: the estimates were within -12 % .. +21 % of the emulated cycles).
SIZE_CYCLES_PER_MAC = 3.0
#: Estimated bytes of Thumb-2 code per tile instruction (most of a tile's are 32-bit encodings).
TILE_INSN_BYTES = 3.5


def tile_code_bytes(ts: TileSet) -> int:
    """Estimated bytes of the tile bodies the core runs (the FPU variant: the other is left out
    by the preprocessor and is about as long)."""
    insns = sum(1 for b in ts.bodies for line in b.asm_fpu if line.startswith("    "))
    return round(TILE_INSN_BYTES * insns)


def flash_estimate(d: DspPlan) -> int:
    """Estimated bytes of flash plan `d` takes beyond what every DSP kernel of the layer has (the
    gather, the loops in C): its tile bodies, its weights and requantization constants, the code
    of a C weight rebuild and of the C tail steps."""
    g = d.ql.geometry
    oc = g.out_c
    store = d.store
    code = (tile_code_bytes(d.tile) if d.tile is not None else 0) + gather_code_bytes(d)
    if store is None:
        data = oc * (4 * d.words_per_channel + 16)
    elif store.head:
        data = g.kernel_h * g.kernel_w * oc + oc + 3 + 4 * d.tile.plan.shape.w8.record_words * oc
    else:
        data = g.kernel_h * g.kernel_w * oc + 3 + 9 * oc
        code += dsp_weights.CODE_BYTES + dsp_weights.CODE_BYTES_PER_WORD * len(store.words)
    if d.tile is not None and d.tile.loop == "row":
        # C tail steps: about a load and a MAC per tap, and a requantization per output
        code += sum(4 * (2 * len(t.ops) * g.kernel_h + 6 * t.width) for t in d.program.tails)
    return code + data


def size_options(ql: QuantizedLayer, name: str, target: str = "cortex-m4"):
    """(cost, plan) of every one-body plan `--opt size` chooses from: each tile, with the baked
    pairs, the int8 channel head (plane and channel-loop tiles) or the C rebuild of the compact
    store, each with a SIMD gather loop of GATHER_UNROLL, 2 or 1 pixel pairs per iteration."""
    for cost, d in _weight_options(ql, name, target):
        yield cost, d
        if d.quad_gather:
            for u in (2, 1):
                shorter = replace(d, gather_unroll=u)
                yield cost - _gather_cost(d) + _gather_cost(shorter), shorter


def _weight_options(ql: QuantizedLayer, name: str, target: str):
    for cost, d in _candidates(ql, name, 1, target):
        yield cost, d
        compact = dsp_weights.compact_store(d)
        if compact is not None:
            yield cost + dsp_weights.rebuild_cycles(d, compact), replace(d, store=compact)
        if d.tile.channels:
            ts = make_tiles(d, name, d.tile.loop == "plane", d.tile.plan.shape.channels, w8=True, bodies=1,
                            target=target)
            store = dsp_weights.head_store(d, only_words=True) if ts is not None else None
            if store is not None:
                yield cost + ts.cost - d.tile.cost, replace(d, tile=ts, store=store)


def plan_cost(d: DspPlan) -> float:
    """Estimated M4 cycles per output channel of a tiled plan: the tile (with its int8 head), the
    gather and the C rebuild of a compact store."""
    cost = d.tile.cost + _gather_cost(d)
    if d.store is not None and not d.store.head:
        cost += dsp_weights.rebuild_cycles(d, d.store)
    return cost


def size_fallback_reason(ql: QuantizedLayer, base: DspPlan | None) -> str:
    """Why `--opt size` found no one-body DSP tile for `ql` (`base`: its default DSP plan, or None)
    and emits the looped portable kernel: the kernel's description line and `data_flow_detail`."""
    head = "--opt size on a DSP target: looped portable kernel, "
    if base is None:
        return head + "the DSP data flow does not apply (its band or row program is over dwgen's budgets)"
    if not base.fast_rq:
        return head + f"the DSP tile needs the fast SMMLAR requantization and this layer has the {base.reason}"
    if _requants(base, 1) is None:
        return head + ("one tile body needs a register shift for every channel, and the right shifts "
                       "include 0 beside shifts > 0 whose sign fix is live")
    return head + "no one-body DSP tile fits this layer (registers or immediate offsets)"


def choose_size_plan(ql: QuantizedLayer, name: str, base: DspPlan, target: str = "cortex-m4") -> DspPlan:
    """`--opt size`: of the one-body plans (`size_options`), those whose estimated cycles are
    within SIZE_MAX_SLOWDOWN of the plan `--opt speed` emits, or within SIZE_MAX_OVER_ONE_BODY of
    the fastest one-body plan, or at most SIZE_CYCLES_PER_MAC per MAC; the smallest of them
    (`flash_estimate`), the faster on a tie. `base` (the C-only plan) when no tile of one body fits."""
    options = [(cost, flash_estimate(d), d) for cost, d in size_options(ql, name, target)]
    if not options:
        return base
    fastest = min(c for c, _, _ in options)
    speed = _choose_plan(ql, name, step=None, mode=None, rows=None, tile=True, size=False, target=target)
    speed = plan_cost(speed) if speed is not None and speed.tile is not None else fastest
    g = ql.geometry
    macs = g.batch * g.out_h * g.out_w * g.kernel_h * g.kernel_w  # per output channel
    limit = max((1 + SIZE_MAX_SLOWDOWN) * speed, (1 + SIZE_MAX_OVER_ONE_BODY) * fastest, SIZE_CYCLES_PER_MAC * macs)
    return min((o for o in options if o[0] <= limit), key=lambda o: (o[1], o[0]))[2]


__all__ = ["MAX_SHIFT_BODIES", "Requant", "TileBody", "TilePlan", "TileSet", "TileShape", "asm_lines",
           "choose_plan", "choose_size_plan", "flash_estimate", "size_fallback_reason", "make_tiles", "plan_tile", "register_roles"]
