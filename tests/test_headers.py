"""What a kernel's header and source tell firmware: restrict parameters that C++ accepts, the
#error of a DSP kernel compiled for a core without the DSP extension, and the --cmsis-nn-api
header together with CMSIS-NN's own headers in either include order."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dwgen.codegen import EmitOptions, generate
from dwgen.suite import suite_layers
from helpers import tool_missing

KWS = suite_layers()[0][1]

# A stand-in for CMSIS-NN's arm_nn_types.h and arm_nnfunctions.h: the include guard and the
# types the wrapper signature uses, declared once (a second declaration would not compile).
STAND_IN_TYPES = """#ifndef ARM_NN_TYPES_H
#define ARM_NN_TYPES_H
#include <stdint.h>
typedef enum { ARM_CMSIS_NN_SUCCESS = 0, ARM_CMSIS_NN_ARG_ERROR = -1, ARM_CMSIS_NN_NO_IMPL_ERROR = -2 } arm_cmsis_nn_status;
typedef struct { int32_t w; int32_t h; } cmsis_nn_tile;
typedef struct { int32_t min; int32_t max; } cmsis_nn_activation;
typedef struct { int32_t n; int32_t h; int32_t w; int32_t c; } cmsis_nn_dims;
typedef struct { void *buf; int32_t size; } cmsis_nn_context;
typedef struct { int32_t input_offset; int32_t output_offset; int32_t ch_mult; cmsis_nn_tile stride;
                 cmsis_nn_tile padding; cmsis_nn_tile dilation; cmsis_nn_activation activation; } cmsis_nn_dw_conv_params;
typedef struct { int32_t *multiplier; int32_t *shift; } cmsis_nn_per_channel_quant_params;
#endif
"""
STAND_IN_FUNCTIONS = """#ifndef ARM_NNFUNCTIONS_H
#define ARM_NNFUNCTIONS_H
#include "arm_nn_types.h"
arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(const cmsis_nn_context *ctx, const cmsis_nn_dw_conv_params *p,
    const cmsis_nn_per_channel_quant_params *q, const cmsis_nn_dims *id, const int8_t *in, const cmsis_nn_dims *fd,
    const int8_t *f, const cmsis_nn_dims *bd, const int32_t *b, const cmsis_nn_dims *od, int8_t *out);
#endif
"""


def _host_cc(name: str) -> str:
    if shutil.which(name) is None:
        tool_missing(f"{name} is not installed")
    return name


def test_header_compiles_as_c_and_cpp(tmp_path):
    k = generate(KWS, EmitOptions(name="kws", target="cortex-m4"))
    k.write(tmp_path)
    assert "void kws(const int8_t *DWGEN_RESTRICT input, int8_t *DWGEN_RESTRICT output);" in k.h_source
    (tmp_path / "use.c").write_text('#include "kws.h"\nvoid f(const int8_t *a, int8_t *b) { kws(a, b); }\n')
    (tmp_path / "use.cc").write_text('#include "kws.h"\nvoid f(const int8_t *a, int8_t *b) { kws(a, b); }\n')
    for cc, src, std in ((_host_cc("gcc"), "use.c", "-std=c99"), (_host_cc("g++"), "use.cc", "-std=c++11")):
        res = subprocess.run([cc, std, "-pedantic", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", src],
                             cwd=tmp_path, capture_output=True, text=True)
        assert res.returncode == 0, (cc, res.stderr)


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m33"])
def test_a_dsp_kernel_built_for_a_core_without_dsp_stops_with_an_error(tmp_path, target):
    if shutil.which("arm-none-eabi-gcc") is None:
        tool_missing("arm-none-eabi-gcc is not installed")
    k = generate(KWS, EmitOptions(name="kws", target=target))
    k.write(tmp_path)
    cpu = {"cortex-m4": "cortex-m4", "cortex-m33": "cortex-m33"}[target]
    ok = subprocess.run(["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", "-O2", "-c", "kws.c", "-o", "ok.o"],
                        cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    for wrong in (["-mcpu=cortex-m3"], ["-mcpu=cortex-m0"], ["-mcpu=cortex-m33+nodsp"]):
        res = subprocess.run(["arm-none-eabi-gcc", *wrong, "-mthumb", "-O2", "-c", "kws.c", "-o", "bad.o"],
                             cwd=tmp_path, capture_output=True, text=True)
        assert res.returncode != 0, wrong
        assert (f'#error "kws was generated for {target} (DSP extension, gcc or clang): regenerate it with '
                f'--target cortex-m3 or cortex-m0, or compile it with -mcpu={cpu}"') in res.stderr, res.stderr


@pytest.mark.parametrize("order", ["cmsis first", "dwgen first", "dwgen only", "dwgen only, DWGEN_CMSIS_NN_TYPES"])
def test_cmsis_nn_api_header_and_cmsis_nn_headers_in_either_order(tmp_path, order):
    k = generate(KWS, EmitOptions(name="kws", target="cortex-m4", cmsis_nn_api=True))
    k.write(tmp_path)
    inc = tmp_path / "cmsis"
    inc.mkdir()
    (inc / "arm_nn_types.h").write_text(STAND_IN_TYPES)
    (inc / "arm_nnfunctions.h").write_text(STAND_IN_FUNCTIONS)
    includes = {"cmsis first": ['"arm_nnfunctions.h"', '"kws.h"'], "dwgen first": ['"kws.h"', '"arm_nnfunctions.h"'],
                "dwgen only": ['"kws.h"'], "dwgen only, DWGEN_CMSIS_NN_TYPES": ['"kws.h"']}[order]
    call = ("cmsis_nn_context ctx = {0, 0};\n"
            "int f(void) { return kws_cmsis_nn(&ctx, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) == ARM_CMSIS_NN_ARG_ERROR; }\n")
    (tmp_path / "use.c").write_text("".join(f"#include {i}\n" for i in includes) + call)
    flags = [] if order.startswith("dwgen only") else [f"-I{inc}"]
    flags += ["-DDWGEN_CMSIS_NN_TYPES"] if order.endswith("TYPES") else []
    for cc in (_host_cc("gcc"), _host_cc("clang")):
        res = subprocess.run([cc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", *flags, "-I.", "-c", "use.c",
                              "kws.c"], cwd=tmp_path, capture_output=True, text=True)
        assert res.returncode == 0, (cc, order, res.stderr)
