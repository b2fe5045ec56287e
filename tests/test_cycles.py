"""The cycle model's table, rule by rule, on hand-written Thumb sequences.

Sequences are given as raw Thumb bytes (assembled once with arm-none-eabi-as; the
assembly is next to each one) so these tests need no compiler; `test_bytes_match_asm`
re-assembles them when gas is available.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dwgen.cycles import Decoder, M4Params, estimate, estimate_sequence

from helpers import needs

# name: (hex bytes, assembly, expected M4 cycles)
SEQ = {
    "pipelined_loads": ("016842688368", "ldr r1, [r0]; ldr r2, [r0, #4]; ldr r3, [r0, #8]", 4),
    "load_use_address": ("01680a68", "ldr r1, [r0]; ldr r2, [r1]", 4),
    "load_use_then_indep": ("01680a684368", "ldr r1, [r0]; ldr r2, [r1]; ldr r3, [r0, #4]", 5),
    "alu_then_load_dep": ("04300168", "adds r0, #4; ldr r1, [r0]", 4),
    "alu_then_load_indep": ("04320168", "adds r2, #4; ldr r1, [r0]", 3),
    "alu_then_store_dep": ("00f104000160", "add.w r0, r0, #4; str r1, [r0]", 3),
    "alu_then_store_data": ("04310160", "adds r1, #4; str r1, [r0]", 2),
    "writeback_loads": ("50f8041b50f8042b", "ldr r1, [r0], #4; ldr r2, [r0], #4", 3),
    # an address that was just loaded: a plain LDR only loses pipelining, a store, a
    # write-back load and LDRD also pay the +1 (matches docs/benchmark-layers.md exactly)
    "load_then_store_addr": ("019bcc50", "ldr r3, [sp, #4]; str r4, [r1, r3]", 4),
    "load_then_wb_load": ("036853f8042f", "ldr r3, [r0]; ldr r2, [r3, #4]!", 5),
    "load_then_ldrd": ("0368d3e90045", "ldr r3, [r0]; ldrd r4, r5, [r3]", 6),
    "stores": ("016042704380", "str r1, [r0]; strb r2, [r0, #1]; strh r3, [r0, #2]", 3),
    "ldrd": ("d0e90023", "ldrd r2, r3, [r0]", 3),
    "strd": ("c0e90023", "strd r2, r3, [r0]", 3),
    "ldr_after_ldrd": ("d0e900238168", "ldrd r2, r3, [r0]; ldr r1, [r0, #8]", 5),
    "push5": ("f0b5", "push {r4, r5, r6, r7, lr}", 6),
    "ldm3": ("0ec8", "ldm r0!, {r1, r2, r3}", 4),
    "stmdb2": ("20e90600", "stmdb r0!, {r1, r2}", 3),
    "pop_pc": ("10bd", "pop {r4, pc}", 5),                       # 1+N, + P (taken)
    "it_folded": ("002808bf0121", "cmp r0, #0; it eq; moveq r1, #1", 2),
    "it_not_folded": ("b0f57a7f08bf0121", "cmp.w r0, #1000; it eq; moveq r1, #1", 3),
    "sdiv": ("91fbf2f0", "sdiv r0, r1, r2", 7),
    "udiv": ("b1fbf2f0", "udiv r0, r1, r2", 7),
    "dsp": ("21fb020081fb0234c1fb0234a1fb02342ffa81f525fa91f5c1ea024621f3c70751fb1230"
            "01fb020001fb120011fb020081fa80f090fa01f080b2",
            "smlad r0, r1, r2, r0; smull r3, r4, r1, r2; smlal r3, r4, r1, r2; "
            "umull r3, r4, r1, r2; sxtb16 r5, r1; sxtab16 r5, r5, r1, ror #8; "
            "pkhbt r6, r1, r2, lsl #16; ssat r7, #8, r1, asr #3; smmlar r0, r1, r2, r3; "
            "mla r0, r1, r2, r0; mls r0, r1, r2, r0; smlabb r0, r1, r2, r0; qadd r0, r0, r1; "
            "sadd16 r0, r0, r1; uxth r0, r0", 15),
    "mixed": ("016842688b18836000f10c000168",
              "ldr r1, [r0]; ldr r2, [r0, #4]; adds r3, r1, r2; str r3, [r0, #8]; "
              "add.w r0, r0, #12; ldr r1, [r0]", 9),
    "b_uncond": ("fee7", "b .", 3),
    "bl": ("fff7feff", "bl .", 3),
    "bx_lr": ("7047", "bx lr", 3),
    "tbb": ("dfe801f0", "tbb [pc, r1]", 4),
}


@pytest.mark.parametrize("name", sorted(SEQ))
def test_m4_table(name):
    hx, asm, want = SEQ[name]
    est = estimate_sequence(bytes.fromhex(hx))
    assert est.m4_cycles == want, f"{asm}: {est.m4_cycles} cycles, expected {want}"
    assert est.instructions == len(asm.split(";"))


def test_dsp_and_long_multiplies_are_single_cycle():
    hx, asm, _ = SEQ["dsp"]
    est = estimate_sequence(bytes.fromhex(hx))
    assert est.m4_cycles == est.instructions == 15
    # SMLAD SMMLAR SMLABB | MUL-type: SMULL SMLAL UMULL MLA MLS | SXTB16 SXTAB16 PKHBT
    # SADD16 | SSAT QADD | UXTH
    assert est.classes == {"dsp_mac": 3, "mul": 5, "simd": 4, "sat": 2, "extend": 1}


def test_conditional_branch_taken_and_not_taken():
    bne = bytes.fromhex("fed1")                    # bne .
    assert estimate_sequence(bne, taken=False).m4_cycles == 1
    assert estimate_sequence(bne, taken=True).m4_cycles == 3            # 1 + P
    assert estimate_sequence(bne).branches_not_taken == 1
    cbz = bytes.fromhex("38b1")                    # cbz r0, <forward>
    assert estimate_sequence(cbz, taken=True).m4_cycles == 3
    assert estimate_sequence(cbz, taken=False).m4_cycles == 1
    # a refill of 3 instead of 2
    assert estimate_sequence(bne, taken=True, params=M4Params(P=3)).m4_cycles == 4


def test_loop_edges():
    """subs/bne loop entered once, taken twice, falling through once, then bx lr."""
    loop = bytes.fromhex("0138fcd1")              # 0x100: subs r0, #1 ; bne 0x100
    ret = bytes.fromhex("7047")                   # 0x104: bx lr
    blocks = {0x100: loop, 0x104: ret}
    edges = {(-1, 0x100): 1, (0x100, 0x100): 2, (0x100, 0x104): 1, (0x104, 0x1000): 1}
    est = estimate(blocks, edges, return_addr=0x1000)
    # 3 x (subs 1 + bne 1) + 2 taken x P + bx (1 + P)
    assert est.m4_cycles == 6 + 4 + 3
    assert est.instructions == 7
    assert (est.branches_taken, est.branches_not_taken) == (3, 1)
    assert est.classes == {"alu": 3, "branch": 4}


def test_cross_block_context():
    """The first instruction of a block sees the last one of the block before it."""
    a = bytes.fromhex("0168")                     # 0x200: ldr r1, [r0]     (block A)
    b = bytes.fromhex("4268")                     # 0x202: ldr r2, [r0, #4] (block B)
    # entered from A (fall-through, e.g. a page-boundary split): pipelined, 2 + 1
    est = estimate({0x200: a, 0x202: b}, {(-1, 0x200): 1, (0x200, 0x202): 1})
    assert est.m4_cycles == 3
    # IT after a 16-bit instruction in the previous block is folded
    c = bytes.fromhex("0028")                     # cmp r0, #0
    d = bytes.fromhex("08bf0121")                 # it eq ; moveq r1, #1
    est = estimate({0x300: c, 0x302: d}, {(-1, 0x300): 1, (0x300, 0x302): 1})
    assert est.m4_cycles == 2
    # at function entry (no previous instruction) the IT costs its cycle
    assert estimate({0x302: d}, {(-1, 0x302): 1}).m4_cycles == 2


def test_m7_rough_model():
    def m7(hx):
        return estimate_sequence(bytes.fromhex(hx)).m7_cycles
    assert m7("01300131") == 1          # adds r0 ; adds r1: independent ALU ops pair
    assert m7("01300130") == 2          # dependent: no pairing
    assert m7("01684268") == 1          # two independent loads: two load ports
    assert m7("21fb020021fb0233") == 2  # two SMLADs: one MAC unit
    assert m7("21fb02000133") == 1      # SMLAD then an independent ADD pair
    assert m7("21fb020024fb050026fb0700") == 3   # MAC chain on one accumulator: 1/cycle
    assert m7("01680131") == 2          # load then use: no stall with the default latency
    assert estimate_sequence(bytes.fromhex("01680131"),
                             params=M4Params(m7_load_lat=2)).m7_cycles == 3
    assert m7("f0b5") == 3              # push of 5 registers: ceil(5/2) on the 64-bit bus


def test_m7_issue_rules():
    """The M7 model's pairing rules and latencies (dwgen/cycles.py, "Cortex-M7 model"), one
    assembled pair each."""
    def m7(hx):
        return estimate_sequence(bytes.fromhex(hx)).m7_cycles
    assert m7("03f3070201f10100") == 1  # ssat ; add: a DSP op as the older of a pair
    assert m7("01f1010003f30702") == 2  # add ; ssat: DSP ops never issue as the younger
    assert m7("23fb045281f80060") == 2  # smlad ; strb: no store beside a multiply
    assert m7("d0f8003003eb0402") == 2  # ldr ; add of it: word load, 1 cycle
    assert m7("90f8003003eb0402") == 3  # ldrb ; add of it: byte loads 1 cycle later
    assert m7("d0f8003023fb0452") == 3  # ldr ; smlad multiplying it: MACs read early (+1)
    assert m7("14ee107a23fb0452") == 1  # vmov r7, s8 ; independent smlad: a transfer pairs
    assert m7("14ee107a14ee908a") == 2  # two VMOVs from S registers: one per cycle
    assert m7("01ee907a11ee908a") == 4  # vmov s3, r7 ; vmov r8, s3: 3 cycles to the S register
    assert m7("23fb045202f10106") == 3  # smlad ; add of its result: MAC latency 2
    assert m7("03f3070281f80020") == 2  # ssat ; strb of it: a store takes the result next cycle
    assert m7("03eb040206ebe77509eb8a08") == 2  # two inline shifts never share a cycle
    assert m7("c3ea044226fa87f5") == 2  # pkhbt ; sxtab16: two DSP ops never pair
    assert m7("40f2d243c1f22e63") == 1  # movw ; movt of the same register pair (measured)


def test_m7_split_block_continues_its_run():
    """A block the emulator split without a branch (QEMU stops translation blocks at 1 KB pages)
    is costed as the continuation of its predecessor's run, not from an empty pipeline."""
    code = bytes.fromhex("01300131" "01300131")  # adds r0 ; adds r1 ; adds r0 ; adds r1
    whole = estimate({0x100: code}, {(-1, 0x100): 1}).m7_cycles
    split = estimate({0x100: code[:6], 0x106: code[6:]}, {(-1, 0x100): 1, (0x100, 0x106): 1}).m7_cycles
    assert whole == split == 2


