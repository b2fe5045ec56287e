"""Run cross-compiled Cortex-M code in unicorn and measure it.

    from dwgen.toolchain import build_elf
    from dwgen.emulate import Emulator

    elf = build_elf(["kernel.c", "harness.c"], "cortex-m4")
    emu = Emulator(elf)
    x = emu.alloc_bytes(input_bytes)          # argument buffers live in RAM
    y = emu.alloc(out_nbytes)
    st = emu.call("dw_kernel", x, y)          # r0-r3, further arguments on the stack
    out = emu.read(y, out_nbytes)
    st.instructions, st.stack_bytes, st.cycles().m4_cycles

Memory map (firmware/emu/emu.ld): flash at 0x00000000 (read/execute; a write faults),
RAM at 0x20000000 = stack (first, so an overflow faults below 0x20000000), .data,
.bss, then the heap that :meth:`Emulator.alloc` hands out.

* CPU model: unicorn Thumb + M-class with the target's model (``Target.uc_cpu``:
  Cortex-M0 for M0/M0+, M3, M4 (also for M4 without FPU), M7, M33; M55 runs on the M33
  model, without Helium).
  Floating point needs no set-up: unicorn's M-profile cores start with the FPU
  accessible (checked by the tests with VFP code on M4).
* ``call``: arguments in r0-r3 then on the stack (AAPCS; 32-bit integers, negative
  values allowed), LR = ``__emu_return`` (firmware/emu/support.c), run until PC gets
  there. An instruction limit (unicorn's own counter, cheap) stops runaway code with
  :class:`InstructionLimitExceeded`; faults, invalid instructions and writes outside the
  allocated buffers raise :class:`EmulationError` with the PC and the instruction, and so
  does a return with any of r4-r11 changed (each call starts them at known values).
* Stack high-water mark: the stack is filled with a pattern before each call; after it
  the deepest byte that changed gives the bytes used below the SP at entry.
* Guard zones: every :meth:`alloc` buffer is surrounded by 16-byte guard zones checked
  after each call, so a kernel writing past its output buffer fails loudly.
* Block trace: a UC_HOOK_BLOCK callback appends one integer per executed translation
  block; after the run numpy turns the trace into counts per (previous block, block)
  edge, which :mod:`dwgen.cycles` costs (taken vs fall-through branches). About 0.4 us
  per executed block: a 1.5 M-instruction kernel runs in well under a second.
  Instruction counts agree exactly with unicorn's own instruction counter.

What unicorn 2.1 gets wrong, and what this module does about it
---------------------------------------------------------------
* ``UC_MODE_MCLASS`` forces the Cortex-M33 model (``cpu_arm_init`` overrides the
  model chosen with ``ctl_set_cpu_model``), so "M4" runs were really M33 runs. dwgen
  opens unicorn in plain Thumb mode with the Cortex-M model set, which is M-profile by
  itself, and checks the model took.
* Unaligned LDRD/STRD/LDM/STM/PUSH/POP/LDREX/VLDR... execute silently on the ARMv7-M
  models; the core raises a UsageFault for them whatever CCR.UNALIGN_TRP says. dwgen
  hooks exactly those instructions (per address) and raises :class:`EmulationError`
  (``check_alignment``; about 2 us per executed hooked instruction). Unaligned LDR/STR/
  LDRH are allowed, as on the core; the Cortex-M0 model faults on them itself.
* The Cortex-M3 model executes many DSP-extension instructions (SMLAD, SMUAD, SMLSD,
  SMLALD, SMLAWB, SSAT16, USAD8 ...) that a Cortex-M3 does not have. dwgen traps every
  DSP-extension instruction on non-DSP targets (``check_isa``), and every floating-point
  instruction on targets without an FPU (``cortex-m4-nofpu`` runs on the M4 model, which
  has one).
* SMLAD/SMLADX set the Q flag when the two products alone overflow (both 0x8000 x
  0x8000) even when the accumulator brings the sum back into range; the ARMv7-M ARM
  sets Q only if the full sum overflows. The result register is right. Kernels never
  read Q, so this is documented (tests/test_emulate.py) rather than worked around.
* Blocks translated while no UC_HOOK_BLOCK is installed never report to a hook added
  later, so switching ``trace`` on flushes unicorn's translation cache.
Everything else checked -- SMLAD/X, SMLSD, SMUAD, SMLAxy, SMLAWB, SMULxy, SMMUL(R),
SMMLA(R), SMMLS(R), SXTB16/SXTAB16 (with rotation), UXTB16, PKHBT/PKHTB, SSAT/USAT
(with shifts, and Q), SSAT16, QADD, SADD16+SEL (GE flags), SMULL/SMLAL/SMLALD, SDIV --
matches a Python model of the Architecture Reference Manual on edge cases and random
operands, on the M4, M7 and M33 models.
"""

