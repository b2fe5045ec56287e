"""Cycle estimates for emulated Cortex-M runs: instruction classes and a timing table.

How it works
------------
The emulator (:mod:`dwgen.emulate`) records, for one call, how often control went
from each executed basic block to the next (an edge count per (previous block, block)
pair) and the code bytes of each block. This module disassembles every block **once**
with capstone (Thumb, M-class), classifies its instructions, and costs it once per
distinct incoming edge: the edge supplies the instruction executed just before the
block (for load pipelining, address dependencies and IT folding) and tells whether the
branch that ended the previous block was taken (the block is not its fall-through).
Work is proportional to the number of distinct blocks and edges, not to the number of
executed instructions, so a 10 M-instruction run is costed in milliseconds.

Cortex-M4 model (``model="m4"``, the headline number; zero-wait-state memory)
---------------------------------------------------------------------------------
From the Cortex-M4 TRM instruction timing table:

* data processing, MOV/MOVW/MOVT, shifts, bit fields, CLZ, REV, extend (SXTB, UXTH,
  SXTAB ...), packed SIMD (SADD16, SXTB16, SXTAB16, PKHBT, SEL, UQADD8 ...), saturation
  (SSAT, USAT, QADD ...), every multiply including the DSP ones (MUL, MLA, MLS, SMLAD,
  SMLAxy, SMUAD, SMMUL, SMMLA(R), SMLAL, SMLALD) and the long multiplies (SMULL, UMULL,
  SMLAL, UMLAL, UMAAL): **1**;
* SDIV/UDIV: **7** (the TRM gives 2-12, data dependent; a fixed middle value);
* single loads (LDR, LDRB, LDRH, LDRSB, LDRSH, LDREX ...): **2**, or **1** when the
  instruction before it is also a single load and this load's address registers
  (base and index) are not that load's destination ("N back-to-back independent loads
  take N+1 cycles");
* single stores (STR, STRB, STRH ...): **1**;
* LDRD / STRD: **3**; LDM / STM / PUSH / POP: **1+N** (N = registers in the list);
* a load or store whose base or index register was written by the instruction just
  before it: **+1** -- except a plain single load (no write-back) right after a load,
  which only loses its pipelining (2 cycles, the TRM's "LDR followed by a dependent
  LDR"). Base-register write-back by the previous instruction does not count (the
  address unit has it). A store, LDRD/LDM or write-back load whose address was just
  loaded does get the +1;
* branches B, BL, BX, BLX, CBZ, CBNZ: **1**, plus the pipeline refill **P = 2** when
  taken; conditional branches not taken: **1**; any instruction that writes PC (POP {..,
  PC}, LDR PC, MOV PC, ADD PC) adds P; TBB/TBH: **2+P**;
* IT: **0** when it directly follows a 16-bit instruction (folded), else **1**;
* FPU: VLDR 2 (3 for a D register), VSTR 2, VLDM/VSTM/VPUSH/VPOP 1+N words, VDIV and
  VSQRT 14, VMLA/VMLS/VFMA/VFMS/VNMLA/VNMLS 3, other VFP 1;
* everything else (barriers, MRS/MSR, hints): 1. Instructions of an IT block whose
  condition fails still cost their cycles, as on the core.

Limits: fixed P = 2 (the real refill is 1-3 by target alignment and width); no flash
wait states, bus contention or write-buffer stalls; ``LDR Rx,[PC,#imm]`` contention
with instruction fetch is ignored; SDIV/UDIV fixed; pipelining is only recognised
between two single loads (not LDR after LDM/LDRD, not STR after LDR, where it changes
nothing since STR is 1 anyway); only the immediately preceding instruction is looked
at; interrupts and exceptions are not modelled. It is an estimate of a well-behaved
zero-wait-state core, meant for comparing kernels, not a cycle-accurate simulator.

Calibration: on the 15 layers of ``docs/benchmark-layers.md`` (CMSIS-NN at the same
commit, gcc 12.2.1 -O2, newlib memcpy/memset via ``build_elf(newlib=True)``) this
module reproduces the baseline's instruction counts exactly and its M4 cycle counts to
within 1-3 cycles, once the harness's own call overhead (46 instructions, 67 cycles
in our harness) is taken off. The M7 model is not calibrated against hardware: the
baseline's M7 column came from an earlier, simpler version of it, and on CMSIS-NN this
version estimates 2-4 % more on the 3x3 layers and 9-26 % more on the others (their
loops are heavier in loads, stores and byte loads, which the refined rules charge).

Cortex-M7 model (``model="m7"``, rough, clearly an estimate)
------------------------------------------------------------
Arm publishes no M7 timing table. The rules below follow public microbenchmark notes
(the "pipeline cycle test" notes on the M7 in github.com/jnk0le/random and the M7 tables
on quinapalus.com, both measured on STM32H7 parts); where those are silent, the rule is a
guess and says so.
Each block is simulated from an empty pipeline, in order, at most two instructions per
cycle (`m7_issue`): an instruction issues in the cycle of the one before it when its
operands are ready by then and the pair is allowed:

* never paired: LDRD/STRD, LDM/STM/PUSH/POP and their FPU forms (they take ceil(N/2)
  cycles on the 64-bit bus), divides, FPU arithmetic (guess: it never occurs in dwgen
  kernels);
* not two multiplies/MACs (one MAC pipeline), not a multiply beside a store, not two
  stores; MACs (SMLAD, SMLAxy, SMMLAR ...) may be in either slot;
* DSP, SIMD, saturation, extend and bit-field ops (SSAT, PKHBT, SXTAB16, SEL, UBFX ...)
  only as the older instruction of a pair, so never two of them;
* two single loads pair (two load ports; the even/odd-word bank condition is not
  modelled); a load or store pairs with anything but the above;
* one core<->S-register ``VMOV`` per cycle, pairing with integer instructions (guess);
* not when the younger reads or writes what the older writes (no forwarding within a
  cycle; MOVW+MOVT is the measured exception), and not two instructions that each read
  an inline-shifted register.

Result latencies (cycles until a consumer may issue): ALU, DSP and ``VMOV Rt, Sn`` 1; word
loads ``m7_load_lat`` = 1, byte/halfword loads 2; multiplies and MACs ``m7_mac_lat`` = 2,
but 1 into the accumulator of the next MAC (a chain on one accumulator issues every cycle);
``VMOV Sn, Rt`` 3 (``m7_fp_transfer``); LDM ceil(N/2)+1. Consumers that read in the early
ALU stage need the value one cycle sooner (so add 1): MAC multiplicands, inline-shifted
operands, the extracted source of PKHBT/SXTAB16, and load/store addresses (except after a
plain ADD/SUB/MOV). A store's data may come from the instruction just before it.
A taken branch costs ``m7_taken`` = 2 extra cycles. A block the emulator split without a
branch (a 1 KB page boundary) continues the run of its predecessor. Not modelled: branch
prediction and mispredictions (6-8 cycles on hardware), dual issue across a taken branch,
caches, TCM wait states and bank conflicts, the store buffer (byte stores can back up),
instruction fetch and alignment effects. Off by tens of percent either way on real code is
plausible: read it as a ranking of schedules, not a cycle count.

Cortex-M0/M0+ model (``model="m0"``)
------------------------------------
ARMv6-M timing: ALU and MUL 1 (single-cycle multiplier option), loads and stores 2,
LDM/STM/PUSH/POP 1+N, taken branch 1+P (BL 2+P), POP {.., PC} 1+N+P, P = 2; no
pipelining or address-dependency effects.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Mapping

import capstone
from capstone import arm_const as A

__all__ = [
    "Insn", "Block", "Decoder", "M4Params", "CycleEstimate", "estimate", "estimate_sequence",
    "MODELS", "CLASSES", "M7Issue", "m7_issue",
]

MODELS = ("m4", "m7", "m0")

# -------------------------------------------------------------------- classification

LOAD_SINGLE = frozenset("""ldr ldrb ldrh ldrsb ldrsh ldrt ldrbt ldrht ldrsbt ldrsht ldrex ldrexb
    ldrexh lda ldab ldah ldaex ldaexb ldaexh""".split())
STORE_SINGLE = frozenset("""str strb strh strt strbt strht strex strexb strexh stl stlb stlh
    stlex stlexb stlexh""".split())
LOAD_DUAL = frozenset({"ldrd", "ldaexd", "ldrexd"})
STORE_DUAL = frozenset({"strd", "stlexd", "strexd"})
LOAD_MULTI = frozenset({"ldm", "ldmia", "ldmdb", "ldmda", "ldmib", "pop"})
STORE_MULTI = frozenset({"stm", "stmia", "stmdb", "stmda", "stmib", "push"})
FP_LOAD = frozenset({"vldr"})
FP_STORE = frozenset({"vstr"})
FP_MULTI = frozenset({"vldmia", "vldmdb", "vstmia", "vstmdb", "vpush", "vpop", "vldm", "vstm",
                      "vlldm", "vlstm", "vscclrm"})
BRANCH = frozenset({"b", "bl", "bx", "blx", "cbz", "cbnz", "tbb", "tbh", "bxns", "blxns",
                    "bf", "bfl", "bfx", "bflx", "bfcsel", "le", "letp", "wls", "wlstp", "dls",
                    "dlstp"})
DIV = frozenset({"sdiv", "udiv"})
MUL = frozenset({"mul", "mla", "mls", "smull", "umull", "smlal", "umlal", "umaal"})
DSP_MAC = frozenset("""smlabb smlabt smlatb smlatt smlad smladx smlsd smlsdx smlald smlaldx
    smlsld smlsldx smlalbb smlalbt smlaltb smlaltt smlawb smlawt smuad smuadx smusd smusdx
    smulbb smulbt smultb smultt smulwb smulwt smmul smmulr smmla smmlar smmls smmlsr""".split())
SAT = frozenset({"ssat", "usat", "ssat16", "usat16", "qadd", "qsub", "qdadd", "qdsub"})
SIMD = frozenset("""sadd16 sadd8 ssub16 ssub8 sasx ssax shadd16 shadd8 shsub16 shsub8 shasx
    shsax qadd16 qadd8 qsub16 qsub8 qasx qsax uadd16 uadd8 usub16 usub8 uasx usax uhadd16
    uhadd8 uhsub16 uhsub8 uhasx uhsax uqadd16 uqadd8 uqsub16 uqsub8 uqasx uqsax sel pkhbt
    pkhtb sxtb16 sxtab16 uxtb16 uxtab16 usad8 usada8""".split())
EXTEND = frozenset({"sxtb", "sxth", "uxtb", "uxth", "sxtab", "sxtah", "uxtab", "uxtah"})
NOP = frozenset({"nop", "hint", "yield"})
FP_SLOW = frozenset({"vdiv", "vsqrt"})
FP_MAC = frozenset({"vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"})

#: Every class name that can appear in ``CycleEstimate.classes``.
CLASSES = ("alu", "mul", "dsp_mac", "simd", "sat", "extend", "div", "load", "store",
           "load_dual", "store_dual", "load_multi", "store_multi", "branch", "it", "nop",
           "fpu", "fp_load", "fp_store", "fp_multi", "mve", "unknown")

_MULTI_BASE_FIRST = frozenset({"ldm", "ldmia", "ldmdb", "ldmda", "ldmib", "stm", "stmia",
                               "stmdb", "stmda", "stmib", "vldmia", "vldmdb", "vstmia",
                               "vstmdb", "vldm", "vstm"})
_MAC_CLASSES = frozenset({"mul", "dsp_mac", "div"})
_SLOT0_ONLY = frozenset({"mul", "dsp_mac", "simd", "sat", "div"})
_PC = "pc"


def _classify(name: str, has_q: bool) -> str:
    if name in LOAD_SINGLE:
        return "load"
    if name in STORE_SINGLE:
        return "store"
    if name in LOAD_DUAL:
        return "load_dual"
    if name in STORE_DUAL:
        return "store_dual"
    if name in LOAD_MULTI:
        return "load_multi"
    if name in STORE_MULTI:
        return "store_multi"
    if name in BRANCH:
        return "branch"
    if name == "it":
        return "it"
    if name in DIV:
        return "div"
    if name in MUL:
        return "mul"
    if name in DSP_MAC:
        return "dsp_mac"
    if name in SAT:
        return "sat"
    if name in SIMD:
        return "simd"
    if name in EXTEND:
        return "extend"
    if name in NOP:
        return "nop"
    if name.startswith("v") or name in ("vmrs", "vmsr"):
        if has_q:
            return "mve"
        if name in FP_LOAD:
            return "fp_load"
        if name in FP_STORE:
            return "fp_store"
        if name in FP_MULTI:
            return "fp_multi"
        return "fpu"
    return "alu"


@dataclass(frozen=True)
class Insn:
    """One decoded instruction with what the timing models need."""

    addr: int
    size: int
    name: str                 # capstone base name: "ldr", "smlad", "it", ...
    text: str                 # "ldr.w r3, [r0, #4]"
    cls: str                  # one of CLASSES
    cond: bool                # conditionally executed (Bcc, CBZ, in an IT block)
    writes_pc: bool           # ends the block: a branch or any write to PC
    dests: frozenset          # registers written (base write-back excluded)
    reads: frozenset          # registers read
    addr_regs: frozenset      # base and index of a memory access
    nregs: int                # register words moved by LDM/STM/PUSH/POP/VLDM/...
    acc_regs: frozenset       # accumulator operands of a multiply-accumulate
    writeback: bool = False   # base register write-back ([Rn, #i]!, [Rn], #i, Rn!)
    #: registers read early (Cortex-M7 model): through an inline shift (``r2, asr #31``), or
    #: the extracted/shifted source of PKHBT/PKHTB and the extend-and-add family
    early: frozenset = frozenset()

    @functools.cached_property
    def m7_kind(self) -> str:
        """The M7 model's issue group (`_m7_kind`), computed once."""
        return _m7_kind(self)

    @functools.cached_property
    def m7_operands(self) -> tuple:
        """(register, stage) per register read, the stage the M7 model's ready times index:
        0 late ALU, 1 early (MAC multiplicand, shifted or extracted operand, address), 2 a MAC's
        accumulate operand, 3 a store's data."""
        k = self.m7_kind
        out = []
        for r in sorted(self.reads):
            if k == "mac" and r in self.acc_regs:
                out.append((r, 2))
            elif k == "store" and r not in self.addr_regs:
                out.append((r, 3))
            elif r in self.early or r in self.addr_regs or k == "mac":
                out.append((r, 1))
            else:
                out.append((r, 0))
        return tuple(out)

    @property
    def is_mem(self) -> bool:
        return self.cls in ("load", "store", "load_dual", "store_dual", "load_multi",
                            "store_multi", "fp_load", "fp_store", "fp_multi")

    @property
    def is_load(self) -> bool:
        return self.cls in ("load", "load_dual", "load_multi", "fp_load")


