"""`dwgen bench --cmsis-nn DIR`: the user's CMSIS-NN, built and run like dwgen's kernels.

The depthwise sources of the checkout in DIR (`Include/`, `Source/`) are compiled with
the same compiler and flags as dwgen's kernels, together with a small harness of
dwgen's own that calls `arm_depthwise_conv_wrapper_s8` with a scratch buffer of the
size `arm_depthwise_conv_wrapper_s8_get_buffer_size` asks for. Every output is checked
against the reference model, exactly like dwgen's.
"""

from __future__ import annotations

import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DwgenError
from .qlayer import QuantizedLayer

# The wrapper and what it dispatches to; further files are found by the symbols they define.
_ENTRY_SOURCES = (
    "ConvolutionFunctions/arm_depthwise_conv_wrapper_s8.c",
    "ConvolutionFunctions/arm_depthwise_conv_get_buffer_sizes_s8.c",
)
_MAX_RESOLVE_ROUNDS = 8

HARNESS = r"""
/* dwgen's harness for arm_depthwise_conv_wrapper_s8: one argument block, filled by the host. */
#include "arm_nnfunctions.h"

struct dwgen_cmsis_call {
    cmsis_nn_dw_conv_params params;
    cmsis_nn_dims input_dims, filter_dims, bias_dims, output_dims;
    const int8_t *input;
    const int8_t *filter;
    const int32_t *bias;
    int32_t *multiplier;
    int32_t *shift;
    int8_t *output;
    void *buffer;
    int32_t buffer_size;
};

int32_t dwgen_cmsis_nn_buffer_size(const struct dwgen_cmsis_call *c)
{
    return arm_depthwise_conv_wrapper_s8_get_buffer_size(&c->params, &c->input_dims, &c->filter_dims, &c->output_dims);
}

int32_t dwgen_cmsis_nn_run(const struct dwgen_cmsis_call *c)
{
    cmsis_nn_context ctx;
    cmsis_nn_per_channel_quant_params quant;
    ctx.buf = c->buffer;
    ctx.size = c->buffer_size;
    quant.multiplier = c->multiplier;
    quant.shift = c->shift;
    return (int32_t)arm_depthwise_conv_wrapper_s8(&ctx, &c->params, &quant, &c->input_dims, c->input, &c->filter_dims,
                                                  c->filter, &c->bias_dims, c->bias, &c->output_dims, c->output);
}
"""


@dataclass
class CmsisRun:
    output: np.ndarray
    instructions: int
    cycles_m4: int
    cycles_m7: int
    stack_bytes: int
    scratch_bytes: int
    macs: int
    status: int

    @property
    def cycles_per_mac(self) -> float:
        return self.cycles_m4 / self.macs


def _check_dir(root: Path) -> Path:
    root = Path(root)
    if not (root / "Include" / "arm_nnfunctions.h").is_file() or not (root / "Source").is_dir():
        raise DwgenError(
            f"--cmsis-nn {root}: not a CMSIS-NN checkout (expected Include/arm_nnfunctions.h and Source/)"
        )
    return root


def _candidate_sources(root: Path) -> list[Path]:
    return sorted(p for p in (root / "Source").rglob("*.c") if not re.search(r"_f(16|32)\.c$", p.name))


def _defines(path: Path, symbol: str) -> bool:
    text = path.read_text(errors="replace")
    return re.search(rf"^[A-Za-z_][\w \t\*]*\b{re.escape(symbol)}\s*\([^;]*$", text, re.M) is not None


def select_sources(root: Path, compile_and_list_undefined) -> list[Path]:
    """The entry sources plus every file that defines a symbol they (transitively) need."""
    root = _check_dir(root)
    chosen = [root / "Source" / s for s in _ENTRY_SOURCES]
    for s in chosen:
        if not s.is_file():
            raise DwgenError(f"--cmsis-nn {root}: {s.relative_to(root)} is missing (CMSIS-NN v4 or newer is needed)")
    candidates = _candidate_sources(root)
    for _ in range(_MAX_RESOLVE_ROUNDS):
        missing = compile_and_list_undefined(chosen)
        added = False
        for sym in sorted(missing):
            for cand in candidates:
                if cand not in chosen and _defines(cand, sym):
                    chosen.append(cand)
                    added = True
                    break
        if not added:
            break
    return chosen


