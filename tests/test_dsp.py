"""The DSP kernel (Cortex-M4/M7/M33/M55 data flow), built on the host with the portable
intrinsics: bit-exact against TFLite's reference kernel; warning-free; and, when the cross
toolchain and emulator are available, bit-exact on an emulated Cortex-M4."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from dwgen import oracle, reference
from dwgen.codegen import EmitOptions, generate
from dwgen.dsp_plan import BAND_BUDGET, make_dsp_plan
from dwgen.errors import DwgenError
from dwgen.hostbuild import build
from dwgen.suite import MLPERF_TINY, suite_layers

from helpers import emulator_tools, random_qlayer, run_emulated, tool_missing

SWEEP = 120


@pytest.fixture(scope="module")
def sweep():
    rng = np.random.default_rng(424242)
    layers = []
    for i in range(SWEEP):
        ql = random_qlayer(rng, tiny=True) if i % 10 == 0 else random_qlayer(rng)
        target = ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")[i % 4]
        cmsis = i % 13 == 6 and not ql.geometry.channels_first
        layers.append((ql, EmitOptions(name=f"dsp{i}", target=target, cmsis_nn_api=cmsis)))
    kernels = [generate(ql, o) for ql, o in layers]
    return layers, kernels, build(kernels)


def test_sweep_uses_the_dsp_kernel(sweep):
    layers, kernels, _ = sweep
    assert all(k.dsp is not None for k in kernels)
    assert all("dwgen_smla" in k.c_source for k in kernels)
    assert sum(k.dsp.fast_rq for k in kernels) > SWEEP // 2
    assert any(k.dsp.quad_gather for k in kernels) and any(not k.dsp.quad_gather for k in kernels)
    gs = [ql.geometry for ql, _ in layers]
    assert any(g.channels_first for g in gs) and any(g.depth_multiplier > 1 for g in gs)
    assert any(g.rank == 1 for g in gs) and any(g.batch == 2 for g in gs)
    assert any(g.dilation_w > 1 for g in gs) and any(g.stride_w > 1 for g in gs)


def test_sweep_bit_exact_against_tflite(sweep):
    layers, _, mod = sweep
    rng = np.random.default_rng(5)
    for ql, opts in layers:
        x = ql.random_input(rng)
        assert np.array_equal(mod[opts.name](x), oracle.run_tflite(ql, x)), f"{opts.name}: {ql.layer!r}"


def test_single_rounding_against_reference():
    rng = np.random.default_rng(77)
    qls = [random_qlayer(rng, rounding="single") for _ in range(30)]
    kernels = [generate(ql, EmitOptions(name=f"dsps{i}", target="cortex-m4")) for i, ql in enumerate(qls)]
    assert all(k.dsp is not None for k in kernels)
    mod = build(kernels)
    for ql, k in zip(qls, kernels):
        x = ql.random_input(rng)
        assert np.array_equal(mod[k.name](x), reference(ql, x)), k.name


def test_benchmark_layers_bit_exact_on_host():
    layers = suite_layers()
    assert len(layers) == len(MLPERF_TINY) == 15
    kernels = [generate(ql, EmitOptions(name=f"bench_{s.name}", target="cortex-m4")) for s, ql in layers]
    for k in kernels:
        assert k.dsp is not None and k.dsp.fast_rq
        assert k.dsp.band_bytes <= BAND_BUDGET
    mod = build(kernels)
    for (s, ql), k in zip(layers, kernels):
        assert (ql.act_min, ql.act_max) == (s.act_min, s.act_max)
        x = ql.random_input(s.index)
        assert np.array_equal(mod[k.name](x), oracle.run_tflite(ql, x)), s.name


def test_every_data_flow_bit_exact(monkeypatch):
    """Ring and block bands, every step width, forced on random layers (host build)."""
    import dwgen.codegen as codegen
    import dwgen.dsp_tile as dsp_tile

    rng = np.random.default_rng(2024)
    cases = []
    for i in range(40):
        ql = random_qlayer(rng)
        mode = ("ring", "block")[i % 2]
        step = 1 + (i // 2) % 4
        rows = None if i % 3 else 2
        if mode == "ring" and ql.geometry.dilation_h > 1 and ql.geometry.stride_h > 1:
            mode = "block"
        cases.append((ql, dict(mode=mode, step=step, rows=rows)))
    kernels = []
    for i, (ql, kw) in enumerate(cases):
        monkeypatch.setattr(codegen, "choose_plan", lambda q, name, kw=kw, **opts: dsp_tile.choose_plan(q, name, **kw, **opts))
        kernels.append(generate(ql, EmitOptions(name=f"flow{i}", target="cortex-m4")))
    assert all(k.dsp is not None for k in kernels)
    assert {k.dsp.mode for k in kernels} == {"ring", "block"}
    mod = build(kernels)
    for (ql, kw), k in zip(cases, kernels):
        x = ql.random_input(rng)
        assert np.array_equal(mod[k.name](x), reference(ql, x)), (k.name, k.dsp.flow, ql.layer)


def test_generic_targets_keep_the_portable_kernel():
    ql = random_qlayer(np.random.default_rng(3), data_format="channels_last")
    for target in ("generic", "cortex-m0", "cortex-m0plus", "cortex-m3"):
        k = generate(ql, EmitOptions(name="p", target=target))
        assert k.dsp is None and "dwgen_smlad" not in k.c_source
    assert generate(ql, EmitOptions(name="p", target="cortex-m4", weights="extern")).dsp is None
    with pytest.raises(DwgenError, match="target="):
        generate(ql, EmitOptions(name="p", target="cortex-m5"))


def test_wide_rows_fall_back_to_the_portable_kernel():
    import dwgen
    layer = dwgen.DepthwiseConv2D(3, padding="same")
    q = dwgen.Quantization.from_scales(0.05, 3, [0.01], 0.1, 5, 1)
    ql = dwgen.QuantizedLayer.create(layer, (4, 400, 1), q, np.ones((3, 3, 1, 1), np.int8))
    assert make_dsp_plan(ql) is None
    assert generate(ql, EmitOptions(name="wide", target="cortex-m4")).dsp is None


def test_dsp_generation_is_deterministic():
    rng = np.random.default_rng(8)
    for _ in range(3):
        ql = random_qlayer(rng)
        a = generate(ql, EmitOptions(name="det", target="cortex-m4"))
        b = generate(ql, EmitOptions(name="det", target="cortex-m4"))
        assert a.files == b.files


def _strict_compile(cc_argv, tmp_path, kernels):
    for k in kernels:
        k.write(tmp_path)
        flags = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", "-c"]
        if k.options.cmsis_nn_api:
            flags.append("-DDWGEN_CMSIS_NN_TYPES")
        res = subprocess.run([*cc_argv, *flags, f"{k.name}.c", "-o", f"{k.name}.o"], cwd=tmp_path,
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert res.stderr == ""


def _representative():
    rng = np.random.default_rng(31)
    out = [generate(random_qlayer(rng), EmitOptions(name=f"rep{i}", target="cortex-m4")) for i in range(8)]
    out[3] = generate(random_qlayer(rng, data_format="channels_last"),
                      EmitOptions(name="rep3", target="cortex-m4", cmsis_nn_api=True))
    out.append(generate(random_qlayer(rng, rounding="single"), EmitOptions(name="rep_single", target="cortex-m4")))
    out += [generate(ql, EmitOptions(name=f"rb_{s.name}", target="cortex-m4")) for s, ql in suite_layers()[:2]]
    return out


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_host_build_is_warning_free(cc, tmp_path):
    if shutil.which(cc) is None:
        tool_missing(f"{cc} is not installed")
    _strict_compile([cc], tmp_path, _representative())


def test_arm_build_is_warning_free(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        tool_missing("arm-none-eabi-gcc is not installed")
    argv = ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    _strict_compile(argv, tmp_path, _representative())
    # the DSP instructions really are used on the core
    k = _representative()[-1]
    res = subprocess.run(["arm-none-eabi-objdump", "-d", f"{k.name}.o"], cwd=tmp_path, capture_output=True,
                         text=True)
    for insn in ("smlad", "sxtab16", "smmlar", "ssat"):
        assert insn in res.stdout, insn


def test_random_layers_on_emulated_cortex_m4(tmp_path):
    """The inline-assembly paths (PKH gather, SSAT with a shift, SMLAxy) on the core itself."""
    import dwgen

    Emulator, build_elf = emulator_tools()
    rng = np.random.default_rng(99)
    qls = [random_qlayer(rng) for _ in range(10)]
    # per-tensor quantization: one shift for every channel (SSAT #8 with ASR folded in)
    layer = dwgen.DepthwiseConv2D(3, padding="same", activation="relu6")
    q = dwgen.Quantization.from_scales(0.03, -5, [0.004], 0.05, -100, 8)
    qls.append(dwgen.QuantizedLayer.create(layer, (1, 9, 11, 8), q, rng.integers(-127, 128, (3, 3, 8, 1))))
    kernels = [generate(ql, EmitOptions(name=f"emu{i}", target="cortex-m4")) for i, ql in enumerate(qls)]
    assert kernels[-1].dsp.uniform_rshift is not None and kernels[-1].dsp.uniform_rshift > 0
    for d in kernels:
        d.write(tmp_path)
    emu = Emulator(build_elf([tmp_path / f"{k.name}.c" for k in kernels], "cortex-m4", workdir=tmp_path))
    for ql, k in zip(qls, kernels):
        x = ql.random_input(rng)
        y, _ = run_emulated(emu, ql, k.name, x)
        assert np.array_equal(y, reference(ql, x)), (k.name, k.dsp.flow if k.dsp else None, ql.layer)


def test_benchmark_layers_on_emulated_cortex_m4(tmp_path):
    Emulator, build_elf = emulator_tools()
    for s, ql in suite_layers():
        k = generate(ql, EmitOptions(name=s.name, target="cortex-m4"))
        d = tmp_path / s.name
        d.mkdir()
        k.write(d)
        emu = Emulator(build_elf([d / f"{s.name}.c"], "cortex-m4", workdir=d))
        g = ql.geometry
        x = ql.random_input(s.index)
        xa = emu.alloc_bytes(x.tobytes())
        ya = emu.alloc(g.output_size)
        st = emu.call(s.name, xa, ya)
        y = emu.read_array(ya, g.output_size).reshape(g.output_shape)
        assert np.array_equal(y, reference(ql, x)), s.name
        assert st.stack_bytes <= 1536, (s.name, st.stack_bytes)
        cycles = st.cycles().m4_cycles
        assert cycles < s.cmsis_m4_cycles, (s.name, cycles / g.macs)


def _columnar_layers():
    import dwgen

    rng = np.random.default_rng(3131)
    out = []
    for kh, stride, dil, m, fmt, batch, pad in [(3, 1, 1, 1, None, 1, "same"), (15, 1, 1, 1, None, 1, "valid"),
                                               (5, 2, 1, 2, None, 2, "same"), (3, 1, 2, 1, "channels_first", 1, "valid"),
                                               (10, 1, 1, 1, None, 1, "valid")]:
        layer = dwgen.DepthwiseConv2D((kh, 1), strides=(stride, 1), dilation_rate=(dil, 1), padding=pad,
                                      depth_multiplier=m, data_format=fmt, activation="relu")
        c = 6
        shape = (batch, c, 20, 1) if fmt else (batch, 20, 1, c)
        q = dwgen.Quantization.from_scales(0.03, -128, list(rng.uniform(0.002, 0.01, c * m)), 0.05, -128, c * m)
        out.append(dwgen.QuantizedLayer.create(layer, shape, q, rng.integers(-127, 128, (kh, 1, c, m))))
    return out


def test_columnar_layers_run_with_rows_and_columns_swapped(tmp_path):
    """W = 1 layers (1-D along H) are generated as the equivalent 1 x H layer: bit-exact on the
    host (the C twin) and on the emulated Cortex-M4 (the tiles)."""
    qls = _columnar_layers()
    kernels = [generate(ql, EmitOptions(name=f"col{i}", target="cortex-m4")) for i, ql in enumerate(qls)]
    for k, ql in zip(kernels, qls):
        assert k.dsp is not None and k.dsp.ql.geometry.in_h == 1 and k.dsp.ql.geometry.in_w == ql.geometry.in_h
        assert "rows and columns swap" in k.c_source
        assert f"Input {list(ql.geometry.input_shape)}" in k.c_source
    mod = build(kernels)
    rng = np.random.default_rng(8)
    for ql, k in zip(qls, kernels):
        x = ql.random_input(rng)
        assert np.array_equal(mod[k.name](x), oracle.run_tflite(ql, x)), k.name
    Emulator, build_elf = emulator_tools()
    for k in kernels:
        k.write(tmp_path)
    emu = Emulator(build_elf([tmp_path / f"{k.name}.c" for k in kernels], "cortex-m4", workdir=tmp_path))
    for ql, k in zip(qls, kernels):
        x = ql.random_input(rng)
        assert np.array_equal(run_emulated(emu, ql, k.name, x)[0], reference(ql, x)), k.name