from __future__ import annotations

import bisect
import time
from array import array
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import unicorn as uc_mod
from unicorn import arm_const as UA

from . import cycles as _cycles
from .errors import DwgenError
from .toolchain import RETURN_SYMBOL, ElfImage, get_target

__all__ = ["Emulator", "RunStats", "EmulationError", "InstructionLimitExceeded",
           "DEFAULT_INSN_LIMIT"]

DEFAULT_INSN_LIMIT = 200_000_000
STACK_FILL = 0xA5
GUARD_FILL = 0xCD
GUARD = 16

_UC_CPU = {
    "cortex-m0": UA.UC_CPU_ARM_CORTEX_M0,
    "cortex-m3": UA.UC_CPU_ARM_CORTEX_M3,
    "cortex-m4": UA.UC_CPU_ARM_CORTEX_M4,
    "cortex-m7": UA.UC_CPU_ARM_CORTEX_M7,
    "cortex-m33": UA.UC_CPU_ARM_CORTEX_M33,
}
_ARG_REGS = (UA.UC_ARM_REG_R0, UA.UC_ARM_REG_R1, UA.UC_ARM_REG_R2, UA.UC_ARM_REG_R3)
#: r4-r11: AAPCS callee-saved; each call starts them at a distinct value and checks them after.
_SAVED_REGS = tuple(getattr(UA, f"UC_ARM_REG_R{i}") for i in range(4, 12))
_SAVED_VALUE = 0x5AFE0400
_REG_NAMES = {getattr(UA, f"UC_ARM_REG_R{i}"): f"r{i}" for i in range(13)}
_REG_NAMES.update({UA.UC_ARM_REG_SP: "sp", UA.UC_ARM_REG_LR: "lr", UA.UC_ARM_REG_PC: "pc"})
_TRACE_CHUNK = 1 << 20
_UC_BY_NAME = {f"r{i}": getattr(UA, f"UC_ARM_REG_R{i}") for i in range(13)}
_UC_BY_NAME.update({"sb": UA.UC_ARM_REG_R9, "sl": UA.UC_ARM_REG_R10, "fp": UA.UC_ARM_REG_R11,
                    "ip": UA.UC_ARM_REG_R12, "sp": UA.UC_ARM_REG_SP, "lr": UA.UC_ARM_REG_LR})
_CS_OP_REG = 1
_CS_OP_MEM = 3
#: ARMv7E-M DSP-extension instructions (absent on Cortex-M3).
DSP_ONLY = (_cycles.DSP_MAC | _cycles.SIMD
            | frozenset({"ssat16", "usat16", "qadd", "qsub", "qdadd", "qdsub", "sxtab",
                         "sxtah", "uxtab", "uxtah", "umaal"}))


class EmulationError(DwgenError, RuntimeError):
    """The emulated code faulted, hit an invalid instruction or broke a guard zone."""


class InstructionLimitExceeded(EmulationError):
    """The call did not return within its instruction limit."""


