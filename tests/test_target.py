"""Generated kernels cross-compiled and run on emulated cores, byte for byte against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from dwgen import hostbuild, reference
from dwgen.codegen import EmitOptions, generate
from dwgen.suite import suite_layers
from dwgen.targetrun import TargetBuild
from dwgen.toolchain import find_compiler

from helpers import random_qlayer, tool_missing

SWEEP = 110


def _compiler_or_skip(prefer: str | None = None):
    try:
        return find_compiler(prefer)
    except Exception as exc:  # noqa: BLE001 - the reason is shown
        tool_missing(f"no Arm cross compiler: {exc}")


def _sweep(seed: int, n: int):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ql = random_qlayer(rng, max_c=10, max_hw=10, tiny=i % 10 == 0,
                           rounding="single" if i % 4 == 1 else None)
        mode = "extern" if i % 9 == 4 else "baked"
        out.append((ql, mode, rng))
    return out


@pytest.mark.parametrize("target, seed", [("cortex-m4", 404), ("cortex-m3", 303)])
def test_random_layers_bit_exact_on_the_emulated_core(target, seed):
    _compiler_or_skip()
    cases = _sweep(seed, SWEEP)
    kernels = [generate(ql, EmitOptions(name=f"t{i}", target=target, weights=mode))
               for i, (ql, mode, _) in enumerate(cases)]
    if target == "cortex-m4":
        assert sum(k.dsp is not None for k in kernels) > SWEEP // 2  # the DSP path is what runs
    build = TargetBuild(kernels, target)
    host = hostbuild.build(kernels)  # the very same C, with the portable intrinsic twins
    rng = np.random.default_rng(seed + 1)
    for (ql, _, _), k in zip(cases, kernels):
        x = ql.random_input(rng)
        want = reference(ql, x)
        run = build.run(k.name, x)
        assert np.array_equal(run.output, want), (k.name, ql.layer, ql.geometry.input_shape)
        assert np.array_equal(host[k.name](x), want), k.name
        assert run.stack_bytes <= 1536


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m3"])
@pytest.mark.parametrize("rounding", ["double", "single"])
def test_benchmark_layers_bit_exact_on_the_emulated_core(target, rounding):
    _compiler_or_skip()
    layers = [(s, ql.with_rounding(rounding)) for s, ql in suite_layers()]
    kernels = [generate(ql, EmitOptions(name=s.name, target=target)) for s, ql in layers]
    build = TargetBuild(kernels, target)
    for (s, ql), k in zip(layers, kernels):
        x = ql.random_input(s.index)
        run = build.run(k.name, x)
        assert np.array_equal(run.output, reference(ql, x)), s.name
        assert run.stack_bytes <= 1536, (s.name, run.stack_bytes)


def test_clang_from_ziglang_builds_exact_kernels():
    _compiler_or_skip("clang")
    cases = _sweep(77, 12)
    for target in ("cortex-m4", "cortex-m0"):
        kernels = [generate(ql, EmitOptions(name=f"z{i}", target=target, weights=mode))
                   for i, (ql, mode, _) in enumerate(cases)]
        build = TargetBuild(kernels, target, compiler="clang")
        assert build.toolchain["compiler"] == "clang"
        rng = np.random.default_rng(5)
        for (ql, _, _), k in zip(cases, kernels):
            x = ql.random_input(rng)
            assert np.array_equal(build.run(k.name, x).output, reference(ql, x)), k.name