class CmsisBuild:
    """CMSIS-NN's depthwise wrapper, cross-compiled for `target` and run in the emulator."""

    def __init__(self, root: str | Path, target: str, opt: str = "O2", compiler: str | None = None):
        from .emulate import Emulator
        from .toolchain import build_elf, find_compiler

        self.root = _check_dir(Path(root))
        cc = find_compiler(compiler)
        include = [self.root / "Include"]

        with tempfile.TemporaryDirectory(prefix="dwgen-cmsis-") as tmp:
            d = Path(tmp)
            harness = d / "dwgen_cmsis_harness.c"
            harness.write_text(HARNESS)

            # newlib's memcpy/memset, as a real firmware build (and docs/benchmark-layers.md) has them
            libc = {"newlib": cc.kind == "gcc", "keep": ["dwgen_cmsis_nn_run", "dwgen_cmsis_nn_buffer_size"]}

            def undefined(sources: Sequence[Path]) -> set[str]:
                try:
                    build_elf([harness, *sources], target, opt, include_dirs=include, compiler=cc,
                              workdir=d / "probe", **libc)
                except DwgenError as exc:
                    return set(re.findall(r"undefined reference to [`'](\w+)'", str(exc)))
                return set()

            (d / "probe").mkdir()
            sources = select_sources(self.root, undefined)
            self.sources = sources
            (d / "final").mkdir()
            self.elf = build_elf([harness, *sources], target, opt, include_dirs=include, compiler=cc,
                                 workdir=d / "final", **libc)
        self.emulator = Emulator(self.elf)
        self.flash = sum(self.elf.object_sizes(str(s)).flash for s in sources)

    def run(self, ql: QuantizedLayer, x: np.ndarray) -> CmsisRun:
        g, q = ql.geometry, ql.quant
        if g.channels_first:
            raise DwgenError("CMSIS-NN has no NCHW depthwise convolution")
        emu = self.emulator
        emu.reset_heap()
        x = np.ascontiguousarray(ql.check_input(x))
        a_in = emu.alloc_bytes(x.tobytes(), name="input")
        a_f = emu.alloc_bytes(np.ascontiguousarray(ql.weights).tobytes(), name="filter")
        a_b = emu.alloc_bytes(np.asarray(ql.bias, dtype="<i4").tobytes(), name="bias")
        a_m = emu.alloc_bytes(np.asarray(q.multipliers, dtype="<i4").tobytes(), name="multiplier")
        a_s = emu.alloc_bytes(np.asarray(q.shifts, dtype="<i4").tobytes(), name="shift")
        a_out = emu.alloc(g.output_size, name="output")

        def block(buf: int, size: int) -> bytes:
            return struct.pack(
                "<3i2i2i2i2i" + "4i" * 4 + "6I" + "Ii",
                -q.input_zero_point, q.output_zero_point, g.depth_multiplier,
                g.stride_w, g.stride_h, g.pad_left, g.pad_top, g.dilation_w, g.dilation_h,
                ql.act_min, ql.act_max,
                g.batch, g.in_h, g.in_w, g.in_c,
                1, g.kernel_h, g.kernel_w, g.out_c,
                1, 1, 1, g.out_c,
                g.batch, g.out_h, g.out_w, g.out_c,
                a_in, a_f, a_b, a_m, a_s, a_out, buf, size,
            )

        args = emu.alloc_bytes(block(0, 0), name="call")
        size = emu.call("dwgen_cmsis_nn_buffer_size", args).ret_signed
        buf = emu.alloc(max(size, 4), name="scratch") if size > 0 else 0
        emu.write(args, block(buf, size))
        st = emu.call("dwgen_cmsis_nn_run", args)
        if st.ret_signed != 0:
            raise DwgenError(f"arm_depthwise_conv_wrapper_s8 returned {st.ret_signed} for this layer")
        out = emu.read_array(a_out, g.output_size).reshape(g.output_shape)
        est = st.cycles()
        return CmsisRun(out, st.instructions, est.m4_cycles, est.m7_cycles, st.stack_bytes, max(size, 0),
                        g.macs, st.ret_signed)


__all__ = ["CmsisBuild", "CmsisRun", "HARNESS", "select_sources"]
