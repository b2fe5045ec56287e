"""Shared test helpers: seeded random layers covering everything the generator handles."""

from __future__ import annotations

import os

import numpy as np
import pytest

import dwgen
from dwgen.layer import DepthwiseLayer

ACTIVATIONS = ("none", "relu", "relu6", "relu_n1_to_1")


def random_qlayer(
    rng: np.random.Generator,
    *,
    max_kernel: int = 5,
    max_stride: int = 3,
    max_dilation: int = 3,
    max_m: int = 4,
    max_c: int = 12,
    max_hw: int = 12,
    rounding: str | None = None,
    data_format: str | None = None,
    rank: int | None = None,
    tiny: bool = False,
) -> dwgen.QuantizedLayer:
    """A random valid layer with int8 weights; scales give both shift directions."""
    rank = rank if rank is not None else (1 if rng.random() < 0.15 else 2)
    kh = 1 if rank == 1 else int(rng.integers(1, max_kernel + 1))
    kw = int(rng.integers(1, max_kernel + 1))
    sh = 1 if rank == 1 else int(rng.integers(1, max_stride + 1))
    sw = int(rng.integers(1, max_stride + 1))
    dh = 1 if rank == 1 else int(rng.integers(1, max_dilation + 1))
    dw = int(rng.integers(1, max_dilation + 1))
    padding = str(rng.choice(["same", "valid"]))
    if tiny:
        padding = "same"
    fmt = data_format or str(rng.choice(["channels_last", "channels_first"]))
    m = int(rng.integers(1, max_m + 1))
    c = int(rng.integers(1, max_c + 1))
    act = str(rng.choice(ACTIVATIONS))
    layer = DepthwiseLayer((kh, kw), (sh, sw), padding, m, fmt, (dh, dw), act, bool(rng.random() < 0.9), rank)
    h = 1 if rank == 1 else int(rng.integers(1, (3 if tiny else max_hw) + 1))
    w = int(rng.integers(1, (3 if tiny else max_hw) + 1))
    if padding == "valid":
        h = max(h, (kh - 1) * dh + 1)
        w = max(w, (kw - 1) * dw + 1)
    n = int(rng.integers(1, 3))
    if rank == 1:
        shape = (n, c, w) if fmt == "channels_first" else (n, w, c)
    else:
        shape = (n, c, h, w) if fmt == "channels_first" else (n, h, w, c)
    oc = c * m
    per_channel = rng.random() < 0.8
    wscales = rng.uniform(0.002, 0.05, oc if per_channel else 1)
    in_scale = float(rng.uniform(0.005, 0.1))
    # Output scales from much smaller than in*w (left shifts) to much larger (right shifts).
    out_scale = float(in_scale * wscales.mean() * 2.0 ** rng.uniform(-3, 12))
    q = dwgen.Quantization.from_scales(
        in_scale, int(rng.integers(-128, 128)), wscales, out_scale, int(rng.integers(-128, 128)),
        oc, rounding=rounding or "double",
    )
    weights = rng.integers(-127, 128, (kh, kw, c, m))
    bias = rng.integers(-30000, 30000, oc) if layer.use_bias else None
    return dwgen.QuantizedLayer.create(layer, shape, q, weights, bias)


# -- missing tools -------------------------------------------------------------------------------
#: Under CI (or with DWGEN_REQUIRE_TOOLS set) a missing compiler, emulator or QEMU is a failure:
#: .ci/run installs them, so a skip there would hide a broken install step.
REQUIRE_TOOLS = bool(
    os.environ.get("CI") or os.environ.get("DWGEN_REQUIRE_TOOLS") or os.environ.get("DWGEN_REQUIRE_FIRMWARE")
)


def tool_missing(why: str) -> None:
    """Skip a test whose tool is missing on a developer machine; fail it under CI."""
    if REQUIRE_TOOLS:
        pytest.fail(f"{why}; CI installs it, so this test must run, not skip")
    pytest.skip(why)


def needs(available: bool, why: str):
    """A skipif marker that never skips under CI (the test then fails on the missing tool)."""
    return pytest.mark.skipif(not available and not REQUIRE_TOOLS, reason=why)


_WRITER: list = []