@dataclass(frozen=True)
class Block:
    addr: int
    size: int
    insns: tuple

    @property
    def end(self) -> int:
        return self.addr + self.size

    @property
    def last(self) -> Insn | None:
        return self.insns[-1] if self.insns else None


#: Extracting/packing ops whose last source goes through the early ALU's shifter on the M7
#: (public measurements, see the M7 model): PKHBT/PKHTB and the extend(-and-add) family.
_EXTRACT = frozenset({"pkhbt", "pkhtb", "sxtab", "sxtah", "uxtab", "uxtah", "sxtab16", "uxtab16",
                      "sxtb", "sxth", "uxtb", "uxth", "sxtb16", "uxtb16"})


def _early_operands(name: str, regops: list[str]) -> set[str]:
    """Registers an instruction reads in the M7's early ALU stage (besides inline shifts)."""
    if name in _EXTRACT and len(regops) >= 2:
        out = {regops[-1]}
        if name == "pkhtb" and len(regops) >= 3:
            out.add(regops[1])
        return out
    return set()


def _reg_words(rname: str) -> int:
    return 2 if rname.startswith("d") else (4 if rname.startswith("q") else 1)


class Decoder:
    """Capstone Thumb/M-class decoder with a per-block cache."""

    def __init__(self) -> None:
        self._cs = capstone.Cs(capstone.CS_ARCH_ARM,
                               capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
        self._cs.detail = True
        self._cache: dict[tuple[int, bytes], Block] = {}

    def block(self, addr: int, code: bytes) -> Block:
        key = (addr, bytes(code))
        b = self._cache.get(key)
        if b is None:
            b = Block(addr, len(code), tuple(self.decode(code, addr, strict=False)))
            self._cache[key] = b
        return b

    def decode(self, code: bytes, addr: int = 0, *, strict: bool = True) -> list[Insn]:
        """Decode Thumb code. An encoding capstone does not know raises ValueError, or
        with ``strict=False`` (used for executed blocks: unicorn ran it, so it is valid)
        becomes one "unknown" instruction costing 1 cycle."""
        code = bytes(code)
        out: list[Insn] = []
        end = addr + len(code)
        pos = addr
        while pos < end:
            for i in self._cs.disasm(code[pos - addr:], pos):
                out.append(self._insn(i))
                pos = i.address + i.size
            if pos >= end:
                break
            if strict:
                raise ValueError(f"cannot decode the code at 0x{pos:08x} "
                                 f"({code[pos - addr:pos - addr + 4].hex()})")
            hw = int.from_bytes(code[pos - addr:pos - addr + 2].ljust(2, b"\0"), "little")
            size = 4 if (hw >> 11) in (0x1D, 0x1E, 0x1F) else 2
            raw = code[pos - addr:pos - addr + size].hex()
            out.append(Insn(pos, size, "unknown", f".inst {raw}", "unknown", False, False,
                            frozenset(), frozenset(), frozenset(), 0, frozenset()))
            pos += size
        return out

    @staticmethod
    def _insn(i) -> Insn:
        name = i.insn_name()
        rn = i.reg_name
        dests: set[str] = set()
        reads: set[str] = set()
        addr_regs: set[str] = set()
        regops: list[str] = []
        early: set[str] = set()
        has_q = False
        for k, op in enumerate(i.operands):
            if op.type == A.ARM_OP_REG:
                r = rn(op.reg)
                regops.append(r)
                if op.shift.type and op.shift.value:
                    early.add(r)
                if r.startswith("q"):
                    has_q = True
                acc = op.access
                if acc & capstone.CS_AC_WRITE:
                    dests.add(r)
                if acc & capstone.CS_AC_READ or acc == 0:
                    reads.add(r)
            elif op.type == A.ARM_OP_MEM:
                if op.mem.base:
                    addr_regs.add(rn(op.mem.base))
                if op.mem.index:
                    addr_regs.add(rn(op.mem.index))
        try:
            rr, ww = i.regs_access()
            reads.update(rn(r) for r in rr)
            implicit_w = {rn(r) for r in ww}
        except capstone.CsError:
            implicit_w = set()
        reads |= addr_regs
        writes_pc = _PC in dests or _PC in implicit_w or name in BRANCH
        cls = _classify(name, has_q)
        nregs = 0
        if name in _MULTI_BASE_FIRST and regops:
            base = regops[0]
            addr_regs.add(base)
            reads.add(base)
            dests.discard(base)              # write-back of the base register
            nregs = sum(_reg_words(r) for r in regops[1:])
            if name in ("vldmia", "vldmdb", "vldm"):
                # capstone marks the registers VLDM loads as read: they are written
                dests.update(regops[1:])
                reads.difference_update(regops[1:])
        elif name in ("push", "pop", "vpush", "vpop"):
            addr_regs.add("sp")
            nregs = sum(_reg_words(r) for r in regops)
            if name == "push" or name == "vpush":
                dests.clear()                  # capstone marks vpush operands written
        elif cls in ("fp_load", "fp_store"):
            nregs = _reg_words(regops[0]) if regops else 1
        if cls in ("store", "store_dual", "fp_store"):
            dests.clear()                      # stores write no register (write-back excluded)
        dests.discard("itstate")
        reads.discard("itstate")
        acc_regs: frozenset = frozenset()
        if cls in ("mul", "dsp_mac") and len(regops) == 4:
            if name in ("smlal", "umlal", "umaal", "smlald", "smlaldx", "smlsld", "smlsldx",
                        "smlalbb", "smlalbt", "smlaltb", "smlaltt"):
                acc_regs = frozenset(regops[:2])
            elif name not in ("smull", "umull"):
                acc_regs = frozenset(regops[3:])
        cond = i.cc not in (A.ARM_CC_AL, A.ARM_CC_INVALID) or name in ("cbz", "cbnz")
        if name == "it":
            cond = False
        early |= _early_operands(name, regops)
        text = f"{i.mnemonic} {i.op_str}".strip()
        return Insn(i.address, i.size, name, text, cls, cond, writes_pc, frozenset(dests),
                    frozenset(reads), frozenset(addr_regs), nregs, acc_regs,
                    bool(i.writeback), frozenset(early))


# ------------------------------------------------------------------------ M4 model

@dataclass(frozen=True)
class M4Params:
    """Tunable constants of the timing models (defaults: the M4 TRM table; M7: public microbenchmarks, see the module notes)."""

    P: int = 2                  # pipeline refill after a taken branch
    div: int = 7                # SDIV/UDIV
    fp_slow: int = 14           # VDIV/VSQRT
    fp_mac: int = 3             # VMLA/VFMA family
    m7_taken: int = 2           # extra cycles for a taken branch on M7
    m7_load_lat: int = 1        # M7 load-to-use latency (1: no load-use stall)
    m7_mac_lat: int = 2         # M7 multiply/MAC result latency (accumulator forwarded)
    m7_pair_loads: bool = True  # two single loads can issue together
    m7_fp_transfer: int = 3     # M7 VMOV S<n>, Rt result latency (to a VMOV reading it back)
    m0_mul: int = 1             # MULS on M0/M0+ (1: fast multiplier, 32: small one)
    addr_dep_after_load: bool = False   # +1 also for a plain LDR whose address was loaded


def _m4_cost(ins: Insn, prev: Insn | None, p: M4Params) -> int:
    """Cycles of one instruction given the one executed just before (no taken penalty)."""
    c = ins.cls
    if c == "it":
        return 0 if (prev is not None and prev.size == 2) else 1
    if c == "load":
        cost = 2               # LDR PC: 2 + P, the P is added on the taken edge
        if prev is not None and prev.cls == "load" and not (ins.addr_regs & prev.dests):
            cost = 1
    elif c == "store":
        cost = 1
    elif c in ("load_dual", "store_dual"):
        cost = 3
    elif c in ("load_multi", "store_multi", "fp_multi"):
        cost = 1 + ins.nregs
    elif c == "fp_load":
        cost = 1 + ins.nregs
    elif c == "fp_store":
        cost = 2
    elif c == "div":
        cost = p.div
    elif c == "branch":
        cost = 2 if ins.name in ("tbb", "tbh") else 1
    elif c == "fpu":
        if ins.name in FP_SLOW:
            cost = p.fp_slow
        elif ins.name in FP_MAC:
            cost = p.fp_mac
        else:
            cost = 1
    else:
        cost = 1
    if (ins.is_mem and prev is not None and prev.dests and ins.addr_regs & prev.dests
            and (not prev.is_load or not (c == "load" and not ins.writeback)
                 or p.addr_dep_after_load)):
        cost += 1
    return cost


def _m0_cost(ins: Insn, prev: Insn | None, p: M4Params) -> int:
    c = ins.cls
    if c in ("load", "store"):
        return 2
    if c in ("load_multi", "store_multi", "load_dual", "store_dual"):
        return 1 + max(ins.nregs, 2 if c.endswith("dual") else 0)
    if c == "branch":
        return 2 if ins.name == "bl" else 1
    if c == "mul":
        return p.m0_mul
    if c == "div":
        return p.div
    return 1


#: M7 model: instructions that issue alone (no partner in their cycle): LDRD/STRD, LDM/STM/PUSH/
#: POP and their FPU forms, divides, Helium, and FPU arithmetic (never in a dwgen kernel).
_M7_ALONE = frozenset({"load_dual", "store_dual", "load_multi", "store_multi", "fp_multi", "div",
                       "mve", "unknown"})
#: Byte and halfword loads: one cycle more result latency than a word load on the M7.
_NARROW_LOADS = frozenset({"ldrb", "ldrsb", "ldrh", "ldrsh", "ldrbt", "ldrsbt", "ldrht", "ldrsht",
                           "ldrexb", "ldrexh", "ldab", "ldah", "ldaexb", "ldaexh"})
#: Bit-field and byte-order ops: the same older-slot-only DSP/bit-manipulation group on the M7.
_M7_BITFIELD = frozenset({"ubfx", "sbfx", "bfi", "bfc", "rbit", "rev", "rev16", "revsh", "clz"})
#: ALU ops whose result an early-stage consumer can take in the next cycle (no shift involved).
_M7_SIMPLE = frozenset({"add", "adds", "sub", "subs", "mov", "movs", "movw", "movt", "addw", "subw"})


def _m7_kind(ins: Insn) -> str:
    """The M7 model's issue group of an instruction."""
    c = ins.cls
    if c in _M7_ALONE:
        return "alone"
    if c in ("mul", "dsp_mac"):
        return "mac"
    if c in ("simd", "sat", "extend") or ins.name in _M7_BITFIELD:
        return "dsp"
    if c in ("load", "fp_load"):
        return "alone" if c == "fp_load" and ins.nregs > 1 else "load"
    if c in ("store", "fp_store"):
        return "alone" if c == "fp_store" and ins.nregs > 1 else "store"
    if c == "fpu":
        regs = ins.dests | ins.reads
        core = [r for r in regs if not r.startswith(("s", "d", "q", "fpscr")) or r in ("sb", "sl", "sp")]
        if ins.name == "vmov" and len(regs) == 2 and len(core) == 1:
            return "vmov_to_core" if core[0] in ins.dests else "vmov_to_fp"
        return "alone"
    if c == "branch":
        return "branch"
    return "alu"


def _m7_pairs(a: Insn, ka: str, b: Insn, kb: str, p: M4Params) -> bool:
    """Whether `b` may issue in the same cycle as the older `a` (see the module notes)."""
    if "alone" in (ka, kb) or a.writes_pc:
        return False
    if a.text.startswith("movw") and b.name == "movt":
        return True         # the measured exception to the rules below
    if b.reads & a.dests or b.dests & a.dests:
        return False        # no forwarding inside a cycle, one write per register
    if kb == "dsp":
        return False        # DSP / bit-field ops issue from the older slot only
    if ka == "mac" and kb == "mac":
        return False        # one MAC pipeline
    if "store" in (ka, kb) and ("mac" in (ka, kb) or ka == kb):
        return False        # one store per cycle, and not beside a multiply
    if ka == kb == "load" and not p.m7_pair_loads:
        return False
    if ka.startswith("vmov") and kb.startswith("vmov"):
        return False        # one transfer between the register files per cycle
    if a.early and b.early and ka != "dsp":
        return False        # one inline-shifted operand per cycle
    return True


class M7Issue:
    """The rough dual-issue M7 model as a state machine: `push` issues one instruction after the
    ones before it (from an empty pipeline), `probe` tells the cycle an instruction would issue in
    without issuing it (the tile scheduler's question), `cycles` the issue cycle of the last
    instruction + 1 (taken-branch penalties are the caller's)."""

    def __init__(self, p: M4Params | None = None) -> None:
        self.p = p or M4Params()
        # register -> (cycle from which a late-stage consumer may issue, an early-stage consumer
        #              (MAC multiplicand, shifted operand, address), a MAC accumulate operand,
        #              a store's data)
        self.ready: dict[str, tuple[int, int, int, int]] = {}
        self.cycle = -1
        self.older: tuple[Insn, str] | None = None   # the instruction alone in `cycle` so far

    @property
    def cycles(self) -> int:
        return self.cycle + 1

    def _operands_ready(self, ins: Insn, k: str) -> int:
        t = 0
        skip = (self.older[0].dests if self.older is not None and ins.name == "movt"
                and self.older[0].text.startswith("movw") else ())
        ready = self.ready
        for r, stage in ins.m7_operands:
            rv = ready.get(r)
            if rv is not None and rv[stage] > t and r not in skip:
                t = rv[stage]
        return t

    def probe(self, ins: Insn) -> int:
        k = ins.m7_kind
        t = self._operands_ready(ins, k)
        if self.older is not None and t <= self.cycle and _m7_pairs(*self.older, ins, k, self.p):
            return self.cycle
        return max(self.cycle + 1, t)

    def push(self, ins: Insn) -> int:
        p = self.p
        k = ins.m7_kind
        t = self._operands_ready(ins, k)
        if self.older is not None and t <= self.cycle and _m7_pairs(*self.older, ins, k, p):
            issue = self.cycle
            self.older = None
        else:
            issue = max(self.cycle + 1, t)
            self.cycle = issue
            self.older = (ins, k)
        occ = 1
        if ins.cls in ("load_multi", "store_multi", "fp_multi"):
            occ = max(1, math.ceil(ins.nregs / 2))
        elif ins.cls == "div":
            occ = p.div
        elif ins.cls == "fpu" and ins.name in FP_SLOW:
            occ = p.fp_slow
        if k == "alone":
            self.cycle = issue + occ - 1
            self.older = None
        # result latencies
        if k == "load":
            late = p.m7_load_lat + (1 if ins.name in _NARROW_LOADS else 0)
            early, acc = late + 1, late
        elif k == "mac":
            late = p.m7_mac_lat
            early, acc = late + 1, 1          # accumulator forwarding: a MAC chain issues every cycle
        elif k in ("dsp", "vmov_to_core"):
            late, early, acc = 1, 2, 1
        elif k == "vmov_to_fp":
            late = early = acc = p.m7_fp_transfer
        elif ins.cls in ("load_multi", "fp_multi"):
            late = occ + 1
            early, acc = late + 1, late
        elif ins.cls == "fpu":
            late = 3 if ins.name in FP_MAC else 1
            early = acc = late
        elif ins.cls == "div":
            late = early = acc = occ
        elif ins.name in _M7_SIMPLE and not ins.early:
            late = early = acc = 1
        else:
            late, early, acc = 1, 2, 1
        for d in ins.dests:
            self.ready[d] = (issue + late, issue + early, issue + acc, issue + 1)
        return issue


def m7_issue(insns, p: M4Params | None = None) -> int:
    """Cycles of a straight-line sequence on the rough dual-issue M7 model, from an empty
    pipeline (taken-branch penalties are added by the caller)."""
    st = M7Issue(p)
    for ins in insns:
        st.push(ins)
    return st.cycles


def _m7_block(block: Block, p: M4Params) -> int:
    """Issue cycles of one block on the rough dual-issue M7 model (empty pipeline)."""
    return m7_issue(block.insns, p)


# ------------------------------------------------------------------------ estimate

@dataclass
class CycleEstimate:
    """Cycle estimates and instruction statistics of one emulated run."""

    instructions: int
    cycles: dict[str, int]              # model -> estimated cycles ("m4", "m7", "m0")
    classes: dict[str, int]             # instruction class -> executed count
    branches_taken: int
    branches_not_taken: int
    params: M4Params = field(default_factory=M4Params)
    block_stats: list = field(default_factory=list, repr=False)  # (addr, execs, m4 cycles, Block)

    @property
    def m4_cycles(self) -> int:
        return self.cycles["m4"]

    @property
    def m7_cycles(self) -> int:
        return self.cycles["m7"]

    @property
    def m0_cycles(self) -> int:
        return self.cycles["m0"]

    def per_mac(self, macs: int, model: str = "m4") -> float:
        return self.cycles[model] / macs if macs else float("nan")

    def as_dict(self) -> dict:
        return {
            "instructions": self.instructions,
            "cycles_m4_est": self.cycles["m4"],
            "cycles_m7_est": self.cycles["m7"],
            "cycles_m0_est": self.cycles["m0"],
            "classes": dict(self.classes),
            "branches_taken": self.branches_taken,
            "branches_not_taken": self.branches_not_taken,
            "model": f"Cortex-M4 TRM table, P={self.params.P}, SDIV={self.params.div}, "
                     "zero wait states (estimate); M7: rough dual-issue estimate",
        }

    def hot_blocks(self, n: int = 10, symbolize=None) -> str:
        """Text listing of the ``n`` blocks with most estimated M4 cycles."""
        total = max(1, self.cycles["m4"])
        lines = []
        for addr, execs, cyc, blk in sorted(self.block_stats, key=lambda r: -r[2])[:n]:
            where = f" <{symbolize(addr)}>" if symbolize else ""
            lines.append(f"0x{addr:08x}{where}: {execs} x, {cyc} cycles "
                         f"({100.0 * cyc / total:.1f} %)")
            lines += [f"    {i.addr:08x}  {i.text}" for i in blk.insns]
        return "\n".join(lines)


def _edge_taken(pred: Block, cur_addr: int) -> bool | None:
    """Whether the PC-writing last instruction of ``pred`` was taken (None: no branch)."""
    last = pred.last
    if last is None or not last.writes_pc:
        return None
    if not last.cond:
        return True
    return cur_addr != pred.end


def estimate(blocks: Mapping[int, bytes], edges: Mapping[tuple[int, int], int], *,
             return_addr: int | None = None, params: M4Params | None = None,
             decoder: Decoder | None = None) -> CycleEstimate:
    """Estimate cycles from executed blocks and edge counts.

    ``blocks``: block start address -> its code bytes. ``edges``: (previous block start,
    block start) -> times taken; the previous block is -1 for the first block of the
    run, and the block may be ``return_addr`` for the final return (only the branch
    penalty of the previous block is counted for it).
    """
    p = params or M4Params()
    dec = decoder or Decoder()
    decoded = {a: dec.block(a, code) for a, code in blocks.items()}
    instructions = 0
    classes: dict[str, int] = {}
    cyc = {"m4": 0, "m7": 0, "m0": 0}
    taken_n = not_taken_n = 0
    execs: dict[int, int] = {}
    m4_per_block: dict[int, int] = {}
    m7_cache: dict = {}
    for (pa, ca), n in edges.items():
        if n <= 0:
            continue
        pred = decoded.get(pa) if pa != -1 else None
        if pred is not None:
            tk = _edge_taken(pred, ca)
            if tk is True:
                taken_n += n
                cyc["m4"] += n * p.P
                m4_per_block[pa] = m4_per_block.get(pa, 0) + n * p.P
                cyc["m0"] += n * p.P
                cyc["m7"] += n * p.m7_taken
            elif tk is False:
                not_taken_n += n
        if return_addr is not None and ca == return_addr:
            continue
        blk = decoded.get(ca)
        if blk is None:
            raise KeyError(f"edge into 0x{ca:08x}, but no code for that block")
        execs[ca] = execs.get(ca, 0) + n
        prev = pred.last if pred is not None else None
        m4 = 0
        m0 = 0
        for ins in blk.insns:
            m4 += _m4_cost(ins, prev, p)
            m0 += _m0_cost(ins, prev, p)
            prev = ins
        cyc["m4"] += n * m4
        cyc["m0"] += n * m0
        m4_per_block[ca] = m4_per_block.get(ca, 0) + n * m4
        # A fall-through into a block that starts where its predecessor ends, without a
        # branch between them, is one straight run the emulator split (QEMU translation blocks
        # stop at 1 KB page boundaries): it is costed as the continuation of that run, not from
        # an empty pipeline.
        joined = (pred is not None and pred.end == ca and pred.last is not None
                  and not pred.last.writes_pc)
        key = (pa, ca) if joined else ca
        m7 = m7_cache.get(key)
        if m7 is None:
            if joined:
                m7 = m7_issue(pred.insns + blk.insns, p) - m7_issue(pred.insns, p)
            else:
                m7 = _m7_block(blk, p)
            m7_cache[key] = m7
        cyc["m7"] += n * m7
    for a, n in execs.items():
        blk = decoded[a]
        instructions += n * len(blk.insns)
        for ins in blk.insns:
            classes[ins.cls] = classes.get(ins.cls, 0) + n
    stats = [(a, execs[a], m4_per_block.get(a, 0), decoded[a]) for a in execs]  # incl. P
    return CycleEstimate(instructions, cyc, dict(sorted(classes.items())), taken_n,
                         not_taken_n, p, stats)


def estimate_sequence(code: bytes, *, addr: int = 0, taken: bool | None = None,
                      params: M4Params | None = None) -> CycleEstimate:
    """Cost straight-line code executed once (for unit tests and quick looks).

    ``taken``: for a sequence that ends in a branch, whether it was taken (default:
    taken if it is unconditional, not taken otherwise).
    """
    dec = Decoder()
    blk = dec.block(addr, code)
    edges: dict[tuple[int, int], int] = {(-1, addr): 1}
    last = blk.last
    blocks = {addr: bytes(code)}
    ret = None
    if last is not None and last.writes_pc:
        if taken is None:
            taken = not last.cond
        # a pseudo successor: the fall-through, or an address that is not
        ret = blk.end + 0x1000 if taken else blk.end
        edges[(addr, ret)] = 1
    return estimate(blocks, edges, return_addr=ret, params=params, decoder=dec)