def test_m0_model():
    def m0(hx, **kw):
        return estimate_sequence(bytes.fromhex(hx), **kw).m0_cycles
    assert m0("016842688368") == 6      # no load pipelining on ARMv6-M
    assert m0("016042704380") == 6      # stores take 2
    assert m0("fff7feff") == 4          # BL
    assert m0("fed1", taken=True) == 3
    assert m0("10bd") == 5              # pop {r4, pc}: 1 + N + P


def test_decoder_register_sets():
    ins = Decoder().decode(bytes.fromhex("50f8041b"))[0]          # ldr r1, [r0], #4
    assert ins.cls == "load" and ins.dests == {"r1"} and ins.addr_regs == {"r0"}
    ins = Decoder().decode(bytes.fromhex("0ec8"))[0]              # ldm r0!, {r1-r3}
    assert ins.nregs == 3 and ins.dests == {"r1", "r2", "r3"} and "r0" in ins.addr_regs
    ins = Decoder().decode(bytes.fromhex("c1ea0246"))[0]          # pkhbt r6, r1, r2, lsl #16
    assert ins.reads >= {"r1", "r2"}                              # capstone misses r2
    ins = Decoder().decode(bytes.fromhex("21f3c707"))[0]          # ssat r7, #8, r1, asr #3
    assert "r1" in ins.reads
    with pytest.raises(ValueError):
        Decoder().decode(bytes.fromhex("ffff"))