def tflite_writer():
    """test_tflite_model.py, whose `write_tflite` builds hand-made (and hostile) models;
    loaded once by file path, as pytest does not make the tests a package."""
    if not _WRITER:
        import importlib.util
        from pathlib import Path

        spec = importlib.util.spec_from_file_location("_dwgen_tflite_writer", Path(__file__).with_name("test_tflite_model.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _WRITER.append(mod)
    return _WRITER[0]


def emulator_tools():
    """(Emulator, build_elf), or a skip/failure (tool_missing) when the cross toolchain or
    unicorn is not there."""
    try:
        from dwgen.emulate import Emulator
        from dwgen.toolchain import build_elf, find_compiler
        find_compiler()
    except Exception as exc:  # toolchain or emulator missing
        tool_missing(f"cross toolchain / emulator unavailable: {exc}")
    return Emulator, build_elf


def run_emulated(emu, ql, name: str, x):
    """Kernel `name` of the emulator's image on input `x`: (output array, RunStats)."""
    g = ql.geometry
    emu.reset_heap()
    xa = emu.alloc_bytes(x.tobytes(), name="input")
    ya = emu.alloc(g.output_size, name="output")
    st = emu.call(name, xa, ya)
    return emu.read_array(ya, g.output_size).reshape(g.output_shape), st


# -- a stand-in for CMSIS-NN ----------------------------------------------------------------
# A stand-in for a CMSIS-NN checkout (test_bench.py, test_tflm.py): the documented types and wrapper signature, with a
# straightforward depthwise loop behind it split over two files (so the source resolver
# has to find the second one by the symbol it defines) and a scratch-size query.
FAKE_TYPES = """
#ifndef ARM_NN_TYPES_H
#define ARM_NN_TYPES_H
#include <stdint.h>
#include <stdbool.h>
typedef enum { ARM_CMSIS_NN_SUCCESS = 0, ARM_CMSIS_NN_ARG_ERROR = -1 } arm_cmsis_nn_status;
typedef struct { int32_t w; int32_t h; } cmsis_nn_tile;
typedef struct { void *buf; int32_t size; } cmsis_nn_context;
typedef struct { int32_t n; int32_t h; int32_t w; int32_t c; } cmsis_nn_dims;
typedef struct { int32_t *multiplier; int32_t *shift; } cmsis_nn_per_channel_quant_params;
typedef struct { int32_t min; int32_t max; } cmsis_nn_activation;
typedef struct { int32_t input_offset; int32_t output_offset; int32_t ch_mult; cmsis_nn_tile stride;
                 cmsis_nn_tile padding; cmsis_nn_tile dilation; cmsis_nn_activation activation; }
    cmsis_nn_dw_conv_params;
#endif
"""
FAKE_FUNCTIONS = """
#include "arm_nn_types.h"
arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(const cmsis_nn_context *ctx, const cmsis_nn_dw_conv_params *p,
    const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in, const cmsis_nn_dims *fd,
    const int8_t *f, const cmsis_nn_dims *bd, const int32_t *b, const cmsis_nn_dims *od, int8_t *out);
int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size(const cmsis_nn_dw_conv_params *p, const cmsis_nn_dims *id,
    const cmsis_nn_dims *fd, const cmsis_nn_dims *od);
int32_t fake_requantize(int32_t acc, int32_t mult, int32_t shift);
"""
FAKE_WRAPPER = """
#include <stddef.h>
#include "arm_nnfunctions.h"
int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size(const cmsis_nn_dw_conv_params *p, const cmsis_nn_dims *id,
    const cmsis_nn_dims *fd, const cmsis_nn_dims *od) { (void)p; (void)fd; (void)od; return id->c * 4; }
arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(const cmsis_nn_context *ctx, const cmsis_nn_dw_conv_params *p,
    const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in, const cmsis_nn_dims *fd,
    const int8_t *f, const cmsis_nn_dims *bd, const int32_t *b, const cmsis_nn_dims *od, int8_t *out)
{
    int n, y, x, c, m, ky, kx;
    (void)bd;
    if (ctx->size < id->c * 4) return ARM_CMSIS_NN_ARG_ERROR;
    for (n = 0; n < id->n; n++) for (y = 0; y < od->h; y++) for (x = 0; x < od->w; x++)
    for (c = 0; c < id->c; c++) for (m = 0; m < p->ch_mult; m++) {
        const int oc = c * p->ch_mult + m;
        int32_t acc = b != NULL ? b[oc] : 0, v; /* CMSIS-NN takes a NULL bias */
        for (ky = 0; ky < fd->h; ky++) for (kx = 0; kx < fd->w; kx++) {
            const int iy = y * p->stride.h - p->padding.h + ky * p->dilation.h;
            const int ix = x * p->stride.w - p->padding.w + kx * p->dilation.w;
            if (iy >= 0 && iy < id->h && ix >= 0 && ix < id->w)
                acc += f[(ky * fd->w + kx) * od->c + oc] * (in[((n * id->h + iy) * id->w + ix) * id->c + c] + p->input_offset);
        }
        v = fake_requantize(acc, q->multiplier[oc], q->shift[oc]) + p->output_offset;
        v = v < p->activation.min ? p->activation.min : v > p->activation.max ? p->activation.max : v;
        out[((n * od->h + y) * od->w + x) * od->c + oc] = (int8_t)v;
    }
    return ARM_CMSIS_NN_SUCCESS;
}
"""
FAKE_SUPPORT = """
#include "arm_nnfunctions.h"
int32_t fake_requantize(int32_t acc, int32_t mult, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    const int64_t p = (int64_t)(int32_t)((uint32_t)acc << left) * mult;
    const int32_t hi = (int32_t)((p + (p >= 0 ? (1 << 30) : 1 - (1 << 30))) / ((int64_t)1 << 31));
    const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
    return (hi >> right) + ((hi & mask) > (mask >> 1) + (hi < 0));
}
"""
