"""`--opt size` on the DSP targets: the DSP kernel with one shared tile body (a register shift
when the channels' right shifts differ), int8 weights where they stay fast, and the looped
portable kernel, with its reason, where no one-body tile fits (dwgen/dsp_tile.py
`choose_size_plan`, docs/dsp-tiles.md "--opt size").

* A seeded sweep of random layers (both rounding modes, random zero points, narrow clamps,
  shifts of both signs) generated with `--opt size` for cortex-m4: bit-exact on the host (the C
  twin of every tile) and on the emulated Cortex-M4.
* The benchmark's layers get the DSP kernel with one body, less flash than `--opt speed`.
* The fallback says why, in the kernel's description and in `data_flow_detail`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import dwgen
from dwgen import reference
from dwgen.codegen import EmitOptions, generate
from dwgen.dsp_tile import choose_plan
from dwgen.hostbuild import build
from dwgen.suite import SUITES, quantized

from helpers import emulator_tools, random_qlayer, run_emulated
from tile_classes import class_layer

SEED = 808080
SWEEP = 36

REG_SHIFT_FALLBACK = ("--opt size on a DSP target: looped portable kernel, one tile body needs a register shift "
                      "for every channel, and the right shifts include 0 beside shifts > 0 whose sign fix is live")
SINGLE_ROUNDING_FALLBACK = ("--opt size on a DSP target: looped portable kernel, the DSP tile needs the fast "
                            "SMMLAR requantization and this layer has the exact 64-bit requantization "
                            "(single rounding)")


def _sweep():
    rng = np.random.default_rng(SEED)
    out = []
    for i in range(SWEEP):
        rounding = "single" if i % 6 == 5 else "double"
        ql = random_qlayer(rng, max_hw=16 if i % 2 else 10, max_c=20, rounding=rounding)
        out.append(ql)
    # narrow clamps and zero points at the ends of the range
    for act, zp in (("relu6", (-128, -128)), ("relu_n1_to_1", (127, 3)), ("relu", (5, -128)), ("none", (0, 127))):
        out.append(class_layer(0.01, act=act, zp=zp, hw=(9, 11), c=9, ws=list(np.geomspace(0.002, 0.03, 9)),
                               seed=len(out)))
    return out


@pytest.fixture(scope="module")
def size_kernels():
    qls = _sweep()
    return qls, [generate(ql, EmitOptions(name=f"sz{i}", target="cortex-m4", opt="size")) for i, ql in enumerate(qls)]


def test_sweep_gets_one_body_tiles(size_kernels):
    qls, kernels = size_kernels
    dsp = [k for k in kernels if k.data_flow == "dsp"]
    assert len(dsp) >= 0.6 * len(kernels)
    for k in dsp:
        t = k.dsp.tile
        assert t is not None and len(t.bodies) == 1 and len(t.requants) == 1 and not t.dispatch, k.name
        assert k.c_source.count(f"{k.name}_tile:") == 2  # the body, once per stash variant
    # both kinds of requantization body, and the fallbacks name their reason
    assert {k.dsp.tile.requants[0].rshift is None for k in dsp} == {True, False}
    for k in kernels:
        if k.data_flow != "dsp":
            assert k.data_flow == "looped" and k.fallback and k.data_flow_detail == f"looped: {k.fallback}"
    assert any(k.fallback == SINGLE_ROUNDING_FALLBACK for k in kernels)


def test_sweep_bit_exact_on_the_host(size_kernels):
    qls, kernels = size_kernels
    mod = build(kernels)
    rng = np.random.default_rng(SEED + 1)
    for ql, k in zip(qls, kernels):
        x = ql.random_input(rng)
        assert np.array_equal(mod[k.name](x), reference(ql, x)), (k.name, k.data_flow_detail, ql.layer)


def test_sweep_bit_exact_on_the_emulated_m4(size_kernels, tmp_path):
    Emulator, build_elf = emulator_tools()
    qls, kernels = size_kernels
    for k in kernels:
        k.write(tmp_path)
    elf = build_elf([tmp_path / f"{k.name}.c" for k in kernels], "cortex-m4", workdir=tmp_path / "m4")
    emu = Emulator(elf)
    rng = np.random.default_rng(SEED + 2)
    for ql, k in zip(qls, kernels):
        x = ql.random_input(rng)
        y, st = run_emulated(emu, ql, k.name, x)
        assert np.array_equal(y, reference(ql, x)), (k.name, k.data_flow_detail, ql.layer)
        assert st.stack_bytes <= 1536, (k.name, st.stack_bytes)


def _suite(names=None):
    return [(s.name, quantized(s)) for s in SUITES["mlperf-tiny"] if names is None or s.name in names]


def test_benchmark_layers_get_the_dsp_kernel_with_one_body():
    for name, ql in _suite():
        speed = generate(ql, EmitOptions(name="k", target="cortex-m4"))
        size = generate(ql, EmitOptions(name="k", target="cortex-m4", opt="size"))
        assert size.data_flow == "dsp" and speed.data_flow == "dsp", name
        t = size.dsp.tile
        assert len(t.bodies) == 1 and len(t.requants) == 1, (name, size.data_flow_detail)
        # the benchmark's layers have three right shifts: speed keeps one body (or row loop) per shift
        assert len(speed.dsp.tile.requants) == 3 and t.requants[0].rshift is None, name
        assert "shifts" not in size.data_flow_detail and "shifts" in speed.data_flow_detail, name


def test_size_plans_are_the_smallest_that_stay_fast():
    """The chosen plan is within the planner's speed bound and no plan within it is estimated smaller."""
    from dwgen.dsp_tile import (SIZE_CYCLES_PER_MAC, SIZE_MAX_OVER_ONE_BODY, SIZE_MAX_SLOWDOWN, flash_estimate,
                                plan_cost, size_options)

    for name, ql in _suite(("kws_dscnn_dw", "vww_dw6", "vww_dw13", "gen_5x5", "gen_1d_k5")):
        g = ql.geometry
        options = [(c, flash_estimate(d), d.flow) for c, d in size_options(ql, "k")]
        speed = plan_cost(choose_plan(ql, "k"))  # what --opt speed emits
        limit = max((1 + SIZE_MAX_OVER_ONE_BODY) * min(c for c, _, _ in options), (1 + SIZE_MAX_SLOWDOWN) * speed,
                    SIZE_CYCLES_PER_MAC * g.out_h * g.out_w * g.kernel_h * g.kernel_w)
        chosen = choose_plan(ql, "k", size=True)
        cost, flash, flow = next(o for o in options if o[2] == chosen.flow)
        assert cost <= limit, name
        assert flash == min(f for c, f, _ in options if c <= limit), name


