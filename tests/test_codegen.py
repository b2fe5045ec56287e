"""Generated kernels, compiled on the host, against TFLite's reference kernel bit for bit."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import pytest

import dwgen
from dwgen import oracle, reference
from dwgen.codegen import EmitOptions, generate, with_layout
from dwgen.errors import DwgenError
from dwgen.hostbuild import build, build_executable
from dwgen.layer import DepthwiseLayer
from dwgen.plan import make_plan

from helpers import random_qlayer, tool_missing

SWEEP = 320


def _sweep_layers():
    rng = np.random.default_rng(20261121)
    layers = []
    for i in range(SWEEP):
        if i % 10 == 0:
            ql = random_qlayer(rng, tiny=True)  # 1x1, 2x2, images smaller than the kernel
        else:
            ql = random_qlayer(rng)
        mode = "extern" if i % 7 == 3 else "baked"
        cmsis = i % 11 == 5 and not ql.geometry.channels_first
        layers.append((ql, EmitOptions(name=f"sweep{i}", weights=mode, cmsis_nn_api=cmsis)))
    return layers


@pytest.fixture(scope="module")
def sweep():
    layers = _sweep_layers()
    kernels = [generate(ql, opts) for ql, opts in layers]
    return layers, build(kernels)


def test_sweep_covers_what_the_issue_lists(sweep):
    layers, _ = sweep
    qls = [ql for ql, _ in layers]
    gs = [ql.geometry for ql in qls]
    assert any(g.channels_first for g in gs)
    assert any(g.depth_multiplier > 1 for g in gs)
    assert any(max(g.stride_h, g.stride_w) > 1 and max(g.dilation_h, g.dilation_w) > 1 for g in gs)
    assert any(g.in_c % 2 == 1 for g in gs)
    assert any(g.batch == 2 for g in gs)
    assert any(g.rank == 1 for g in gs)
    assert any(g.in_h == 1 and g.in_w == 1 for g in gs)
    assert any(ql.layer.padding == "same" and ql.geometry.in_w < ql.geometry.kernel_w for ql in qls)
    assert any(not ql.layer.use_bias for ql in qls)
    assert {ql.layer.activation for ql in qls} == {"none", "relu", "relu6", "relu_n1_to_1"}
    assert any(max(ql.quant.shifts) > 0 for ql in qls) and any(min(ql.quant.shifts) < 0 for ql in qls)
    assert any(o.weights == "extern" for _, o in layers) and any(o.cmsis_nn_api for _, o in layers)


def test_sweep_bit_exact_against_tflite(sweep):
    layers, mod = sweep
    rng = np.random.default_rng(7)
    for ql, opts in layers:
        x = ql.random_input(rng)
        got = mod[opts.name](x)
        want = oracle.run_tflite(ql, x)
        assert np.array_equal(got, want), f"{opts.name}: {ql.layer!r} {ql.geometry.input_shape}"


def test_sweep_single_rounding_against_reference():
    rng = np.random.default_rng(99)
    qls = [random_qlayer(rng, rounding="single") for _ in range(60)]
    kernels = [generate(ql, EmitOptions(name=f"single{i}")) for i, ql in enumerate(qls)]
    mod = build(kernels)
    differs = 0
    for ql, k in zip(qls, kernels):
        x = ql.random_input(rng)
        got = mod[k.name](x)
        assert np.array_equal(got, reference(ql, x)), k.name
        differs += not np.array_equal(got, reference(ql.with_rounding("double"), x))
    assert differs > 0  # the sweep really exercises the other rounding


def _cmsis_call(mod, ql, name, x, **overrides):
    ffi, lib = mod.module.ffi, mod.module.lib
    g, q = ql.geometry, ql.quant
    params = ffi.new("cmsis_nn_dw_conv_params *")
    params.input_offset = overrides.get("input_offset", -q.input_zero_point)
    params.output_offset = q.output_zero_point
    params.ch_mult = g.depth_multiplier
    params.stride.h, params.stride.w = g.stride_h, g.stride_w
    params.padding.h, params.padding.w = g.pad_top, g.pad_left
    params.dilation.h, params.dilation.w = g.dilation_h, g.dilation_w
    params.activation.min, params.activation.max = ql.act_min, ql.act_max
    mult = ffi.new("int32_t[]", list(q.multipliers))
    shift = ffi.new("int32_t[]", list(overrides.get("shifts", q.shifts)))
    qp = ffi.new("cmsis_nn_per_channel_quant_params *", {"multiplier": mult, "shift": shift})
    dims = lambda n, h, w, c: ffi.new("cmsis_nn_dims *", {"n": n, "h": h, "w": w, "c": c})  # noqa: E731
    in_dims = dims(g.batch, g.in_h, g.in_w, overrides.get("in_c", g.in_c))
    f_dims = dims(1, g.kernel_h, g.kernel_w, g.out_c)
    b_dims = dims(1, 1, 1, g.out_c)
    out_dims = dims(g.batch, g.out_h, g.out_w, g.out_c)
    xin = np.ascontiguousarray(x)
    w = np.ascontiguousarray(ql.weights)
    b = np.ascontiguousarray(ql.bias)
    out = np.zeros(g.output_shape, dtype=np.int8)
    ctx = ffi.new("cmsis_nn_context *")
    status = getattr(lib, f"{name}_cmsis_nn")(
        ctx, params, qp, in_dims, ffi.from_buffer("int8_t[]", xin), f_dims, ffi.from_buffer("int8_t[]", w),
        b_dims, ffi.from_buffer("int32_t[]", b), out_dims, ffi.from_buffer("int8_t[]", out),
    )
    return status, out


def test_cmsis_nn_entry_point_matches_and_rejects_mismatches(sweep):
    layers, mod = sweep
    ffi_lib = mod.module.lib
    rng = np.random.default_rng(3)
    checked = 0
    for ql, opts in layers:
        if not opts.cmsis_nn_api:
            continue
        x = ql.random_input(rng)
        status, out = _cmsis_call(mod, ql, opts.name, x)
        assert status == ffi_lib.ARM_CMSIS_NN_SUCCESS
        assert np.array_equal(out, oracle.run_tflite(ql, x))
        bad_shifts = list(ql.quant.shifts)
        bad_shifts[-1] += 1
        for override in ({"input_offset": -ql.quant.input_zero_point + 1}, {"shifts": bad_shifts},
                         {"in_c": ql.geometry.in_c + 1}):
            status, _ = _cmsis_call(mod, ql, opts.name, x, **override)
            assert status == ffi_lib.ARM_CMSIS_NN_ARG_ERROR, override
        checked += 1
    assert checked >= 10


def test_extern_weights_are_read_at_run_time(sweep):
    layers, mod = sweep
    ql, opts = next((ql, o) for ql, o in layers if o.weights == "extern" and ql.layer.use_bias)
    rng = np.random.default_rng(11)
    x = ql.random_input(rng)
    other_w = rng.integers(-127, 128, ql.weights.shape).astype(np.int8)
    other_b = rng.integers(-999, 999, ql.bias.shape).astype(np.int32)
    other = dataclasses.replace(ql, weights=other_w, bias=other_b)
    assert np.array_equal(mod[opts.name](x, other_w, other_b), oracle.run_tflite(other, x))


def test_accumulator_overflow_wraps_like_int32():
    # A bias at the edge of int32 makes the sum wrap; TFLite wraps in int32 too.
    layer = dwgen.DepthwiseConv2D(3, padding="same")
    q = dwgen.Quantization.from_scales(0.05, 100, [0.01, 0.02], 1000.0, 0, 2)
    ql = dwgen.QuantizedLayer.create(layer, (4, 4, 2), q, np.full((3, 3, 2, 1), 127), [2**31 - 5, -(2**31) + 5])
    plan = make_plan(ql)
    assert plan.acc_may_overflow
    k = generate(ql, EmitOptions(name="wraps"))
    assert "uint32_t acc" in k.c_source
    x = ql.random_input(5)
    assert np.array_equal(build(k)["wraps"](x), reference(ql, x))


def test_host_kernel_checks_shape_and_dtype():
    ql = random_qlayer(np.random.default_rng(1), data_format="channels_last")
    mod = build(generate(ql, EmitOptions(name="checked")))
    x = ql.random_input(0)
    with pytest.raises(DwgenError, match="dtype int16: it must be int8"):
        mod["checked"](x.astype(np.int16))
    with pytest.raises(DwgenError, match="has shape"):
        mod["checked"](x.reshape(-1))
    with pytest.raises(DwgenError, match="baked in"):
        mod["checked"](x, ql.weights)


def test_generated_code_is_specialized():
    layer = dwgen.DepthwiseConv2D(3, padding="same", activation="relu6")
    q = dwgen.Quantization.from_scales(0.05, -3, [0.01] * 4, 0.1, 5, 4)
    ql = dwgen.QuantizedLayer.create(layer, (6, 6, 4), q, np.ones((3, 3, 4, 1), np.int8), [1, 2, 3, 4])
    src = generate(ql, EmitOptions(name="spec")).c_source
    # One interior loop and eight border regions; corners read 4 taps, edges 6, interior 9.
    assert src.count("/* Interior:") == 1
    assert src.count("/* Border:") == 8
    assert src.count("4 of 9 taps inside") == 4 and src.count("6 of 9 taps inside") == 4
    # All shifts are right shifts: no left-shift code at all.
    assert "left" not in src.split("_requantize")[1].split("}")[0]
    # The input zero point is folded into the bias table: bias - (-3) * 9.
    assert "28,          29,          30,          31," in src
    assert "SCRATCH_SIZE 0" in generate(ql, EmitOptions(name="spec")).h_source


def test_nchw_layout_override_matches_nhwc():
    rng = np.random.default_rng(5)
    ql = random_qlayer(rng, data_format="channels_last", rank=2)
    qc = with_layout(ql, "nchw")
    mod = build([generate(ql, EmitOptions(name="hwc")), generate(qc, EmitOptions(name="chw"))])
    x = ql.random_input(rng)
    y = mod["hwc"](x)
    y2 = mod["chw"](np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))
    assert np.array_equal(np.transpose(y2, (0, 2, 3, 1)), y)


def test_cmsis_nn_api_refuses_nchw():
    ql = random_qlayer(np.random.default_rng(2), data_format="channels_first")
    with pytest.raises(DwgenError, match="--cmsis-nn-api needs an NHWC"):
        generate(ql, EmitOptions(name="x", cmsis_nn_api=True))


@pytest.mark.parametrize("bad", ["1abc", "a-b", "x; system(\"rm\")", "int", "__x", "", "a" * 49, "名前"])
def test_kernel_name_must_be_a_c_identifier(bad):
    ql = random_qlayer(np.random.default_rng(2))
    with pytest.raises(DwgenError):
        generate(ql, EmitOptions(name=bad))


def test_generation_is_deterministic():
    rng = np.random.default_rng(8)
    for _ in range(5):
        ql = random_qlayer(rng)
        a, b = generate(ql, EmitOptions(name="det")), generate(ql, EmitOptions(name="det"))
        assert a.files == b.files


# -- compiler strictness and sanitizers -----------------------------------------------------
def _representative():
    rng = np.random.default_rng(12)
    out = []
    for i in range(10):
        ql = random_qlayer(rng, data_format="channels_last" if i % 2 else "channels_first")
        out.append((ql, EmitOptions(name=f"rep{i}", weights="extern" if i % 3 == 0 else "baked",
                                    cmsis_nn_api=bool(i % 2) and i % 4 == 1)))
    out.append((random_qlayer(rng, rounding="single"), EmitOptions(name="rep_single")))
    out.append((random_qlayer(rng, tiny=True), EmitOptions(name="rep_tiny")))
    layer = DepthwiseLayer((7, 7), (2, 2), "same", 2, None, (1, 1), "relu6")
    q = dwgen.Quantization.from_scales(0.1, 7, [0.05] * 6, 0.001, -3, 6)  # left shifts
    out.append((dwgen.QuantizedLayer.create(layer, (9, 9, 3), q, np.full((7, 7, 3, 2), -127), None),
                EmitOptions(name="rep_big")))
    return out


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_generated_code_is_warning_free(cc, tmp_path):
    if shutil.which(cc) is None:
        tool_missing(f"{cc} is not installed")
    for ql, opts in _representative():
        k = generate(ql, opts)
        k.write(tmp_path)
        flags = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", "-c"]
        if opts.cmsis_nn_api:
            flags.append("-DDWGEN_CMSIS_NN_TYPES")
        res = subprocess.run([cc, *flags, f"{k.name}.c", "-o", f"{k.name}.o"], cwd=tmp_path,
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert res.stderr == ""


def test_sanitizer_build_is_clean(tmp_path):
    cc = "gcc" if shutil.which("gcc") else "clang"
    flags = ["-O1", "-g", "-std=c99", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    rng = np.random.default_rng(21)
    for ql, opts in _representative():
        if opts.weights != "baked":
            opts = dataclasses.replace(opts, weights="baked", cmsis_nn_api=False)
        k = generate(ql, dataclasses.replace(opts, cmsis_nn_api=False))
        exe = build_executable(k, tmp_path, cc=cc, cflags=flags)
        x = ql.random_input(rng)
        res = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True)
        assert res.returncode == 0, res.stderr.decode()[-2000:]
        assert res.stderr == b""
        got = np.frombuffer(res.stdout, dtype=np.int8).reshape(ql.geometry.output_shape)
        assert np.array_equal(got, reference(ql, x)), k.name


def test_size_optimized_kernels_are_exact_and_smaller():
    from dwgen.targetrun import TargetBuild

    rng = np.random.default_rng(31)
    qls = [random_qlayer(rng) for _ in range(40)]
    kernels = [generate(ql, EmitOptions(name=f"small{i}", opt="size", weights="extern" if i % 5 == 0 else "baked"))
               for i, ql in enumerate(qls)]
    mod = build(kernels)
    for ql, k in zip(qls, kernels):
        x = ql.random_input(rng)
        assert np.array_equal(mod[k.name](x), reference(ql, x)), k.name
        assert "/* Border:" not in k.c_source and "one loop body for the whole image" in k.c_source
    # On a flash-tight part the size variant really is smaller, and still exact.
    layer = dwgen.DepthwiseConv2D(3, padding="same", activation="relu")
    q = dwgen.Quantization.from_scales(0.05, -128, [0.01] * 16, 0.1, -128, 16)
    ql = dwgen.QuantizedLayer.create(layer, (12, 12, 16), q, rng.integers(-127, 128, (3, 3, 16, 1)), None)
    speed, size = generate(ql, EmitOptions(name="speed")), generate(ql, EmitOptions(name="size", opt="size"))
    tb = TargetBuild([speed, size], "cortex-m0")
    x = ql.random_input(0)
    assert np.array_equal(tb.run("size", x).output, reference(ql, x))
    assert tb.sizes("size").text < tb.sizes("speed").text


def test_emitted_c_keeps_definitions_apart():
    """A closing brace and the next definition never share a line (`}void k(` was emitted)."""
    import re

    from tile_classes import class_layers

    for label, ql in class_layers():
        for target in ("cortex-m4", "cortex-m7", "cortex-m3", "generic"):
            src = generate(ql, EmitOptions(name="k", target=target)).c_source
            glued = re.findall(r"^\}[ \t]*\S.*$", src, re.M)
            assert not [g for g in glued if not g.startswith(("} /*", "};", "} while"))], (label, target, glued[:3])