@needs(shutil.which("arm-none-eabi-as") is not None, "arm-none-eabi-as not on PATH")
def test_bytes_match_asm(tmp_path):
    from elftools.elf.elffile import ELFFile
    for name, (hx, asm, _) in SEQ.items():
        if name in ("b_uncond", "bl"):
            continue                            # branch-to-self forms: relocations in a .o
        src = tmp_path / f"{name}.s"
        src.write_text(".syntax unified\n.thumb\n" + asm.replace(";", "\n") + "\n")
        obj = tmp_path / f"{name}.o"
        subprocess.run(["arm-none-eabi-as", "-mcpu=cortex-m4", str(src), "-o", str(obj)],
                       check=True)
        with open(obj, "rb") as f:
            code = ELFFile(f).get_section_by_name(".text").data()
        assert code[: len(hx) // 2].hex() == hx, name


# ------------------------------------------------------------ baseline reproduction
# Optional: with DWGEN_CMSIS_NN_DIR=/path/to/CMSIS-NN (commit 99f736a, as in
# docs/benchmark-layers.md) and arm-none-eabi-gcc with newlib, re-measure three baseline
# layers (3x3, _s8_opt and the generic kernel) and check the method reproduces the table.

CMSIS_HARNESS = r"""
#include "arm_nnfunctions.h"
int32_t run_dw(const int8_t *in, const int8_t *w, const int32_t *bias, int32_t *mult,
               int32_t *shift, int8_t *out, const int32_t *g, void *buf, int32_t bufsize) {
    cmsis_nn_context ctx = {buf, bufsize};
    cmsis_nn_dw_conv_params p = {-g[9], g[10], g[15], {g[6], g[5]}, {g[8], g[7]},
                                 {g[16], g[16]}, {g[11], g[12]}};
    cmsis_nn_per_channel_quant_params q = {mult, shift};
    int32_t oc = g[2] * g[15];
    cmsis_nn_dims id = {1, g[0], g[1], g[2]}, fd = {1, g[3], g[4], oc}, bd = {1, 1, 1, oc},
                  od = {1, g[13], g[14], oc};
    return arm_depthwise_conv_wrapper_s8(&ctx, &p, &q, &id, in, &fd, w, &bd, bias, &od, out);
}
"""
# H W C KH KW sh sw ph pw in_zp out_zp act_min act_max OH OW M dil | instructions, M4 cycles
BASELINE = {
    0: ((25, 5, 64, 3, 3, 1, 1, 1, 1, -127, 117, -128, 127, 25, 5, 1, 1), 560979, 646891),
    13: ((1, 64, 32, 1, 5, 1, 1, 0, 2, 93, 42, 42, 121, 1, 64, 1, 1), 178546, 215446),
    14: ((10, 10, 3, 3, 3, 2, 2, 0, 0, 115, -95, -128, 127, 4, 4, 4, 1), 20578, 26270),
}


@pytest.mark.skipif(not __import__("os").environ.get("DWGEN_CMSIS_NN_DIR")
                    or shutil.which("arm-none-eabi-gcc") is None,
                    reason="set DWGEN_CMSIS_NN_DIR to a CMSIS-NN checkout (and install gcc) to "
                           "re-measure the baseline")
def test_reproduces_cmsis_nn_baseline(tmp_path):
    import os
    from pathlib import Path

    import numpy as np

    from dwgen.emulate import Emulator
    from dwgen.toolchain import build_elf

    root = Path(os.environ["DWGEN_CMSIS_NN_DIR"])
    (tmp_path / "harness.c").write_text(CMSIS_HARNESS)
    conv = root / "Source" / "ConvolutionFunctions"
    sup = root / "Source" / "NNSupportFunctions"
    srcs = [tmp_path / "harness.c"] + [conv / f"{n}.c" for n in (
        "arm_depthwise_conv_wrapper_s8", "arm_depthwise_conv_3x3_s8", "arm_depthwise_conv_s8",
        "arm_depthwise_conv_s8_opt", "arm_depthwise_conv_get_buffer_sizes_s8")] + \
        [sup / f"{n}.c" for n in ("arm_nn_depthwise_conv_nt_t_s8",
                                  "arm_nn_depthwise_conv_nt_t_padded_s8",
                                  "arm_q7_to_q15_with_offset")]
    elf = build_elf(srcs, "cortex-m4", "O2", include_dirs=[root / "Include"], compiler="gcc",
                    keep=["run_dw"], newlib=True)
    emu = Emulator(elf)
    rng = np.random.default_rng(0)
    d_insn, d_cyc = set(), []
    for g, insn, cyc in BASELINE.values():
        H, W, C, KH, KW = g[:5]
        OH, OW, M = g[13:16]
        emu.reset_heap()
        arrays = (rng.integers(-128, 128, H * W * C, dtype=np.int8),
                  rng.integers(-127, 128, KH * KW * C * M, dtype=np.int8),
                  rng.integers(-5000, 5000, C * M, dtype=np.int32),
                  rng.integers(1 << 30, (1 << 31) - 1, C * M, dtype=np.int32),
                  rng.integers(-10, -6, C * M, dtype=np.int32))
        ptrs = [emu.alloc_bytes(a) for a in arrays]
        out = emu.alloc(OH * OW * C * M)
        st = emu.call("run_dw", *ptrs, out, emu.alloc_bytes(np.array(g, dtype=np.int32)),
                      emu.alloc(8192), 8192)
        assert st.ret == 0
        d_insn.add(st.instructions - insn)
        d_cyc.append(st.cycles().m4_cycles - cyc)
    # the same harness overhead on every layer, i.e. the kernels' own counts are identical
    assert len(d_insn) == 1 and 0 <= d_insn.pop() <= 60
    assert max(d_cyc) - min(d_cyc) <= 4 and 0 <= min(d_cyc) <= 90