def test_size_takes_less_flash_than_speed(tmp_path):
    """Built for the M4 and run on the emulated core: each layer bit-exact both ways, and
    .text + .rodata of the --opt size kernel clearly below --opt speed's."""
    from dwgen.targetrun import TargetBuild

    emulator_tools()
    layers = _suite(("kws_dscnn_dw", "vww_dw2", "vww_dw7", "vww_dw12", "vww_dw13", "gen_m2", "gen_1d_k5"))
    kernels = []
    for name, ql in layers:
        kernels += [generate(ql, EmitOptions(name=f"{name}_speed", target="cortex-m4")),
                    generate(ql, EmitOptions(name=f"{name}_size", target="cortex-m4", opt="size"))]
    tb = TargetBuild(kernels, "cortex-m4")
    total = {"speed": 0, "size": 0}
    for name, ql in layers:
        x = ql.random_input(1)
        for opt in ("speed", "size"):
            assert np.array_equal(tb.run(f"{name}_{opt}", x).output, reference(ql, x)), (name, opt)
        speed, size = tb.sizes(f"{name}_speed"), tb.sizes(f"{name}_size")
        assert size.text + size.rodata < speed.text + speed.rodata, (name, size, speed)
        assert size.text < speed.text, name  # one body instead of three
        total["speed"] += speed.text + speed.rodata
        total["size"] += size.text + size.rodata
    assert total["size"] < 0.85 * total["speed"], total


def test_fallback_says_why():
    # right shifts 0 and 1, the sign fix live: one register-shift body cannot serve both
    ql = class_layer(2.7e-4, ws=[0.01, 0.005, 0.01, 0.005])
    k = generate(ql, EmitOptions(name="fb", target="cortex-m4", opt="size"))
    assert k.data_flow == "looped" and k.dsp is None
    assert k.fallback == REG_SHIFT_FALLBACK
    assert k.data_flow_detail == "looped: " + REG_SHIFT_FALLBACK
    assert " * " + REG_SHIFT_FALLBACK + "\n" in k.c_source
    # --opt speed keeps its DSP kernel (one body per shift)
    assert generate(ql, EmitOptions(name="fb", target="cortex-m4")).data_flow == "dsp"
    # TFLite's single rounding: no fast requantization, no tile
    single = dwgen.QuantizedLayer.create(
        ql.layer, ql.geometry.input_shape,
        dwgen.Quantization.from_scales(0.02, -3, [0.01] * 4, 0.003, 5, 4, rounding="single"), ql.weights, ql.bias)
    k = generate(single, EmitOptions(name="fb", target="cortex-m7", opt="size"))
    assert k.fallback == SINGLE_ROUNDING_FALLBACK and k.data_flow_detail == "looped: " + SINGLE_ROUNDING_FALLBACK
    # portable targets are looped under --opt size as always, with nothing to explain
    k = generate(ql, EmitOptions(name="fb", target="cortex-m3", opt="size"))
    assert k.data_flow == "looped" and k.fallback == "" and k.data_flow_detail == "looped"
    assert "--opt size on a DSP target" not in k.c_source


def test_cli_emit_json_reports_the_fallback(tmp_path):
    from dwgen import layerfile

    ql = class_layer(2.7e-4, ws=[0.01, 0.005, 0.01, 0.005])
    path = layerfile.dump(ql, tmp_path / "fb.json")
    out = subprocess.run([sys.executable, "-m", "dwgen.cli", "emit", str(path), "-o", str(tmp_path / "out"),
                          "--target", "cortex-m4", "--opt", "size", "--json"],
                         capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout)
    assert summary["data_flow"] == "looped"
    assert summary["data_flow_detail"] == "looped: " + REG_SHIFT_FALLBACK
