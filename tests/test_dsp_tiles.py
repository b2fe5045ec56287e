"""The register-allocated asm tiles of the DSP kernel (dwgen/dsp_tile.py), on the cores.

* A seeded sweep of random layers plus layers built for every tile class (tests/tile_classes.py:
  loop kind, where the weights live, one body or a dispatch over right shifts, register shift,
  dead sign fix, narrow clamps, strides, dilations, depth multipliers, 1-D, batches, NCHW), generated for
  cortex-m4 and run on the emulated Cortex-M4 and M7 (FPU stash: S0-S15) and on a Cortex-M4
  without FPU (stack-frame stash), byte for byte against the reference; the host build of the
  same kernels (the C twin of every tile) too. The sweep must contain every class, so a planner
  that stops producing one fails here.
* gcc and zig-clang cross builds of one kernel per class for every DSP target, warning-free,
  each with the tile variant its FPU calls for.
* Per tile body: the instructions one loop iteration executes on the core equal the planner's
  count (TilePlan.body_insns), and the emulator's M4 cycle estimate equals its body_cycles.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from dwgen import reference
from dwgen.codegen import EmitOptions, generate
from dwgen.hostbuild import build

from helpers import emulator_tools, random_qlayer, run_emulated, tool_missing
from tile_classes import REQUIRED, class_layers, kernel_classes, size_class_layers

SEED = 515151
SWEEP = 60
#: Emulated: FPU stash (M4, M7) and stack stash (M4 without FPU).
EMU_TARGETS = ("cortex-m4", "cortex-m7", "cortex-m4-nofpu")
#: Cross-built per class, with both compilers.
BUILD_TARGETS = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "cortex-m4-nofpu")
STRICT = ("-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror")
STACK_LIMIT = 1536


# --------------------------------------------------------------------------- the layers

def _sweep_layers():
    rng = np.random.default_rng(SEED)
    out = []
    for i in range(SWEEP):
        ql = random_qlayer(rng, max_hw=24 if i % 3 == 0 else 12)
        out.append((f"random #{i}", ql))
    return out + class_layers() + size_class_layers()


@pytest.fixture(scope="module")
def sweep():
    layers = _sweep_layers()
    kernels = [generate(ql, EmitOptions(name=f"tl{i}", target="cortex-m4",
                                        opt="size" if label.startswith("size: ") else "speed"))
               for i, (label, ql) in enumerate(layers)]
    return layers, kernels


@pytest.fixture(scope="module")
def sweep_m7(sweep):
    """The same layers generated for cortex-m7: tiles in the M7 schedule (dsp_tile.m7_order)."""
    layers, kernels = sweep
    return [generate(ql, EmitOptions(name=k.name, target="cortex-m7", opt=k.options.opt))
            for (_, ql), k in zip(layers, kernels)]


def _for_target(target, kernels, m7_kernels):
    """The kernels a target runs: its own generation (cortex-m7: the M7-scheduled tiles)."""
    return m7_kernels if target == "cortex-m7" else kernels


def test_sweep_covers_every_tile_class(sweep):
    layers, kernels = sweep
    assert all(k.dsp is not None for k in kernels)
    tiled = [k for k in kernels if k.dsp.tile is not None]
    assert len(tiled) >= 0.9 * len(kernels)
    seen = set().union(*(kernel_classes(k) for k in kernels))
    assert REQUIRED <= seen, sorted(REQUIRED - seen)


def test_nofpu_target_gets_the_same_dsp_kernel(sweep):
    """cortex-m4-nofpu is a DSP target: the same kernel, both tile variants in the source (the
    compiler's __ARM_FP picks one)."""
    layers, kernels = sweep
    for (_, ql), k in list(zip(layers, kernels))[::7]:
        n = generate(ql, EmitOptions(name=k.name, target="cortex-m4-nofpu", opt=k.options.opt))
        assert n.dsp is not None and n.dsp.flow == k.dsp.flow
        assert n.c_source.replace("for cortex-m4-nofpu", "for cortex-m4") == k.c_source
        if n.dsp.tile is not None:
            assert "#if defined(__ARM_FP)" in n.c_source and "drop the frame" in n.c_source


def test_host_twin_bit_exact(sweep):
    layers, kernels = sweep
    mod = build(kernels)
    rng = np.random.default_rng(SEED + 1)
    for (label, ql), k in zip(layers, kernels):
        x = ql.random_input(rng)
        assert np.array_equal(mod[k.name](x), reference(ql, x)), (label, k.name, k.dsp.flow, ql.layer)


# --------------------------------------------------------------------------- on the cores

def _compiler(kind):
    from dwgen.toolchain import find_compiler

    try:
        return find_compiler(kind)
    except Exception as exc:  # noqa: BLE001 - the reason is shown
        tool_missing(f"{kind} cross compiler unavailable: {exc}")


_IMAGES: dict = {}


@pytest.fixture(scope="module")
def images(sweep, sweep_m7, tmp_path_factory):
    """target -> (ELF, Emulator) of every sweep kernel, built with arm-none-eabi-gcc (lazily);
    cortex-m7 links the kernels generated for it."""
    Emulator, build_elf = emulator_tools()
    cc = _compiler("gcc")
    src = tmp_path_factory.mktemp("tiles")
    src7 = tmp_path_factory.mktemp("tiles_m7")
    _, kernels = sweep
    for k in kernels:
        k.write(src)
    for k in sweep_m7:
        k.write(src7)

    def get(target):
        if target not in _IMAGES:
            d = src7 if target == "cortex-m7" else src
            elf = build_elf([d / f"{k.name}.c" for k in kernels], target, workdir=d / target, compiler=cc)
            _IMAGES[target] = (elf, Emulator(elf))
        return _IMAGES[target]

    yield get
    _IMAGES.clear()


def _fp_insns(elf, symbol) -> list[str]:
    """Floating-point instructions in a function of the image."""
    import capstone

    s = elf.symbol(symbol)
    code = _read_code(elf, s.addr, s.size)
    cs = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    return [f"{i.mnemonic} {i.op_str}" for i in cs.disasm(code, s.addr) if i.mnemonic.startswith("v")]


def _read_code(elf, addr, size) -> bytes:
    for seg in elf.segments:
        if seg.addr <= addr and addr + size <= seg.addr + len(seg.data):
            return seg.data[addr - seg.addr: addr - seg.addr + size]
    raise AssertionError(f"0x{addr:x} is in no loaded segment")


@pytest.mark.parametrize("target", EMU_TARGETS)
def test_tiles_bit_exact_on_the_emulated_core(target, sweep, sweep_m7, images):
    """Every sweep kernel on the emulated cores; the M7 runs the kernels generated for it, whose
    tile bodies are in the M7 schedule (and differ from the M4 order for most tiles)."""
    layers, kernels = sweep
    kernels = _for_target(target, kernels, sweep_m7)
    elf, emu = images(target)
    fpu = elf.target.has_fpu
    rng = np.random.default_rng(SEED + 2)
    if target == "cortex-m7":
        tiled = [(k, m4) for k, m4 in zip(kernels, sweep[1]) if k.dsp.tile is not None]
        assert all(k.dsp.tile.plan.core == "m7" for k, _ in tiled)
        reordered = [k for k, m4 in tiled if m4.dsp.tile is None or k.dsp.tile.bodies[0].asm_fpu != m4.dsp.tile.bodies[0].asm_fpu]
        assert len(reordered) >= 0.9 * len(tiled), (len(reordered), len(tiled))
        assert REQUIRED <= set().union(*(kernel_classes(k) for k in kernels)), sorted(
            REQUIRED - set().union(*(kernel_classes(k) for k in kernels)))
    for (label, ql), k in zip(layers, kernels):
        if k.dsp.tile is not None:
            # the variant the core calls for: the FPU stash, or the stack frame and no FPU instruction
            fp = _fp_insns(elf, k.dsp.tile.bodies[0].symbol)
            assert bool(fp) == fpu, (target, k.name, fp)
        x = ql.random_input(rng)
        y, st = run_emulated(emu, ql, k.name, x)
        assert np.array_equal(y, reference(ql, x)), (target, label, k.name, k.dsp.flow, ql.layer)
        assert st.stack_bytes <= STACK_LIMIT, (target, label, k.name, st.stack_bytes)


def test_fpu_variant_is_trapped_without_an_fpu(sweep, images):
    """The no-FPU run would catch a kernel that picked the FPU stash: unicorn's M4 model has
    an FPU, so the emulator traps floating-point instructions for cortex-m4-nofpu."""
    from dwgen.emulate import EmulationError, Emulator
    from dwgen.toolchain import get_target

    layers, kernels = sweep
    elf, _ = images("cortex-m4")
    as_nofpu = Emulator(dataclasses.replace(elf, target=get_target("cortex-m4-nofpu")))
    (label, ql), k = next((lk, k) for lk, k in zip(layers, kernels) if k.dsp.tile is not None)
    with pytest.raises(EmulationError, match="floating-point instruction"):
        run_emulated(as_nofpu, ql, k.name, ql.random_input(0))


# ----------------------------------------------------------------- cross builds per class

def _per_class(layers, kernels):
    """One kernel for each class (the first that has it), in sweep order."""
    chosen = {}
    for lk, k in zip(layers, kernels):
        for c in sorted(kernel_classes(k)):
            chosen.setdefault(c, (lk, k))
    out = {}
    for lk, k in chosen.values():
        out[k.name] = (lk, k)
    return list(out.values())


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_cross_builds_per_class_warning_free(cc, sweep, sweep_m7, tmp_path):
    """One kernel per class, for every DSP target (cortex-m7: the same layers generated for it,
    M7-scheduled), built warning-free with both compilers and run where unicorn can."""
    Emulator, build_elf = emulator_tools()
    compiler = _compiler(cc)
    layers, kernels = sweep
    picked = _per_class(layers, kernels)
    assert REQUIRED <= set().union(*(kernel_classes(k) for _, k in picked))
    by_name = {k.name: k for k in sweep_m7}
    picked_m7 = [(lk, by_name[k.name]) for lk, k in picked]
    for _, k in picked:
        k.write(tmp_path)
    (tmp_path / "m7").mkdir()
    for _, k in picked_m7:
        k.write(tmp_path / "m7")
    rng = np.random.default_rng(SEED + 3)
    for target in BUILD_TARGETS:
        chosen = picked_m7 if target == "cortex-m7" else picked
        d = tmp_path / "m7" if target == "cortex-m7" else tmp_path
        sources = [d / f"{k.name}.c" for _, k in chosen]
        elf = build_elf(sources, target, workdir=tmp_path / target, compiler=compiler, extra_cflags=STRICT)
        assert elf.compiler.kind == cc
        assert elf.warnings == "", (cc, target, elf.warnings)
        for (label, ql), k in chosen:
            if k.dsp.tile is not None:
                fp = _fp_insns(elf, k.dsp.tile.bodies[0].symbol)
                assert bool(fp) == elf.target.has_fpu, (cc, target, k.name, fp)
        if elf.target.mve:
            continue  # built only: unicorn has no Helium (the M55 image may use MVE)
        emu = Emulator(elf)
        for (label, ql), k in chosen:
            x = ql.random_input(rng)
            y, _ = run_emulated(emu, ql, k.name, x)
            assert np.array_equal(y, reference(ql, x)), (cc, target, label, k.name, k.dsp.flow)


# ------------------------------------------------------- instructions and cycles per body

_INSN = re.compile(r"^\s+([a-z][a-z0-9.]*)\b")


def _loop_parts(asm: tuple[str, ...], symbol: str, label: str = "loop") -> tuple[list[str], list[str]]:
    """The loop body (label .. first bne) and, for block loops, the row advance (.. next bne)."""
    start = next(i for i, line in enumerate(asm) if line.split("@")[0].strip() == f".L{symbol}_{label}:") + 1
    insns = [line.split("@")[0].strip() for line in asm[start:] if _INSN.match(line)]
    first = next(i for i, ins in enumerate(insns) if ins.startswith("bne "))
    body = insns[: first + 1]
    rest = insns[first + 1:]
    second = next((i for i, ins in enumerate(rest) if ins.startswith("bne ")), None)
    return body, ([] if second is None else rest[: second + 1])


def _weights_and_records(emu, t, nch, w_words, rng, shift):
    """Random weights for `nch` channels and their rq records with right shift `shift`: baked
    words and {bias, multiplier, kq, shift} records, or for an int8-tap tile its int8 taps with
    the shift bytes after them and its shorter records."""
    w8 = t.plan.shape.w8
    shift = 3 if shift is None else shift
    if w8 is None:
        w = emu.alloc_bytes(rng.integers(-2000, 2000, 2 * w_words, dtype=np.int16).astype("<i2").tobytes())
        rq = emu.alloc_bytes(np.array([1234, 1 << 30, 77, shift] * nch, dtype="<i4").tobytes())
        return w, rq
    taps = rng.integers(-128, 128, w8.rshift_offset, dtype=np.int8).tobytes()
    w = emu.alloc_bytes(taps + bytes([shift]) * nch + bytes(4))
    rq = emu.alloc_bytes(np.array([1234, 1 << 30, 77][: w8.record_words] * nch, dtype="<i4").tobytes())
    return w, rq


def _call_tile(emu, t, symbol, n, rng, shift=3, nch=1):
    """Run tile body `symbol` for n units (iterations, or rows of a block loop) on random data;
    a channel loop over `nch` channels, each with right shift `shift`."""
    sh = t.plan.shape
    unit_q = sh.advance_per_call_unit
    q_bytes = n * unit_q + sh.steps * sh.adv_q + 4 * (sh.kh * sh.row_step + max(sh.step.words) + 2)
    d_bytes = n * sh.out_unit + sh.steps * sh.adv_dst + sh.step.width * sh.out_col + 8
    w_words = sh.kh * sh.nwords
    if sh.channels:
        q_bytes += nch * sh.ch_q
        d_bytes += nch * sh.ch_dst
        w_words = nch * sh.w_adv // 4
    emu.reset_heap()
    q = emu.alloc_bytes(rng.integers(-255, 256, q_bytes // 2 + 2, dtype=np.int16).astype("<i2").tobytes())
    dst = emu.alloc(d_bytes)
    w, rq = _weights_and_records(emu, t, nch, w_words, rng, shift)
    if sh.channels:
        return emu.call(symbol, q, dst, w, rq, n, nch)
    return emu.call(symbol, q, dst, w, rq, n)


def _call_plane(emu, t, k, n, rng):
    """Run a "plane" tile over n channels, each with the right shift of its body `k`."""
    sh = t.plan.shape
    q_bytes = n * sh.adv_q + sh.rows * sh.row_q + 4 * (sh.kh * sh.row_step + max(sh.step.words) + 2)
    d_bytes = n * sh.adv_dst + sh.rows * sh.row_dst + sh.step.width * sh.out_col + 8
    emu.reset_heap()
    q = emu.alloc_bytes(rng.integers(-255, 256, q_bytes // 2 + 2, dtype=np.int16).astype("<i2").tobytes())
    dst = emu.alloc(d_bytes)
    w, rq = _weights_and_records(emu, t, n, n * sh.w_adv // 4, rng, t.requants[k].rshift)
    return emu.call(t.bodies[0].symbol, q, dst, w, rq, n)


def test_plane_tiles_per_channel_match_the_plan(sweep, images):
    """"plane" tiles and channel loops (one call for the channels of a group, one body per
    right shift inside): calling for 1 and 3 channels (one row unit each), half the difference
    is one channel through body k; its instructions are exactly the planner's, its M4 cycles
    (FPU stash) within one."""
    from dwgen.dsp_tile import channel_unit_cost, plane_unit_cost

    _, kernels = sweep
    rng = np.random.default_rng(SEED + 5)
    seen = 0
    for target in ("cortex-m4", "cortex-m4-nofpu"):
        _, emu = images(target)
        for kern in kernels:
            t = kern.dsp.tile
            if t is None or not t.channels:
                continue
            assert len(t.bodies) == 1 and not t.dispatch
            for k in range(len(t.requants)):
                cost = plane_unit_cost if t.loop == "plane" else channel_unit_cost
                insns, cycles = cost(t.plan, list(t.requants), k, fpu=target == "cortex-m4")
                if k == 0 and target == "cortex-m4" and t.loop == "plane":
                    assert insns == t.plan.body_insns and cycles == t.plan.body_cycles
                if t.loop == "plane":
                    one = _call_plane(emu, t, k, 1, rng)
                    three = _call_plane(emu, t, k, 3, rng)
                else:
                    shift = t.requants[k].rshift
                    one = _call_tile(emu, t, t.bodies[0].symbol, 1, rng, shift, nch=1)
                    three = _call_tile(emu, t, t.bodies[0].symbol, 1, rng, shift, nch=3)
                assert (three.instructions - one.instructions) / 2 == insns, (target, kern.name, k)
                if target == "cortex-m4":
                    got = (three.cycles().m4_cycles - one.cycles().m4_cycles) / 2
                    assert abs(got - cycles) <= 1, (kern.name, k, got, cycles)
                seen += 1
    assert seen >= 8


def test_instructions_and_cycles_per_iteration_match_the_plan(sweep, images):
    """Calling each tile body for n = 1 and n = 3 units: half the difference is one unit.
    Instructions: exactly TilePlan.body_insns (every body: its own count from its loop lines,
    the first body's from the plan) on both stash variants; M4 cycles (FPU stash): body_cycles."""
    _, kernels = sweep
    rng = np.random.default_rng(SEED + 4)
    checked = set()
    cycle_errors = []
    for target in ("cortex-m4", "cortex-m4-nofpu"):
        _, emu = images(target)
        for k in kernels:
            t = k.dsp.tile
            if t is None or t.loop == "plane":
                continue  # test_plane_tiles_per_channel_match_the_plan
            p = t.plan
            if t.channels:  # one routine, a row loop per right shift
                variants = [(t.bodies[0], f"loop{i}", rq.rshift) for i, rq in enumerate(t.requants)]
            else:
                variants = [(b, "loop", 3) for b in t.bodies]
            first_body, _ = _loop_parts(t.bodies[0].asm_fpu, t.bodies[0].symbol, variants[0][1])
            assert len(first_body) == p.body_insns, (k.name, t.describe)
            for b, label, shift in variants:
                body, row = _loop_parts(b.asm_fpu if target == "cortex-m4" else b.asm_nofpu, b.symbol, label)
                row = row if t.loop == "block" else []  # a channel loop's tail follows a row loop
                body_fpu, _ = _loop_parts(b.asm_fpu, b.symbol, label)
                assert len(body) == len(body_fpu)  # the stash access is one instruction either way
                one = _call_tile(emu, t, b.symbol, 1, rng, shift)
                three = _call_tile(emu, t, b.symbol, 3, rng, shift)
                steps = p.shape.steps if t.loop == "block" else 1
                per_unit = (three.instructions - one.instructions) / 2
                assert per_unit == steps * len(body) + len(row), (target, k.name, b.symbol, t.describe)
                if target != "cortex-m4":
                    continue
                # the requantization variants differ from the first body only by 1-cycle ALU instructions
                want = steps * (p.body_cycles + len(body) - p.body_insns) + p.row_cycles
                got = (three.cycles().m4_cycles - one.cycles().m4_cycles) / 2
                if abs(got - want) > 1:
                    cycle_errors.append((k.name, b.symbol, t.describe, got, want))
                checked.add(t.loop + (" in a channel loop" if t.channels else ""))
    assert checked == {"row", "rows", "block", "rows in a channel loop", "block in a channel loop"}
    assert not cycle_errors, "\n".join(map(str, cycle_errors))