@dataclass
class RunStats:
    """What one :meth:`Emulator.call` measured."""

    function: str
    target: str
    uc_cpu: str
    r0: int
    r1: int
    instructions: int
    stack_bytes: int                       # deepest stack use below the SP at entry
    blocks: dict[int, bytes] = field(repr=False)          # block start -> code bytes
    edges: dict[tuple[int, int], int] = field(repr=False)  # (prev start | -1, start) -> n
    return_addr: int = 0
    elapsed_s: float = 0.0
    scratch_bytes: int = 0                 # no heap inside kernels: always 0 here
    _decoder: _cycles.Decoder | None = field(default=None, repr=False)
    _estimate: dict = field(default_factory=dict, repr=False)

    @property
    def ret(self) -> int:
        """r0 as an unsigned 32-bit value."""
        return self.r0

    @property
    def ret_signed(self) -> int:
        return self.r0 - (1 << 32) if self.r0 & 0x80000000 else self.r0

    @property
    def ret64(self) -> int:
        """r1:r0 as a signed 64-bit value (a function returning int64_t)."""
        v = (self.r1 << 32) | self.r0
        return v - (1 << 64) if v & (1 << 63) else v

    def as_dict(self, macs: int | None = None) -> dict:
        """The numbers a benchmark report needs (cycles are estimates, see dwgen.cycles)."""
        est = self.cycles()
        d = {"function": self.function, "target": self.target, "emulated_cpu": self.uc_cpu,
             "instructions": self.instructions, "cycles_m4_est": est.m4_cycles,
             "cycles_m7_est": est.m7_cycles, "stack_bytes": self.stack_bytes,
             "scratch_bytes": self.scratch_bytes, "classes": dict(est.classes)}
        if macs:
            d.update(macs=macs, cycles_per_mac_m4=est.m4_cycles / macs,
                     cycles_per_mac_m7=est.m7_cycles / macs)
        return d

    def cycles(self, params: _cycles.M4Params | None = None) -> _cycles.CycleEstimate:
        """Cycle estimate (M4 table, M7 and M0 rough models) of this run (cached)."""
        key = params or _cycles.M4Params()
        est = self._estimate.get(key)
        if est is None:
            est = _cycles.estimate(self.blocks, self.edges, return_addr=self.return_addr,
                                   params=key, decoder=self._decoder)
            self._estimate[key] = est
        return est


@dataclass(frozen=True)
class _Buffer:
    addr: int
    size: int
    name: str


