"""Issue 9 item 2: no undefined behaviour from accepted parameters.

Requantization edges: the largest accepted shifts (left 31, right 31; single rounding's left
30) run under AddressSanitizer + UndefinedBehaviorSanitizer in every template that
requantizes, bit-exact with dwgen.reference; effective scales that would need a left shift
above 31 are refused (API, layer file, model reader) with the accepted range in the message.
Sizes: a layer whose index space exceeds 2^30 is refused; one just under it is planned and
generated (not run).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import dwgen
from dwgen.cli import main
from dwgen.codegen import EmitOptions, generate
from dwgen.errors import LayerSizeError, QuantizationError
from dwgen.hostbuild import build_executable
from dwgen.layer import MAX_INDEX_SPACE, DepthwiseLayer
from dwgen.plan import make_plan
from dwgen.quant import EffectiveScaleError, Quantization
from dwgen.reference import depthwise_conv
from dwgen.refkernel import generate_reference
from dwgen.tflite_model import read_model

from helpers import tool_missing

SANITIZE = ["-O2", "-g", "-std=c99", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def _writer():
    """The small .tflite writer of test_tflite_model.py (loaded by path, as the fuzz test does)."""
    spec = importlib.util.spec_from_file_location("_dwgen_tflite_writer_ub", Path(__file__).with_name("test_tflite_model.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cc() -> str:
    for cc in ("gcc", "clang"):
        if shutil.which(cc):
            return cc
    tool_missing("no host C compiler (gcc or clang) is installed")
    return ""


# -- requantization at the shift boundaries, under the sanitizers ------------------------------
def _boundary_layer(rounding: str) -> dwgen.QuantizedLayer:
    """Every channel at or next to an edge of the accepted shift range.

    With left shift 31 TFLite's int32 `acc * 2^31` wraps to 0 or INT32_MIN, so the small
    multipliers there give outputs that are not all saturated; right shift 31 with the
    largest multiplier rounds accumulators near +-2^31 to +-1.
    """
    top = 31 if rounding == "double" else 30
    shifts = [top, -31, top, top - 1, -31, 0, top, -30]
    mults = [50, 2**31 - 1, 2**31 - 1, 3, 2**30, 2**30, 0, 1]
    q = Quantization.from_multipliers(mults, shifts, -5, 3, rounding=rounding)
    rng = np.random.default_rng(9)
    layer = DepthwiseLayer((3, 3), (1, 1), "same", 2, None, (1, 1), "none")
    bias = rng.integers(-(2**31), 2**31, 8)
    bias[[1, 4]] = [2**31 - 40000, -(2**31) + 40000]  # accumulators near the int32 limits
    return dwgen.QuantizedLayer.create(layer, (2, 6, 6, 4), q, rng.integers(-127, 128, (3, 3, 4, 2)), bias)


def _run(exe: Path, x: np.ndarray) -> bytes:
    res = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True)
    assert res.returncode == 0 and res.stderr == b"", res.stderr.decode()[-2000:]
    return res.stdout


@pytest.mark.parametrize("rounding", ["double", "single"])
def test_boundary_shifts_are_exact_under_sanitizers(rounding, tmp_path):
    cc = _cc()
    ql = _boundary_layer(rounding)
    x = ql.random_input(3)
    want = depthwise_conv(ql, x)
    assert len(np.unique(want)) >= 4  # not a trivially saturated output
    kernels = [
        generate(ql, EmitOptions(name="ub_speed")),
        generate(ql, EmitOptions(name="ub_size", opt="size")),
        generate(ql, EmitOptions(name="ub_dsp", target="cortex-m4")),
        generate_reference(ql, "ub_ref"),
    ]
    assert "dwgen_smlad" in kernels[2].c_source  # the DSP data flow, not the portable fallback
    for k in kernels:
        (tmp_path / k.name).mkdir()
        got = np.frombuffer(_run(build_executable(k, tmp_path / k.name, cc=cc, cflags=SANITIZE), x), np.int8)
        assert np.array_equal(got.reshape(want.shape), want), k.name


def test_cmsis_nn_entry_at_boundary_shifts_under_sanitizers(tmp_path):
    """The CMSIS-NN entry point reads the caller's int32 shift table: shift 31 must pass."""
    cc = _cc()
    ql = _boundary_layer("double")
    g, q = ql.geometry, ql.quant
    x = ql.random_input(4)
    want = depthwise_conv(ql, x)
    for target in ("generic", "cortex-m4"):
        k = generate(ql, EmitOptions(name="ub_cmsis", cmsis_nn_api=True, target=target))
        d = tmp_path / target
        d.mkdir()
        k.write(d)
        ints = lambda v: ", ".join(str(int(i)) for i in v)  # noqa: E731
        (d / "main.c").write_text(f"""#include <stdio.h>
#include "ub_cmsis.h"
static int8_t input[{g.input_size}];
static int8_t output[{g.output_size}];
static int32_t mult[{g.out_c}] = {{{ints(q.multipliers)}}};
static int32_t shift[{g.out_c}] = {{{ints(q.shifts)}}};
int main(void)
{{
    cmsis_nn_context ctx = {{NULL, 0}};
    cmsis_nn_dw_conv_params p = {{{-q.input_zero_point}, {q.output_zero_point}, {g.depth_multiplier},
        {{{g.stride_w}, {g.stride_h}}}, {{{g.pad_left}, {g.pad_top}}}, {{{g.dilation_w}, {g.dilation_h}}},
        {{{ql.act_min}, {ql.act_max}}}}};
    cmsis_nn_per_channel_quant_params qp = {{mult, shift}};
    cmsis_nn_dims in = {{{g.batch}, {g.in_h}, {g.in_w}, {g.in_c}}};
    cmsis_nn_dims f = {{1, {g.kernel_h}, {g.kernel_w}, {g.out_c}}};
    cmsis_nn_dims b = {{1, 1, 1, {g.out_c}}};
    cmsis_nn_dims out = {{{g.batch}, {g.out_h}, {g.out_w}, {g.out_c}}};
    if (fread(input, 1, sizeof input, stdin) != sizeof input) return 2;
    if (ub_cmsis_cmsis_nn(&ctx, &p, &qp, &in, input, &f, NULL, &b, NULL, &out, output) != ARM_CMSIS_NN_SUCCESS) return 4;
    if (fwrite(output, 1, sizeof output, stdout) != sizeof output) return 3;
    return 0;
}}
""")
        exe = d / "main"
        res = subprocess.run([cc, *SANITIZE, "-DDWGEN_CMSIS_NN_TYPES", "-o", str(exe), str(d / "main.c"), str(d / "ub_cmsis.c")],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        got = np.frombuffer(_run(exe, x), np.int8)
        assert np.array_equal(got.reshape(want.shape), want), target


def test_generated_shift_tables_hold_the_accepted_range():
    ql = _boundary_layer("double")
    for opts in (EmitOptions(name="t"), EmitOptions(name="t", target="cortex-m4")):
        src = generate(ql, opts).c_source
        table = re.search(r"static const int8_t t_shift\[\w+\] = \{([^}]*)\};", src).group(1)
        assert [int(v) for v in table.replace(",", " ").split()] == list(ql.quant.shifts)


# -- effective scales beyond a left shift of 31 are refused -----------------------------------
RANGE = ("dwgen accepts effective scales below 2^31 - 0.5 (a left shift of at most 31; TFLite's "
         "requantization overflows beyond it)")


def test_from_scales_accepts_shift_31_and_refuses_32():
    q = Quantization.from_scales(2.0**31 - 128, 0, [1.0], 1.0, 0, 1)  # largest float32 below 2^31
    assert (q.multipliers, q.shifts) == ((2**31 - 128,), (31,))
    q = Quantization.from_scales(2.0**15, 0, 2.0**15, 1.0, 0, 3, rounding="single")
    assert (q.multipliers, q.shifts) == ((2**31 - 1,) * 3, (30,) * 3)  # TFLite's saturation
    with pytest.raises(EffectiveScaleError) as e:
        Quantization.from_scales(2.0, 0, 1.0, 2.0**-30, 0, 4)
    assert str(e.value) == (
        "the effective scale of the layer (input_scale * weight_scale / output_scale = "
        "2 * 1 / 9.31322575e-10 = 2.14748365e+09) needs a requantization left shift of 32: " + RANGE
    )
    with pytest.raises(EffectiveScaleError) as e:  # the same limit in both rounding modes
        Quantization.from_scales(0.5, 0, [0.01, 0.02, 3e5], 1e-6, 0, 3, rounding="single")
    assert str(e.value) == (
        "the effective scale of output channel 2 (input_scale * weight_scale / output_scale = "
        "0.5 * 300000 / 9.99999997e-07 = 1.5e+11) needs a requantization left shift of 38: " + RANGE
    )
    assert isinstance(e.value, QuantizationError)


def test_direct_shifts_outside_the_range_are_refused():
    with pytest.raises(QuantizationError, match=r"^shifts\[0\]=32 is not allowed: a shift is in \[-31, 31\]$"):
        Quantization.from_multipliers([2**30], [32], 0, 0)
    with pytest.raises(QuantizationError, match=r"^shifts\[1\]=-32 is not allowed: a shift is in \[-31, 31\]$"):
        Quantization.from_multipliers([2**30, 2**30], [0, -32], 0, 0)
    # A Quantization built field by field (shift 299 once reached an int8_t table).
    bad = Quantization(input_zero_point=0, output_zero_point=0, multipliers=(2**30,), shifts=(299,))
    with pytest.raises(QuantizationError) as e:
        dwgen.QuantizedLayer.create(DepthwiseLayer((1, 1)), (2, 2, 1), bad, np.ones((1, 1, 1, 1), np.int8))
    assert str(e.value) == (
        "multipliers[0]=1073741824, shifts[0]=299 is not allowed: a multiplier is in [0, 2^31 - 1] "
        "and a shift in [-31, 31]"
    )
    single = Quantization(input_zero_point=0, output_zero_point=0, multipliers=(2**30,), shifts=(31,), rounding="single")
    with pytest.raises(QuantizationError, match=r"a shift in \[-31, 30\]$"):
        dwgen.QuantizedLayer.create(DepthwiseLayer((1, 1)), (2, 2, 1), single, np.ones((1, 1, 1, 1), np.int8))


def _layer_file(tmp_path: Path, shape, quant: dict, kernel=(3, 3), channels=1) -> Path:
    doc = {
        "class_name": "DepthwiseConv2D",
        "config": {"name": "ub", "kernel_size": list(kernel), "padding": "same", "activation": "relu"},
        "input_shape": list(shape), "quantization": quant, "weights": "ub.npz",
    }
    np.savez(tmp_path / "ub.npz", weights=np.ones((*kernel, channels, 1), np.int8), bias=np.zeros(channels, np.int32))
    path = tmp_path / "ub.json"
    path.write_text(json.dumps(doc))
    return path


def _cli_fails(capsys, argv, outdir: Path) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dwgen: error: ") and err.count("\n") == 1, err
    assert not outdir.exists()
    return err[len("dwgen: error: "):-1]


def test_layer_file_with_effective_scale_2_pow_31_is_refused(tmp_path, capsys):
    quant = {"input_scale": 1.0, "input_zero_point": 0, "output_scale": 2.0**-31, "output_zero_point": 0,
             "weight_scales": [1.0, 0.5]}
    path = _layer_file(tmp_path, (4, 4, 2), quant, channels=2)
    err = _cli_fails(capsys, ["emit", str(path), "-o", str(tmp_path / "out")], tmp_path / "out")
    assert err == (
        f"{path}: the effective scale of output channel 0 (input_scale * weight_scale / output_scale = "
        "1 * 1 / 4.65661287e-10 = 2.14748365e+09) needs a requantization left shift of 32: " + RANGE
    )
    quant["weight_scales"] = [0.5, 0.25]  # 2^30 and 2^29: shifts 31 and 30, accepted
    path = _layer_file(tmp_path, (4, 4, 2), quant, channels=2)
    assert main(["emit", str(path), "-o", str(tmp_path / "ok")]) == 0
    table = re.search(r"ub_shift\[\w+\] = \{([^}]*)\};", (tmp_path / "ok" / "ub.c").read_text()).group(1)
    assert [int(v) for v in table.replace(",", " ").split()] == [31, 30]


def test_model_with_output_scale_1e_15_lists_the_op_as_unsupported(tmp_path, capsys):
    tm = _writer()
    spec = tm.dw_spec()
    spec["tensors"][3]["scale"] = [1e-15]
    data = tm.build(spec)
    m = read_model(data)
    assert m.depthwise == []
    (u,) = m.unsupported
    reason = (
        "the effective scale of output channel 0 (input_scale * weight_scale / output_scale = "
        "0.0500000007 * 0.0102308718 / 1e-15 = 5.11543598e+11) needs a requantization left shift of 39: "
        + RANGE
    )
    assert (u.index, u.op, u.reason) == (0, "DEPTHWISE_CONV_2D", reason)
    path = tmp_path / "tiny_scale.tflite"
    path.write_bytes(data)
    err = _cli_fails(capsys, ["emit", str(path), "-o", str(tmp_path / "out")], tmp_path / "out")
    assert err == f"the model has no depthwise layer dwgen can generate (op 0: {reason})"


# -- sizes: the index space of every layer fits a 32-bit int ----------------------------------
def _size_message(shape, n, c, m, h, ph, sh, dh, w, pw, sw, dw) -> str:
    space = n * c * m * (h + ph + sh + dh) * (w + pw + sw + dw)
    return (
        f"the layer on input_shape={shape!r} is too large for the generated C's 32-bit index arithmetic: "
        "batch x channels x depth_multiplier x (height + vertical padding + stride + dilation) x "
        "(width + horizontal padding + stride + dilation) = "
        f"{n} x {c} x {m} x ({h} + {ph} + {sh} + {dh}) x ({w} + {pw} + {sw} + {dw}) = {space}; "
        "dwgen accepts at most 2^30 = 1073741824"
    )


def test_50000x50000_layer_file_is_refused(tmp_path, capsys):
    quant = {"input_scale": 0.05, "input_zero_point": 0, "output_scale": 0.05, "output_zero_point": 0,
             "weight_scales": [0.01]}
    path = _layer_file(tmp_path, (50000, 50000, 1), quant)
    err = _cli_fails(capsys, ["emit", str(path), "-o", str(tmp_path / "out")], tmp_path / "out")
    assert err == f"{path}: " + _size_message((1, 50000, 50000, 1), 1, 1, 1, 50000, 2, 1, 1, 50000, 2, 1, 1)


def test_index_space_limit_is_exact():
    layer = DepthwiseLayer((3, 3), padding="same")
    assert (32764 + 4) ** 2 == MAX_INDEX_SPACE
    g = layer.geometry((32764, 32764, 1))  # exactly at the limit: accepted
    assert (g.out_h, g.out_w) == (32764, 32764)
    with pytest.raises(LayerSizeError) as e:
        layer.geometry((32765, 32764, 1))
    assert str(e.value) == _size_message((1, 32765, 32764, 1), 1, 1, 1, 32765, 2, 1, 1, 32764, 2, 1, 1)
    # Strides, dilations, batch, channels and the depth multiplier all count; so does the layout.
    with pytest.raises(LayerSizeError) as e:
        DepthwiseLayer((1, 1), strides=(1, 2**30)).geometry((5, 5, 1))
    assert str(e.value) == _size_message((1, 5, 5, 1), 1, 1, 1, 5, 0, 1, 1, 5, 0, 2**30, 1)
    with pytest.raises(LayerSizeError) as e:
        DepthwiseLayer((3, 3), depth_multiplier=4096, data_format="channels_first").geometry((2, 64, 62, 62))
    assert str(e.value) == _size_message((2, 64, 62, 62), 2, 64, 4096, 62, 0, 1, 1, 62, 0, 1, 1)
    with pytest.raises(LayerSizeError) as e:
        dwgen.DepthwiseConv1D(5, dilation_rate=2**28, padding="same").geometry((3, 1))
    assert str(e.value).startswith("the layer on input_shape=(1, 3, 1) is too large")


def test_layer_just_under_the_limit_is_planned_and_generated(tmp_path):
    """Planned, rendered and compiled to an object, never run (its input would be 1 GiB).

    The compile is -Werror: an int constant expression that overflowed (a region's start
    offset, a stride product) would be a -Woverflow error.
    """
    cc = _cc()
    layer = DepthwiseLayer((3, 3), padding="same")
    q = Quantization.from_scales(0.05, 1, [0.01], 0.05, 0, 1)
    ql = dwgen.QuantizedLayer.create(layer, (32764, 32764, 1), q, np.ones((3, 3, 1, 1), np.int8))
    plan = make_plan(ql)
    assert len(plan.regions) == 9
    for opts in (EmitOptions(name="huge"), EmitOptions(name="huge_size", opt="size")):
        k = generate(ql, opts)
        assert f"#define {opts.name.upper()}_INPUT_SIZE 1073479696" in k.h_source
        assert len(k.c_source) < 20_000
        k.write(tmp_path)
        res = subprocess.run([cc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", "-c",
                              f"{k.name}.c", "-o", f"{k.name}.o"], cwd=tmp_path, capture_output=True, text=True)
        assert res.returncode == 0 and res.stderr == "", res.stderr


def test_model_reader_lists_an_oversized_op_as_unsupported():
    tm = _writer()
    spec = tm.dw_spec()
    spec["ops"][0]["options"]["stride_w"] = 2**30  # SAME on width 6: one output column
    spec["tensors"][3]["shape"] = [1, 6, 1, 8]
    m = read_model(tm.build(spec))
    assert m.depthwise == []
    (u,) = m.unsupported
    assert u.reason == _size_message((1, 6, 6, 4), 1, 4, 2, 6, 2, 1, 1, 6, 0, 2**30, 1)


# -- the DSP data flows' C (tile twins, compact weight store, taps flow), under the sanitizers ---
UB_CLASSES = ("plane stride 2, 3 shifts", "plane NCHW, odd channels", "block", "compact weights",
              "compact weights, left shift", "int8 taps, left shift", "register shift", "taps: 2x2 outputs, padding, 2 tail channels",
              "taps: 1-D k9, relu6, batch 2", "taps: register shift, stride 2")


def test_dsp_flows_are_exact_under_sanitizers(tmp_path):
    """The host build of a DSP kernel is the C twin of its asm tile (or the taps flow's C):
    every buffer it reads and writes (the band, the rebuilt weights, unaligned 4-channel loads)
    is checked by AddressSanitizer, every shift and conversion by UBSan."""
    from tile_classes import class_layers

    cc = _cc()
    layers = dict(class_layers())
    kinds = set()
    for i, label in enumerate(UB_CLASSES):
        ql = layers[label]
        k = generate(ql, EmitOptions(name=f"ub_flow{i}", target="cortex-m4"))
        d = k.dsp
        if d.taps is not None:
            kinds.add("taps")
        else:
            kinds.add(d.tile.loop)
            if d.store is not None:
                kinds.add("int8 head" if d.store.head else "compact")
        (tmp_path / k.name).mkdir()
        x = ql.random_input(i)
        got = np.frombuffer(_run(build_executable(k, tmp_path / k.name, cc=cc, cflags=SANITIZE), x), np.int8)
        assert np.array_equal(got.reshape(ql.geometry.output_shape), depthwise_conv(ql, x)), label
    assert kinds >= {"taps", "compact", "int8 head", "plane", "block"}, kinds