class Emulator:
    """A Cortex-M core in unicorn with ``elf`` loaded; reusable for many calls."""

    def __init__(self, elf: ElfImage, *, insn_limit: int = DEFAULT_INSN_LIMIT,
                 uc_cpu: str | None = None, check_alignment: bool = True,
                 check_isa: bool = True) -> None:
        self.elf = elf
        self.target = get_target(elf.target)
        self.uc_cpu = uc_cpu or self.target.uc_cpu
        if self.uc_cpu not in _UC_CPU:
            raise EmulationError(f"no unicorn CPU model for target {self.target.name!r}")
        self.insn_limit = insn_limit
        lay = elf.layout
        self.layout = lay
        self._ret = elf.symbol(RETURN_SYMBOL).addr
        self._decoder = _cycles.Decoder()
        self._func_starts = None

        # NOT UC_MODE_MCLASS: unicorn's cpu_arm_init() forces the Cortex-M33 model whenever
        # UC_MODE_MCLASS is set, silently ignoring ctl_set_cpu_model() (unicorn 2.1.x). The
        # Cortex-M models are M-profile by themselves (ARM_FEATURE_M), so Thumb mode plus the
        # model gives the core we ask for (checked below).
        uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM, uc_mod.UC_MODE_THUMB)
        uc.ctl_set_cpu_model(_UC_CPU[self.uc_cpu])
        if uc.ctl_get_cpu_model() != _UC_CPU[self.uc_cpu]:
            raise EmulationError(f"unicorn did not accept the {self.uc_cpu} CPU model")
        flash_size = _page_up(lay.flash_end - lay.flash_start)
        ram_size = _page_up(lay.ram_end - lay.ram_start)
        uc.mem_map(lay.flash_start, flash_size, uc_mod.UC_PROT_READ | uc_mod.UC_PROT_EXEC)
        uc.mem_map(lay.ram_start, ram_size, uc_mod.UC_PROT_ALL)
        for seg in elf.segments:
            if seg.data:
                uc.mem_write(seg.addr, seg.data)
        self.uc = uc
        self._fault: tuple | None = None
        uc.hook_add(uc_mod.UC_HOOK_MEM_INVALID, self._on_invalid)
        self._trace = array("q")
        self._trace_parts: list[np.ndarray] = []
        self._traced_tbs = True      # no block translated yet
        self._trap: tuple | None = None
        self.traps = 0
        if check_alignment and self.uc_cpu != "cortex-m0":
            self._install_alignment_traps()
        trap_dsp = not self.target.dsp or self.uc_cpu == "cortex-m3"
        trap_fp = not self.target.has_fpu
        if check_isa and (trap_dsp or trap_fp):
            self._install_isa_traps(trap_dsp, trap_fp)
        self._heap_start = (lay.heap_start + 15) & ~15
        self._heap = self._heap_start
        self._buffers: list[_Buffer] = []
        # the whole stack holds the fill pattern; [_stack_dirty, top) may not
        uc.mem_write(lay.stack_limit, bytes([STACK_FILL]) * (lay.stack_top - lay.stack_limit))
        self._stack_dirty = lay.stack_top

    # ------------------------------------------------------------------ memory
    def alloc(self, nbytes: int, *, align: int = 8, name: str = "") -> int:
        """Reserve ``nbytes`` of RAM (zeroed, guard zones around it); returns the address."""
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")
        align = max(int(align), 4)
        start = _align_up(self._heap + GUARD, align)
        end = start + nbytes
        if end + GUARD > self.layout.ram_end:
            raise EmulationError(f"emulator RAM exhausted: {nbytes} bytes requested, "
                                 f"{self.layout.ram_end - self._heap} left")
        uc = self.uc
        uc.mem_write(self._heap, bytes([GUARD_FILL]) * (start - self._heap))
        if nbytes:
            uc.mem_write(start, bytes(nbytes))
        uc.mem_write(end, bytes([GUARD_FILL]) * GUARD)
        self._heap = end + GUARD
        self._buffers.append(_Buffer(start, nbytes, name or f"buffer#{len(self._buffers)}"))
        return start

    def alloc_bytes(self, data, *, align: int = 8, name: str = "") -> int:
        """Allocate a buffer holding ``data`` (bytes-like or a numpy array)."""
        b = _as_bytes(data)
        addr = self.alloc(len(b), align=align, name=name)
        self.write(addr, b)
        return addr

    def reset_heap(self) -> None:
        """Forget every allocation (the memory is reused by later allocs)."""
        self._heap = self._heap_start
        self._buffers.clear()

    def write(self, addr: int, data) -> None:
        self.uc.mem_write(addr, _as_bytes(data))

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.uc.mem_read(addr, n))

    def read_array(self, addr: int, count: int, dtype=np.int8) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self.read(addr, count * dt.itemsize), dtype=dt).copy()

    def write_symbol(self, name: str, data) -> None:
        """Overwrite a global variable (RAM) in the loaded image."""
        self.write(self.elf.addr(name), data)

    def read_symbol(self, name: str, n: int | None = None) -> bytes:
        s = self.elf.symbol(name)
        return self.read(s.addr, s.size if n is None else n)

    # ------------------------------------------------------------------- calls
    def call(self, function: str | int, *args: int, insn_limit: int | None = None,
             trace: bool = True) -> RunStats:
        """Call ``function`` (symbol name or address) with integer arguments.

        Returns :class:`RunStats` (r0/r1, instructions, stack bytes, block edges for
        :meth:`RunStats.cycles`). ``trace=False`` skips the block trace (faster; then
        ``instructions`` is 0 and no cycle estimate is possible).
        """
        uc = self.uc
        if isinstance(function, str):
            sym = self.elf.symbol(function)
            if sym.kind not in ("func", "notype"):
                raise EmulationError(f"{function!r} is not a function ({sym.kind})")
            entry = sym.addr | 1
            fname = function
        else:
            entry = int(function) | 1
            fname = f"0x{int(function):08x}"
        limit = self.insn_limit if insn_limit is None else int(insn_limit)
        words = [_u32(a) for a in args]
        lay = self.layout

        # stack: pattern fill, then the stack arguments (8-byte aligned SP at the call)
        stack_args = words[4:]
        sp = lay.stack_top - 4 * len(stack_args)
        sp &= ~7
        # refill only what earlier calls may have touched (the rest still holds the pattern)
        if self._stack_dirty < sp:
            uc.mem_write(self._stack_dirty, bytes([STACK_FILL]) * (sp - self._stack_dirty))
        self._stack_dirty = lay.stack_limit   # until the run is measured
        if stack_args:
            uc.mem_write(sp, b"".join(w.to_bytes(4, "little") for w in stack_args))
        regs = words[:4] + [0] * (4 - min(4, len(words)))
        for reg, w in zip(_ARG_REGS, regs):
            uc.reg_write(reg, w)
        for i, reg in enumerate(_SAVED_REGS):
            uc.reg_write(reg, _SAVED_VALUE + i + 4)
        uc.reg_write(UA.UC_ARM_REG_R12, 0)
        uc.reg_write(UA.UC_ARM_REG_SP, sp)
        uc.reg_write(UA.UC_ARM_REG_LR, self._ret | 1)
        uc.reg_write(UA.UC_ARM_REG_XPSR, 0x01000000)   # Thumb bit, flags clear

        self._trace = array("q")
        self._trace_parts = []
        self._fault = None
        self._trap = None
        hook = None
        if trace != self._traced_tbs:
            # unicorn instruments a block for UC_HOOK_BLOCK when it translates it: blocks
            # translated while no hook was installed would never report, so retranslate
            uc.ctl_flush_tb()
            self._traced_tbs = trace
        if trace:
            tr = self._trace
            ap = tr.append
            parts = self._trace_parts

            def on_block(_uc, address, size, _ud, ap=ap, tr=tr):
                ap((address << 16) | size)
                if len(tr) >= _TRACE_CHUNK:
                    parts.append(np.frombuffer(tr, dtype=np.int64).copy())
                    del tr[:]

            hook = uc.hook_add(uc_mod.UC_HOOK_BLOCK, on_block)
        t0 = time.perf_counter()
        err: Exception | None = None
        try:
            uc.emu_start(entry, self._ret, count=limit)
        except uc_mod.UcError as e:
            err = e
        finally:
            elapsed = time.perf_counter() - t0
            if hook is not None:
                uc.hook_del(hook)
        pc = uc.reg_read(UA.UC_ARM_REG_PC)
        if self._trap is not None:
            raise EmulationError(f"{fname}: {self._trap[1]} at pc=0x{self._trap[0]:08x} "
                                 f"({self._trap[2]}) in {self.symbolize(self._trap[0])}")
        if err is not None:
            raise self._error(err, fname, pc) from None
        if pc != self._ret:
            raise InstructionLimitExceeded(
                f"{fname} did not return within {limit:,} instructions "
                f"(stopped at pc=0x{pc:08x}: {self._disasm_at(pc)}); raise insn_limit if "
                "the code is just long-running")
        self._check_guards(fname)
        clobbered = [f"r{i + 4}" for i, reg in enumerate(_SAVED_REGS)
                     if uc.reg_read(reg) != _SAVED_VALUE + i + 4]
        if clobbered:
            raise EmulationError(f"{fname} returned with callee-saved {', '.join(clobbered)} changed "
                                 "(AAPCS: r4-r11 must be preserved; the caller's loop state is lost)")
        stack_bytes = self._stack_used(sp)
        r0 = uc.reg_read(UA.UC_ARM_REG_R0)
        r1 = uc.reg_read(UA.UC_ARM_REG_R1)
        blocks: dict[int, bytes] = {}
        edges: dict[tuple[int, int], int] = {}
        instructions = 0
        if trace:
            blocks, edges, instructions = self._edges()
        return RunStats(function=fname, target=self.target.name, uc_cpu=self.uc_cpu,
                        r0=r0, r1=r1, instructions=instructions, stack_bytes=stack_bytes,
                        blocks=blocks, edges=edges, return_addr=self._ret,
                        elapsed_s=elapsed, _decoder=self._decoder)

    # --------------------------------------------------------------- internals
    def _code_insns(self):
        """Decode every function of the image once (linear sweep per function symbol)."""
        funcs = sorted({s.addr: s for s in self.elf.symbols.values()
                        if s.kind == "func"}.values(), key=lambda s: s.addr)
        text_lo, text_sz = self.elf.sections.get(".text", (0, 0))
        text_end = text_lo + text_sz
        for k, sym in enumerate(funcs):
            size = sym.size
            if size <= 0:          # hand-written assembly without .size
                nxt = funcs[k + 1].addr if k + 1 < len(funcs) else text_end
                size = max(0, min(nxt, text_end) - sym.addr)
            if size <= 0:
                continue
            code = self.read(sym.addr, size)
            yield from self._decoder._cs.disasm(code, sym.addr)

    def _install_alignment_traps(self) -> None:
        """ARMv7-M faults on unaligned LDRD/STRD/LDM/STM/PUSH/POP/LDREX/VLDR..., whatever
        CCR.UNALIGN_TRP says; unicorn executes them silently. Hook exactly those
        instructions (per address, so nothing else is slowed) and check the address."""
        need = {n: 4 for n in ("ldrd", "strd", "ldrex", "strex", "ldaex", "stlex", "ldaexd",
                               "stlexd", "vldr", "vstr", "push", "pop", "vpush", "vpop")}
        need.update({n: 4 for n in _cycles.LOAD_MULTI | _cycles.STORE_MULTI
                     | _cycles.FP_MULTI})
        need.update({"ldrexh": 2, "strexh": 2, "ldaexh": 2, "stlexh": 2})
        for i in self._code_insns():
            name = i.insn_name()
            align = need.get(name)
            if align is None:
                continue
            if name in ("push", "pop", "vpush", "vpop"):
                base, disp = "sp", 0
            else:
                mem = [o for o in i.operands if o.type == _CS_OP_MEM]
                if mem:
                    base = i.reg_name(mem[0].mem.base)
                    disp = 0 if getattr(i, "post_index", False) else mem[0].mem.disp
                else:      # LDM/STM: the base register is the first operand
                    ops = [o for o in i.operands if o.type == _CS_OP_REG]
                    if not ops:
                        continue
                    base, disp = i.reg_name(ops[0].reg), 0
            ureg = _UC_BY_NAME.get(base)
            if ureg is None or base == "pc":
                continue
            text = f"{i.mnemonic} {i.op_str}"
            self.uc.hook_add(uc_mod.UC_HOOK_CODE, self._on_aligned_insn,
                             (ureg, disp, align - 1, text), i.address, i.address)
            self.traps += 1

    def _on_aligned_insn(self, uc, address, size, info):
        ureg, disp, mask, text = info
        ea = (uc.reg_read(ureg) + disp) & 0xFFFFFFFF
        if ea & mask:
            self._trap = (address, f"unaligned access to 0x{ea:08x} (a UsageFault on "
                                   "the core; unicorn does not fault)", text)
            uc.emu_stop()

    def _install_isa_traps(self, dsp: bool, fp: bool) -> None:
        """unicorn's Cortex-M3 model executes many DSP-extension instructions (SMLAD,
        SSAT16, USAD8, ...) that the real core does not have, and its Cortex-M4 model runs
        floating-point instructions for a Cortex-M4 built without an FPU: trap them."""
        for i in self._code_insns():
            name = i.insn_name()
            if dsp and name in DSP_ONLY:
                self.uc.hook_add(uc_mod.UC_HOOK_CODE, self._on_dsp_insn,
                                 f"{i.mnemonic} {i.op_str}", i.address, i.address)
                self.traps += 1
            elif fp and name.startswith("v"):  # every M-profile VFP (and MVE) mnemonic
                self.uc.hook_add(uc_mod.UC_HOOK_CODE, self._on_fp_insn,
                                 f"{i.mnemonic} {i.op_str}", i.address, i.address)
                self.traps += 1

    def _on_fp_insn(self, uc, address, size, text):
        self._trap = (address, f"floating-point instruction, which {self.target.name} (emulated "
                               f"as {self.uc_cpu}) does not have (the core would raise a "
                               "UsageFault; unicorn's model executes it)", text)
        uc.emu_stop()

    def _on_dsp_insn(self, uc, address, size, text):
        self._trap = (address, f"DSP-extension instruction, which {self.target.name} (emulated "
                               f"as {self.uc_cpu}) does not have (the core would raise a "
                               "UsageFault; unicorn's M3 model executes it)", text)
        uc.emu_stop()

    def _edges(self):
        parts = self._trace_parts + [np.frombuffer(self._trace, dtype=np.int64).copy()]
        keys = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        ret = self._ret
        addrs_all = keys >> 16
        keys = keys[addrs_all != ret]                 # the return stub, if hooked
        blocks: dict[int, bytes] = {}
        edges: dict[tuple[int, int], int] = {}
        if keys.size == 0:
            return blocks, edges, 0
        uniq, inv = np.unique(keys, return_inverse=True)
        inv = inv.reshape(-1)
        ua = (uniq >> 16).tolist()
        us = (uniq & 0xFFFF).tolist()
        # the same start address with two sizes (a TB retranslated differently) is
        # kept apart by giving each (addr, size) its own "block"; they share a start
        # address only in pathological cases, so key blocks by address and warn-free
        # merge by taking the larger one
        for a, s in zip(ua, us):
            if a not in blocks or s > len(blocks[a]):
                blocks[a] = self.read(a, s)
        counts = np.bincount(inv, minlength=len(uniq))
        n = len(uniq)
        pair = inv[:-1].astype(np.int64) * n + inv[1:]
        pu, pc = np.unique(pair, return_counts=True)
        for k, c in zip(pu.tolist(), pc.tolist()):
            edges[(ua[k // n], ua[k % n])] = edges.get((ua[k // n], ua[k % n]), 0) + c
        first = ua[int(inv[0])]
        edges[(-1, first)] = edges.get((-1, first), 0) + 1
        last = ua[int(inv[-1])]
        edges[(last, ret)] = edges.get((last, ret), 0) + 1
        instructions = 0
        for k, (a, s) in enumerate(zip(ua, us)):
            blk = self._decoder.block(a, self.read(a, s))
            instructions += int(counts[k]) * len(blk.insns)
        return blocks, edges, instructions

    def _stack_used(self, sp_at_call: int) -> int:
        lo = self.layout.stack_limit
        data = np.frombuffer(self.uc.mem_read(lo, sp_at_call - lo), dtype=np.uint8)
        changed = np.flatnonzero(data != STACK_FILL)
        deepest = lo + int(changed[0]) if changed.size else sp_at_call
        self._stack_dirty = deepest & ~3
        return max(0, sp_at_call - (deepest & ~3))

    def _check_guards(self, fname: str) -> None:
        for b in self._buffers:
            before = self.read(b.addr - GUARD, GUARD)
            after = self.read(b.addr + b.size, GUARD)
            for zone, where, base in ((before, "before", b.addr - GUARD),
                                      (after, "after", b.addr + b.size)):
                if zone != bytes([GUARD_FILL]) * GUARD:
                    off = next(i for i, v in enumerate(zone) if v != GUARD_FILL)
                    raise EmulationError(
                        f"{fname} wrote outside {b.name} (0x{b.addr:08x}, {b.size} bytes): "
                        f"the guard zone {where} it was modified at 0x{base + off:08x}")

    def _on_invalid(self, _uc, access, address, size, value, _ud):
        kinds = {uc_mod.UC_MEM_READ_UNMAPPED: "read of unmapped",
                 uc_mod.UC_MEM_WRITE_UNMAPPED: "write to unmapped",
                 uc_mod.UC_MEM_FETCH_UNMAPPED: "instruction fetch from unmapped",
                 uc_mod.UC_MEM_WRITE_PROT: "write to read-only (flash)",
                 uc_mod.UC_MEM_READ_PROT: "read of protected",
                 uc_mod.UC_MEM_FETCH_PROT: "instruction fetch from non-executable"}
        self._fault = (kinds.get(access, f"invalid access {access}"), address, size)
        return False

    def _disasm_at(self, pc: int) -> str:
        try:
            code = self.read(pc & ~1, 4)
            ins = self._decoder.decode(code[:2] if (code[1] >> 3) < 0x1D else code, pc & ~1)
            return ins[0].text if ins else code.hex()
        except Exception:  # noqa: BLE001 - best effort for an error message
            return "?"

    def _error(self, e, fname: str, pc: int) -> EmulationError:
        where = f"pc=0x{pc:08x} ({self._disasm_at(pc)})"
        sym = self._symbolize(pc)
        if sym:
            where += f" in {sym}"
        if self._fault is not None:
            kind, addr, size = self._fault
            hint = ""
            lay = self.layout
            if lay.stack_limit - 0x1000 <= addr < lay.stack_limit:
                hint = " -- a stack overflow (raise build_elf(stack_size=...))"
            elif addr < 0x100:
                hint = " -- a NULL pointer?"
            return EmulationError(f"{fname}: {kind} memory at 0x{addr:08x} ({size} bytes), "
                                  f"{where}{hint}")
        if e.errno == uc_mod.UC_ERR_INSN_INVALID:
            t = self.target
            hint = (f"; unicorn's {self.uc_cpu} model cannot execute it")
            if t.mve:
                hint += " (Helium/MVE is not emulated: build for emulation without MVE)"
            elif t.thumb1_only:
                hint += " (ARMv6-M has no Thumb-2/DSP instructions)"
            elif not t.dsp:
                hint += " (this core has no DSP extension)"
            return EmulationError(f"{fname}: invalid instruction at {where}{hint}")
        if e.errno == uc_mod.UC_ERR_EXCEPTION:
            return EmulationError(
                f"{fname}: CPU exception at {where} (a fault: unaligned LDRD/LDM or, on "
                "ARMv6-M, any unaligned access; UDF/BKPT/SVC; or a division trap)")
        return EmulationError(f"{fname}: unicorn error {e} at {where}")

    def _symbolize(self, addr: int) -> str:
        if self._func_starts is None:
            funcs = sorted({s.addr: s for s in self.elf.symbols.values()
                            if s.kind == "func"}.values(), key=lambda s: s.addr)
            self._func_starts = ([s.addr for s in funcs], funcs)
        starts, funcs = self._func_starts
        k = bisect.bisect_right(starts, addr) - 1
        if k < 0:
            return ""
        f = funcs[k]
        if f.size and addr >= f.addr + f.size:
            return ""
        return f"{f.name}+0x{addr - f.addr:x}"

    def symbolize(self, addr: int) -> str:
        """"function+offset" for a code address (for hot-block listings)."""
        return self._symbolize(addr) or f"0x{addr:08x}"


def _page_up(n: int) -> int:
    return (n + 0xFFF) & ~0xFFF


def _align_up(v: int, a: int) -> int:
    return (v + a - 1) // a * a


def _u32(v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"call arguments must be integers (addresses or values), got {v!r}")
    v = int(v)
    if not -(1 << 31) <= v < (1 << 32):
        raise ValueError(f"argument {v} does not fit in 32 bits")
    return v & 0xFFFFFFFF


def _as_bytes(data) -> bytes:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).tobytes()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, Iterable):
        return bytes(data)
    raise TypeError(f"expected bytes or a numpy array, got {type(data).__name__}")
